// monitor_bench: how fast and how small the monitor is, measured on this
// host's /dev/kvm with the tiny freestanding test guest (tests/kvm/guest).
//
// For every figure it runs `hospes -v run --kernel <test guest> --cmdline
// hello --memory 64M` (and 1G) as a child process and reads the monitor's
// debug lines:
//   first KVM_RUN: monotonic <ns> ns, process CPU <us> us
//   memory: rss <K> KiB, guest resident <K> KiB, monitor overhead <K> KiB
// Launches are interleaved with a peer, posix_spawn + wait of /bin/true (the
// floor of process creation on this host), so both see the same noise; the
// launch time is reported as a ratio to it.
//
// Usage: monitor_bench [--runs N] [--launches M] [--jail]
//   N rounds for the latency and memory figures (default 30); M guests
//   launched to completion for each throughput figure (default 100).
// Exit status: 0 after printing the figures, or when /dev/kvm cannot be used
// here (one line says so); 1 when a launch failed; 2 on bad arguments.
#include <fcntl.h>
#include <linux/kvm.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "sandbox/jail.hpp"

extern char** environ;

namespace {

int64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double ns_to_ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// One finished child process.
struct ChildResult {
    bool started = false;
    int wait_status = 0;
    int64_t before_spawn_ns = 0;  // CLOCK_MONOTONIC just before posix_spawn
    int64_t reaped_ns = 0;        // ... just after waitpid returned
    std::string stderr_text;

    bool succeeded() const { return started && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0; }
};

// Runs argv[0] (an absolute path) with stdin and stdout on /dev/null and
// stderr captured, and waits for it. Safe to call from several threads: the
// pipe is close-on-exec, so no other child inherits its write end.
// `handed`: a descriptor the child gets as its fd 3, or -1.
ChildResult run_child(const std::vector<std::string>& argv, int handed = -1) {
    ChildResult result;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return result;

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    if (handed >= 0) posix_spawn_file_actions_adddup2(&actions, handed, 3);

    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);

