// A jail for a process that handles what a guest wrote (a domain's monitor,
// a back-end's worker): once it holds every file descriptor it needs, it
// loses the host. Namespaces of its own (mount, network; the pid, ipc and
// uts ones come from spawn_jailed), an empty read-only root through
// pivot_root (no /proc, /dev, /etc), no capabilities in any set, a user and
// group of its own, no_new_privs, not dumpable (no ptrace by its own user,
// no /proc/PID/mem, no core file with guest RAM in it), resource limits.
// What it may still ask the kernel is each thread's seccomp filter's
// business (sandbox/filter.hpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace hospes::sandbox {

struct JailLimits {
    uint64_t open_files = 256;   // RLIMIT_NOFILE: above the descriptors it holds
    uint64_t processes = 64;     // RLIMIT_NPROC: its threads count, and the uid is its own
    uint64_t file_size = 0;      // RLIMIT_FSIZE: what it may write into a file (0: no limit)
};

// A file or directory of the host made visible in the empty root, as
// /NAME (unix sockets the jailed process must still connect to, or the
// directory of them, and nothing else).
struct JailBind {
    std::string host_path;
    std::string name;
};

struct JailOptions {
    uid_t uid = 65534;
    gid_t gid = 65534;
    bool new_network = true;  // false: keeps the host's (a process that opens taps later)
    bool die_with_parent = false;  // SIGKILL when the parent ends (set again after the change of user)
    JailLimits limits;
    std::vector<JailBind> binds;
    // With new_network: a network namespace made ahead to join (one of
    // make_network_namespace()'s, or another process's), instead of making
    // one here (which costs a launch some 30 ms in the lab); -1: make one.
    int network = -1;
    // Another jailed process to share a jail with (its pid): its mount and
    // network namespaces and its root are joined instead of made (the
    // jailer beside its monitor: no second copy of the host's mounts to
    // make and tear down while the guest starts). 0: a jail of its own.
    pid_t share_with = 0;
};

// The limits, the user and the loss of every privilege of a jail, without
// its namespaces and root (what enter_jail ends with): for a process whose
// jail to share is gone before it could join it.
Result<void> restrict_process(const JailOptions& options);

// Forks a child in new pid, ipc and uts namespaces (the child is pid 1 of
// its own: it sees and signals no other process). Returns the child's pid
// in the parent, 0 in the child. The calling process can start no thread
// after this (the kernel refuses threads outside a process's own pid
// namespace), so it is for a parent that only waits.
Result<pid_t> spawn_jailed();

// A new, empty network namespace (only a loopback device, down), made on
// the calling thread and left at once: its descriptor, to join later
// (JailOptions::network). Needs root. hospesd keeps a few ready so that a
// launch does not wait for one.
Result<UniqueFd> make_network_namespace();
// Whether `fd` is a network namespace (nsfs), as --jail-netns-fd must be.
Result<void> check_network_namespace(int fd);

// Closes every descriptor from 3 up but those in `keep`.
void close_other_fds(std::span<const int> keep);

// Jails the calling process (see the top): must be root, single-threaded,
// and hold every descriptor it will use.
Result<void> enter_jail(const JailOptions& options);

// What the calling process's jail looks like, as /proc would show it (for
// tests and the monitor's own check): no capability in any set, and the
// uid it was given.
struct JailState {
    uint64_t effective = 0, permitted = 0, inheritable = 0, bounding = 0, ambient = 0;
    bool no_new_privs = false;
    bool dumpable = true;
};
JailState jail_state();

}  // namespace hospes::sandbox
