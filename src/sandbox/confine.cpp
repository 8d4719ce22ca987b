#include "sandbox/confine.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "common/log.hpp"
#include "sandbox/filter.hpp"

namespace hospes::sandbox {

Result<void> confine(const Confinement& confinement, const Allowlist& allowlist) {
    if (::geteuid() == 0) {
        JailOptions options;
        options.uid = confinement.uid;
        options.gid = confinement.gid;
        options.die_with_parent = true;
        options.limits = confinement.limits;
        if (auto r = enter_jail(options); !r) return r;
    } else {
        log::info("not root: the worker keeps this user and the file system; only the system call allowlist applies");
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errno_error("PR_SET_PDEATHSIG");
    }
    return load_filter(allowlist);
}

int split_into_pid_namespace(const Confinement& confinement) {
    if (::geteuid() != 0) return 0;
    sigset_t passed;
    sigemptyset(&passed);
    for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD}) sigaddset(&passed, signal);
    sigset_t previous;
    ::sigprocmask(SIG_BLOCK, &passed, &previous);
    auto child = spawn_jailed();
    if (!child) {
        log::error("{}", child.error().message);
        ::_exit(kExitHostError);
    }
    if (*child == 0) {
        ::sigprocmask(SIG_SETMASK, &previous, nullptr);
        return 0;
    }
    // The waiting parent holds nothing and may do nothing else.
    close_other_fds({});
    JailOptions options;
    options.uid = confinement.uid;
    options.gid = confinement.gid;
    options.die_with_parent = true;
    options.limits = {16, confinement.limits.processes, 1};
    if (auto r = enter_jail(options); !r) {
        ::kill(*child, SIGKILL);
        ::_exit(kExitHostError);
    }
    // A signal that comes before the child has become the jail's user
    // cannot be passed on yet (EPERM: it is still root): it is tried again
    // every 10 ms until it goes.
    std::vector<int> unsent;
    for (;;) {
        for (auto it = unsent.begin(); it != unsent.end();)
            it = ::kill(*child, *it) == 0 || errno != EPERM ? unsent.erase(it) : it + 1;
        siginfo_t info{};
        timespec retry{0, 10'000'000};
        int signal = ::sigtimedwait(&passed, &info, unsent.empty() ? nullptr : &retry);
        if (signal < 0) continue;
        if (signal != SIGCHLD) {
            if (::kill(*child, signal) != 0 && errno == EPERM) unsent.push_back(signal);
            continue;
        }
        int status = 0;
        if (::waitpid(*child, &status, WNOHANG) != *child) continue;
        if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
        // Ended by a signal: this process ends by the same one, so that the
        // supervisor sees what killed the worker.
        int killer = WTERMSIG(status);
        ::signal(killer, SIG_DFL);
        sigset_t only;
        sigemptyset(&only);
        sigaddset(&only, killer);
        ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
        ::raise(killer);
        ::_exit(128 + killer);
    }
}

}  // namespace hospes::sandbox