    pid_t pid = -1;
    result.before_spawn_ns = monotonic_ns();
    int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        result.stderr_text = std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc);
        ::close(fds[0]);
        return result;
    }
    result.started = true;

    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n > 0) {
            result.stderr_text.append(buffer, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    ::close(fds[0]);
    while (::waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
    }
    result.reaped_ns = monotonic_ns();
    return result;
}

// The integer right after `key` in text, if any.
std::optional<int64_t> number_after(std::string_view text, std::string_view key) {
    size_t at = text.find(key);
    if (at == std::string_view::npos) return std::nullopt;
    const char* first = text.data() + at + key.size();
    const char* last = text.data() + text.size();
    int64_t value = 0;
    auto [end, error] = std::from_chars(first, last, value);
    if (error != std::errc{} || end == first) return std::nullopt;
    return value;
}

// The binaries, as built; HOSPES_BINARY and HOSPES_TEST_GUEST say where
// they are elsewhere (the nested lab: bench/lab-jail-cost.sh).
std::string hospes_binary() {
    const char* given = std::getenv("HOSPES_BINARY");
    return given != nullptr ? given : HOSPES_BINARY;
}
std::string test_guest() {
    const char* given = std::getenv("HOSPES_TEST_GUEST");
    return given != nullptr ? given : TEST_GUEST;
}

// How a launch is jailed: not, as hospesd does it (a user of its own,
// namespaces, seccomp; the network namespace made ahead and handed over),
// or as `hospes run --jail` by hand does it (the monitor makes its own).
enum class Jail { none, hospesd, by_hand };

std::vector<std::string> guest_command(std::string_view memory, bool verbose, Jail jail = Jail::none) {
    std::vector<std::string> argv{hospes_binary()};
    if (verbose) argv.emplace_back("-v");
    argv.emplace_back("run");
    if (jail != Jail::none) argv.emplace_back("--jail");
    if (jail == Jail::hospesd) argv.insert(argv.end(), {"--jail-netns-fd", "3"});
    for (std::string arg : {std::string("--kernel"), test_guest(), std::string("--cmdline"), std::string("hello"),
                            std::string("--memory")})
        argv.push_back(arg);
    argv.emplace_back(memory);
    return argv;
}

// One launch of the test guest with the figures its debug lines give.
struct Launch {
    double to_first_run_ms = 0;  // bench's clock before spawn -> monitor's first KVM_RUN
    double cpu_ms = 0;           // monitor process CPU time at first KVM_RUN
    double to_exit_ms = 0;       // before spawn -> child reaped (guest ran and reset)
    double rss_kib = 0;
    double overhead_kib = 0;
    // The monitor's (and jailer's) "milestone NAME: monotonic N ns" lines,
    // as ms after spawn, in the order printed: where a launch's time goes.
    std::vector<std::pair<std::string, double>> milestones;
};

std::vector<std::pair<std::string, double>> milestones(std::string_view text, int64_t since_ns) {
    std::vector<std::pair<std::string, double>> found;
    constexpr std::string_view kKey = "milestone ";
    for (size_t at = text.find(kKey); at != std::string_view::npos; at = text.find(kKey, at + 1)) {
        size_t colon = text.find(": monotonic ", at);
        size_t end = text.find('\n', at);
        if (colon == std::string_view::npos || colon > end) continue;
        auto ns = number_after(text.substr(colon), ": monotonic ");
        if (ns) found.emplace_back(std::string(text.substr(at + kKey.size(), colon - at - kKey.size())), ns_to_ms(*ns - since_ns));
    }
    return found;
}

std::optional<Launch> launch_guest(std::string_view memory, std::string& failure, Jail jail = Jail::none) {
    hospes::UniqueFd network;
    if (jail == Jail::hospesd) {
        // Made before the clock starts, as hospesd makes it ahead.
        auto made = hospes::sandbox::make_network_namespace();
        if (!made) {
            failure = made.error().message;
            return std::nullopt;
        }
        network = std::move(*made);
    }
    ChildResult child = run_child(guest_command(memory, true, jail), network.get());
    if (!child.succeeded()) {
        failure = "hospes run --memory " + std::string(memory) + " failed (wait status " +
                  std::to_string(child.wait_status) + "):\n" + child.stderr_text;
        return std::nullopt;
    }
    auto first_run = number_after(child.stderr_text, "first KVM_RUN: monotonic ");
    auto cpu_us = number_after(child.stderr_text, "process CPU ");
    auto rss = number_after(child.stderr_text, "memory: rss ");
    auto overhead = number_after(child.stderr_text, "monitor overhead ");
    if (!first_run || !cpu_us || !rss || !overhead) {
        failure = "hospes -v did not print its first-KVM_RUN and memory debug lines:\n" + child.stderr_text;
        return std::nullopt;
    }
    Launch launch;
    launch.to_first_run_ms = ns_to_ms(*first_run - child.before_spawn_ns);
    launch.cpu_ms = static_cast<double>(*cpu_us) / 1e3;
    launch.to_exit_ms = ns_to_ms(child.reaped_ns - child.before_spawn_ns);
    launch.rss_kib = static_cast<double>(*rss);
    launch.overhead_kib = static_cast<double>(*overhead);
    launch.milestones = milestones(child.stderr_text, child.before_spawn_ns);
    return launch;
}

double peer_true_ms() {
    ChildResult child = run_child({"/bin/true"});
    return child.succeeded() ? ns_to_ms(child.reaped_ns - child.before_spawn_ns) : NAN;
}

// Median (mean of the two middle values for an even count) and p90 (nearest
// rank) of a sample.
struct Summary {
    double median = NAN;
    double p90 = NAN;
};

Summary summarize(std::vector<double> values) {
    std::erase_if(values, [](double v) { return std::isnan(v); });
    if (values.empty()) return {};
    std::sort(values.begin(), values.end());
    size_t n = values.size();
    Summary s;
    s.median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    size_t rank = static_cast<size_t>(std::ceil(0.9 * static_cast<double>(n)));
    s.p90 = values[std::max<size_t>(rank, 1) - 1];
    return s;
}

// `total` runs of `job` spread over `parallel` threads, each thread starting
// its next run as soon as its previous one is done. Returns runs per second
// of wall time, or NaN when a run failed.
template <typename Job>
double runs_per_second(int total, int parallel, Job job) {
    std::atomic<int> next{0};
    std::atomic<bool> failed{false};
    int64_t start = monotonic_ns();
    std::vector<std::thread> workers;
    for (int w = 0; w < parallel; ++w)
        workers.emplace_back([&] {
            while (next.fetch_add(1) < total)
                if (!job()) failed = true;
        });
    for (auto& worker : workers) worker.join();
    double seconds = static_cast<double>(monotonic_ns() - start) / 1e9;
    return failed ? NAN : total / seconds;
}

// Why this host's /dev/kvm cannot run a VM, or empty when it can.
std::string kvm_unusable_reason() {
    int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return std::string("cannot open /dev/kvm: ") + std::strerror(errno);
    std::string reason;
    int version = ::ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        reason = "/dev/kvm has API version " + std::to_string(version);
    } else {
        int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
        if (vm < 0)
            reason = std::string("KVM_CREATE_VM failed: ") + std::strerror(errno);
        else
            ::close(vm);
    }
    ::close(kvm);
    return reason;
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one, five;
    in >> one >> five;
    return one + " (1 min), " + five + " (5 min)";
}

