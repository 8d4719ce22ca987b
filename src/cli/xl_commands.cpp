#include "cli/xl_commands.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "common/log.hpp"
#include "common/size.hpp"
#include "common/unique_fd.hpp"
#include "toolstack/domain_config.hpp"
#include "toolstack/monitor_process.hpp"

namespace hospes::cli {

using nlohmann::json;

namespace {

constexpr uint8_t kDetach = 0x1d;  // Ctrl-], as xl console

std::string daemon_socket() {
    if (const char* path = std::getenv("HOSPESD_SOCKET"); path != nullptr && *path != '\0') return path;
    return "/run/hospes/hospesd.sock";
}

// xl's uptime text: "H:MM:SS", "1 day, H:MM:SS", "N days, H:MM:SS".
std::string uptime_text(int64_t seconds) {
    int64_t days = seconds / 86400, hours = seconds % 86400 / 3600, minutes = seconds % 3600 / 60;
    std::string clock = fmt::format("{:2}:{:02}:{:02}", hours, minutes, seconds % 60);
    if (days > 1) return fmt::format("{} days, {}", days, clock);
    if (days == 1) return fmt::format("1 day, {}", clock);
    return clock;
}

// Whether `row` (a list row) is one of `domains` (names or ids); all when none.
bool is_one_of(const json& row, const std::vector<std::string>& domains) {
    for (const auto& d : domains)
        if (d == row["name"].get<std::string>() || d == std::to_string(row["id"].get<uint32_t>())) return true;
    return domains.empty();
}

int list(const XlOptions& options) {
    auto rows = daemon_request({{"execute", "list"}});
    if (!rows) return 1;
    json shown = json::array();
    for (const auto& row : *rows)
        if (is_one_of(row, options.domains)) shown.push_back(row);
    for (const auto& d : options.domains) {
        bool found = false;
        for (const auto& row : shown) found = found || is_one_of(row, {d});
        if (!found) {
            log::error("domain '{}' does not exist", d);
            return 1;
        }
    }
    if (options.long_format) {
        std::printf("%s\n", shown.dump(4).c_str());
        return 0;
    }
    // Xen's columns exactly (tools/xl/xl_info.c, list_domains).
    std::printf("Name                                        ID   Mem VCPUs\tState\tTime(s)\n");
    for (const auto& row : shown)
        std::printf("%-40s %5u %5lu %5u     %s  %8.1f\n", row["name"].get<std::string>().c_str(),
                    row["id"].get<uint32_t>(), static_cast<unsigned long>(row["memory_mib"].get<uint64_t>()),
                    row["vcpus"].get<uint32_t>(), row["state"].get<std::string>().c_str(),
                    row["cpu_seconds"].get<double>());
    return 0;
}

int info() {
    auto host = daemon_request({{"execute", "info"}});
    if (!host) return 1;
    auto line = [](const char* key, const std::string& value) { std::printf("%-23s: %s\n", key, value.c_str()); };
    auto text = [&](const char* key) { return (*host)[key].is_string() ? (*host)[key].get<std::string>() : (*host)[key].dump(); };
    for (const char* key : {"host", "release", "version", "machine", "nr_cpus", "max_cpu_id", "nr_nodes",
                            "cores_per_socket", "threads_per_core"})
        line(key, text(key));
    uint64_t khz = (*host)["cpu_khz"].get<uint64_t>();
    line("cpu_mhz", fmt::format("{}.{:03}", khz / 1000, khz % 1000));
    line("hw_caps", "00000000:00000000:00000000:00000000:00000000:00000000:00000000:00000000");
    std::printf("%-23s:%s\n", "virt_caps", " pv hap");
    line("total_memory", text("total_memory"));
    line("free_memory", text("free_memory"));
    line("sharing_freed_memory", "0");
    line("sharing_used_memory", "0");
    line("outstanding_claims", "0");
    line("free_cpus", "0");
    // The hypervisor's fields, for the tools that read them: hospes
    // answers as the Xen release whose xl it follows, and says what it is.
    line("xen_major", "4");
    line("xen_minor", "17");
    line("xen_extra", ".0-hospes");
    line("xen_version", "4.17.0-hospes");
    line("xen_caps", "hvm-3.0-x86_64");
    line("xen_scheduler", "credit");
    line("xen_pagesize", "4096");
    line("platform_params", "virt_start=0x0");
    line("xen_changeset", "hospes on Linux KVM");
    line("xen_commandline", "");
    line("cc_compiler", __VERSION__);
    line("cc_compile_by", "hospes");
    line("cc_compile_domain", "");
    line("cc_compile_date", __DATE__);
    line("build_id", "");
    line("xend_config_format", "4");
    return 0;
}

int uptime(const XlOptions& options) {
    auto rows = daemon_request({{"execute", "list"}});
    if (!rows) return 1;
    std::printf("%-33s %4s %s\n", "Name", "ID", "Uptime");
    int64_t now = static_cast<int64_t>(std::time(nullptr));
    for (const auto& row : *rows) {
        if (!is_one_of(row, options.domains)) continue;
        int64_t seconds = 0;
        if (row["started_at"].is_null()) {
            std::FILE* f = std::fopen("/proc/uptime", "r");
            double up = 0;
            if (f != nullptr && std::fscanf(f, "%lf", &up) == 1) seconds = static_cast<int64_t>(up);
            if (f != nullptr) std::fclose(f);
        } else {
            seconds = now - row["started_at"].get<int64_t>();
        }
        std::printf("%-33s %4u %s\n", row["name"].get<std::string>().c_str(), row["id"].get<uint32_t>(),
                    uptime_text(seconds).c_str());
    }
    return 0;
}

// Waits until each domain (by id) has ended, stopped, or started a new boot.
int wait_for_shutdown(const std::vector<std::pair<uint32_t, int64_t>>& domains) {
    for (;;) {
        auto rows = daemon_request({{"execute", "list"}});
        if (!rows) return 1;
        bool waiting = false;
        for (const auto& [id, started] : domains) {
            for (const auto& row : *rows) {
                if (row["id"].get<uint32_t>() != id) continue;
                std::string status = row["status"].get<std::string>();
                if ((status == "running" || status == "paused") && row["started_at"].get<int64_t>() == started)
                    waiting = true;
            }
        }
        if (!waiting) return 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

int shutdown_or_reboot(const std::string& verb, const XlOptions& options) {
    std::vector<std::string> names = options.domains;
    auto rows = daemon_request({{"execute", "list"}});
    if (!rows) return 1;
    if (options.all) {
        names.clear();
        for (const auto& row : *rows)
            if (row["id"].get<uint32_t>() != 0 && row["status"] == "running") names.push_back(row["name"]);
    } else if (names.size() != 1) {
        log::error("{}: name exactly one domain, or -a for all", verb);
        return kExitBadInput;
    }
    std::vector<std::pair<uint32_t, int64_t>> waited;
    for (const auto& name : names) {
        auto done = daemon_request({{"execute", verb}, {"domain", name}});
        if (!done) return 1;
        for (const auto& row : *rows)
            if (is_one_of(row, {name}))
                waited.emplace_back(row["id"].get<uint32_t>(), row["started_at"].is_null() ? 0 : row["started_at"].get<int64_t>());
    }
    return options.wait ? wait_for_shutdown(waited) : 0;
}

int sched_credit(const XlOptions& options) {
    if (!options.domain.empty() && (options.weight || options.cap)) {
        json request = {{"execute", "sched-credit"}, {"domain", options.domain}};
        if (options.weight) request["weight"] = *options.weight;
        if (options.cap) request["cap"] = *options.cap;
        return daemon_request(request) ? 0 : 1;
    }
    if (options.weight || options.cap) {
        log::error("sched-credit: -w and -c need a domain (-d)");
        return kExitBadInput;
    }
    auto rows = daemon_request({{"execute", "list"}});
    if (!rows) return 1;
    std::vector<std::string> wanted;
    if (!options.domain.empty()) wanted.push_back(options.domain);
    else std::printf("Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us\n");
    // Xen's columns (tools/xl/xl_sched.c); Domain-0 has the default weight.
    std::printf("%-33s %4s %6s %4s\n", "Name", "ID", "Weight", "Cap");
    bool found = false;
    for (const auto& row : *rows) {
        if (!is_one_of(row, wanted)) continue;
        found = true;
        bool host = row["id"].get<uint32_t>() == 0;
        std::printf("%-33s %4u %6u %4u\n", row["name"].get<std::string>().c_str(), row["id"].get<uint32_t>(),
                    host ? 256u : row["config"]["cpu_weight"].get<unsigned>(),
                    host ? 0u : row["config"]["cpu_cap"].get<unsigned>());
    }
    if (!found) {
        log::error("domain '{}' does not exist", options.domain);
        return 1;
    }
    return 0;
}

int vcpu_list(const XlOptions& options) {
    auto rows = daemon_request({{"execute", "list"}});
    if (!rows) return 1;
    std::printf("%-32s %5s %5s %5s %5s %9s %s\n", "Name", "ID", "VCPU", "CPU", "State", "Time(s)",
                "Affinity (Hard / Soft)");
    for (const auto& row : *rows) {
        if (row["id"].get<uint32_t>() == 0 || !is_one_of(row, options.domains)) continue;
        auto vcpus = daemon_request({{"execute", "vcpu-list"}, {"domain", row["id"]}});
        if (!vcpus) return 1;
        for (const auto& v : *vcpus)
            std::printf("%-32s %5u %5u %5u %3s %9.1f  %s / all\n", v["name"].get<std::string>().c_str(),
                        v["id"].get<uint32_t>(), v["vcpu"].get<uint32_t>(), v["cpu"].get<uint32_t>(),
                        v["state"].get<std::string>().c_str(), v["cpu_seconds"].get<double>(),
                        v["affinity"].get<std::string>().c_str());
    }
    return 0;
}

// xl block-list / network-list: the devices of the domains named, in Xen's
// columns. hospes has no event channels or grant references: -1.
int device_list(const std::string& verb, const XlOptions& options) {
    auto rows = daemon_request({{"execute", "list"}});
    if (!rows) return 1;
    if (verb == "block-list")
        std::printf("%-5s %-3s %-6s %-5s %-6s %-8s %-30s\n", "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref",
                    "BE-path");
    else
        std::printf("%-3s %-2s %-17s %-6s %-5s %-6s %5s/%-5s %-30s\n", "Idx", "BE", "Mac Addr.", "handle", "state",
                    "evt-ch", "tx-", "rx-ring-ref", "BE-path");
    for (const auto& name : options.domains) {
        const json* found = nullptr;
        for (const auto& row : *rows)
            if (row["id"].get<uint32_t>() != 0 && is_one_of(row, {name})) found = &row;
        if (found == nullptr) {
            log::error("{} is an invalid domain identifier", name);
            return 1;
        }
        const json& row = *found;
        int state = row["status"] == "running" || row["status"] == "paused" ? 4 : 6;  // XenbusStateConnected / Closed
        uint32_t id = row["id"].get<uint32_t>();
        if (verb == "block-list") {
            for (const auto& disk : row["config"]["disks"]) {
                auto index = toolstack::vdev_index(disk["vdev"].get<std::string>());
                unsigned vdev = 202 * 256 + 16 * (index ? *index : 0);  // Xen's number for xvdX
                std::printf("%-5u %-3d %-6u %-5d %-6d %-8d %-30s\n", vdev, 0, id, state, -1, -1,
                            disk["target"].get<std::string>().c_str());
            }
        } else {
            int index = 0;
            for (const auto& vif : row["config"]["vifs"]) {
                // The host's side: the monitor's tap, or the back-end's port.
                std::string tap = vif["vifname"].get<std::string>();
                if (tap.empty()) tap = fmt::format("vif{}.{}", id, index);
                const auto ports = row.value("vif_ports", json::array());
                if (static_cast<size_t>(index) < ports.size() && ports[index].is_string())
                    tap = ports[index].get<std::string>();
                std::printf("%-3d %-2d %-17s %6d %5d %6d %5d/%-11d %-30s\n", index, 0,
                            vif["mac"].is_string() ? vif["mac"].get<std::string>().c_str() : "-", index, state, -1,
                            -1, -1, tap.c_str());
                ++index;
            }
        }
    }
    return 0;
}


int dmesg(const XlOptions& options) {
    auto kept = daemon_request({{"execute", "dmesg"}, {"clear", options.clear}});
    if (!kept) return 1;
    for (const auto& line : (*kept)["lines"]) std::printf("%s\n", line.get<std::string>().c_str());
    return 0;
}

// ------------------------------------------------------------------- top

volatile sig_atomic_t top_interrupted = 0;

// One domain's totals, summed over its devices, as xentop counts them.
struct TopTotals {
    double cpu_seconds = 0;
    unsigned nets = 0, vbds = 0;
    uint64_t net_tx = 0, net_rx = 0;  // bytes the guest sent / was given
    uint64_t rd_reqs = 0, wr_reqs = 0, rd_bytes = 0, wr_bytes = 0;
};

TopTotals top_totals(const json& row) {
    TopTotals t;
    t.cpu_seconds = row["cpu_seconds"].get<double>();
    auto counter = [](const json& device, const char* name) {
        return device["counters"].value(name, uint64_t{0});
    };
    for (const auto& device : row.value("devices", json::array())) {
        if (device["type"] == "network") {
            ++t.nets;
            t.net_tx += counter(device, "tx_bytes");
            t.net_rx += counter(device, "rx_bytes");
        } else {
            ++t.vbds;
            t.rd_reqs += counter(device, "read_requests");
            t.wr_reqs += counter(device, "write_requests");
            t.rd_bytes += counter(device, "read_bytes");
            t.wr_bytes += counter(device, "write_bytes");
        }
    }
    return t;
}

// xentop's six state letters: dying, shutdown, blocked, crashed, paused, running.
std::string top_state(const json& row) {
    std::string letters = "------";
    std::string xl = row["state"].get<std::string>();  // xl list's r b p s (shutdown reason) d
    if (xl[0] == 'r') letters[5] = 'r';
    if (xl[1] == 'b') letters[2] = 'b';
    if (xl[2] == 'p') letters[4] = 'p';
    if (xl[3] == 's') letters[1] = 's';
    if (xl[4] == 'c') letters[3] = 'c';
    return letters;
}

// xentop's INT_FIELD_WIDTH: the digits of `value` (at least 1).
unsigned digits(uint64_t value) { return static_cast<unsigned>(std::log10(static_cast<double>(std::max<uint64_t>(value, 1)))) + 1; }

// One frame: xentop's table (tools/xentop/xentop.c: columns, widths, the
// summary above it when not in batch mode), then hospes's rate columns.
void print_top_frame(const json& rows, const json& host, const std::map<uint32_t, TopTotals>& before,
                     double elapsed, const XlOptions& options) {
    uint64_t total_kib = host["total_memory"].get<uint64_t>() * 1024;
    if (!options.batch) {
        char clock[16];
        std::time_t now = std::time(nullptr);
        std::strftime(clock, sizeof(clock), "%H:%M:%S", std::localtime(&now));
        unsigned counts[6] = {};  // running, blocked, paused, crashed, dying, shutdown
        for (const auto& row : rows) {
            std::string state = top_state(row);
            if (state[5] == 'r') ++counts[0];
            else if (state[2] == 'b') ++counts[1];
            else if (state[4] == 'p') ++counts[2];
            else if (state[1] == 's' && state[3] != 'c') ++counts[5];
            else if (state[3] == 'c') ++counts[3];
        }
        uint64_t free_kib = host["free_memory"].get<uint64_t>() * 1024;
        std::printf("\033[H\033[2Jxentop - %s   Xen 4.17.0-hospes\n", clock);
        std::printf("%zu domains: %u running, %u blocked, %u paused, %u crashed, %u dying, %u shutdown \n", rows.size(),
                    counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]);
        std::printf("Mem: %luk total, %luk used, %luk free    CPUs: %u @ %luMHz\n",
                    static_cast<unsigned long>(total_kib), static_cast<unsigned long>(total_kib - free_kib),
                    static_cast<unsigned long>(free_kib), host["nr_cpus"].get<unsigned>(),
                    static_cast<unsigned long>(host["cpu_khz"].get<uint64_t>() / 1000));
    }
    std::vector<TopTotals> totals;
    unsigned name_width = 10, tx_width = 8, rx_width = 8, rd_width = 8, wr_width = 8, rsect_width = 10, wsect_width = 10;
    for (const auto& row : rows) {
        totals.push_back(top_totals(row));
        const TopTotals& t = totals.back();
        if (options.full_name) name_width = std::max<unsigned>(name_width, static_cast<unsigned>(row["name"].get<std::string>().size()));
        tx_width = std::max(tx_width, digits(t.net_tx / 1024 + 1));
        rx_width = std::max(rx_width, digits(t.net_rx / 1024 + 1));
        rd_width = std::max(rd_width, digits(t.rd_reqs + 1));
        wr_width = std::max(wr_width, digits(t.wr_reqs + 1));
        rsect_width = std::max(rsect_width, digits(t.rd_bytes / 512 + 1));
        wsect_width = std::max(wsect_width, digits(t.wr_bytes / 512 + 1));
    }
    std::printf("%*s %6s %10s %6s %10s %6s %10s %9s %5s %4s %*s %*s %4s %8s %*s %*s %*s %*s %4s %10s %10s %8s %8s\n",
                name_width, "NAME", "STATE", "CPU(sec)", "CPU(%)", "MEM(k)", "MEM(%)", "MAXMEM(k)", "MAXMEM(%)", "VCPUS",
                "NETS", tx_width, "NETTX(k)", rx_width, "NETRX(k)", "VBDS", "VBD_OO", rd_width, "VBD_RD", wr_width,
                "VBD_WR", rsect_width, "VBD_RSECT", wsect_width, "VBD_WSECT", "SSID", "NETTX(k/s)", "NETRX(k/s)",
                "VBD_RD/s", "VBD_WR/s");
    for (size_t i = 0; i < rows.size(); ++i) {
        const json& row = rows[i];
        const TopTotals& t = totals[i];
        uint32_t id = row["id"].get<uint32_t>();
        auto previous = before.find(id);
        // Rates need a previous frame, as xentop's CPU(%).
        auto rate = [&](auto field) {
            if (previous == before.end() || elapsed <= 0) return 0.0;
            return static_cast<double>(field(t) - std::min(field(t), field(previous->second))) / elapsed;
        };
        double cpu_pct = previous == before.end() || elapsed <= 0
                             ? 0.0
                             : std::max(0.0, t.cpu_seconds - previous->second.cpu_seconds) / elapsed * 100.0;
        uint64_t mem_kib = row["memory_mib"].get<uint64_t>() * 1024;
        std::string name = row["name"].get<std::string>();
        if (!options.full_name) name = name.substr(0, 10);
        std::string maxmem = "no limit", maxmem_pct = "n/a";
        if (id != 0) {
            uint64_t max_kib = row.value("maxmem_mib", row["memory_mib"].get<uint64_t>()) * 1024;
            maxmem = std::to_string(max_kib);
            maxmem_pct = fmt::format("{:.1f}", static_cast<double>(max_kib) / static_cast<double>(total_kib) * 100.0);
        }
        std::printf("%*s %6s %10lu %6.1f %10lu %6.1f %10s %9s %5u %4u %*lu %*lu %4u %8lu %*lu %*lu %*lu %*lu %4u %10.1f %10.1f %8.1f %8.1f\n",
                    name_width, name.c_str(), top_state(row).c_str(), static_cast<unsigned long>(t.cpu_seconds),
                    cpu_pct, static_cast<unsigned long>(mem_kib),
                    static_cast<double>(mem_kib) / static_cast<double>(total_kib) * 100.0, maxmem.c_str(),
                    maxmem_pct.c_str(), row["vcpus"].get<unsigned>(), t.nets, tx_width,
                    static_cast<unsigned long>(t.net_tx / 1024), rx_width, static_cast<unsigned long>(t.net_rx / 1024),
                    t.vbds, 0ul, rd_width, static_cast<unsigned long>(t.rd_reqs), wr_width,
                    static_cast<unsigned long>(t.wr_reqs), rsect_width, static_cast<unsigned long>(t.rd_bytes / 512),
                    wsect_width, static_cast<unsigned long>(t.wr_bytes / 512), 0u,
                    rate([](const TopTotals& x) { return x.net_tx; }) / 1024,
                    rate([](const TopTotals& x) { return x.net_rx; }) / 1024,
                    rate([](const TopTotals& x) { return x.rd_reqs; }),
                    rate([](const TopTotals& x) { return x.wr_reqs; }));
    }
    std::fflush(stdout);
}

// xl top (xentop): a frame every -d seconds, -i frames (0: until q, or
// Ctrl-C); -b prints frames one after another with no summary.
int top(const XlOptions& options) {
    if (options.delay == 0) {
        log::error("top: the delay is at least 1 second");
        return kExitBadInput;
    }
    struct sigaction stop {};
    stop.sa_handler = [](int) { top_interrupted = 1; };
    sigemptyset(&stop.sa_mask);
    ::sigaction(SIGINT, &stop, nullptr);
    ::sigaction(SIGTERM, &stop, nullptr);
    std::optional<termios> saved;
    if (!options.batch && ::isatty(STDIN_FILENO)) {
        termios terminal{};
        if (::tcgetattr(STDIN_FILENO, &terminal) == 0) {
            saved = terminal;
            terminal.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
            ::tcsetattr(STDIN_FILENO, TCSANOW, &terminal);
        }
    }
    std::map<uint32_t, TopTotals> before;
    auto previous_time = std::chrono::steady_clock::now();
    int status = 0;
    for (unsigned frame = 1; !top_interrupted; ++frame) {
        auto host = daemon_request({{"execute", "info"}});
        auto rows = host ? daemon_request({{"execute", "top"}}) : std::nullopt;
        if (!rows) {
            status = 1;
            break;
        }
        auto now = std::chrono::steady_clock::now();
        double elapsed = std::chrono::duration<double>(now - previous_time).count();
        print_top_frame(*rows, *host, before, elapsed, options);
        before.clear();
        for (const auto& row : *rows) before[row["id"].get<uint32_t>()] = top_totals(row);
        previous_time = now;
        if (options.iterations != 0 && frame >= options.iterations) break;
        // Until the next frame: a key on the terminal (q quits, any other
        // redraws) or the delay.
        pollfd input{saved ? STDIN_FILENO : -1, POLLIN, 0};
        if (::poll(&input, 1, static_cast<int>(options.delay * 1000)) > 0) {
            char key = 0;
            if (::read(STDIN_FILENO, &key, 1) <= 0 || key == 'q' || key == 'Q') break;
        }
    }
    if (saved) ::tcsetattr(STDIN_FILENO, TCSANOW, &*saved);
    return status;
}

}  // namespace

std::optional<json> daemon_request(const json& request, int timeout_seconds) {
    auto answer = toolstack::json_request(daemon_socket(), request, std::chrono::seconds(timeout_seconds));
    if (!answer) {
        log::error("hospesd: {}", answer.error().message);
        return std::nullopt;
    }
    return *answer;
}

int attach_console(const std::string& domain) {
    auto where = daemon_request({{"execute", "console"}, {"domain", domain}});
    if (!where) return 1;
    std::string path = (*where)["socket"].get<std::string>();
    UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof(address.sun_path)) return 1;
    std::memcpy(address.sun_path, path.c_str(), path.size());
    if (!socket.valid() || ::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        log::error("cannot attach to the console of '{}': {}", domain, std::strerror(errno));
        return 1;
    }
    std::optional<termios> saved;
    termios terminal{};
    if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &terminal) == 0) {
        saved = terminal;
        cfmakeraw(&terminal);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &terminal);
    }
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {socket.get(), POLLIN, 0}};
    char buffer[4096];
    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[1].revents != 0) {
            ssize_t n = ::read(socket.get(), buffer, sizeof(buffer));
            if (n <= 0) break;  // the domain ended or another console took over
            if (::write(STDOUT_FILENO, buffer, static_cast<size_t>(n)) < 0) break;
        }
        if (fds[0].revents != 0) {
            ssize_t n = ::read(STDIN_FILENO, buffer, sizeof(buffer));
            if (n <= 0) {
                fds[0].fd = -1;  // end of input: keep showing the console
                continue;
            }
            std::string_view typed(buffer, static_cast<size_t>(n));
            size_t detach = typed.find(static_cast<char>(kDetach));
            std::string_view sent = typed.substr(0, detach);
            if (!sent.empty() && ::send(socket.get(), sent.data(), sent.size(), MSG_NOSIGNAL) < 0) break;
            if (detach != std::string_view::npos) break;
        }
    }
    if (saved) ::tcsetattr(STDIN_FILENO, TCSANOW, &*saved);
    return 0;
}

