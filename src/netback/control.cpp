#include "netback/control.hpp"

#include <nlohmann/json.hpp>

#include "driver_domain/control_socket.hpp"
#include "netback/server.hpp"

namespace hospes::netback {

namespace {

using nlohmann::json;

json limits_json(const Limits& limits, const std::string& prefix) {
    return {{prefix + "pps", limits.pps},
            {prefix + "bps", limits.bps},
            {prefix + "pps_burst", limits.pps_burst},
            {prefix + "bps_burst", limits.bps_burst}};
}

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
        port["held_tx"] = c.held_tx;
        if (p.uplink) {
            port.update(limits_json(p.policy.tx, ""));
        } else {
            port["mac"] = p.mac;
            port["ips"] = p.ips;
            port["connections"] = p.connections;
            port["held_rx"] = c.held_rx;
            port["segments"] = c.segments;
            port["weight"] = p.policy.weight;
            port.update(limits_json(p.policy.tx, "tx_"));
            port.update(limits_json(p.policy.rx, "rx_"));
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
    if (command == "query") {
        if (request.size() != 1) return error("query takes no arguments");
        return json{{"return", query(server)}}.dump();
    }
    bool port = command == "set-port";
    if (!port && command != "set-uplink") return error("unknown command '" + command + "'");
    PolicyChanges changes;
    std::string name;
    for (const auto& [key, value] : request.items()) {
        if (key == "execute") continue;
        if (port && key == "port") {
            if (!value.is_string()) return error("'port' must be a string");
            name = value.get<std::string>();
        } else if (!value.is_number_unsigned()) {
            return error("'" + key + "' must be a number of at least 0");
        } else {
            changes.emplace_back(key, value.get<uint64_t>());
        }
    }
    if (port && name.empty()) return error("set-port needs \"port\"");
    auto done = port ? server.set_port(name, changes) : server.set_uplink(changes);
    if (!done) return error(done.error().message);
    return json{{"return", json::object()}}.dump();
}

std::string manage_answer(Server& server, std::string_view request, int worker_channel, uint64_t worker_restarts) {
    return driver_domain::manage_answer(
        request, "port",
        [&](const nlohmann::json& device) -> Result<std::string> {
            auto port = device.is_string() ? parse_port(device.get_ref<const std::string&>()) : port_from_json(device);
            if (!port) return std::unexpected(port.error());
            return server.add(std::move(*port), worker_channel);
        },
        [&](std::string_view name) { return server.remove(name, worker_channel); }, worker_restarts);
}

}  // namespace hospes::netback
