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
#include "sandbox/jail.hpp"

namespace hospes::sandbox {

namespace {

// Forks a worker; `channel` becomes the supervisor's end of its channel.
// The supervisor's child only waits: the worker is its child, pid 1 of a
// pid namespace of its own.
pid_t start_worker(const SupervisorOptions& options, const Allowlist& allowlist, const std::function<int(int)>& worker,
                   UniqueFd& channel) {
    if (options.prepare_worker) {
        if (auto r = options.prepare_worker(); !r) {
            log::error("cannot prepare the {} worker: {}", options.name, r.error().message);
            errno = EIO;
            return -1;
        }
    }
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) return -1;
    UniqueFd ours(ends[0]), theirs(ends[1]);
    pid_t pid = ::fork();
    if (pid != 0) {
        if (pid > 0) channel = std::move(ours);
        return pid;
    }
    ours.reset();
    std::vector<int> keep = options.worker_fds ? options.worker_fds() : std::vector<int>{};
    keep.push_back(theirs.get());
    close_other_fds(keep);
    if (int status = split_into_pid_namespace(options.confinement); status != 0) ::_exit(status);
    if (auto r = confine(options.confinement, allowlist); !r) {
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

int supervise(SupervisorOptions options, const Allowlist& allowlist, const std::function<int(int)>& worker,
              Manager* manager) {
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

    using Clock = std::chrono::steady_clock;
    auto started = Clock::now();
    uint64_t restarts = 0;
    UniqueFd channel;
    pid_t pid = start_worker(options, allowlist, worker, channel);
    auto start_again = [&] {
        started = Clock::now();
        ++restarts;
        if (options.restarts != nullptr) *options.restarts = restarts;
        pid = start_worker(options, allowlist, worker, channel);
    };
    for (;;) {
        // Without a worker there is nothing to supervise (and kill(-1) must
        // never be reached).
        if (pid < 0) {
            log::error("cannot start the {} worker: {}", options.name, std::strerror(errno));
            return kExitHostError;
        }
        pollfd fds[2] = {{signal_fd.get(), POLLIN, 0}, {manager ? manager->fd() : -1, POLLIN, 0}};
        if (::poll(fds, 2, -1) <= 0) continue;
        if (fds[1].revents & POLLIN) {
            manager->ready(channel.get());
            if (options.worker_outgrown && options.worker_outgrown()) {
                // Its waiting parent killed, the worker dies with it (PR_SET_PDEATHSIG).
                ::kill(pid, SIGKILL);
                int status = 0;
                ::waitpid(pid, &status, 0);
                channel.reset();
                log::info("a new {} worker takes over", options.name);
                start_again();
                continue;
            }
        }
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
        start_again();
    }
}

}  // namespace hospes::sandbox
