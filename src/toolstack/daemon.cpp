#include "toolstack/daemon.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "cli/device_options.hpp"
#include "common/log.hpp"
#include "toolstack/domain_json.hpp"
#include "vhost_user/channel.hpp"

namespace hospes::toolstack {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kListenerTag = 0;
constexpr uint64_t kSignalTag = 1;
constexpr uint64_t kFirstClientTag = 2;
constexpr uint64_t kBackendTag = uint64_t{1} << 31;  // + its index
constexpr uint64_t kDomainTag = uint64_t{1} << 32;   // | the domain's id

// A domain's disk as hospes-blkback names it, a card as hospes-netback does.
std::string backend_disk_name(uint32_t id, const DomainDisk& disk) { return fmt::format("dom{}-{}", id, disk.guest_device); }
std::string backend_port_name(uint32_t id, size_t card) { return fmt::format("dom{}-{}", id, card); }

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int signal) {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

json ok(json value = json::object()) { return {{"return", std::move(value)}}; }
json failure(const std::string& message) { return {{"error", message}}; }

// Domain names: what xl accepts and a file name can hold.
bool valid_name(std::string_view name) {
    return !name.empty() && name.size() <= 64 && name != "Domain-0" &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
           });
}

std::string random_uuid() {
    std::random_device random;
    std::array<uint8_t, 16> bytes{};
    for (auto& byte : bytes) byte = static_cast<uint8_t>(random());
    bytes[6] = static_cast<uint8_t>((bytes[6] & 0x0f) | 0x40);  // version 4
    bytes[8] = static_cast<uint8_t>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
    std::string out;
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        out += fmt::format("{:02x}", bytes[i]);
    }
    return out;
}

// A value from /proc/meminfo in KiB.
uint64_t meminfo_kib(std::string_view key) {
    std::ifstream in("/proc/meminfo");
    std::string name;
    uint64_t value = 0;
    while (in >> name >> value) {
        if (name.size() == key.size() + 1 && name.starts_with(key)) return value;
        in.ignore(256, '\n');
    }
    return 0;
}

std::string read_first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

Result<void> write_file(const std::string& path, const std::string& text) {
    // Whole or not at all: a crash leaves the old file or the new one.
    std::string temporary = path + ".new";
    {
        std::ofstream out(temporary, std::ios::trunc);
        out << text;
        if (!out.flush()) return errno_error("cannot write '{}'", temporary);
    }
    if (std::rename(temporary.c_str(), path.c_str()) != 0) return errno_error("cannot rename to '{}'", path);
    return {};
}

}  // namespace

std::string state_letters(bool running, bool paused, std::string_view stopped) {
    std::string letters = "------";
    if (!stopped.empty()) {
        letters[3] = 's';
        letters[4] = stopped == "reboot" ? 'r' : stopped == "crash" ? 'c' : '-';
    } else if (paused) {
        letters[2] = 'p';
    } else {
        letters[running ? 0 : 1] = running ? 'r' : 'b';
    }
    return letters;
}

Result<std::unique_ptr<Daemon>> Daemon::create(DaemonOptions options) {
    std::unique_ptr<Daemon> daemon(new Daemon(std::move(options)));
    std::error_code error;
    fs::create_directories(fs::path(daemon->options_.state_dir) / "domains", error);
    if (error) return host_error("cannot create '{}': {}", daemon->options_.state_dir, error.message());
    fs::create_directories(fs::path(daemon->options_.state_dir) / "logs", error);
    fs::create_directories(fs::path(daemon->options_.socket).parent_path(), error);
    if (::access(daemon->options_.monitor.c_str(), X_OK) != 0)
        return host_error("the monitor program '{}' cannot be run", daemon->options_.monitor);
    auto socket = driver_domain::ControlSocket::listen(daemon->options_.socket);
    if (!socket) return std::unexpected(socket.error());
    daemon->socket_.emplace(std::move(*socket));
    daemon->socket_->check_peer_credentials();
    daemon->epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!daemon->epoll_.valid()) return errno_error("epoll_create1");
    epoll_event add{EPOLLIN, {.u64 = kListenerTag}};
    if (::epoll_ctl(daemon->epoll_.get(), EPOLL_CTL_ADD, daemon->socket_->listener(), &add) != 0)
        return errno_error("epoll_ctl");
    if (daemon->options_.jail && ::geteuid() == 0)
        daemon->network_namespaces_ = std::make_unique<sandbox::NetworkNamespaces>(2);
    if (daemon->options_.cgroups) {
        daemon->groups_ = DomainGroups::detect();
        if (daemon->groups_)
            log::info("CPU weights and caps through cgroup {} at {}", daemon->groups_->v2() ? "v2" : "v1",
                      daemon->groups_->root());
        else
            log::warn("no cgroup hierarchy with the cpu controller: cpu_weight and cap are not applied");
    }
    if (!daemon->options_.blkback.empty()) {
        std::string dir = (fs::path(daemon->options_.state_dir) / "blkback").string();
        auto blkback = daemon->add_backend("hospes-blkback", daemon->options_.blkback,
                                           {"--socket-dir", dir, "--user", daemon->backend_user()}, dir);
        if (!blkback) return std::unexpected(blkback.error());
        daemon->blkback_ = *blkback;
    }
    daemon->adopt_all();
    // Back-ends the running domains use that ended while no hospesd ran:
    // the new ones serve those domains' devices (their monitors reconnect).
    for (const auto& [id, d] : daemon->domains_)
        for (const auto& vif : d.pid != 0 && !daemon->options_.netback.empty() ? d.config.vifs : std::vector<DomainVif>{})
            if (auto netback = daemon->netback(vif.bridge); !netback)
                log::error("domain {}: {}", id, netback.error().message);
    for (const auto& backend : daemon->backends_) {
        if (backend->adopted()) continue;
        for (const auto& [id, d] : daemon->domains_) {
            if (d.pid == 0) continue;
            auto added = backend.get() == daemon->blkback_ ? daemon->add_disks(d) : daemon->add_vifs(d, backend.get());
            if (!added) log::error("domain {}: {}", id, added.error().message);
        }
    }
    return daemon;
}

