#include "sandbox/confine.hpp"

#include <grp.h>
#include <signal.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <memory>

#include "common/log.hpp"

namespace hospes::sandbox {

Result<void> confine(const Confinement& confinement, std::span<const char* const> syscalls) {
    if (::geteuid() == 0) {
        // Nothing of the host's file system: the worker has every file it
        // needs already open.
        if (::fchdir(confinement.empty_root) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0)
            return errno_error("cannot chroot to an empty directory");
        ::close(confinement.empty_root);
        if (::setgroups(0, nullptr) != 0 || ::setresgid(confinement.gid, confinement.gid, confinement.gid) != 0 ||
            ::setresuid(confinement.uid, confinement.uid, confinement.uid) != 0)
            return errno_error("cannot become user {}:{}", confinement.uid, confinement.gid);
    } else {
        log::info("not root: the worker keeps this user and the file system; only the system call allowlist applies");
    }
    // The worker dies with its supervisor, whatever kills that (set after
    // the change of user, which clears it), so no orphan keeps serving.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errno_error("PR_SET_PDEATHSIG");
    if (::getppid() != confinement.supervisor) return host_error("the supervisor is gone");
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno_error("PR_SET_NO_NEW_PRIVS");
    std::unique_ptr<void, void (*)(scmp_filter_ctx)> filter(seccomp_init(SCMP_ACT_KILL_PROCESS), seccomp_release);
    if (!filter) return host_error("seccomp_init failed");
    for (const char* name : syscalls) {
        int number = seccomp_syscall_resolve_name(name);
        if (number == __NR_SCMP_ERROR) return host_error("seccomp: unknown system call '{}'", name);
        if (int r = seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, number, 0); r < 0)
            return host_error("seccomp: cannot allow '{}': {}", name, std::strerror(-r));
    }
    if (int r = seccomp_load(filter.get()); r < 0) return host_error("seccomp_load: {}", std::strerror(-r));
    return {};
}

}  // namespace hospes::sandbox
