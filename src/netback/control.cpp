#include "netback/control.hpp"

#include <nlohmann/json.hpp>

#include "netback/server.hpp"

namespace hospes::netback {

namespace {

using nlohmann::json;

json query(const Server& server) {
    json ports = json::array();
    for (const auto& p : server.ports()) {
        const auto& c = p.counters;
        json port = {{"name", p.name},
                     {"uplink", p.uplink},
                     {"connected", p.connected},
                     {"in_packets", c.in_packets},
                     {"in_bytes", c.in_bytes},
                     {"out_packets", c.out_packets},
                     {"out_bytes", c.out_bytes},
                     {"drops",
                      {{"spoofed_mac", c.drop_spoofed_mac},
                       {"spoofed_ip", c.drop_spoofed_ip},
                       {"malformed", c.drop_malformed},
                       {"queue_full", c.drop_queue_full},
                       {"offload", c.drop_offload},
                       {"down", c.drop_down}}}};
        if (!p.uplink) {
            port["mac"] = p.mac;
            port["ips"] = p.ips;
            port["connections"] = p.connections;
        }
        ports.push_back(std::move(port));
    }
    return {{"ports", std::move(ports)}};
}

std::string error(std::string_view message) { return json{{"error", message}}.dump(); }

}  // namespace

std::string control_answer(Server& server, std::string_view request_text) {
    json request = json::parse(request_text, nullptr, /*allow_exceptions=*/false);
    if (request.is_discarded()) return error("the request is not JSON");
    if (!request.is_object()) return error("the request must be a JSON object");
    auto execute = request.find("execute");
    if (execute == request.end() || !execute->is_string()) return error("the request has no \"execute\" string");
    const auto& command = execute->get_ref<const std::string&>();
    if (command != "query") return error("unknown command '" + command + "'");
    if (request.size() != 1) return error("query takes no arguments");
    return json{{"return", query(server)}}.dump();
}

}  // namespace hospes::netback