std::string Daemon::domain_dir(uint32_t id) const {
    return (fs::path(options_.state_dir) / "domains" / std::to_string(id)).string();
}

DomainPaths Daemon::paths(uint32_t id) const {
    std::string dir = domain_dir(id);
    std::string logs = (fs::path(options_.state_dir) / "logs" / fmt::format("domain-{}", id)).string();
    return {dir + "/control.sock", dir + "/console.sock", dir + "/exit.json", logs + ".console.log",
            logs + ".monitor.log"};
}

void Daemon::save(const Domain& d) const {
    json state = {{"id", d.id},          {"config", domain_to_json(d.config)},
                  {"started_at", d.started_at}, {"pid", d.pid},
                  {"start_ticks", d.start_ticks}, {"paused", d.paused},
                  {"reboot_requested", d.reboot_requested}, {"stopped", d.stopped}, {"cause", d.cause},
                  {"restarts", d.restarts}};
    if (auto r = write_file(domain_dir(d.id) + "/domain.json", state.dump(2) + "\n"); !r)
        log::error("domain {}: {}", d.id, r.error().message);
}

uint32_t Daemon::next_id() {
    // Never reused while hospesd's state lives, as Xen's domain ids.
    std::string path = options_.state_dir + "/next-id";
    uint32_t id = 1;
    try {
        id = static_cast<uint32_t>(std::stoul(read_first_line(path)));
    } catch (const std::exception&) {
    }
    for (const auto& [existing, domain] : domains_) id = std::max(id, existing + 1);
    if (id == 0) id = 1;
    if (auto r = write_file(path, std::to_string(id + 1) + "\n"); !r) log::error("{}", r.error().message);
    return id;
}

void Daemon::adopt_all() {
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(fs::path(options_.state_dir) / "domains", error)) {
        std::ifstream in(entry.path() / "domain.json");
        auto state = json::parse(in, nullptr, false);
        auto config = state.is_object() ? domain_from_json(state.value("config", json())) : bad_input("not JSON");
        if (!config) {
            log::error("{}: cannot read it, left alone: {}", (entry.path() / "domain.json").string(),
                       config.error().message);
            continue;
        }
        Domain d;
        d.config = std::move(*config);
        try {
            d.id = state.at("id").get<uint32_t>();
            d.started_at = state.value("started_at", int64_t{0});
            d.pid = state.value("pid", 0);
            d.start_ticks = state.value("start_ticks", uint64_t{0});
            d.paused = state.value("paused", false);
            d.reboot_requested = state.value("reboot_requested", false);
            d.stopped = state.value("stopped", std::string());
            d.cause = state.value("cause", std::string());
            d.restarts = state.value("restarts", uint64_t{0});
        } catch (const json::exception& e) {
            log::error("{}: {}", (entry.path() / "domain.json").string(), e.what());
            continue;
        }
        if (entry.path().filename() != std::to_string(d.id)) continue;
        uint32_t id = d.id;
        Domain& domain = domains_.emplace(id, std::move(d)).first->second;
        if (domain.pid == 0) continue;  // preserved: nothing runs
        auto stat = process_stat(domain.pid);
        if (stat && stat->start_ticks == domain.start_ticks) {
            watch(domain);
            if (domain.pidfd.valid()) {
                log::info("domain {} ({}): monitor {} re-adopted", id, domain.config.name, domain.pid);
                continue;
            }
        }
        // It ended while no hospesd was there: act on it now.
        log::info("domain {} ({}): its monitor ended while hospesd was away", id, domain.config.name);
        monitor_ended(id);
    }
}

void Daemon::watch(Domain& d) {
    d.pidfd = UniqueFd(pidfd_open(d.pid));
    if (!d.pidfd.valid()) {
        log::error("domain {}: pidfd_open({}): {}", d.id, d.pid, std::strerror(errno));
        return;
    }
    epoll_event add{EPOLLIN, {.u64 = kDomainTag | d.id}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, d.pidfd.get(), &add) != 0)
        log::error("domain {}: epoll_ctl: {}", d.id, std::strerror(errno));
}

Result<void> Daemon::start(Domain& d, bool paused) {
    auto p = paths(d.id);
    std::string cgroup_procs;
    if (groups_) {
        auto procs = groups_->create(d.id);
        if (!procs) return std::unexpected(procs.error());
        if (auto r = groups_->set(d.id, d.config.cpu_weight, d.config.cpu_cap); !r) return r;
        // The jail's memory (booted with maxmem), threads and I/O share.
        uint64_t memory = uint64_t{std::max(d.config.memory_mib, d.config.maxmem_mib)} << 20;
        auto limited = groups_->limit(d.id, memory, d.config.vcpus, d.config.cpu_weight);
        if (!limited) return std::unexpected(limited.error());
        if (!*limited && !warned_no_limits_) {
            log::warn("no cgroup v2 memory and pids controllers: domains' memory and threads are not limited");
            warned_no_limits_ = true;
        }
        cgroup_procs = *procs;
    }
    // Whatever was added before a failure goes again: nothing is left half made.
    auto undo = [&](const Error& error) {
        remove_devices(d);
        return std::unexpected(error);
    };
    auto disks = add_disks(d);
    if (!disks) return undo(disks.error());
    auto vifs = add_vifs(d);
    if (!vifs) return undo(vifs.error());
    uint32_t jail_uid = options_.jail ? options_.jail_uid_base + d.id : 0;
    auto arguments = monitor_arguments(d.config, d.id, p, paused, *disks, *vifs, jail_uid);
    if (options_.test_hooks) arguments.push_back("--test-escape-drill");
    UniqueFd network = network_namespaces_ ? network_namespaces_->take() : UniqueFd();
    if (network.valid()) arguments.insert(arguments.end(), {"--jail-netns-fd", std::to_string(kHandedNetworkFd)});
    auto pid = start_monitor(options_.monitor, arguments, p, std::chrono::seconds(10), cgroup_procs, "monitor",
                             network.get());
    if (!pid) return undo(pid.error());
    d.pid = *pid;
    auto stat = process_stat(d.pid);
    d.start_ticks = stat ? stat->start_ticks : 0;
    d.started_at = static_cast<int64_t>(std::time(nullptr));
    d.paused = paused;
    d.stopped.clear();
    d.cause.clear();
    save(d);
    watch(d);
    if (d.config.memory_mib < d.config.maxmem_mib) {
        auto target = json_request(p.control, {{"execute", "balloon"}, {"target_mib", d.config.memory_mib}});
        if (!target) log::warn("domain {}: cannot set its memory to {} MiB: {}", d.id, d.config.memory_mib,
                               target.error().message);
    }
    return {};
}

