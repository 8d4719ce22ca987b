// `hospes create` (also `xl create`): a domain from an xl.cfg file, with
// `key=value` statements after the file name applied after it, as xl does.
// hospesd starts the domain; `-n` only reads and checks the file and prints
// the domain configuration as JSON.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "toolstack/domain_config.hpp"

namespace hospes::cli {

struct CreateOptions {
    std::string file;
    std::vector<std::string> overrides;
    bool dry_run = false;
    bool paused = false;   // -p
    bool console = false;  // -c
};

void add_create_command(CLI::App& app, CreateOptions& options);

// The domain `file` describes with `overrides` applied; warnings are in it.
Result<toolstack::DomainConfig> load_domain(const std::string& file, const std::vector<std::string>& overrides);

int create_command(const CreateOptions& options);

}  // namespace hospes::cli
