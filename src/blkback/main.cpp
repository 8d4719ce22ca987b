// hospes-blkback: the block driver domain. Serves many guests' disks over
// vhost-user (blkback/server.hpp): a privileged supervisor opens the disks
// and sockets, a confined worker serves them and is restarted when it dies.
#include <csignal>

#include <CLI/CLI.hpp>

#include "blkback/server.hpp"
#include "common/log.hpp"
#include "sandbox/supervisor.hpp"

namespace {

// What the worker may call; anything else kills it. It has every file it
// needs already open (disks, sockets), and io_uring is restricted to the
// disk (UringBlock::serve), so openat, socket, connect and execve are out.
constexpr const char* kWorkerSyscalls[] = {
    // the event loop, sockets and eventfds
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "accept4", "recvmsg", "sendmsg", "read", "write",
    "writev", "close", "eventfd2", "fcntl", "lseek", "fstat", "newfstatat",
    // guest memory and the inflight region
    "mmap", "munmap", "madvise", "mprotect", "mremap", "brk", "memfd_create", "ftruncate",
    // io_uring
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    // signals, threads' primitives, time, exit
    "rt_sigprocmask", "rt_sigreturn", "signalfd4", "futex", "getpid", "gettid", "clock_gettime", "restart_syscall",
    "exit", "exit_group",
};

}  // namespace

int main(int argc, char** argv) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{"hospes-blkback: serves guests' disks over vhost-user"};
    std::string socket_dir;
    std::vector<std::string> disks, host_disks;
    std::string control;
    std::string user = "65534:65534";
    bool verbose = false, test_hooks = false;
    app.add_option("--socket-dir", socket_dir, "where each disk's socket NAME.sock is made")->required();
    app.add_option("--disk", disks,
                   "NAME=PATH[,ro][,direct][,weight=N][,iops=N][,bps=N[K|M|G]][,iops_burst=N][,bps_burst=N]: "
                   "a disk to serve, its weight (1-10000, default 100) and caps")
        ->required();
    app.add_option("--host-disk", host_disks,
                   "PATH[,depth=N][,iops=N][,bps=N][,iops_burst=N][,bps_burst=N]: the host disk PATH is (or is on): "
                   "requests at once (default 32) and caps for all the disks on it");
    app.add_option("--control", control, "the control socket (default: SOCKET_DIR/control)");
    app.add_option("--user", user, "UID[:GID] the worker runs as (when started as root)")->capture_default_str();
    app.add_flag("--test-hooks", test_hooks, "SIGUSR1 makes the worker try a forbidden system call (for tests)");
    app.add_flag("-v,--verbose", verbose, "log debug messages");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        hospes::log::init(false, "hospes-blkback");
        hospes::log::error("{}", e.what());
        return hospes::kExitBadInput;
    }
    hospes::log::init(verbose, "hospes-blkback");
    hospes::sandbox::SupervisorOptions options{"disk", {}};
    if (std::sscanf(user.c_str(), "%u:%u", &options.confinement.uid, &options.confinement.gid) < 1 ||
        user.find_first_not_of("0123456789:") != std::string::npos) {
        hospes::log::error("--user '{}': expected UID or UID:GID (numbers)", user);
        return hospes::kExitBadInput;
    }
    if (user.find(':') == std::string::npos) options.confinement.gid = options.confinement.uid;
    std::vector<hospes::blkback::DiskExport> exports;
    for (const auto& spec : disks) {
        auto e = hospes::blkback::parse_export(spec);
        if (!e) {
            hospes::log::error("{}", e.error().message);
            return hospes::kExitBadInput;
        }
        exports.push_back(std::move(*e));
    }
    std::vector<hospes::blkback::HostDiskConfig> hosts;
    for (const auto& spec : host_disks) {
        auto h = hospes::blkback::parse_host_disk(spec);
        if (!h) {
            hospes::log::error("{}", h.error().message);
            return hospes::kExitBadInput;
        }
        hosts.push_back(std::move(*h));
    }
    if (control.empty()) control = socket_dir + "/control";
    auto server = hospes::blkback::Server::create(socket_dir, std::move(exports), std::move(hosts), control);
    if (!server) {
        hospes::log::error("{}", server.error().message);
        return hospes::exit_status_for(server.error());
    }
    return hospes::sandbox::supervise(options, kWorkerSyscalls, [&] { return (*server)->serve(test_hooks); });
}
