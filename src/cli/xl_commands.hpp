// The xl verbs that talk to hospesd (`hospes list`, `xl shutdown -w web1`,
// ...): each sends JSON requests to the daemon's socket and prints what
// Xen's xl prints. The socket is $HOSPESD_SOCKET, else hospesd's default.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hospes::cli {

struct XlOptions {
    std::vector<std::string> domains;  // the verb's domain arguments
    std::string new_name;              // rename
    bool long_format = false;          // list -l
    bool wait = false;                 // shutdown/reboot -w
    bool all = false;                  // shutdown -a
    std::string domain;                // sched-credit -d
    std::optional<unsigned> weight;    // sched-credit -w
    std::optional<unsigned> cap;       // sched-credit -c
    std::string vcpu, cpus;            // vcpu-pin
    std::string memory;                // mem-set, mem-max
    bool clear = false;                // dmesg -c
    bool batch = false;                // top -b
    bool full_name = false;            // top -f
    unsigned delay = 3;                // top -d: seconds between refreshes
    unsigned iterations = 0;           // top -i: refreshes before it ends; 0: until q or Ctrl-C
};

// Adds the verbs; `verbs` gets each one's subcommand.
void add_xl_commands(CLI::App& app, XlOptions& options, std::vector<CLI::App*>& verbs);
// Runs the verb `name` that was given; the exit status.
int xl_command(const std::string& name, const XlOptions& options);

// After `create`: the domain's console (create -c), or a request's answer.
int attach_console(const std::string& domain);
// One request to hospesd: prints the error and returns nullopt on failure.
std::optional<nlohmann::json> daemon_request(const nlohmann::json& request, int timeout_seconds = 30);

}  // namespace hospes::cli