void add_xl_commands(CLI::App& app, XlOptions& options, std::vector<CLI::App*>& verbs) {
    auto verb = [&](const char* name, const char* help) {
        auto* command = app.add_subcommand(name, help);
        verbs.push_back(command);
        return command;
    };
    auto* list_verb = verb("list", "list the domains, as xl list");
    list_verb->add_flag("-l,--long", options.long_format, "all of each domain, as JSON");
    list_verb->add_option("domains", options.domains, "only these domains");
    for (auto [name, help] : {std::pair{"destroy", "end a domain at once (its monitor is killed)"},
                              {"pause", "stop every vCPU of a domain"},
                              {"unpause", "let a paused domain run"},
                              {"console", "attach to a domain's console (Ctrl-] detaches)"}})
        verb(name, help)->add_option("domain", options.domains, "the domain (name or id)")->required()->expected(1);
    for (auto [name, help] : {std::pair{"shutdown", "ask a domain to power off (the ACPI power button)"},
                              {"reboot", "ask a domain to reboot (power button; its on_reboot follows)"}}) {
        auto* command = verb(name, help);
        command->add_option("domain", options.domains, "the domain (name or id)");
        command->add_flag("-w,--wait", options.wait, "wait until it has shut down");
        if (std::string_view(name) == "shutdown") command->add_flag("-a,--all", options.all, "every domain");
    }
    verb("info", "the host, as xl info");
    verb("uptime", "how long the domains have run")->add_option("domains", options.domains, "only these");
    auto* sched = verb("sched-credit", "a domain's CPU weight and cap (percent of one CPU), as xl sched-credit");
    sched->add_option("-d,--domain", options.domain, "the domain");
    sched->add_option("-w,--weight", options.weight, "its weight, 1 to 65535 (default 256)")->check(CLI::Range(1, 65535));
    sched->add_option("-c,--cap", options.cap, "its cap in percent of one CPU (0: none)");
    verb("vcpu-list", "the domains' vCPUs: where they run, their time and affinity")
        ->add_option("domains", options.domains, "only these");
    auto* pin = verb("vcpu-pin", "let a domain's vCPU (or all) run only on some host CPUs");
    pin->add_option("domain", options.domain, "the domain")->required();
    pin->add_option("vcpu", options.vcpu, "the vCPU number, or all")->required();
    pin->add_option("cpus", options.cpus, "a CPU list: 0-3,5 or all (^N excludes)")->required();
    for (auto [name, help] : {std::pair{"mem-set", "set a domain's memory (MiB, or with a k/m/g suffix); the balloon gives the rest back to the host"},
                              {"mem-max", "set the most memory a domain may be given"}}) {
        auto* command = verb(name, help);
        command->add_option("domain", options.domain, "the domain")->required();
        command->add_option("memory", options.memory, "e.g. 256 or 256m or 1g")->required();
    }
    verb("block-list", "a domain's disks, as xl block-list")
        ->add_option("domains", options.domains, "the domains")->required();
    verb("network-list", "a domain's network cards, as xl network-list")
        ->add_option("domains", options.domains, "the domains")->required();
    for (const char* name : {"dmesg", "log"})
        verb(name, "hospesd's recent messages (the last 1000), as xl dmesg")
            ->add_flag("-c,--clear", options.clear, "forget them after printing");
    auto* top_verb = verb("top", "the domains' CPU, memory, network and disk use, refreshed, as xentop");
    top_verb->add_flag("-b,--batch", options.batch, "frames one after another, no summary, no keys");
    top_verb->add_option("-d,--delay", options.delay, "seconds between frames (default 3)");
    top_verb->add_option("-i,--iterations", options.iterations, "frames to show, then end (0: until q or Ctrl-C)");
    top_verb->add_flag("-f,--full-name", options.full_name, "names in full, not cut at 10 characters");
    auto* rename = verb("rename", "give a domain a new name");
    rename->add_option("domain", options.domains, "the domain (name or id)")->required()->expected(1);
    rename->add_option("new_name", options.new_name, "its new name")->required();
}

