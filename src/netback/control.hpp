// hospes-netback's control protocol: one JSON object per line each way,
// over a unix socket, as hospes-blkback's (docs/running.md documents it):
//   {"execute": "query"}
//   {"execute": "set-port", "port": NAME, "weight": N, "tx_bps": N, ...}
//   {"execute": "set-uplink", "bps": N, "pps": N, ...}
// Answers: {"return": {...}} or {"error": "one line saying what is wrong"}.
#pragma once

#include <string>
#include <string_view>

namespace hospes::netback {

class Server;

// The answer to one request line (without the newline).
std::string control_answer(Server& server, std::string_view request);

// The management socket's (the supervisor's; docs/running.md): add-port
// (the form of --port), remove-port, status.
std::string manage_answer(Server& server, std::string_view request, int worker_channel, uint64_t worker_restarts);

}  // namespace hospes::netback