void row(const char* label, Summary s, const char* format = "%10.2f %10.2f\n") {
    std::printf("  %-56s", label);
    std::printf(format, s.median, s.p90);
}

bool parse_count(const char* text, int& out) {
    auto [end, error] = std::from_chars(text, text + std::strlen(text), out);
    return error == std::errc{} && *end == '\0' && out > 0;
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 30;
    int launches = 100;
    bool jail = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        bool ok = i + 1 < argc;
        if (arg == "--jail")
            ok = jail = true;
        else if (ok && arg == "--runs")
            ok = parse_count(argv[++i], rounds);
        else if (ok && arg == "--launches")
            ok = parse_count(argv[++i], launches);
        else
            ok = false;
        if (!ok) {
            std::fprintf(stderr, "usage: %s [--runs N] [--launches M] [--jail]\n", argv[0]);
            return 2;
        }
    }

    if (std::string reason = kvm_unusable_reason(); !reason.empty()) {
        std::printf("monitor_bench: skipped: /dev/kvm is not usable here (%s)\n", reason.c_str());
        return 0;
    }

    utsname host{};
    ::uname(&host);
    std::printf("monitor_bench: hospes %s, test guest %s\n", hospes_binary().c_str(), test_guest().c_str());
    std::printf("host: %s %s, %u CPUs, load average %s\n", host.sysname, host.release,
                std::thread::hardware_concurrency(), load_average().c_str());
    std::fflush(stdout);

    // Warm-up (page cache, dynamic loader), not counted.
    std::string failure;
    for (int i = 0; i < 3; ++i) {
        peer_true_ms();
        if (!launch_guest("64M", failure) ||
            (jail && (!launch_guest("64M", failure, Jail::hospesd) || !launch_guest("64M", failure, Jail::by_hand)))) {
            std::printf("monitor_bench: %s\n", failure.c_str());
            return 1;
        }
    }

    // Latency and memory: rounds of (peer, 64 MiB guest, 1 GiB guest).
    std::vector<double> peer, first_run, first_run_1g, cpu, to_exit, overhead, overhead_1g, rss, rss_1g, ratio;
    // Milestone name -> ms after spawn, per kind of launch, in first-seen order.
    using Phases = std::vector<std::pair<std::string, std::vector<double>>>;
    Phases unjailed_phases, jailed_phases;
    auto add_phases = [](Phases& phases, const Launch& launch) {
        for (const auto& [name, ms] : launch.milestones) {
            auto at = std::find_if(phases.begin(), phases.end(), [&](const auto& p) { return p.first == name; });
            if (at == phases.end()) at = phases.insert(phases.end(), {name, {}});
            at->second.push_back(ms);
        }
    };
    std::vector<double> jailed_first_run, jailed_cpu, jailed_rss, jailed_overhead, jail_ratio, by_hand_first_run,
        by_hand_ratio;
    // A jailed launch leaves the kernel work to do after its exit (its
    // namespaces are torn down by kernel workers): each launch of a --jail
    // round starts after a pause, so that none pays for the one before.
    auto settle = [jail] {
        if (jail) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    };
    for (int round = 0; round < rounds; ++round) {
        double peer_ms = peer_true_ms();
        settle();
        auto small = launch_guest("64M", failure);
        settle();
        auto big = small ? launch_guest("1G", failure) : std::nullopt;
        std::optional<Launch> jailed, by_hand;
        if (small && big && jail) {
            settle();
            jailed = launch_guest("64M", failure, Jail::hospesd);
            settle();
            by_hand = jailed ? launch_guest("64M", failure, Jail::by_hand) : std::nullopt;
            settle();
            if (!by_hand) big.reset();
        }
        if (!small || !big) {
            std::printf("monitor_bench: round %d: %s\n", round + 1, failure.c_str());
            return 1;
        }
        peer.push_back(peer_ms);
        first_run.push_back(small->to_first_run_ms);
        cpu.push_back(small->cpu_ms);
        to_exit.push_back(small->to_exit_ms);
        overhead.push_back(small->overhead_kib);
        rss.push_back(small->rss_kib);
        first_run_1g.push_back(big->to_first_run_ms);
        overhead_1g.push_back(big->overhead_kib);
        rss_1g.push_back(big->rss_kib);
        ratio.push_back(small->to_first_run_ms / peer_ms);
        add_phases(unjailed_phases, *small);
        if (jailed) {
            add_phases(jailed_phases, *jailed);
            jailed_first_run.push_back(jailed->to_first_run_ms);
            jailed_cpu.push_back(jailed->cpu_ms);
            jailed_rss.push_back(jailed->rss_kib);
            jailed_overhead.push_back(jailed->overhead_kib);
            jail_ratio.push_back(jailed->to_first_run_ms / small->to_first_run_ms);
            by_hand_first_run.push_back(by_hand->to_first_run_ms);
            by_hand_ratio.push_back(by_hand->to_first_run_ms / small->to_first_run_ms);
        }
    }

    // Throughput: guests launched and run to completion, back to back.
    auto guest_job = [] { return run_child(guest_command("64M", false)).succeeded(); };
    auto peer_job = [] { return run_child({"/bin/true"}).succeeded(); };
    double peer_rate = runs_per_second(launches, 1, peer_job);
    double rate_1 = runs_per_second(launches, 1, guest_job);
    double rate_2 = runs_per_second(launches, 2, guest_job);

    Summary peer_s = summarize(peer), first_s = summarize(first_run);
    std::printf("\nlatency and memory: %d rounds, each a /bin/true spawn, a 64 MiB and a 1 GiB launch\n", rounds);
    std::printf("  %-56s %10s %10s\n", "", "median", "p90");
    row("spawn -> first KVM_RUN, wall ms (64 MiB guest)", first_s);
    row("spawn -> first KVM_RUN, wall ms (1 GiB guest)", summarize(first_run_1g));
    row("monitor CPU time at first KVM_RUN, ms (64 MiB)", summarize(cpu));
    row("spawn -> exit, whole test guest run, wall ms (64 MiB)", summarize(to_exit));
    row("peer: posix_spawn + wait of /bin/true, wall ms", peer_s);
    row("ratio: spawn -> first KVM_RUN / peer, per round", summarize(ratio), "%9.1fx %9.1fx\n");
    std::printf("  %-56s %9.1fx\n", "ratio of the medians: first KVM_RUN / peer", first_s.median / peer_s.median);
    row("monitor overhead KiB (rss - guest resident), 64 MiB", summarize(overhead), "%10.0f %10.0f\n");
    row("monitor overhead KiB (rss - guest resident), 1 GiB", summarize(overhead_1g), "%10.0f %10.0f\n");
    row("monitor rss KiB, 64 MiB guest", summarize(rss), "%10.0f %10.0f\n");
    row("monitor rss KiB, 1 GiB guest", summarize(rss_1g), "%10.0f %10.0f\n");
    if (jail) {
        // The jail's cost, launch by launch beside the unjailed one (goal: at most 1.10).
        Summary jailed_s = summarize(jailed_first_run), jailed_rss_s = summarize(jailed_rss);
        std::printf("\nthe jail (hospes run --jail, its network namespace made ahead as hospesd does), 64 MiB guest, "
                    "same rounds\n");
        row("jailed: spawn -> first KVM_RUN, wall ms", jailed_s);
        row("jailed: monitor CPU time at first KVM_RUN, ms", summarize(jailed_cpu));
        row("jailed: monitor overhead KiB (rss - guest resident)", summarize(jailed_overhead), "%10.0f %10.0f\n");
        row("jailed: monitor rss KiB", jailed_rss_s, "%10.0f %10.0f\n");
        row("ratio: jailed / unjailed first KVM_RUN, per round", summarize(jail_ratio), "%9.2fx %9.2fx\n");
        std::printf("  %-56s %9.2fx\n", "ratio of the medians: jailed / unjailed first KVM_RUN", jailed_s.median / first_s.median);
        std::printf("  %-56s %9.2fx\n", "ratio of the medians: jailed / unjailed monitor rss",
                    jailed_rss_s.median / summarize(rss).median);
        Summary by_hand_s = summarize(by_hand_first_run);
        row("by hand (the monitor makes its network namespace): ms", by_hand_s);
        row("ratio: by hand / unjailed first KVM_RUN, per round", summarize(by_hand_ratio), "%9.2fx %9.2fx\n");
        // Where the time goes: each milestone's median, ms after spawn.
        for (const auto* phases : {&unjailed_phases, &jailed_phases}) {
            std::printf("  milestones, %s (ms after spawn, median):", phases == &jailed_phases ? "jailed" : "unjailed");
            for (const auto& [name, values] : *phases) std::printf(" %s %.1f;", name.c_str(), summarize(values).median);
            std::printf(" first KVM_RUN %.1f\n", summarize(phases == &jailed_phases ? jailed_first_run : first_run).median);
        }
    }

    std::printf("\nthroughput: %d launches each, run to completion (64 MiB, exit via i8042 reset)\n", launches);
    std::printf("  %-56s %10.1f\n", "VMs launched and completed per second, 1 at a time", rate_1);
    std::printf("  %-56s %10.1f\n", "VMs launched and completed per second, 2 in parallel", rate_2);
    std::printf("  %-56s %9.2fx\n", "ratio: 2 in parallel / 1 at a time", rate_2 / rate_1);
    std::printf("  %-56s %10.1f\n", "peer: /bin/true spawned and reaped per second, 1 at a time", peer_rate);
    std::printf("host load average after: %s\n", load_average().c_str());

    if (std::isnan(rate_1) || std::isnan(rate_2) || std::isnan(peer_rate)) {
        std::printf("monitor_bench: a throughput launch failed\n");
        return 1;
    }
    return 0;
}
