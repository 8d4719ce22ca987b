// The seccomp allowlists of every confined thread, printed from the lists
// the code loads (vmm/filters.hpp, the jailer, the back-ends' workers),
// beside Firecracker's for the same kind of thread
// (resources/seccomp/x86_64-unknown-linux-musl.json: 50 calls on its vmm
// thread, 31 on its API thread, 27 on a vCPU thread). `--markdown` prints
// the tables of docs/security.md.
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "blkback/server.hpp"
#include "netback/server.hpp"
#include "vmm/filters.hpp"
#include "vmm/jailer.hpp"

namespace {

struct Row {
    hospes::sandbox::Allowlist list;
    const char* peer;  // Firecracker's thread of the same kind
    int peer_calls;    // 0: none to compare with
};

// Each call once, with its argument conditions.
std::string describe(const hospes::sandbox::Allowlist& list, const std::string& name) {
    std::string text = name;
    size_t conditional = 0, rules = 0;
    for (const auto& rule : list.rules) {
        if (rule.name != name) continue;
        ++rules;
        if (!rule.conditions.empty()) ++conditional;
    }
    if (conditional != 0) text += rules > 1 ? " (" + std::to_string(rules) + " argument forms)" : " (arguments pinned)";
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    bool markdown = argc > 1 && std::strcmp(argv[1], "--markdown") == 0;
    hospes::MonitorFilterContext context{1, true};
    std::vector<Row> rows = {
        {hospes::vcpu_allowlist(context), "vcpu", 27},
        {hospes::io_allowlist(context), "vmm", 50},
        {hospes::console_allowlist(context), "api", 31},
        {hospes::main_allowlist(context), "api", 31},
        {hospes::jailer_allowlist(2), "", 0},
        {hospes::blkback::worker_allowlist(), "", 0},
        {hospes::netback::worker_allowlist(), "", 0},
    };
    std::set<std::string> monitor;
    for (size_t i = 0; i < 4; ++i)
        for (const auto& name : rows[i].list.syscalls()) monitor.insert(name);
    if (markdown) {
        std::printf("| thread | calls | Firecracker's thread | its calls |\n|---|---|---|---|\n");
        for (const auto& row : rows)
            std::printf("| %s | %zu | %s | %s |\n", row.list.thread.c_str(), row.list.syscalls().size(),
                        row.peer_calls ? row.peer : "-", row.peer_calls ? std::to_string(row.peer_calls).c_str() : "-");
        std::printf("| the monitor, all four threads | %zu | - | - |\n\n", monitor.size());
        for (const auto& row : rows) {
            std::printf("**%s** (%zu): ", row.list.thread.c_str(), row.list.syscalls().size());
            bool first = true;
            for (const auto& name : row.list.syscalls()) {
                std::printf("%s`%s`", first ? "" : ", ", describe(row.list, name).c_str());
                first = false;
            }
            std::printf("\n\n");
        }
        return 0;
    }
    std::printf("%-16s %6s   %-22s\n", "thread", "calls", "Firecracker's thread");
    for (const auto& row : rows)
        std::printf("%-16s %6zu   %s\n", row.list.thread.c_str(), row.list.syscalls().size(),
                    row.peer_calls ? (std::string(row.peer) + " " + std::to_string(row.peer_calls)).c_str() : "-");
    std::printf("%-16s %6zu   (distinct calls of the monitor's four threads)\n", "monitor", monitor.size());
    return 0;
}
