#include "cli/create_command.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/device_options.hpp"
#include "common/log.hpp"

namespace hospes::cli {

using nlohmann::json;
using toolstack::DomainConfig;

void add_create_command(CLI::App& app, CreateOptions& options) {
    auto* create = app.add_subcommand("create", "create a domain from an xl.cfg file (as xl create)");
    create->add_option("file", options.file, "the domain's xl.cfg file")->required();
    create->add_option("overrides", options.overrides, "key=value settings applied after the file");
    create->add_flag("-n,--dryrun", options.dry_run, "read and check the file, print the domain, start nothing");
}

Result<DomainConfig> load_domain(const std::string& file, const std::vector<std::string>& overrides) {
    std::ifstream in(file);
    if (!in) return bad_input("{}: cannot read it: {}", file, std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().size() > (1 << 20)) return bad_input("{}: larger than 1 MiB, not a domain file", file);
    std::string all = text.str();
    // Each override alone first, so that its errors name it.
    for (size_t i = 0; i < overrides.size(); ++i) {
        auto alone = toolstack::parse_xl_config(overrides[i], fmt::format("argument '{}'", overrides[i]));
        if (!alone) return std::unexpected(alone.error());
        all += "\n" + overrides[i];
    }
    auto config = toolstack::parse_xl_config(all, file);
    if (!config) return std::unexpected(config.error());
    return toolstack::domain_from_xl(*config);
}

std::string domain_json(const DomainConfig& d) {
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
        v["mac"] = vif.mac ? json(format_mac(*vif.mac)) : json(nullptr);
        vifs.push_back(std::move(v));
    }
    json out = {{"name", d.name},
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
                {"on_poweroff", toolstack::action_name(d.on_poweroff)},
                {"on_reboot", toolstack::action_name(d.on_reboot)},
                {"on_crash", toolstack::action_name(d.on_crash)}};
    return out.dump(2);
}

int create_command(const CreateOptions& options) {
    auto domain = load_domain(options.file, options.overrides);
    if (!domain) {
        log::error("{}", domain.error().message);
        return exit_status_for(domain.error());
    }
    for (const auto& warning : domain->warnings) log::warn("{}", warning);
    if (!options.dry_run) {
        log::error("create: starting domains needs hospesd, which is not built yet; -n checks the file");
        return kExitHostError;
    }
    std::printf("%s\n", domain_json(*domain).c_str());
    return 0;
}

}  // namespace hospes::cli
