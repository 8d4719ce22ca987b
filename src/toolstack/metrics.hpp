// hospesd's Prometheus metrics: per-domain CPU, memory, block and network
// counters in the text exposition format, served over HTTP (cpp-httplib)
// at /metrics on the address hospesd is given (--metrics HOST:PORT).
//
// The server runs on a thread of its own and is a client of hospesd's API
// like any other: each scrape asks the socket for `top`, so it shares no
// state with the daemon's loop.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace httplib {
class Server;
}

namespace hospes::toolstack {

// The metrics text for `top`'s rows and `backends`' rows.
std::string prometheus_text(const nlohmann::json& top_rows, const nlohmann::json& backend_rows = nlohmann::json::array());

class MetricsServer {
public:
    // Listens on `address` (HOST:PORT; PORT 0 picks a free one) and
    // answers with what `api_socket` says.
    static Result<std::unique_ptr<MetricsServer>> start(const std::string& address, std::string api_socket);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    int port() const { return port_; }

private:
    MetricsServer() = default;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    int port_ = 0;
};

}  // namespace hospes::toolstack
