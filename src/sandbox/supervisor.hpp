// The privileged half of a back-end: it keeps what needs privilege (open
// disks, sockets) and runs the work in a confined child, which it starts
// again at once when it dies; front-ends reconnect to the sockets, which
// the supervisor holds, so they never go away.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "sandbox/confine.hpp"

namespace hospes::sandbox {

struct SupervisorOptions {
    std::string name;       // for the log
    Confinement confinement;
    uint64_t* restarts = nullptr;  // when given: counts the workers started again
    // In the supervisor, before each worker starts (the back-end makes what
    // a worker may not make itself, its io_urings): false stops.
    std::function<Result<void>()> prepare_worker;
    // The descriptors a worker keeps; all others (the management socket,
    // the supervisor's own) are closed before it is confined.
    std::function<std::vector<int>()> worker_fds;
    // Asked after each management request: true when the running worker
    // cannot take what was added (a disk it has no ring for) and a new
    // one, prepared again, must take over.
    std::function<bool()> worker_outgrown;
};

// What only the supervisor may do for a running worker (open a disk, make
// a socket): requests it serves between the worker's deaths. `fd` is
// polled; when it is readable, ready() runs with the supervisor's end of
// the channel to the worker now running (-1 while none runs), over which
// it may send the worker what it made (common/fd_message.hpp).
class Manager {
public:
    virtual ~Manager() = default;
    virtual int fd() const = 0;
    virtual void ready(int worker_channel) = 0;
};

// Runs `worker` (which returns an exit status) in a child process under
// `options`, after confine() with `allowlist`; restarts it whenever a
// signal kills it. The worker gets its end of a channel (a SOCK_SEQPACKET
// socket pair made for each worker) to the supervisor. A worker that exits
// by itself ends the supervisor with its status; SIGTERM or SIGINT
// (blocked by the caller) is passed on to the worker and ends both.
// Returns the exit status.
int supervise(SupervisorOptions options, const Allowlist& allowlist, const std::function<int(int channel)>& worker,
              Manager* manager = nullptr);


}  // namespace hospes::sandbox
