// `hospes run --jail`: the monitor runs in a child jailed as
// sandbox/jail.hpp says, while the process that was started (the jailer)
// only waits for it. The child is pid 1 of pid, ipc and uts namespaces of
// its own; it opens and builds everything it needs (KVM, the kernel, disks,
// taps, sockets) while still root in the host's mount and network
// namespaces, then jails itself before any guest instruction runs.
//
// The jailer forwards SIGINT, SIGTERM and SIGHUP to the monitor and, once
// the monitor is jailed, jails itself too (its own uid, no capabilities,
// an empty root, a seccomp filter of a few calls). When the monitor ends
// it writes the exit report, saying why: the reason the monitor sent it
// (poweroff, reboot, crash, ...), or the signal that killed it (a system
// call outside its filter is SIGSYS: a crash), restores the terminal and
// exits with the monitor's status (128 + signal when it was killed).
// The monitor dies with the jailer (SIGKILL).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "sandbox/filter.hpp"
#include "sandbox/jail.hpp"

namespace hospes {

// The monitor's side of the jail.
class JailedMonitor {
public:
    // `network`: a network namespace made ahead for it, or -1.
    JailedMonitor(int channel, int network) : channel_(channel), network_(network) {}
    // Jails this process (options as for sandbox::enter_jail, in the
    // network namespace made for it if any) and tells the jailer so.
    Result<void> enter(sandbox::JailOptions options);
    // Why the monitor stops, for the exit report.
    void report(std::string_view reason);
    int channel() const { return channel_; }

private:
    int channel_;
    int network_;
};

struct JailerOptions {
    uid_t uid = 0;
    gid_t gid = 0;
    std::string exit_file;  // the exit report, written by the jailer; empty: none
    // Sockets the monitor makes (control, console) that nothing jailed
    // can remove: a helper left outside the jail removes them once the
    // jailer has ended, if the monitor got as far as its jail.
    std::vector<std::string> remove_at_exit;
    // A network namespace made ahead for the monitor (hospesd's), or -1:
    // the monitor makes its own.
    int network = -1;
};

// Runs `monitor` jailed (see the top) and returns the status to exit with.
int run_jailed(const JailerOptions& options, const std::function<int(JailedMonitor&)>& monitor);

// The jailer's own filter, for tables.
sandbox::Allowlist jailer_allowlist(pid_t child);

// The exit report's text: {"status":N,"reason":"...","cause":"..."}.
std::string exit_report(int status, std::string_view reason, std::string_view cause);

}  // namespace hospes