void Daemon::monitor_ended(uint32_t id) {
    auto found = domains_.find(id);
    if (found == domains_.end()) return;
    Domain& d = found->second;
    auto p = paths(id);
    if (d.pidfd.valid()) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, d.pidfd.get(), nullptr);
    d.pidfd.reset();
    int status = 0;
    ::waitpid(d.pid, &status, WNOHANG);  // ours unless adopted
    std::ifstream in(p.exit_file);
    auto exit = json::parse(in, nullptr, false);
    std::string reason = exit.is_object() && exit.contains("reason") && exit["reason"].is_string()
                             ? exit["reason"].get<std::string>()
                             : "crash";
    if (!exit.is_object()) log::warn("domain {} ({}): the monitor ended without saying why", id, d.config.name);
    d.cause = exit.is_object() && exit.contains("cause") && exit["cause"].is_string() ? exit["cause"].get<std::string>()
                                                                                     : "";
    if (!d.cause.empty()) log::error("domain {} ({}): {}", id, d.config.name, d.cause);
    // A jailed monitor cannot remove its sockets' files.
    ::unlink(p.control.c_str());
    ::unlink(p.console.c_str());
    if (reason == "poweroff" && d.reboot_requested) reason = "reboot";
    if (reason != "poweroff" && reason != "reboot") reason = "crash";
    d.pid = 0;
    d.paused = false;
    d.reboot_requested = false;
    remove_devices(d);
    if (groups_) groups_->remove(id);
    DomainAction action = reason == "poweroff" ? d.config.on_poweroff
                          : reason == "reboot" ? d.config.on_reboot
                                               : d.config.on_crash;
    log::info("domain {} ({}): {}, so {}", id, d.config.name, reason, action_name(action));
    switch (action) {
    case DomainAction::Destroy:
    case DomainAction::CoredumpDestroy: remove(id); return;
    case DomainAction::Preserve: d.stopped = reason; save(d); return;
    case DomainAction::RenameRestart: {
        // The old one stays, renamed; a new one starts under the name.
        Domain old;
        old.id = next_id();
        old.config = d.config;
        old.config.name = fmt::format("{}--incarnation-{}", d.config.name, old.id);
        old.started_at = d.started_at;
        old.stopped = reason;
        std::error_code error;
        fs::create_directories(domain_dir(old.id), error);
        save(old);
        domains_.emplace(old.id, std::move(old));
        [[fallthrough]];
    }
    case DomainAction::Restart:
    case DomainAction::CoredumpRestart: {
        Domain& again = domains_.at(id);
        ++again.restarts;
        if (auto r = start(again, false); !r) {
            log::error("domain {} ({}): cannot restart it: {}", id, again.config.name, r.error().message);
            remove(id);
        }
        return;
    }
    }
}

void Daemon::remove(uint32_t id) {
    auto found = domains_.find(id);
    if (found == domains_.end()) return;
    Domain& d = found->second;
    if (d.pidfd.valid()) {
        // A jailed monitor is its jailer's child, which the kernel kills
        // when the jailer dies: both are waited for, so that no process of
        // the domain (and so its cgroup) is left.
        auto children = monitor_children(d.pid);
        std::vector<UniqueFd> monitors;
        for (pid_t child : children) monitors.emplace_back(pidfd_open(child));
        pidfd_send_signal(d.pidfd.get(), SIGKILL);
        for (auto& monitor : monitors)
            if (monitor.valid()) pidfd_send_signal(monitor.get(), SIGKILL);
        pollfd ended{d.pidfd.get(), POLLIN, 0};
        if (::poll(&ended, 1, 5000) != 1) log::error("domain {}: its monitor {} did not end", id, d.pid);
        for (auto& monitor : monitors) {
            pollfd gone{monitor.get(), POLLIN, 0};
            if (monitor.valid() && ::poll(&gone, 1, 5000) != 1)
                log::error("domain {}: its jailed monitor did not end", id);
        }
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, d.pidfd.get(), nullptr);
        int status = 0;
        ::waitpid(d.pid, &status, WNOHANG);
        remove_devices(d);
    }
    if (groups_) groups_->remove(id);
    std::error_code error;
    fs::remove_all(domain_dir(id), error);
    if (error) log::error("domain {}: cannot remove its state: {}", id, error.message());
    domains_.erase(found);
}

Result<std::vector<std::string>> Daemon::add_disks(const Domain& d) {
    std::vector<std::string> sockets;
    if (!blkback_) return sockets;
    for (const auto& disk : d.config.disks) {
        // Named fields, never a joined spec: no path can read as an option.
        json fields = {{"name", backend_disk_name(d.id, disk)}, {"path", disk.target}, {"read_only", disk.read_only}};
        place_socket(d, fields);
        auto added = blkback_->manage({{"execute", "add-disk"}, {"disk", fields}});
        if (!added) return host_error("disk {}: {}", disk.vdev, added.error().message);
        sockets.push_back(added->value("socket", ""));
    }
    return sockets;
}

Result<std::vector<std::string>> Daemon::add_vifs(const Domain& d, const BackendProcess* only) {
    std::vector<std::string> sockets;
    if (options_.netback.empty()) return sockets;
    for (size_t i = 0; i < d.config.vifs.size(); ++i) {
        const auto& vif = d.config.vifs[i];
        auto backend = netback(vif.bridge);
        if (!backend) return std::unexpected(backend.error());
        if (only != nullptr && *backend != only) continue;
        // The card's MAC, its addresses (the only ones it may send from)
        // and rate= as its transmit cap.
        json fields = {{"name", backend_port_name(d.id, i)}, {"ips", vif.ips}};
        place_socket(d, fields);
        if (vif.mac) fields["mac"] = cli::format_mac(*vif.mac);
        if (vif.rate_bytes_per_second != 0) {
            fields["tx_bps"] = vif.rate_bytes_per_second;
            fields["tx_bps_burst"] = std::max<uint64_t>(vif.rate_burst_bytes, 1);
        }
        auto added = (*backend)->manage({{"execute", "add-port"}, {"port", fields}});
        if (!added) return host_error("vif {}: {}", i, added.error().message);
        sockets.push_back(added->value("socket", ""));
    }
    return sockets;
}

