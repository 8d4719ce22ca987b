#include "sandbox/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/log.hpp"
#include "common/unique_fd.hpp"

namespace hospes::sandbox {

namespace {

// Forks a worker; `channel` becomes the supervisor's end of its channel.
pid_t start_worker(const SupervisorOptions& options, std::span<const char* const> syscalls,
                   const std::function<int(int)>& worker, UniqueFd& channel) {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) return -1;
    UniqueFd ours(ends[0]), theirs(ends[1]);
    pid_t pid = ::fork();
    if (pid != 0) {
        if (pid > 0) channel = std::move(ours);
        return pid;
    }
    ours.reset();
    if (auto r = confine(options.confinement, syscalls); !r) {
        log::error("the {} worker cannot be confined: {}", options.name, r.error().message);
        ::_exit(kExitHostError);
    }
    ::_exit(worker(theirs.get()));
}

std::string describe(int status) {
    if (WIFSIGNALED(status)) {
        int signal = WTERMSIG(status);
        return fmt::format("killed by signal {} ({}){}", signal, strsignal(signal),
                           signal == SIGSYS ? ": a system call outside its allowlist" : "");
    }
    return fmt::format("exited with status {}", WEXITSTATUS(status));
}

}  // namespace

int supervise(SupervisorOptions options, std::span<const char* const> syscalls, const std::function<int(int)>& worker,
              Manager* manager) {
    // The worker's root is an empty directory that no longer has a name:
    // made, opened and removed at once, so nothing can be created in it and
    // nothing is left behind however the supervisor ends.
    UniqueFd empty_root;
    if (::geteuid() == 0) {
        char path[] = "/tmp/hospes-empty-root.XXXXXX";
        if (::mkdtemp(path) == nullptr) {
            log::error("mkdtemp: {}", std::strerror(errno));
            return kExitHostError;
        }
        empty_root = UniqueFd(::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        int open_errno = errno;
        ::rmdir(path);
        if (!empty_root.valid()) {
            log::error("cannot open '{}': {}", path, std::strerror(open_errno));
            return kExitHostError;
        }
        options.confinement.empty_root = empty_root.get();
    }

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC));
    if (!signal_fd.valid()) {
        log::error("signalfd: {}", std::strerror(errno));
        return kExitHostError;
    }

    options.confinement.supervisor = ::getpid();
    using Clock = std::chrono::steady_clock;
    auto started = Clock::now();
    uint64_t restarts = 0;
    UniqueFd channel;
    pid_t pid = start_worker(options, syscalls, worker, channel);
    for (;;) {
        // Without a worker there is nothing to supervise (and kill(-1) must
        // never be reached).
        if (pid < 0) {
            log::error("cannot start the {} worker: {}", options.name, std::strerror(errno));
            return kExitHostError;
        }
        pollfd fds[2] = {{signal_fd.get(), POLLIN, 0}, {manager ? manager->fd() : -1, POLLIN, 0}};
        if (::poll(fds, 2, -1) <= 0) continue;
        if (fds[1].revents & POLLIN) manager->ready(channel.get());
        if (!(fds[0].revents & POLLIN)) continue;
        signalfd_siginfo info{};
        if (::read(signal_fd.get(), &info, sizeof(info)) != sizeof(info)) continue;
        if (info.ssi_signo != SIGCHLD) {
            ::kill(pid, SIGTERM);
            int status = 0;
            ::waitpid(pid, &status, 0);
            log::info("stopped; the {} worker was restarted {} times", options.name, restarts);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
        }
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) != pid) continue;
        channel.reset();
        if (WIFEXITED(status)) {
            log::error("the {} worker {}; stopping", options.name, describe(status));
            return WEXITSTATUS(status) == 0 ? kExitHostError : WEXITSTATUS(status);
        }
        // A worker that dies as soon as it starts would otherwise spin: at
        // most one start per 100 ms.
        auto lived = Clock::now() - started;
        log::warn("the {} worker {}; starting it again", options.name, describe(status));
        if (lived < std::chrono::milliseconds(100)) std::this_thread::sleep_for(std::chrono::milliseconds(100) - lived);
        started = Clock::now();
        ++restarts;
        if (options.restarts != nullptr) *options.restarts = restarts;
        pid = start_worker(options, syscalls, worker, channel);
    }
}

}  // namespace hospes::sandbox
