// One domain's monitor process (`hospes run`) as hospesd sees it: the
// command line a DomainConfig becomes, starting it detached from hospesd
// (its own session; console and log in files), what /proc says of it, and
// requests to its control socket.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "toolstack/domain_config.hpp"

namespace hospes::toolstack {

// Where a domain's files are.
struct DomainPaths {
    std::string control;         // the monitor's control socket
    std::string console;         // its console socket
    std::string exit_file;       // written by the monitor as it exits
    std::string console_log;     // the guest console's output
    std::string monitor_log;     // the monitor's own messages
};

// `hospes run` arguments (without the program) for domain `id`. With
// `disk_sockets` (one per disk) a back-end serves the disks over
// vhost-user, with `vif_sockets` the network cards. With a `jail_uid`
// (not 0) the monitor runs jailed as that user and group.
std::vector<std::string> monitor_arguments(const DomainConfig& domain, uint32_t id, const DomainPaths& paths,
                                           bool paused, const std::vector<std::string>& disk_sockets = {},
                                           const std::vector<std::string>& vif_sockets = {}, uint32_t jail_uid = 0);

// Starts `program` with `arguments` in a session of its own, stdin
// /dev/null, stdout appended to the console log and stderr to the monitor
// log, and waits until its control socket exists (`limit`). When the
// monitor ends first, the error is the last line it logged. With a
// `cgroup_procs` file the monitor enters that cgroup before it runs.
// (hospesd starts its shared back-ends the same way: `what` names the
// program in errors.) A `network` namespace made ahead is handed over as
// descriptor kHandedNetworkFd (hospes run --jail-netns-fd).
constexpr int kHandedNetworkFd = 3;
Result<pid_t> start_monitor(const std::string& program, const std::vector<std::string>& arguments,
                            const DomainPaths& paths, std::chrono::milliseconds limit,
                            const std::string& cgroup_procs = {}, std::string_view what = "monitor",
                            int network = -1);

// What /proc says of a process and its children (a jailed monitor is the
// child of its jailer, `pid`).
struct ProcessStat {
    uint64_t start_ticks = 0;  // of `pid` itself, since boot: with the pid, names one process for good
    uint64_t cpu_ticks = 0;    // user + system, all threads, children included
    bool running = false;      // a thread of them is on a CPU or runnable now
};
std::optional<ProcessStat> process_stat(pid_t pid);

// The children of process `pid` (a jailer's: its monitor).
std::vector<pid_t> monitor_children(pid_t pid);

// The host's thread ids of the threads of `pid`'s children and `pid`
// itself, by the ids they have in their own pid namespace (a jailed
// monitor's vcpu_threads are those): NSpid in /proc.
std::map<pid_t, pid_t> host_thread_ids(pid_t pid);

// One JSON-lines request to a control socket (a monitor's, hospesd's) and
// the answer's "return" value; its "error" is an error. The answer is
// awaited at most `timeout`. With `fd`, that descriptor goes with the
// request (SCM_RIGHTS).
Result<nlohmann::json> json_request(const std::string& socket_path, const nlohmann::json& request,
                                    std::chrono::seconds timeout = std::chrono::seconds(5), int fd = -1);

}  // namespace hospes::toolstack