void Daemon::remove_devices(const Domain& d) {
    auto remove = [&](BackendProcess* backend, const char* noun, const std::string& name) {
        if (backend == nullptr || backend->pidfd() < 0) return;
        auto removed = backend->manage({{"execute", std::string("remove-") + noun}, {noun, name}});
        if (!removed && removed.error().message.find("no " + std::string(noun) + " is named") == std::string::npos)
            log::warn("domain {}: {} {}: {}", d.id, noun, name, removed.error().message);
    };
    for (const auto& disk : d.config.disks) remove(blkback_, "disk", backend_disk_name(d.id, disk));
    for (size_t i = 0; i < d.config.vifs.size(); ++i) {
        auto found = netbacks_.find(d.config.vifs[i].bridge);
        remove(found == netbacks_.end() ? nullptr : found->second, "port", backend_port_name(d.id, i));
    }
}

Result<BackendProcess*> Daemon::add_backend(std::string name, const std::string& program,
                                            std::vector<std::string> arguments, const std::string& dir) {
    auto backend = std::make_unique<BackendProcess>(std::move(name), program, std::move(arguments), dir);
    if (!backend->adopt())
        if (auto r = backend->start(); !r) return std::unexpected(r.error());
    epoll_event watch{EPOLLIN, {.u64 = kBackendTag + backends_.size()}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, backend->pidfd(), &watch) != 0) return errno_error("epoll_ctl");
    backends_.push_back(std::move(backend));
    return backends_.back().get();
}

std::string Daemon::backend_user() const {
    // Below the monitors' range: each back-end's workers a user of their
    // own, shared with no monitor and no other back-end.
    uint32_t uid = options_.jail_uid_base - 1 - static_cast<uint32_t>(backends_.size());
    return fmt::format("{}:{}", uid, uid);
}

Result<BackendProcess*> Daemon::netback(const std::string& bridge) {
    if (auto found = netbacks_.find(bridge); found != netbacks_.end()) return found->second;
    // Its uplink: a tap on the bridge, or for cards on no bridge one tap
    // the host may address (hospesnb0), as the monitor's own tap would be.
    std::string dir = (fs::path(options_.state_dir) / (bridge.empty() ? "netback" : "netback-" + bridge)).string();
    auto backend = add_backend(bridge.empty() ? "hospes-netback" : "hospes-netback-" + bridge, options_.netback,
                               {"--socket-dir", dir, "--uplink", bridge.empty() ? "tap=hospesnb0" : "bridge=" + bridge,
                                "--user", backend_user()},
                               dir);
    if (!backend) return std::unexpected(backend.error());
    netbacks_[bridge] = *backend;
    return *backend;
}

void Daemon::backend_ended(size_t index) {
    BackendProcess& backend = *backends_.at(index);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, backend.pidfd(), nullptr);
    log::warn("{} (process {}) ended; starting it again", backend.name(), backend.pid());
    backend.ended();
    // Three tries a second apart; then it stays down (`backends` says so)
    // and the devices of new domains on it cannot be added.
    for (int attempt = 1;; ++attempt) {
        auto started = backend.start();
        if (started) break;
        log::error("{}: {}", backend.name(), started.error().message);
        if (attempt == 3) return;
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    epoll_event watch{EPOLLIN, {.u64 = kBackendTag + index}};
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, backend.pidfd(), &watch);
    for (const auto& [id, d] : domains_) {
        if (d.pid == 0) continue;
        auto added = &backend == blkback_ ? add_disks(d) : add_vifs(d, &backend);
        // A jailed monitor finds the new socket in its own directory.
        if (!added) log::error("domain {}: {}", id, added.error().message);
    }
}

void Daemon::place_socket(const Domain& d, json& fields) const {
    if (!options_.jail) return;
    // The domain's sockets in a directory of its own, its user's: the
    // monitor's jail sees that directory and nothing else, and finds a
    // back-end's new socket there after the back-end was started again.
    uint32_t uid = options_.jail_uid_base + d.id;
    std::string dir = domain_dir(d.id) + "/vhost";
    if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) {
        if (::chown(dir.c_str(), uid, uid) != 0) log::warn("domain {}: cannot give {} to its user: {}", d.id, dir, std::strerror(errno));
    }
    fields["socket"] = dir + "/" + fields["name"].get<std::string>() + ".sock";
    fields["owner"] = uid;
}

Domain* Daemon::find(const json& request, std::string& error) {
    auto key = request.find("domain");
    if (key == request.end()) {
        error = "no \"domain\" given";
        return nullptr;
    }
    std::string wanted = key->is_string() ? key->get<std::string>() : key->is_number_unsigned() ? key->dump() : "";
    for (auto& [id, d] : domains_)
        if (d.config.name == wanted || std::to_string(id) == wanted) return &d;
    error = fmt::format("domain '{}' does not exist", wanted);
    return nullptr;
}

Result<void> Daemon::check_image_dirs(const DomainConfig& config) const {
    if (options_.image_dirs.empty()) return {};
    auto allowed = [&](const std::string& path, const char* what) -> Result<void> {
        std::error_code error;
        auto real = fs::canonical(path, error);
        if (error) return bad_input("{} '{}': {}", what, path, error.message());
        for (const auto& dir : options_.image_dirs) {
            auto base = fs::canonical(dir, error);
            if (error) continue;
            auto relative = real.lexically_relative(base);
            if (!relative.empty() && *relative.begin() != "..") return {};
        }
        return bad_input("{} '{}' is outside the directories hospesd serves images from (--image-dir)", what, path);
    };
    if (auto r = allowed(config.kernel, "kernel"); !r) return r;
    if (!config.ramdisk.empty())
        if (auto r = allowed(config.ramdisk, "ramdisk"); !r) return r;
    for (const auto& disk : config.disks)
        if (auto r = allowed(disk.target, "disk"); !r) return r;
    return {};
}

