#include "toolstack/domain_json.hpp"

#include "cli/device_options.hpp"

namespace hospes::toolstack {

using nlohmann::json;

json domain_to_json(const DomainConfig& d) {
    json disks = json::array();
    for (const auto& disk : d.disks)
        disks.push_back({{"target", disk.target},
                         {"vdev", disk.vdev},
                         {"guest_device", disk.guest_device},
                         {"format", disk.format},
                         {"read_only", disk.read_only},
                         {"cdrom", disk.cdrom},
                         {"discard", disk.discard}});
    json vifs = json::array();
    for (const auto& vif : d.vifs) {
        json v = {{"bridge", vif.bridge}, {"ips", vif.ips}, {"vifname", vif.vifname}, {"mtu", vif.mtu},
                  {"rate_bytes_per_second", vif.rate_bytes_per_second}, {"rate_burst_bytes", vif.rate_burst_bytes}};
        v["mac"] = vif.mac ? json(cli::format_mac(*vif.mac)) : json(nullptr);
        vifs.push_back(std::move(v));
    }
    return {{"name", d.name},
            {"type", d.type},
            {"uuid", d.uuid.empty() ? json(nullptr) : json(d.uuid)},
            {"memory_mib", d.memory_mib},
            {"maxmem_mib", d.maxmem_mib},
            {"vcpus", d.vcpus},
            {"maxvcpus", d.maxvcpus},
            {"cpus", d.cpus},
            {"cpu_weight", d.cpu_weight},
            {"cpu_cap", d.cpu_cap},
            {"kernel", d.kernel},
            {"ramdisk", d.ramdisk},
            {"cmdline", d.cmdline},
            {"disks", disks},
            {"vifs", vifs},
            {"on_poweroff", action_name(d.on_poweroff)},
            {"on_reboot", action_name(d.on_reboot)},
            {"on_crash", action_name(d.on_crash)}};
}

namespace {

// Reads fields of one JSON object, remembering the first error.
class Fields {
public:
    Fields(const json& object, std::string where) : object_(object), where_(std::move(where)) {
        if (!object_.is_object()) fail("", "an object");
    }

    template <typename T>
    void get(const char* key, T& out) {
        if (!error_.empty() || !object_.is_object()) return;
        auto found = object_.find(key);
        if (found == object_.end() || found->is_null()) return;  // absent: the default
        if constexpr (std::is_same_v<T, bool>) {
            if (!found->is_boolean()) return fail(key, "true or false");
        } else if constexpr (std::is_integral_v<T>) {
            bool whole = found->is_number_unsigned() || (found->is_number_integer() && found->template get<int64_t>() >= 0);
            if (!whole || found->template get<uint64_t>() > std::numeric_limits<T>::max())
                return fail(key, "a whole number in range");
        } else if constexpr (std::is_same_v<T, std::string>) {
            if (!found->is_string()) return fail(key, "a string");
        } else {
            if (!found->is_array() || !std::all_of(found->begin(), found->end(), [](const json& j) {
                    return j.is_string();
                }))
                return fail(key, "a list of strings");
        }
        out = found->template get<T>();
    }

    const json* list(const char* key) {
        if (!error_.empty() || !object_.is_object()) return nullptr;
        auto found = object_.find(key);
        if (found == object_.end()) return nullptr;
        if (!found->is_array()) {
            fail(key, "a list");
            return nullptr;
        }
        return &*found;
    }

    void fail(std::string_view key, std::string_view expected) {
        if (error_.empty())
            error_ = key.empty() ? fmt::format("{}: expected {}", where_, expected)
                                 : fmt::format("{}: \"{}\" must be {}", where_, key, expected);
    }
    const std::string& error() const { return error_; }

private:
    const json& object_;
    std::string where_;
    std::string error_;
};

void get_action(Fields& fields, const char* key, DomainAction& out) {
    std::string name(action_name(out));
    fields.get(key, name);
    if (auto action = action_from_name(name))
        out = *action;
    else
        fields.fail(key, "destroy, restart, rename-restart, preserve, coredump-destroy or coredump-restart");
}

}  // namespace

Result<DomainConfig> domain_from_json(const json& in) {
    DomainConfig d;
    Fields f(in, "domain");
    f.get("name", d.name);
    f.get("type", d.type);
    f.get("uuid", d.uuid);
    f.get("memory_mib", d.memory_mib);
    f.get("maxmem_mib", d.maxmem_mib);
    f.get("vcpus", d.vcpus);
    f.get("maxvcpus", d.maxvcpus);
    f.get("cpus", d.cpus);
    f.get("cpu_weight", d.cpu_weight);
    f.get("cpu_cap", d.cpu_cap);
    f.get("kernel", d.kernel);
    f.get("ramdisk", d.ramdisk);
    f.get("cmdline", d.cmdline);
    get_action(f, "on_poweroff", d.on_poweroff);
    get_action(f, "on_reboot", d.on_reboot);
    get_action(f, "on_crash", d.on_crash);
    if (const json* disks = f.list("disks")) {
        for (size_t i = 0; i < disks->size(); ++i) {
            DomainDisk disk;
            Fields g((*disks)[i], fmt::format("disk {}", i));
            g.get("target", disk.target);
            g.get("vdev", disk.vdev);
            g.get("guest_device", disk.guest_device);
            g.get("format", disk.format);
            g.get("read_only", disk.read_only);
            g.get("cdrom", disk.cdrom);
            g.get("discard", disk.discard);
            if (!g.error().empty()) return bad_input("{}", g.error());
            d.disks.push_back(std::move(disk));
        }
    }
    if (const json* vifs = f.list("vifs")) {
        for (size_t i = 0; i < vifs->size(); ++i) {
            DomainVif vif;
            Fields g((*vifs)[i], fmt::format("vif {}", i));
            std::string mac;
            g.get("mac", mac);
            g.get("bridge", vif.bridge);
            g.get("ips", vif.ips);
            g.get("vifname", vif.vifname);
            g.get("mtu", vif.mtu);
            g.get("rate_bytes_per_second", vif.rate_bytes_per_second);
            g.get("rate_burst_bytes", vif.rate_burst_bytes);
            if (!g.error().empty()) return bad_input("{}", g.error());
            if (!mac.empty()) {
                auto parsed = cli::parse_mac(mac);
                if (!parsed) return bad_input("vif {}: {}", i, parsed.error().message);
                vif.mac = *parsed;
            }
            d.vifs.push_back(std::move(vif));
        }
    }
    if (!f.error().empty()) return bad_input("{}", f.error());
    if (d.name.empty()) return bad_input("domain: \"name\" is missing");
    if (d.vcpus == 0) return bad_input("domain: \"vcpus\" must be at least 1");
    if (d.memory_mib < 4) return bad_input("domain: \"memory_mib\" must be at least 4");
    // What an xl.cfg file may not say, the API may not either.
    if (auto checked = check_domain(d); !checked) return bad_input("domain: {}", checked.error().message);
    return d;
}

}  // namespace hospes::toolstack
