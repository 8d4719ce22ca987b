#include "vmm/jailer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>
#include <spdlog/details/os.h>

#include "common/log.hpp"
#include "common/unique_fd.hpp"

namespace hospes {

namespace {

// The monitor tells the jailer on a pipe: "J" once it is jailed, then
// "R<reason>\n" as it stops.
constexpr char kJailed = 'J';
constexpr char kReason = 'R';
// How long after the monitor is jailed the jailer jails itself: by then
// the guest runs (the lab's monitor goes from its jail to the first guest
// instruction in some 20 ms on one emulated CPU).
constexpr int64_t kJailSelfAfterMs = 100;

int64_t monotonic_ms() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1000000;
}

std::string signal_cause(int signal) {
    if (signal == SIGSYS)
        return "the monitor was killed for a system call outside its thread's seccomp filter (SIGSYS)";
    if (signal == SIGKILL) return "the monitor was killed (SIGKILL: by hand, or the host ran out of memory)";
    const char* name = ::sigabbrev_np(signal);
    return fmt::format("the monitor was killed by signal {} (SIG{})", signal, name != nullptr ? name : "?");
}

}  // namespace

Result<void> JailedMonitor::enter(sandbox::JailOptions options) {
    options.die_with_parent = true;
    options.network = network_;
    if (auto r = sandbox::enter_jail(options); !r) return r;
    if (network_ >= 0) ::close(network_);  // joined: no more use
    // Also tells whether the jailer is still there (it may have ended
    // before the monitor could ask to die with it).
    if (::write(channel_, &kJailed, 1) != 1) return host_error("the jailer is gone");
    return {};
}

void JailedMonitor::report(std::string_view reason) {
    std::string line = kReason + std::string(reason) + "\n";
    [[maybe_unused]] auto written = ::write(channel_, line.data(), line.size());
}

std::string exit_report(int status, std::string_view reason, std::string_view cause) {
    nlohmann::json report = {{"status", status}, {"reason", reason}};
    if (!cause.empty()) report["cause"] = cause;
    return report.dump() + "\n";
}

sandbox::Allowlist jailer_allowlist(pid_t child) {
    sandbox::Allowlist list{"jailer", {}};
    constexpr uint64_t kAll = ~uint64_t{0};
    list.allow("poll").allow("read").allow("write").allow("close").allow("wait4").allow("exit_group");
    // The log stamps each message with the time (the vDSO's, unless the
    // host's clock source makes it fall back to the call).
    list.allow("clock_gettime");
    for (int signal : {SIGINT, SIGTERM, SIGHUP})
        list.allow_if("kill", {{0, kAll, static_cast<uint64_t>(child)}, {1, kAll, static_cast<uint64_t>(signal)}});
    // The terminal the monitor put in raw mode is given back as it was.
    list.allow_if("ioctl", {{0, kAll, 0}, {1, kAll, TCSETS}});
    // Its allocator (never executable memory).
    list.allow_if("mmap", {{2, PROT_EXEC, 0}}).allow("munmap").allow("brk");
    return list;
}