json Daemon::create(const json& request) {
    auto config = domain_from_json(request.value("domain", json()));
    if (!config) return failure(config.error().message);
    if (!valid_name(config->name))
        return failure(fmt::format("domain name '{}': 1 to 64 letters, digits, '-', '_' or '.', not Domain-0",
                                   config->name));
    for (const auto& [id, d] : domains_)
        if (d.config.name == config->name) return failure(fmt::format("domain '{}' already exists", config->name));
    if (auto allowed = check_image_dirs(*config); !allowed) return failure(allowed.error().message);
    auto paused = request.find("paused");
    if (paused != request.end() && !paused->is_boolean()) return failure("\"paused\" must be true or false");
    if (config->uuid.empty()) config->uuid = random_uuid();
    // A card with no MAC gets one in Xen's range (00:16:3e), kept across reboots.
    for (auto& vif : config->vifs) {
        if (vif.mac) continue;
        std::random_device random;
        vif.mac = std::array<uint8_t, 6>{0x00, 0x16, 0x3e, static_cast<uint8_t>(random() & 0x7f),
                                         static_cast<uint8_t>(random()), static_cast<uint8_t>(random())};
    }
    Domain d;
    d.id = next_id();
    d.config = std::move(*config);
    std::error_code error;
    fs::create_directories(domain_dir(d.id), error);
    if (error) return failure(fmt::format("cannot create '{}': {}", domain_dir(d.id), error.message()));
    ::chmod(domain_dir(d.id).c_str(), 0700);
    uint32_t id = d.id;
    Domain& created = domains_.emplace(id, std::move(d)).first->second;
    if (auto r = start(created, paused != request.end() && paused->get<bool>()); !r) {
        std::string message = r.error().message;
        remove(id);
        return failure(message);
    }
    log::info("domain {} ({}) created, monitor {}", id, created.config.name, created.pid);
    return ok({{"id", id}, {"name", created.config.name}});
}

json Daemon::list() const {
    long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    json rows = json::array();
    // Domain-0: the host itself, as in Xen's list.
    {
        std::ifstream stat("/proc/stat");
        std::string cpu;
        uint64_t user = 0, nice = 0, system = 0;
        stat >> cpu >> user >> nice >> system;
        rows.push_back({{"id", 0},
                        {"name", "Domain-0"},
                        {"memory_mib", meminfo_kib("MemTotal") / 1024},
                        {"vcpus", ::sysconf(_SC_NPROCESSORS_ONLN)},
                        {"state", "r-----"},
                        {"status", "running"},
                        {"cpu_seconds", static_cast<double>(user + nice + system) / static_cast<double>(ticks_per_second)},
                        {"uuid", "00000000-0000-0000-0000-000000000000"},
                        {"started_at", nullptr}});
    }
    for (const auto& [id, d] : domains_) {
        auto stat = d.pid != 0 ? process_stat(d.pid) : std::nullopt;
        double cpu = stat ? static_cast<double>(stat->cpu_ticks) / static_cast<double>(ticks_per_second) : 0.0;
        std::string status = !d.stopped.empty() ? (d.stopped == "crash" ? "crashed" : "shutdown")
                             : d.paused         ? "paused"
                                                : "running";
        rows.push_back({{"id", id},
                        {"name", d.config.name},
                        {"memory_mib", d.config.memory_mib},
                        {"vcpus", d.config.vcpus},
                        {"state", state_letters(stat && stat->running, d.paused, d.stopped)},
                        {"status", status},
                        {"cpu_seconds", cpu},
                        {"uuid", d.config.uuid},
                        {"started_at", d.started_at},
                        {"pid", d.pid},
                        {"restarts", d.restarts},
                        {"cause", d.cause},
                        {"config", domain_to_json(d.config)}});
        // Cards a netback serves: its name and the port's, for network-list.
        if (!options_.netback.empty()) {
            json ports = json::array();
            for (size_t i = 0; i < d.config.vifs.size(); ++i) {
                const auto& bridge = d.config.vifs[i].bridge;
                ports.push_back(fmt::format("{}/{}", bridge.empty() ? "hospes-netback" : "hospes-netback-" + bridge,
                                            backend_port_name(id, i)));
            }
            rows.back()["vif_ports"] = std::move(ports);
        }
    }
    return rows;
}

json Daemon::host_info() const {
    utsname host{};
    ::uname(&host);
    unsigned cores = 0, threads = 0, mhz = 0;
    {
        std::ifstream in("/proc/cpuinfo");
        std::string line;
        while (std::getline(in, line)) {
            auto value = [&] { return line.substr(line.find(':') + 1); };
            try {
                if (line.starts_with("cpu cores") && cores == 0) cores = static_cast<unsigned>(std::stoul(value()));
                if (line.starts_with("siblings") && threads == 0) threads = static_cast<unsigned>(std::stoul(value()));
                if (line.starts_with("cpu MHz") && mhz == 0) mhz = static_cast<unsigned>(std::stod(value()) * 1000);
            } catch (const std::exception&) {
            }
        }
    }
    std::error_code error;
    unsigned nodes = 0;
    for (const auto& entry : fs::directory_iterator("/sys/devices/system/node", error))
        if (entry.path().filename().string().starts_with("node")) ++nodes;
    uint64_t guests_mib = 0;
    for (const auto& [id, d] : domains_)
        if (d.pid != 0) guests_mib += d.config.memory_mib;
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    return {{"host", host.nodename},
            {"release", host.release},
            {"version", host.version},
            {"machine", host.machine},
            {"nr_cpus", cpus},
            {"max_cpu_id", ::sysconf(_SC_NPROCESSORS_CONF) - 1},
            {"nr_nodes", std::max(nodes, 1u)},
            {"cores_per_socket", cores == 0 ? 1u : cores},
            {"threads_per_core", cores == 0 || threads < cores ? 1u : threads / cores},
            {"cpu_khz", mhz},
            {"total_memory", meminfo_kib("MemTotal") / 1024},
            {"free_memory", meminfo_kib("MemAvailable") / 1024},
            {"guest_memory", guests_mib},
            {"domains", domains_.size()}};
}

