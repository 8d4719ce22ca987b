// hospes-blkback's control protocol: one JSON object per line each way,
// over a unix socket (docs/running.md documents it). Requests:
//   {"execute": "query"}
//   {"execute": "set-disk", "disk": NAME, "weight": N, "iops": N, "bps": N,
//    "iops_burst": N, "bps_burst": N}            (any of the numbers)
//   {"execute": "set-host-disk", "host_disk": "MAJOR:MINOR", "depth": N,
//    "iops": N, "bps": N, "iops_burst": N, "bps_burst": N}
// Answers: {"return": {...}} or {"error": "one line saying what is wrong"}.
// A limit of 0 removes it.
#pragma once

#include <string>
#include <string_view>

namespace hospes::blkback {

class Server;

// The answer to one request line (without the newline).
std::string control_answer(Server& server, std::string_view request);

// The management socket's (the supervisor's; docs/running.md):
//   {"execute": "add-disk", "disk": "NAME=PATH[,ro][,direct][,weight=N]..."}
//     (the form of --disk) answers {"return": {"socket": PATH}}
//   {"execute": "remove-disk", "disk": NAME}
//   {"execute": "status"} answers {"return": {"worker_restarts": N}}
std::string manage_answer(Server& server, std::string_view request, int worker_channel, uint64_t worker_restarts);

}  // namespace hospes::blkback
