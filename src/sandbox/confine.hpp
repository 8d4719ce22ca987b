// Confinement of a back-end's worker process (the part that touches guest
// memory and talks to untrusted front-ends): the jail of sandbox/jail.hpp
// (namespaces of its own, an empty root, an unprivileged user of its own,
// no capabilities, resource limits) and a seccomp allowlist whose every
// other system call kills the process.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>

#include "common/error.hpp"
#include "sandbox/filter.hpp"
#include "sandbox/jail.hpp"

namespace hospes::sandbox {

struct Confinement {
    uid_t uid = 65534;  // nobody, unless the back-end is given a user of its own
    gid_t gid = 65534;
    // Many guests' descriptors; processes: the worker, its waiting parent
    // and io_uring's worker threads (io-wq), which count as the uid's.
    JailLimits limits{16 * 1024 + 64, 128, 0};
};

// Applies `confinement` to the calling process (which must hold every
// descriptor it needs), then loads `allowlist` with kill-process for
// everything else. It dies with its parent. Without root, the file system
// and user stay and only the allowlist applies (one line says so).
Result<void> confine(const Confinement& confinement, const Allowlist& allowlist);

// Runs the rest of a worker's life as the parent of a child that is pid 1
// of pid, ipc and uts namespaces of its own (the worker proper), jailed
// like it but for seccomp: in the parent, this waits for the child, passes
// SIGTERM, SIGINT, SIGHUP and SIGUSR1 on, and ends as the child ended (by
// the same signal, or with the same status); it returns 0 in the child.
// Without root nothing happens (returns 0 at once).
int split_into_pid_namespace(const Confinement& confinement);

}  // namespace hospes::sandbox