json Daemon::sched_credit(Domain& d, const json& request) {
    unsigned weight = d.config.cpu_weight, cap = d.config.cpu_cap;
    auto number = [&](const char* key, unsigned low, unsigned high, unsigned& out) {
        auto found = request.find(key);
        if (found == request.end()) return true;
        if (!found->is_number_integer() || found->get<int64_t>() < low || found->get<int64_t>() > high) return false;
        out = found->get<unsigned>();
        return true;
    };
    if (!number("weight", 1, 65535, weight)) return failure("sched-credit: the weight is 1 to 65535");
    // Xen's cap: percent of one CPU, up to all of the domain's vCPUs.
    if (!number("cap", 0, 100 * d.config.vcpus, cap))
        return failure(fmt::format("sched-credit: the cap is 0 (none) to {} (all {} vCPUs)", 100 * d.config.vcpus,
                                   d.config.vcpus));
    if (weight != d.config.cpu_weight || cap != d.config.cpu_cap) {
        if (!groups_) return failure("sched-credit: this host has no cgroup with the cpu controller");
        if (d.pid != 0) {
            if (auto r = groups_->set(d.id, weight, cap); !r) return failure(r.error().message);
        }
        d.config.cpu_weight = weight;
        d.config.cpu_cap = cap;
        save(d);
    }
    return ok({{"weight", weight}, {"cap", cap}});
}

namespace {

// A CPU set as xl prints it: "all", or ranges like 0-1,3.
std::string cpu_set_text(const cpu_set_t& set, unsigned cpu_count) {
    std::string out;
    unsigned count = 0;
    for (unsigned cpu = 0; cpu < cpu_count; ++cpu) {
        if (!CPU_ISSET(cpu, &set)) continue;
        ++count;
        unsigned last = cpu;
        while (last + 1 < cpu_count && CPU_ISSET(last + 1, &set)) ++last;
        if (!out.empty()) out += ',';
        out += last == cpu ? std::to_string(cpu) : fmt::format("{}-{}", cpu, last);
        count += last - cpu;
        cpu = last;
    }
    return count == cpu_count ? "all" : out;
}

}  // namespace

json Daemon::vcpu_pin(Domain& d, const json& request) {
    auto cpus_text = request.find("cpus");
    auto vcpu = request.find("vcpu");
    if (cpus_text == request.end() || !cpus_text->is_string()) return failure("vcpu-pin: \"cpus\" must be a CPU list");
    bool all = vcpu != request.end() && vcpu->is_string() && vcpu->get<std::string>() == "all";
    if (!all && (vcpu == request.end() || !vcpu->is_number_unsigned() || vcpu->get<uint64_t>() >= d.config.vcpus))
        return failure(fmt::format("vcpu-pin: \"vcpu\" must be all or a vCPU of the domain, 0 to {}", d.config.vcpus - 1));
    auto cpus = parse_cpulist(cpus_text->get<std::string>(), static_cast<unsigned>(::sysconf(_SC_NPROCESSORS_CONF)));
    if (!cpus) return failure("vcpu-pin: " + cpus.error().message);
    size_t first = all ? 0 : vcpu->get<size_t>(), end = all ? d.config.vcpus : first + 1;
    if (d.pid != 0) {
        for (size_t i = first; i < end; ++i) {
            auto pinned = json_request(paths(d.id).control, {{"execute", "pin-vcpu"}, {"vcpu", i}, {"cpus", *cpus}});
            if (!pinned) return failure(fmt::format("domain '{}': {}", d.config.name, pinned.error().message));
        }
    }
    // Kept for the next boot: one list for all, or one per vCPU.
    if (all) {
        d.config.cpus = {cpus_text->get<std::string>()};
    } else {
        std::string others = d.config.cpus.size() == 1 ? d.config.cpus[0] : "all";
        d.config.cpus.resize(std::max<size_t>(d.config.cpus.size(), d.config.vcpus), others);
        d.config.cpus[first] = cpus_text->get<std::string>();
    }
    save(d);
    return ok();
}

json Daemon::vcpu_list(Domain& d, const json&) {
    json rows = json::array();
    if (d.pid == 0) return ok(rows);
    auto query = json_request(paths(d.id).control, {{"execute", "query"}});
    if (!query) return failure(fmt::format("domain '{}': {}", d.config.name, query.error().message));
    unsigned cpu_count = static_cast<unsigned>(::sysconf(_SC_NPROCESSORS_CONF));
    long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    auto threads = query->value("vcpu_threads", json::array());
    // A jailed monitor names its threads by the ids of its own pid namespace.
    auto host_ids = host_thread_ids(d.pid);
    for (size_t i = 0; i < threads.size(); ++i) {
        pid_t own = threads[i].is_number_integer() ? threads[i].get<pid_t>() : 0;
        auto host = host_ids.find(own);
        if (host == host_ids.end()) continue;
        pid_t tid = host->second;
        std::ifstream in(fmt::format("/proc/{}/stat", tid));
        std::string text;
        std::getline(in, text);
        auto close = text.rfind(')');
        std::vector<std::string> f;
        if (close != std::string::npos) {
            std::istringstream fields(text.substr(close + 2));
            for (std::string word; fields >> word;) f.push_back(word);
        }
        if (f.size() < 37) continue;
        cpu_set_t set;
        CPU_ZERO(&set);
        ::sched_getaffinity(tid, sizeof(set), &set);
        rows.push_back({{"name", d.config.name},
                        {"id", d.id},
                        {"vcpu", i},
                        {"cpu", std::stoul(f[36])},  // field 39: the CPU it last ran on
                        {"state", d.paused ? "-bp" : f[0] == "R" ? "r--" : "-b-"},
                        {"cpu_seconds", static_cast<double>(std::stoull(f[11]) + std::stoull(f[12])) /
                                            static_cast<double>(ticks_per_second)},
                        {"affinity", cpu_set_text(set, cpu_count)}});
    }
    return ok(rows);
}

