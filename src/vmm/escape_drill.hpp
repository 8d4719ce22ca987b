// The escape drill, a test hook (hospes run --test-escape-drill, which
// hospesd passes only when it is itself started with --test-hooks, and
// which no guest can reach): the monitor, jailed and running, tries from
// inside what a guest that took it over would try (docs/security.md):
//   open PATH        open a host file (/etc/shadow, another domain's disk)
//   write PATH       create a file
//   connect PATH     connect to a unix socket (hospesd's, another monitor's)
//   process_vm_readv PID, proc_mem PID, ptrace PID, kill PID
//                    reach another process (another monitor)
//   execve PATH, fork, module, io_uring
// Each attempt runs on the thread the control request is served on (the
// I/O thread, under its seccomp filter: a call off the list kills the
// monitor), or with "unfiltered" on a thread of its own that has no filter,
// started before the others loaded theirs: what the jail alone stops.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

namespace hospes {

struct EscapeAttempt {
    std::string what;  // open, write, connect, process_vm_readv, proc_mem, ptrace, kill, execve, fork, module, io_uring
    std::string path;
    int pid = 0;
};

// Runs one attempt here and says how it ended: {"result": R, "errno": E,
// "error": "text"} (what a call that was allowed returned).
nlohmann::json run_escape_attempt(const EscapeAttempt& attempt);

// A thread without a seccomp filter that runs attempts handed to it.
class UnfilteredDrill {
public:
    UnfilteredDrill();
    ~UnfilteredDrill();
    nlohmann::json run(const EscapeAttempt& attempt);

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::optional<EscapeAttempt> attempt_;
    std::optional<nlohmann::json> result_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace hospes
