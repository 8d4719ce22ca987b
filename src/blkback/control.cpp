#include "blkback/control.hpp"

#include <nlohmann/json.hpp>

#include "blkback/server.hpp"

namespace hospes::blkback {

namespace {

using nlohmann::json;

json limits_json(const Limits& limits) {
    return {{"iops", limits.iops}, {"bps", limits.bps}, {"iops_burst", limits.iops_burst}, {"bps_burst", limits.bps_burst}};
}

json query(const Server& server) {
    json disks = json::array(), hosts = json::array();
    for (const auto& d : server.disks()) {
        json disk = {{"name", d.name},
                     {"path", d.path},
                     {"host_disk", d.host_disk},
                     {"connected", d.connected},
                     {"connections", d.connections},
                     {"weight", d.policy.weight},
                     {"requests", d.counters.requests},
                     {"reads", d.counters.reads},
                     {"writes", d.counters.writes},
                     {"read_bytes", d.counters.read_bytes},
                     {"write_bytes", d.counters.write_bytes},
                     {"throttled", d.counters.throttled},
                     {"ring_empty", d.counters.ring_empty},
                     {"ring_empty_us", d.counters.ring_empty_us},
                     {"resubmitted", d.resubmitted}};
        disk.update(limits_json(d.policy.limits));
        disks.push_back(std::move(disk));
    }
    for (const auto& h : server.host_disks()) {
        json host = {{"id", h.id}, {"depth", h.depth}, {"disks", h.disks}};
        host.update(limits_json(h.limits));
        hosts.push_back(std::move(host));
    }
    return {{"disks", std::move(disks)}, {"host_disks", std::move(hosts)}};
}

std::string error(std::string_view message) { return json{{"error", message}}.dump(); }

// The numbers of a set-* request; `allowed` are the keys it may have.
Result<PolicyChange> policy_change(const json& request, std::initializer_list<std::string_view> allowed) {
    PolicyChange change;
    for (const auto& [key, value] : request.items()) {
        if (key == "execute") continue;
        bool known = false;
        for (auto k : allowed) known = known || k == key;
        if (!known) return bad_input("unknown key '{}'", key);
        if (key == "disk" || key == "host_disk") {
            if (!value.is_string()) return bad_input("'{}' must be a string", key);
            continue;
        }
        if (!value.is_number_unsigned()) return bad_input("'{}' must be a number of at least 0", key);
        uint64_t n = value.get<uint64_t>();
        if (key == "weight" || key == "depth") {
            if (n > UINT32_MAX) return bad_input("'{}' is too large", key);
            (key == "weight" ? change.weight : change.depth) = static_cast<uint32_t>(n);
        } else if (n > (1ull << 50)) {
            return bad_input("'{}' is too large", key);
        } else if (key == "iops") {
            change.iops = n;
        } else if (key == "bps") {
            change.bps = n;
        } else if (key == "iops_burst") {
            change.iops_burst = n;
        } else if (key == "bps_burst") {
            change.bps_burst = n;
        }
    }
    return change;
}

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
    bool disk = command == "set-disk";
    if (!disk && command != "set-host-disk") return error("unknown command '" + command + "'");
    const char* target = disk ? "disk" : "host_disk";
    auto change = disk ? policy_change(request, {"disk", "weight", "iops", "bps", "iops_burst", "bps_burst"})
                       : policy_change(request, {"host_disk", "depth", "iops", "bps", "iops_burst", "bps_burst"});
    if (!change) return error(change.error().message);
    auto name = request.find(target);
    if (name == request.end()) return error(std::string("set-") + (disk ? "disk" : "host-disk") + " needs \"" + target + "\"");
    const auto& id = name->get_ref<const std::string&>();
    auto done = disk ? server.set_disk(id, *change) : server.set_host_disk(id, *change);
    if (!done) return error(done.error().message);
    return json{{"return", json::object()}}.dump();
}

std::string manage_answer(Server& server, std::string_view request, int worker_channel, uint64_t worker_restarts) {
    return driver_domain::manage_answer(
        request, "disk",
        [&](const nlohmann::json& device) -> Result<std::string> {
            auto disk = device.is_string() ? parse_export(device.get_ref<const std::string&>()) : export_from_json(device);
            if (!disk) return std::unexpected(disk.error());
            return server.add(std::move(*disk), worker_channel);
        },
        [&](std::string_view name) { return server.remove(name, worker_channel); }, worker_restarts);
}

}  // namespace hospes::blkback
