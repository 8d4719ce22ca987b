#include "cli/run_command.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/device_options.hpp"
#include "common/log.hpp"
#include "common/size.hpp"
#include "toolstack/domain_config.hpp"
#include "vmm/host_console.hpp"
#include "vmm/jailer.hpp"
#include "driver_domain/options.hpp"
#include "common/unique_fd.hpp"

namespace hospes::cli {

void add_run_command(CLI::App& app, RunOptions& options) {
    auto* run = app.add_subcommand("run", "Boot a guest; its console is this terminal (Ctrl-A x quits)");
    run->add_option("--kernel", options.kernel, "bzImage or vmlinux ELF (default: the default guest)");
    run->add_option("--initrd", options.initrd, "initramfs or initrd image");
    run->add_option("--cmdline", options.cmdline,
                    fmt::format("kernel command line (default: \"{}\", console=hvc0 with --console virtio)",
                                kDefaultCmdline));
    run->add_option("--memory", options.memory, "guest RAM, e.g. 512M or 4G (a bare number is MiB)")
        ->capture_default_str();
    run->add_option("--vcpus", options.vcpus, "number of virtual CPUs")->capture_default_str();
    run->add_option("--disk", options.disks,
                    "virtio block device: an image file or host block device, PATH[,ro][,direct], or one a vhost-user "
                    "back-end serves, vhost-user=SOCKET; repeatable, "
                    "the first is /dev/vda");
    run->add_option("--net", options.nets,
                    "virtio network card on a tap: tap=NAME, bridge=BRIDGE or both, with optional ,mac=MAC; "
                    "or served by a back-end: vhost-user=SOCKET; repeatable");
    run->add_option("--console", options.console, "the guest console: serial (ttyS0) or virtio (hvc0)")
        ->capture_default_str();
    run->add_flag("--hugepages", options.hugepages,
                  "guest RAM on the host's 2 MiB huge pages (reserved beforehand in /proc/sys/vm/nr_hugepages); "
                  "all of it is taken when the guest starts");
    run->add_option("--root", options.root, "root device, e.g. /dev/vda (adds root=DEVICE to the command line)");
    run->add_option("--control", options.control,
                    "the monitor's control socket (JSON requests: query, power-button, pause, unpause; see "
                    "`hospes control`)");
    run->add_option("--console-socket", options.console_socket,
                    "serve the guest console on this unix socket (one client at a time; `hospes console "
                    "--socket`) instead of stdin; its output also goes to stdout");
    run->add_option("--exit-file", options.exit_file,
                    "at exit, write {\"status\":N,\"reason\":\"poweroff|reboot|crash|host-error|signal\"} here");
    run->add_option("--cpus", options.cpus,
                    "host CPUs the vCPUs may run on, as xl.cfg's cpus=: one CPULIST (e.g. 0-3,^1) for all, or "
                    "repeated once per vCPU");
    run->add_flag("--paused", options.paused, "start with the vCPUs paused (the control socket's unpause starts them)");
    auto* jail = run->add_flag("--jail", options.jail,
                  "run jailed: the monitor opens what it needs, then runs as a user of its own in namespaces of its "
                  "own with an empty root, no capabilities and a seccomp filter per thread (needs root)");
    run->add_option("--jail-user", options.jail_user,
                    fmt::format("UID[:GID] of the jail (default {} + 2^20 + the process id; GID defaults to UID)",
                                kJailUidBase));
    run->add_option("--jail-netns-fd", options.jail_netns_fd,
                    "with --jail: join this inherited network namespace (made ahead, as hospesd does) instead of "
                    "making one")
        ->check(CLI::NonNegativeNumber)
        ->needs(jail);
    run->add_flag("--no-seccomp", options.no_seccomp, "no seccomp filters on the monitor's threads (debugging)");
    // A test hook: no guest can reach it, hospesd passes it only when it has --test-hooks itself.
    run->add_flag("--test-escape-drill", options.escape_drill,
                  "test hook: the control socket's escape-drill tries what a monitor taken over would (docs/security.md)")
        ->group("");
    run->add_flag("--balloon", options.balloon,
                  "a virtio-balloon device (the last virtio device): the control socket's balloon request lowers "
                  "the guest's RAM and gives it back to the host, and free pages the guest reports go back too");
}

std::string default_guest_dir() {
    if (const char* dir = std::getenv("HOSPES_GUEST_DIR"); dir != nullptr && *dir != '\0') return dir;
    return HOSPES_DEFAULT_GUEST_DIR;
}

Result<MachineConfig> machine_config(const RunOptions& options, const std::string& default_guest_dir) {
    MachineConfig config;
    auto memory = parse_size(options.memory);
    if (!memory) return std::unexpected(Error{ErrorKind::BadInput, "--memory: " + memory.error().message});
    config.memory_size = *memory;
    config.vcpus = options.vcpus;
    config.hugepages = options.hugepages;
    config.control_socket = options.control;
    config.start_paused = options.paused;
    config.balloon = options.balloon;
    if (options.cpus.size() > 1 && options.cpus.size() != options.vcpus)
        return bad_input("--cpus: {} lists for {} vCPUs (give one for all, or one per vCPU)", options.cpus.size(),
                         options.vcpus);
    for (const auto& list : options.cpus) {
        auto cpus = toolstack::parse_cpulist(list, static_cast<unsigned>(::sysconf(_SC_NPROCESSORS_CONF)));
        if (!cpus) return bad_input("--cpus '{}': {}", list, cpus.error().message);
        config.vcpu_cpus.push_back(std::move(*cpus));
    }
    if (options.paused && options.control.empty()) return bad_input("--paused needs --control, to unpause");
    auto console = parse_console(options.console);
    if (!console) return std::unexpected(console.error());
    config.console = *console;
    config.cmdline = !options.cmdline.empty()                 ? options.cmdline
                     : config.console == ConsoleKind::Virtio ? kDefaultVirtioConsoleCmdline
                                                              : kDefaultCmdline;
    if (!options.root.empty()) {
        if (options.root.find_first_of(" \t\n") != std::string::npos)
            return bad_input("--root '{}': a device name has no spaces", options.root);
        config.cmdline += " root=" + options.root;
    }
    for (const auto& spec : options.disks) {
        auto disk = parse_disk(spec);
        if (!disk) return std::unexpected(disk.error());
        config.disks.push_back(std::move(*disk));
    }
    for (const auto& spec : options.nets) {
        auto net = parse_net(spec);
        if (!net) return std::unexpected(net.error());
        config.nets.push_back(std::move(*net));
    }
    config.kernel_path = options.kernel;
    config.initrd_path = options.initrd;
    if (config.kernel_path.empty()) {
        std::filesystem::path dir(default_guest_dir);
        config.kernel_path = dir / "vmlinuz";
        if (config.initrd_path.empty()) config.initrd_path = dir / "initramfs.cpio.gz";
        if (!std::filesystem::exists(config.kernel_path))
            return bad_input("no --kernel given and the default guest is not built in {} (run `make guest`)",
                             default_guest_dir);
    }
    return config;
}

namespace {

// Console output and the monitor's own messages, when they go into files:
// a guest that writes as fast as it can, or makes the monitor warn, gets
// this much of the host's disk and no more (two generations of a file).
constexpr CappedWriter::Limits kConsoleLimits{64 * 1024, 1 << 20, 16 << 20};
constexpr CappedWriter::Limits kLogLimits{16 * 1024, 256 * 1024, 4 << 20};

// The previous generation of the regular file `fd` writes to: PATH.1.
UniqueFd previous_generation(int fd) {
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return {};
    std::error_code error;
    auto path = std::filesystem::read_symlink(fmt::format("/proc/self/fd/{}", fd), error);
    if (error || path.empty() || path.native().ends_with(" (deleted)")) return {};
    return UniqueFd(::open((path.native() + ".1").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
}

Result<std::pair<uid_t, gid_t>> jail_user(const std::string& text) {
    if (text.empty()) {
        uid_t uid = kJailUidBase + (1u << 20) + static_cast<uid_t>(::getpid());
        return std::pair<uid_t, gid_t>{uid, uid};
    }
    sandbox::Confinement confinement;
    if (auto r = driver_domain::parse_user(text, confinement); !r)
        return bad_input("--jail-user: {}", r.error().message);
    if (confinement.uid == 0 || confinement.gid == 0) return bad_input("--jail-user: the jail's user cannot be root");
    return std::pair<uid_t, gid_t>{confinement.uid, confinement.gid};
}

// The highest descriptor open now, to size the jail's RLIMIT_NOFILE.
uint64_t open_files() {
    uint64_t highest = 0;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error))
        highest = std::max<uint64_t>(highest, std::strtoull(entry.path().filename().c_str(), nullptr, 10));
    return highest;
}

int run_monitor(const RunOptions& options, const MachineConfig& config, JailedMonitor* jailed, uid_t uid, gid_t gid) {
    HostConsole console(STDIN_FILENO, STDOUT_FILENO);
    if (!options.console_socket.empty()) {
        if (auto r = console.listen(options.console_socket); !r) {
            log::error("--console-socket: {}", r.error().message);
            return exit_status_for(r.error());
        }
        if (jailed != nullptr) console.keep_socket_file();
    }
    UniqueFd console_previous = previous_generation(STDOUT_FILENO), log_previous = previous_generation(STDERR_FILENO);
    console.cap_output(console_previous.get(), kConsoleLimits);
    log::cap_output(log_previous.get(), kLogLimits);
    // Writing past the jail's file-size limit fails (EFBIG) rather than kill.
    std::signal(SIGXFSZ, SIG_IGN);
    // The log's time zone, read now: no thread may open /etc/localtime
    // under its filter (nor find it in the jail).
    ::tzset();

    auto machine = Machine::create(config, console);
    if (!machine) {
        log::error("{}", machine.error().message);
        return exit_status_for(machine.error());
    }
    log::milestone("machine made");
    // A non-jailed run writes its exit report whole under a temporary name
    // opened now (its filter allows no open later).
    std::string temporary = options.exit_file + ".new";
    UniqueFd exit_report_file;
    if (jailed == nullptr && !options.exit_file.empty())
        exit_report_file = UniqueFd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (jailed != nullptr) {
        auto binds = (*machine)->prepare_jail(uid, gid);
        if (!binds) {
            log::error("{}", binds.error().message);
            return exit_status_for(binds.error());
        }
        sandbox::JailOptions jail;
        jail.uid = uid;
        jail.gid = gid;
        // Processes: the threads (vCPUs, I/O, console, main) and io_uring's
        // workers for disks served here, which count as the uid's.
        jail.limits = {open_files() + 64, config.vcpus + 64u, kConsoleLimits.max_size + (1u << 20)};
        jail.binds = std::move(*binds);
        if (auto r = jailed->enter(std::move(jail)); !r) {
            log::error("{}", r.error().message);
            return kExitHostError;
        }
        log::milestone("jailed");
    }
    Machine::RunPolicy policy;
    policy.seccomp = !options.no_seccomp;
    policy.filters.jailed = jailed != nullptr;
    policy.escape_drill = options.escape_drill;
    int status = (*machine)->run(policy);
    if (jailed != nullptr) log::debug("jailed as {}:{}", uid, gid);
    log::print_milestones();
    const char* reason = stop_reason_name((*machine)->stop_reason());
    if (jailed != nullptr) {
        jailed->report(reason);
    } else {
        if (exit_report_file.valid()) {
            std::string text = fmt::format("{{\"status\":{},\"reason\":\"{}\"}}\n", status, reason);
            if (::write(exit_report_file.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
                std::rename(temporary.c_str(), options.exit_file.c_str()) != 0)
                log::error("--exit-file: cannot write '{}'", options.exit_file);
        }
        (*machine)->release_host();
        console.release_host();
    }
    // Leave now: the kernel takes back the rest, and the threads' filters
    // allow no tear-down.
    spdlog::default_logger()->flush();
    ::_exit(status);
}

}  // namespace

int run_command(const RunOptions& options) {
    log::milestone("start");
    auto config = machine_config(options, default_guest_dir());
    if (!config) {
        log::error("{}", config.error().message);
        return exit_status_for(config.error());
    }
    if (!options.jail) return run_monitor(options, *config, nullptr, 0, 0);
    auto user = jail_user(options.jail_user);
    if (!user) {
        log::error("{}", user.error().message);
        return exit_status_for(user.error());
    }
    if (::geteuid() != 0) {
        log::error("--jail needs root (it makes namespaces and changes user)");
        return kExitHostError;
    }
    if (options.jail_netns_fd >= 0) {
        if (auto r = sandbox::check_network_namespace(options.jail_netns_fd); !r) {
            log::error("--jail-netns-fd: {}", r.error().message);
            return kExitBadInput;
        }
        ::fcntl(options.jail_netns_fd, F_SETFD, FD_CLOEXEC);
    }
    JailerOptions jailer{user->first, user->second, options.exit_file, {}, options.jail_netns_fd};
    for (const auto* path : {&options.control, &options.console_socket})
        if (!path->empty()) jailer.remove_at_exit.push_back(*path);
    int status = run_jailed(jailer, [&](JailedMonitor& jailed) {
        log::milestone("forked");
        return run_monitor(options, *config, &jailed, user->first, user->second);
    });
    // The jailer's filter allows no tear-down either.
    spdlog::default_logger()->flush();
    ::_exit(status);
}

}  // namespace hospes::cli
