// Confinement of a back-end's worker process (the part that touches guest
// memory and talks to untrusted front-ends): no host file system, an
// unprivileged user, and a seccomp allowlist whose every other system call
// kills the process.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>

#include "common/error.hpp"

namespace hospes::sandbox {

struct Confinement {
    int empty_root = -1;     // an empty, removed directory to chroot into (opened by the supervisor)
    uid_t uid = 65534;       // nobody
    gid_t gid = 65534;       // nogroup
    pid_t supervisor = 0;    // the parent the worker dies with
};

// Applies `confinement` to the calling process, then loads an allowlist
// of `syscalls` (names) with kill-process for everything else. Without
// root, the file system and user stay and only the allowlist applies
// (one line says so).
Result<void> confine(const Confinement& confinement, std::span<const char* const> syscalls);

}  // namespace hospes::sandbox
