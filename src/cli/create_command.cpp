#include "cli/create_command.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/device_options.hpp"
#include "cli/xl_commands.hpp"
#include "common/log.hpp"
#include "toolstack/domain_json.hpp"

namespace hospes::cli {

using nlohmann::json;
using toolstack::DomainConfig;

void add_create_command(CLI::App& app, CreateOptions& options) {
    auto* create = app.add_subcommand("create", "create a domain from an xl.cfg file (as xl create)");
    create->add_option("file", options.file, "the domain's xl.cfg file")->required();
    create->add_option("overrides", options.overrides, "key=value settings applied after the file");
    create->add_flag("-n,--dryrun", options.dry_run, "read and check the file, print the domain, start nothing");
    create->add_flag("-p", options.paused, "leave the domain paused after creating it");
    create->add_flag("-c", options.console, "attach to its console once created");
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

int create_command(const CreateOptions& options) {
    auto domain = load_domain(options.file, options.overrides);
    if (!domain) {
        log::error("{}", domain.error().message);
        return exit_status_for(domain.error());
    }
    for (const auto& warning : domain->warnings) log::warn("{}", warning);
    if (options.dry_run) {
        std::printf("%s\n", toolstack::domain_to_json(*domain).dump(2).c_str());
        return 0;
    }
    // hospesd runs elsewhere: paths are made absolute here, as the user meant them.
    auto absolute = [](std::string& path) {
        if (!path.empty()) path = std::filesystem::absolute(path).lexically_normal().string();
    };
    absolute(domain->kernel);
    absolute(domain->ramdisk);
    for (auto& disk : domain->disks) absolute(disk.target);
    std::fprintf(stderr, "Parsing config from %s\n", options.file.c_str());
    auto created = daemon_request(
        {{"execute", "create"}, {"domain", toolstack::domain_to_json(*domain)}, {"paused", options.paused}});
    if (!created) return 1;
    if (options.console) return attach_console(domain->name);
    return 0;
}

}  // namespace hospes::cli