int xl_command(const std::string& name, const XlOptions& options) {
    if (name == "list") return list(options);
    if (name == "info") return info();
    if (name == "dmesg" || name == "log") return dmesg(options);
    if (name == "top") return top(options);
    if (name == "uptime") return uptime(options);
    if (name == "console") return attach_console(options.domains.at(0));
    if (name == "shutdown" || name == "reboot") return shutdown_or_reboot(name, options);
    if (name == "sched-credit") return sched_credit(options);
    if (name == "mem-set" || name == "mem-max") {
        // xl's sizes: a bare number is MiB (as memory=), suffixes k, m, g, t.
        auto bytes = parse_size(options.memory);
        if (!bytes) {
            log::error("{}: '{}': {}", name, options.memory, bytes.error().message);
            return kExitBadInput;
        }
        return daemon_request({{"execute", name}, {"domain", options.domain}, {"memory_mib", *bytes / MiB}}) ? 0 : 1;
    }
    if (name == "block-list" || name == "network-list") return device_list(name, options);
    if (name == "vcpu-list") return vcpu_list(options);
    if (name == "vcpu-pin") {
        json request = {{"execute", "vcpu-pin"}, {"domain", options.domain}, {"cpus", options.cpus}};
        if (options.vcpu == "all")
            request["vcpu"] = "all";
        else if (!options.vcpu.empty() && options.vcpu.find_first_not_of("0123456789") == std::string::npos &&
                 options.vcpu.size() < 6)
            request["vcpu"] = std::stoul(options.vcpu);
        else {
            log::error("vcpu-pin: '{}' is not a vCPU number or all", options.vcpu);
            return kExitBadInput;
        }
        return daemon_request(request) ? 0 : 1;
    }
    json request = {{"execute", name}, {"domain", options.domains.at(0)}};
    if (name == "rename") request["name"] = options.new_name;
    return daemon_request(request) ? 0 : 1;
}

}  // namespace hospes::cli
