// The privileged half of a back-end: it keeps what needs privilege (open
// disks, sockets) and runs the work in a confined child, which it starts
// again at once when it dies; front-ends reconnect to the sockets, which
// the supervisor holds, so they never go away.
#pragma once

#include <functional>
#include <string>

#include "sandbox/confine.hpp"

namespace hospes::sandbox {

struct SupervisorOptions {
    std::string name;       // for the log
    Confinement confinement;  // empty_root is made here
};

// Runs `worker` (which returns an exit status) in a child process under
// `options`, after confine() with `syscalls`; restarts it whenever a
// signal kills it. A worker that exits by itself ends the supervisor with
// its status; SIGTERM or SIGINT (blocked by the caller) is passed on to
// the worker and ends both. Returns the exit status.
int supervise(SupervisorOptions options, std::span<const char* const> syscalls, const std::function<int()>& worker);

}  // namespace hospes::sandbox