json Daemon::list_command(const json&) { return ok(list()); }

json Daemon::info_command(const json&) { return ok(host_info()); }

json Daemon::dmesg(const json& request) {
    auto clear = request.find("clear");
    if (clear != request.end() && !clear->is_boolean()) return failure("dmesg: \"clear\" must be true or false");
    return ok({{"lines", log::recent(clear != request.end() && clear->get<bool>())}});
}

json Daemon::top(const json&) {
    // list's rows, with each running domain's devices and their counters
    // from its monitor (a monitor that does not answer at once shows none).
    json rows = list();
    // Disks hospes-blkback serves count there, not in the monitor.
    std::map<std::string, json> backend_disks;
    std::map<std::pair<std::string, std::string>, json> backend_ports;  // by bridge and port
    for (const auto& backend : backends_) {
        if (backend->pidfd() < 0) continue;
        auto query = backend->control({{"execute", "query"}});
        if (!query) log::warn("{}: no counters: {}", backend->name(), query.error().message);
        for (const auto& disk : query ? query->value("disks", json::array()) : json::array())
            if (disk.contains("name") && disk["name"].is_string()) backend_disks[disk["name"].get<std::string>()] = disk;
        for (const auto& [bridge, netback] : netbacks_)
            if (netback == backend.get())
                for (const auto& port : query ? query->value("ports", json::array()) : json::array())
                    if (port.contains("name") && port["name"].is_string())
                        backend_ports[{bridge, port["name"].get<std::string>()}] = port;
    }
    for (auto& row : rows) {
        row["devices"] = json::array();
        auto found = domains_.find(row["id"].get<uint32_t>());
        if (found == domains_.end()) continue;
        const Domain& d = found->second;
        row["maxmem_mib"] = std::max(d.config.memory_mib, d.config.maxmem_mib);
        if (d.pid == 0) continue;
        auto query = json_request(paths(d.id).control, {{"execute", "query"}}, std::chrono::seconds(2));
        if (!query) {
            log::warn("domain {} ({}): no counters: {}", d.id, d.config.name, query.error().message);
            continue;
        }
        row["devices"] = query->value("devices", json::array());
        size_t disk = 0, card = 0;
        for (auto& device : row["devices"]) {
            if (device.value("type", "") == "network" && card < d.config.vifs.size()) {
                // The port's in is what the guest sent.
                auto port = backend_ports.find({d.config.vifs[card].bridge, backend_port_name(d.id, card)});
                ++card;
                if (port == backend_ports.end()) continue;
                const json& p = port->second;
                const json drops = p.value("drops", json::object());
                auto drop = [&](const char* k) { return drops.value(k, uint64_t{0}); };
                device["counters"] = {{"tx_packets", p.value("in_packets", uint64_t{0})},
                                      {"tx_bytes", p.value("in_bytes", uint64_t{0})},
                                      {"rx_packets", p.value("out_packets", uint64_t{0})},
                                      {"rx_bytes", p.value("out_bytes", uint64_t{0})},
                                      {"tx_dropped", drop("malformed") + drop("offload") + drop("spoofed_ip") +
                                                         drop("spoofed_mac")},
                                      {"rx_dropped", drop("down") + drop("queue_full")}};
                continue;
            }
            if (device.value("type", "") != "block" || disk >= d.config.disks.size()) continue;
            auto found_disk = backend_disks.find(backend_disk_name(d.id, d.config.disks[disk++]));
            if (found_disk == backend_disks.end()) continue;
            const json& b = found_disk->second;
            uint64_t reads = b.value("reads", uint64_t{0}), writes = b.value("writes", uint64_t{0});
            uint64_t requests = b.value("requests", uint64_t{0});
            device["counters"] = {{"read_requests", reads},
                                  {"write_requests", writes},
                                  {"read_bytes", b.value("read_bytes", uint64_t{0})},
                                  {"write_bytes", b.value("write_bytes", uint64_t{0})},
                                  {"flush_requests", requests > reads + writes ? requests - reads - writes : 0},
                                  {"errors", 0}};
        }
    }
    return ok(rows);
}

json Daemon::backends(const json&) {
    json rows = json::array();
    for (const auto& backend : backends_) {
        bool up = backend->pidfd() >= 0;
        auto status = up ? backend->manage({{"execute", "status"}}) : Result<json>(json::object());
        rows.push_back({{"name", backend->name()},
                        {"pid", backend->pid()},
                        {"up", up && status.has_value()},
                        {"restarts", backend->restarts()},
                        {"worker_restarts", status ? status->value("worker_restarts", uint64_t{0}) : 0}});
    }
    return ok(rows);
}

json Daemon::destroy(Domain& d, const json&) {
    uint32_t id = d.id;
    remove(id);
    log::info("domain {} destroyed", id);
    return ok();
}

json Daemon::query(Domain& d, const json&) {
    for (auto& row : list())
        if (row["id"] == d.id) return ok(std::move(row));
    return failure("query: the domain vanished");
}

json Daemon::rename(Domain& d, const json& request) {
    auto name = request.find("name");
    if (name == request.end() || !name->is_string() || !valid_name(name->get<std::string>()))
        return failure("rename: \"name\" must be 1 to 64 letters, digits, '-', '_' or '.'");
    for (const auto& [other, o] : domains_)
        if (o.config.name == name->get<std::string>())
            return failure(fmt::format("domain '{}' already exists", o.config.name));
    log::info("domain {} ({}) renamed {}", d.id, d.config.name, name->get<std::string>());
    d.config.name = name->get<std::string>();
    save(d);
    return ok();
}

json Daemon::mem_max(Domain& d, const json& request) {
    // xl mem-max: the most the domain may be given; RAM is sized at boot,
    // so a running domain cannot grow past what it booted with.
    auto mib = request.find("memory_mib");
    uint64_t booted = std::max(d.config.memory_mib, d.config.maxmem_mib);
    if (mib == request.end() || !mib->is_number_unsigned() || mib->get<uint64_t>() < d.config.memory_mib ||
        (d.pid != 0 && mib->get<uint64_t>() > booted))
        return failure(fmt::format("mem-max: from {} MiB (its memory) to {} MiB{}", d.config.memory_mib,
                                   d.pid != 0 ? booted : uint64_t{1} << 20, d.pid != 0 ? " (what it booted with)" : ""));
    d.config.maxmem_mib = mib->get<uint64_t>();
    save(d);
    return ok();
}

