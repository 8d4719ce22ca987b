// The monitor's seccomp allowlists, one per thread (docs/security.md has
// them as tables). Each thread loads its own before it touches anything a
// guest wrote, and the vCPUs run no guest instruction before every thread
// has its filter:
//   vcpu     KVM_RUN and the exits' device emulation: register reads and
//            writes, the legacy devices' interrupt lines, console output
//   io       the event loop: queue notifications, device activation and
//            reset, back-end completions (io_uring), taps, vhost-user
//            messages and reconnection, the control socket, the balloon
//   console  host console input: stdin or the console socket's client
//   main     waits for the end, stops the vCPUs and reports
#pragma once

#include <sys/types.h>

#include <vector>

#include "sandbox/filter.hpp"

namespace hospes {

struct MonitorFilterContext {
    pid_t pid = 0;         // the monitor's own (1 in a jail's pid namespace): signals go only there
    bool jailed = false;   // a jailed monitor leaves cleaning up (socket files, the terminal) to its jailer
};

sandbox::Allowlist vcpu_allowlist(const MonitorFilterContext& context);
sandbox::Allowlist io_allowlist(const MonitorFilterContext& context);
sandbox::Allowlist console_allowlist(const MonitorFilterContext& context);
sandbox::Allowlist main_allowlist(const MonitorFilterContext& context);
// All four, for tables and counts.
std::vector<sandbox::Allowlist> monitor_allowlists(const MonitorFilterContext& context);

}  // namespace hospes