int run_jailed(const JailerOptions& options, const std::function<int(JailedMonitor&)>& monitor) {
    UniqueFd report;
    if (!options.exit_file.empty()) {
        report = UniqueFd(::open(options.exit_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!report.valid()) {
            log::error("--exit-file: cannot open '{}': {}", options.exit_file, std::strerror(errno));
            return kExitHostError;
        }
    }
    int channel[2];
    if (::pipe2(channel, O_CLOEXEC) != 0) {
        log::error("pipe: {}", std::strerror(errno));
        return kExitHostError;
    }
    ::tzset();  // the log's time zone, read while /etc is there
    termios terminal{};
    bool restore_terminal = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &terminal) == 0;
    sigset_t signals;
    sigemptyset(&signals);
    for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&signals, signal);
    ::sigprocmask(SIG_BLOCK, &signals, nullptr);

    // The remover: root, outside the jail, holding nothing but its end of
    // a pipe. A byte from the jailer arms it (the sockets are the
    // monitor's by then); the pipe's end (the jailer gone) sets it off.
    UniqueFd arm_remover;
    if (!options.remove_at_exit.empty()) {
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC) != 0) {
            log::error("pipe: {}", std::strerror(errno));
            return kExitHostError;
        }
        // Forked twice: not the jailer's child (its only child is the
        // monitor, which is what hospesd and the tests look for there).
        pid_t middle = ::fork();
        if (middle == 0) {
            if (::fork() != 0) ::_exit(0);
            sandbox::close_other_fds(std::span<const int>(&ends[0], 1));
            bool armed = false;
            char byte;
            for (ssize_t n; (n = ::read(ends[0], &byte, 1)) != 0;)
                if (n == 1) armed = true;
            if (armed)
                for (const auto& path : options.remove_at_exit) ::unlink(path.c_str());
            ::_exit(0);
        }
        ::close(ends[0]);
        arm_remover = UniqueFd(ends[1]);
        if (middle < 0) {
            log::error("fork: {}", std::strerror(errno));
            return kExitHostError;
        }
        ::waitpid(middle, nullptr, 0);
    }
    auto child = sandbox::spawn_jailed();
    if (!child) {
        log::error("{}", child.error().message);
        return kExitHostError;
    }
    if (*child == 0) {
        // The monitor: nothing of the jailer's but the channel and stdio.
        const int keep[] = {channel[1], options.network};
        sandbox::close_other_fds(keep);
        JailedMonitor jailed(channel[1], options.network);
        int status = monitor(jailed);
        spdlog::default_logger()->flush();
        ::_exit(status);
    }
    ::close(channel[1]);
    log::forget_milestones();  // the monitor's to tell
    UniqueFd from_monitor(channel[0]);
    UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC));
    std::string said;  // what the monitor sent
    bool monitor_jailed = false, self_jailed = false;
    int64_t jail_self_at = 0;  // monotonic ms
    // The monitor's own user, its empty root and namespaces, no capability,
    // a filter of a few calls: all the jailer does from here on is wait,
    // pass signals on and write the report.
    auto jail_self = [&] {
        self_jailed = true;
        sandbox::JailOptions own{options.uid, options.gid, true, false, {64, 4, 1 << 20}, {}, -1, *child};
        if (auto r = sandbox::enter_jail(own); !r) {
            // The monitor ended before (its namespaces went with it): the
            // rest of the jail, so that what it said is read confined too.
            log::debug("the jailer cannot share the monitor's jail: {}", r.error().message);
            if (auto restricted = sandbox::restrict_process(own); !restricted) {
                log::warn("the jailer stays unjailed: {}", restricted.error().message);
                return;
            }
        }
        log::milestone("jailer jailed");
        // The log's thread id, asked now: its first message may come after
        // the filter (the cause of a crash), and gettid is not on it.
        (void)spdlog::details::os::thread_id();
        if (auto f = sandbox::load_filter(jailer_allowlist(*child)); !f)
            log::warn("the jailer has no filter: {}", f.error().message);
    };
    int wait_status = 0;
    for (;;) {
        // Between the monitor's "jailed" and its own jail the jailer reads
        // nothing the monitor writes: its own jail can wait until the guest
        // has started (off the launch's path, as on a host of one CPU every
        // step before the first guest instruction is), with nothing a guest
        // could reach in the meantime.
        bool wait_to_jail = monitor_jailed && !self_jailed;
        bool listen = from_monitor.valid() && !wait_to_jail;
        int timeout = wait_to_jail ? static_cast<int>(std::max<int64_t>(0, jail_self_at - monotonic_ms())) : -1;
        pollfd fds[2] = {{signal_fd.get(), POLLIN, 0}, {from_monitor.get(), POLLIN, 0}};
        int ready = ::poll(fds, listen ? 2 : 1, timeout);
        if (ready == 0 && wait_to_jail) jail_self();
        if (ready <= 0) continue;
        if (listen && fds[1].revents != 0) {
            char buffer[256];
            ssize_t n = ::read(from_monitor.get(), buffer, sizeof(buffer));
            if (n <= 0) {
                from_monitor.reset();
            } else {
                said.append(buffer, static_cast<size_t>(n));
                if (!monitor_jailed && said.find(kJailed) != std::string::npos) {
                    monitor_jailed = true;
                    if (arm_remover.valid()) [[maybe_unused]] auto armed = ::write(arm_remover.get(), "!", 1);
                    jail_self_at = monotonic_ms() + kJailSelfAfterMs;
                }
            }
        }
        if (fds[0].revents == 0) continue;
        signalfd_siginfo info{};
        if (::read(signal_fd.get(), &info, sizeof(info)) != sizeof(info)) continue;
        if (info.ssi_signo != SIGCHLD) {
            ::kill(*child, static_cast<int>(info.ssi_signo));
            continue;
        }
        if (::waitpid(*child, &wait_status, WNOHANG) == *child) break;
    }
    // Jailed before it reads the rest of what the monitor said (its reason).
    if (monitor_jailed && !self_jailed) jail_self();
    if (from_monitor.valid()) {
        char buffer[256];
        for (ssize_t n; (n = ::read(from_monitor.get(), buffer, sizeof(buffer))) > 0;)
            said.append(buffer, static_cast<size_t>(n));
    }
    int status = kExitHostError;
    std::string reason = "host-error", cause;
    // (The report is written before anything is logged.)
    if (WIFEXITED(wait_status)) {
        status = WEXITSTATUS(wait_status);
        if (auto at = said.find(kReason); at != std::string::npos) {
            auto end = said.find('\n', at);
            reason = said.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
        } else if (status == kExitBadInput) {
            reason = "bad-input";
        }
    } else if (WIFSIGNALED(wait_status)) {
        status = 128 + WTERMSIG(wait_status);
        reason = "crash";
        cause = signal_cause(WTERMSIG(wait_status));
    }
    if (report.valid()) {
        std::string text = exit_report(status, reason, cause);
        [[maybe_unused]] auto written = ::write(report.get(), text.data(), text.size());
    }
    if (!cause.empty()) log::error("{}", cause);
    log::print_milestones();
    if (restore_terminal) ::tcsetattr(STDIN_FILENO, TCSANOW, &terminal);
    return status;
}

}  // namespace hospes