json Daemon::mem_set(Domain& d, const json& request) {
    auto mib = request.find("memory_mib");
    uint64_t most = std::max(d.config.memory_mib, d.config.maxmem_mib);
    if (mib == request.end() || !mib->is_number_unsigned() || mib->get<uint64_t>() > most || mib->get<uint64_t>() < 16)
        return failure(fmt::format("mem-set: from 16 to {} MiB (its maxmem)", most));
    auto set = json_request(paths(d.id).control, {{"execute", "balloon"}, {"target_mib", mib->get<uint64_t>()}});
    if (!set) return failure(fmt::format("domain '{}': {}", d.config.name, set.error().message));
    d.config.maxmem_mib = most;
    d.config.memory_mib = mib->get<uint64_t>();
    save(d);
    return ok();
}

json Daemon::console(Domain& d, const json&) { return ok({{"socket", paths(d.id).console}}); }

json Daemon::power_button(Domain& d, const json& request) {
    if (request["execute"] == "reboot") {
        d.reboot_requested = true;
        save(d);
    }
    if (auto r = json_request(paths(d.id).control, {{"execute", "power-button"}}); !r)
        return failure(fmt::format("domain '{}': {}", d.config.name, r.error().message));
    return ok();
}

json Daemon::pause_or_unpause(Domain& d, const json& request) {
    std::string command = request["execute"].get<std::string>();
    if (auto r = json_request(paths(d.id).control, {{"execute", command}}); !r)
        return failure(fmt::format("domain '{}': {}", d.config.name, r.error().message));
    d.paused = command == "pause";
    save(d);
    return ok();
}

std::string Daemon::answer(std::string_view text) {
    using HostCommand = json (Daemon::*)(const json&);
    using DomainCommand = json (Daemon::*)(Domain&, const json&);
    static const std::map<std::string_view, HostCommand> host_commands = {
        {"create", &Daemon::create}, {"list", &Daemon::list_command}, {"info", &Daemon::info_command},
        {"dmesg", &Daemon::dmesg},   {"top", &Daemon::top},           {"backends", &Daemon::backends},
    };
    struct OfDomain {
        DomainCommand run;
        bool needs_monitor;  // refused for a preserved domain, whose monitor has ended
    };
    static const std::map<std::string_view, OfDomain> domain_commands = {
        {"destroy", {&Daemon::destroy, false}},
        {"query", {&Daemon::query, false}},
        {"rename", {&Daemon::rename, false}},
        {"sched-credit", {&Daemon::sched_credit, false}},
        {"vcpu-pin", {&Daemon::vcpu_pin, false}},
        {"vcpu-list", {&Daemon::vcpu_list, false}},
        {"mem-max", {&Daemon::mem_max, false}},
        {"mem-set", {&Daemon::mem_set, true}},
        {"console", {&Daemon::console, true}},
        {"shutdown", {&Daemon::power_button, true}},
        {"reboot", {&Daemon::power_button, true}},
        {"pause", {&Daemon::pause_or_unpause, true}},
        {"unpause", {&Daemon::pause_or_unpause, true}},
    };
    auto request = json::parse(text, nullptr, false);
    if (request.is_discarded() || !request.is_object()) return failure("the request must be a JSON object").dump();
    auto execute = request.find("execute");
    if (execute == request.end() || !execute->is_string()) return failure("the request has no \"execute\" string").dump();
    const std::string command = execute->get<std::string>();
    try {
        if (auto host = host_commands.find(command); host != host_commands.end())
            return (this->*host->second)(request).dump();
        auto of_domain = domain_commands.find(command);
        if (of_domain == domain_commands.end()) return failure(fmt::format("unknown command '{}'", command)).dump();
        std::string error;
        Domain* d = find(request, error);
        if (d == nullptr) return failure(error).dump();
        if (of_domain->second.needs_monitor && d->pid == 0)
            return failure(fmt::format("domain '{}' is not running", d->config.name)).dump();
        return (this->*of_domain->second.run)(*d, request).dump();
    } catch (const json::exception& e) {
        return failure(fmt::format("{}: {}", command, e.what())).dump();
    }
}

int Daemon::run() {
    sigset_t signals;
    sigemptyset(&signals);
    for (int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, signal);
    UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signal_fd.valid()) {
        log::error("signalfd: {}", std::strerror(errno));
        return kExitHostError;
    }
    epoll_event add{EPOLLIN, {.u64 = kSignalTag}};
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, signal_fd.get(), &add);
    log::info("serving {} with {} domain(s)", options_.socket, domains_.size());
    auto answer_fn = [this](std::string_view request) { return answer(request); };
    for (;;) {
        epoll_event events[16];
        int n = ::epoll_wait(epoll_.get(), events, 16, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            log::error("epoll_wait: {}", std::strerror(errno));
            return kExitHostError;
        }
        for (int i = 0; i < n; ++i) {
            uint64_t tag = events[i].data.u64;
            if (tag == kListenerTag) {
                socket_->accept(epoll_.get(), kFirstClientTag);
            } else if (tag == kSignalTag) {
                signalfd_siginfo info{};
                while (::read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
                    if (info.ssi_signo != SIGCHLD) {
                        log::info("ending on signal {}; the domains keep running", info.ssi_signo);
                        return 0;
                    }
                }
                // Reap what ended; pidfds say which domain it was.
                int status = 0;
                while (::waitpid(-1, &status, WNOHANG) > 0) {
                }
            } else if (tag >= kDomainTag) {
                monitor_ended(static_cast<uint32_t>(tag & 0xffffffffu));
            } else if (tag >= kBackendTag) {
                backend_ended(tag - kBackendTag);
            } else {
                socket_->serve(epoll_.get(), tag - kFirstClientTag, answer_fn);
            }
        }
    }
}

}  // namespace hospes::toolstack
