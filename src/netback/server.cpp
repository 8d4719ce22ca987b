#include "netback/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <new>

#include <nlohmann/json.hpp>

#include "cli/device_options.hpp"
#include "common/fd_message.hpp"
#include "common/log.hpp"
#include "devices/virtio/net.hpp"
#include "driver_domain/options.hpp"
#include "netback/control.hpp"
#include "netback/switch_port.hpp"

namespace hospes::netback {

namespace {

// epoll tags: a port's listener is 2*i, its connection 2*i+1; the uplink,
// the control socket's listener and clients and the signals are at the top.
constexpr uint64_t kTagSignals = ~0ull;
constexpr uint64_t kTagControl = ~0ull - 1;
constexpr uint64_t kTagUplink = ~0ull - 2;
constexpr uint64_t kTagManager = ~0ull - 3;
constexpr uint64_t kTagControlClient = 1ull << 62;  // + slot


// A port's MAC when none is given: the same for the same port name on the
// same host (so a guest keeps it when the back-end starts again), locally
// administered and unicast.
Mac derived_mac(const std::string& name) {
    std::string seed = name;
    std::ifstream machine_id("/etc/machine-id");
    std::string id;
    if (machine_id >> id) seed += "@" + id;
    uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a
    for (unsigned char c : seed) hash = (hash ^ c) * 0x100000001b3ull;
    Mac mac;
    for (size_t i = 0; i < mac.size(); ++i) mac[i] = static_cast<uint8_t>(hash >> (8 * i));
    mac[0] = static_cast<uint8_t>((mac[0] & 0xfe) | 0x02);
    return mac;
}

uint64_t* limits_field(Limits& limits, std::string_view key) {
    return key == "pps" ? &limits.pps
         : key == "bps" ? &limits.bps
         : key == "pps_burst" ? &limits.pps_burst
         : key == "bps_burst" ? &limits.bps_burst
                              : nullptr;
}

constexpr uint64_t kMaxRate = 1ull << 50;

// KEY=VALUE of a policy on the command line; false when KEY is not one.
template <typename Target>
Result<bool> parse_policy_option(std::string_view spec, std::string_view option, Target& target) {
    auto at = option.find('=');
    if (at == std::string_view::npos) return false;
    auto key = option.substr(0, at);
    Target probe = target;
    if (!set_policy(probe, key, 1)) return false;  // 1 is valid for every key: an error means an unknown key
    auto n = driver_domain::parse_count(spec, key, option.substr(at + 1), key.find("bps") != std::string_view::npos);
    if (!n) return std::unexpected(n.error());
    if (auto r = set_policy(target, key, *n); !r) return bad_input("'{}': {}", spec, r.error().message);
    return true;
}

}  // namespace

Result<void> set_policy(PortPolicy& policy, std::string_view key, uint64_t value) {
    if (key == "weight") {
        if (value < 1 || value > PortPolicy::kMaxWeight) return bad_input("weight must be 1 to {}", PortPolicy::kMaxWeight);
        policy.weight = static_cast<uint32_t>(value);
        return {};
    }
    uint64_t* field = key.starts_with("tx_")   ? limits_field(policy.tx, key.substr(3))
                      : key.starts_with("rx_") ? limits_field(policy.rx, key.substr(3))
                                               : nullptr;
    if (field == nullptr)
        return bad_input("unknown key '{}' (expected weight, or tx_ or rx_ and pps, bps, pps_burst or bps_burst)", key);
    if (value > kMaxRate) return bad_input("{} is too large", key);
    *field = value;
    return {};
}

Result<void> set_policy(Limits& uplink, std::string_view key, uint64_t value) {
    uint64_t* field = limits_field(uplink, key);
    if (field == nullptr) return bad_input("unknown key '{}' (expected pps, bps, pps_burst or bps_burst)", key);
    if (value > kMaxRate) return bad_input("{} is too large", key);
    *field = value;
    return {};
}

sandbox::Allowlist worker_allowlist() {
    // It has every file it needs already open (sockets, the uplink's tap),
    // so openat, socket, connect, ioctl and execve are out.
    sandbox::Allowlist list{"netback worker", {}};
    // The event loop, sockets, eventfds and the tap.
    for (const char* name : {"epoll_create1", "epoll_ctl", "epoll_wait", "accept4", "recvmsg", "sendmsg", "read",
                             "write", "readv", "writev", "close", "eventfd2", "newfstatat"})
        list.allow(name);
    // Guest memory and the inflight region (never executable).
    list.allow_if("mmap", {{2, PROT_EXEC, 0}}).allow_if("mprotect", {{2, PROT_EXEC, 0}});
    for (const char* name : {"munmap", "madvise", "mremap", "brk", "memfd_create", "ftruncate"}) list.allow(name);
    const uint64_t fcntls[] = {F_GETFL, F_SETFL, F_DUPFD_CLOEXEC, F_ADD_SEALS, F_GET_SEALS};
    list.allow_values("fcntl", 1, fcntls).allow("lseek");
    // Signals, randomness, time, exit.
    for (const char* name : {"rt_sigprocmask", "rt_sigreturn", "signalfd4", "futex", "getpid", "gettid", "getrandom",
                             "clock_gettime", "restart_syscall", "exit", "exit_group"})
        list.allow(name);
    return list;
}

Result<PortConfig> parse_port(std::string_view spec) {
    PortConfig port;
    size_t comma = spec.find(',');
    port.name = std::string(spec.substr(0, comma));
    if (!driver_domain::valid_name(port.name))
        return bad_input("--port '{}': name '{}' must be 1 to 64 letters, digits, '-', '_' or '.'", spec, port.name);
    while (comma != std::string_view::npos) {
        size_t next = spec.find(',', comma + 1);
        auto option = spec.substr(comma + 1, next == std::string_view::npos ? std::string_view::npos : next - comma - 1);
        comma = next;
        if (option.starts_with("mac=")) {
            auto mac = cli::parse_mac(option.substr(4));
            if (!mac) return bad_input("--port '{}': {}", spec, mac.error().message);
            port.identity.mac = *mac;
            port.mac_given = true;
        } else if (option.starts_with("ip=")) {
            std::string address(option.substr(3));
            std::array<uint8_t, 4> v4;
            std::array<uint8_t, 16> v6;
            if (::inet_pton(AF_INET, address.c_str(), v4.data()) == 1)
                port.identity.ipv4.push_back(v4);
            else if (::inet_pton(AF_INET6, address.c_str(), v6.data()) == 1)
                port.identity.ipv6.push_back(v6);
            else
                return bad_input("--port '{}': '{}' is not an IPv4 or IPv6 address", spec, address);
        } else {
            auto policy = parse_policy_option(spec, option, port.policy);
            if (!policy) return bad_input("--port {}", policy.error().message);
            if (!*policy)
                return bad_input("--port '{}': unknown option '{}' (expected mac=, ip=, weight=, or tx_ or rx_ and "
                                 "pps=, bps=, pps_burst= or bps_burst=)", spec, option);
        }
    }
    if (!port.mac_given) port.identity.mac = derived_mac(port.name);
    return port;
}

Result<PortConfig> port_from_json(const nlohmann::json& fields) {
    if (!fields.is_object()) return bad_input("a port must be an object of named fields");
    PortConfig port;
    for (const auto& [key, value] : fields.items()) {
        if (key == "name") {
            if (!value.is_string()) return bad_input("port: \"name\" must be a string");
            port.name = value.get<std::string>();
        } else if (key == "mac") {
            if (!value.is_string()) return bad_input("port: \"mac\" must be a string");
            auto mac = cli::parse_mac(value.get<std::string>());
            if (!mac) return bad_input("port: \"mac\": {}", mac.error().message);
            port.identity.mac = *mac;
            port.mac_given = true;
        } else if (key == "socket" || key == "owner") {
            if (auto r = driver_domain::read_socket_place(key, value, port.socket); !r)
                return bad_input("port: {}", r.error().message);
        } else if (key == "ips") {
            if (!value.is_array()) return bad_input("port: \"ips\" must be a list of addresses");
            for (const auto& address : value) {
                std::array<uint8_t, 4> v4;
                std::array<uint8_t, 16> v6;
                std::string text = address.is_string() ? address.get<std::string>() : "";
                if (::inet_pton(AF_INET, text.c_str(), v4.data()) == 1)
                    port.identity.ipv4.push_back(v4);
                else if (::inet_pton(AF_INET6, text.c_str(), v6.data()) == 1)
                    port.identity.ipv6.push_back(v6);
                else
                    return bad_input("port: {} is not an IPv4 or IPv6 address", address.dump());
            }
        } else {
            if (!value.is_number_unsigned()) return bad_input("port: unknown field \"{}\", or not a number", key);
            if (auto r = set_policy(port.policy, key, value.get<uint64_t>()); !r)
                return bad_input("port: {}", r.error().message);
        }
    }
    if (!driver_domain::valid_name(port.name))
        return bad_input("port: name '{}' must be 1 to 64 letters, digits, '-', '_' or '.'", port.name);
    if (!port.mac_given) port.identity.mac = derived_mac(port.name);
    return port;
}

nlohmann::json port_to_json(const PortConfig& port) {
    nlohmann::json ips = nlohmann::json::array();
    char text[INET6_ADDRSTRLEN];
    for (const auto& a : port.identity.ipv4) ips.push_back(::inet_ntop(AF_INET, a.data(), text, sizeof(text)));
    for (const auto& a : port.identity.ipv6) ips.push_back(::inet_ntop(AF_INET6, a.data(), text, sizeof(text)));
    const auto& p = port.policy;
    nlohmann::json fields = {{"name", port.name},          {"mac", cli::format_mac(port.identity.mac)}, {"ips", ips},
            {"weight", p.weight},         {"tx_pps", p.tx.pps},  {"tx_bps", p.tx.bps},
            {"tx_pps_burst", p.tx.pps_burst}, {"tx_bps_burst", p.tx.bps_burst}, {"rx_pps", p.rx.pps},
            {"rx_bps", p.rx.bps},         {"rx_pps_burst", p.rx.pps_burst}, {"rx_bps_burst", p.rx.bps_burst}};
    if (!port.socket.path.empty()) fields["socket"] = port.socket.path;
    if (port.socket.owner != 0) fields["owner"] = port.socket.owner;
    return fields;
}

std::string Server::socket_path(const PortConfig& port) const {
    return port.socket.path.empty() ? socket_dir_ + "/" + port.name + ".sock" : port.socket.path;
}

Result<UplinkConfig> parse_uplink(std::string_view spec) {
    UplinkConfig config;
    size_t start = 0;
    while (start <= spec.size()) {
        size_t comma = std::min(spec.find(',', start), spec.size());
        auto option = spec.substr(start, comma - start);
        start = comma + 1;
        auto policy = parse_policy_option(spec, option, config.limits);
        if (!policy) return bad_input("--uplink {}", policy.error().message);
        if (*policy) continue;
        auto equals = option.find('=');
        auto key = option.substr(0, equals);
        if (equals == std::string_view::npos || (key != "tap" && key != "bridge"))
            return bad_input("--uplink '{}': unknown option '{}' (expected tap=, bridge=, pps=, bps=, pps_burst= or "
                             "bps_burst=)", spec, option);
        auto value = option.substr(equals + 1);
        if (auto valid = cli::check_interface_name(value); !valid)
            return bad_input("--uplink '{}': {}", spec, valid.error().message);
        (key == "tap" ? config.tap : config.bridge) = std::string(value);
    }
    if (config.tap.empty() && config.bridge.empty())
        return bad_input("--uplink '{}': give tap=NAME, bridge=BRIDGE or both", spec);
    return config;
}

Result<std::unique_ptr<Server>> Server::create(const std::string& socket_dir, std::vector<PortConfig> ports,
                                               std::optional<UplinkConfig> uplink, const std::string& control_path) {
    auto server = std::make_unique<Server>();
    server->socket_dir_ = socket_dir;
    // Counters outlive a worker: they are in memory it shares with the
    // supervisor, which forks every worker. The uplink's is the last.
    size_t size = (kMaxPorts + 1) * sizeof(SharedPort);
    void* shared = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return errno_error("cannot map {} bytes of shared memory", size);
    server->shared_ = Mapping(shared, size);
    if (ports.size() > kMaxPorts) return bad_input("at most {} ports", kMaxPorts);
    for (auto& port : ports)
        if (auto slot = server->open_port(std::move(port)); !slot) return bad_input("--port: {}", slot.error().message);
    if (uplink) {
        auto tap = backends::Tap::open(uplink->tap, uplink->bridge);
        if (!tap) return bad_input("--uplink: {}", tap.error().message);
        // The tap may hand us what Linux guests take: checksum and
        // segmentation offloads. Set once here (the worker has no ioctl);
        // a packet a guest did not accept is dropped for it and counted.
        if (auto r = tap->set_offloads({true, true, true, true}); !r) return std::unexpected(r.error());
        server->uplink_.emplace(std::move(*tap));
        server->uplink_shared_ = new (server->shared_ports() + kMaxPorts) SharedPort{};
        server->uplink_shared_->limits = uplink->limits;
    }
    auto control = driver_domain::ControlSocket::listen(control_path);
    if (!control) return std::unexpected(control.error());
    server->control_ = std::move(*control);
    return server;
}

Server::Port* Server::find(std::string_view name) {
    for (auto& port : ports_)
        if (port && port->config.name == name) return port.get();
    return nullptr;
}

Result<size_t> Server::open_port(PortConfig config) {
    if (find(config.name) != nullptr) return bad_input("the name '{}' is given twice", config.name);
    for (const auto& other : ports_)
        if (other && other->config.identity.mac == config.identity.mac)
            return bad_input("ports '{}' and '{}' have the same MAC address {}", other->config.name, config.name,
                             cli::format_mac(config.identity.mac));
    size_t slot = 0;
    while (slot < ports_.size() && ports_[slot]) ++slot;
    if (slot == kMaxPorts) return bad_input("at most {} ports", kMaxPorts);
    auto listener = driver_domain::listen_device(socket_path(config), config.socket);
    if (!listener) return std::unexpected(listener.error());
    auto port = std::make_unique<Port>();
    port->listener = std::move(*listener);
    port->shared = new (shared_ports() + slot) SharedPort{};
    port->shared->used = true;
    port->shared->policy = config.policy;
    port->config = std::move(config);
    if (slot == ports_.size()) ports_.emplace_back();
    ports_[slot] = std::move(port);
    return slot;
}

std::vector<int> Server::worker_fds() const {
    std::vector<int> fds = {control_.listener()};
    if (uplink_) fds.push_back(uplink_->fd());
    for (const auto& port : ports_)
        if (port) fds.push_back(port->listener.get());
    return fds;
}

Result<std::string> Server::add(PortConfig config, int worker_channel) {
    auto slot = open_port(std::move(config));
    if (!slot) return std::unexpected(slot.error());
    const Port& port = *ports_[*slot];
    if (worker_channel >= 0) {
        // The MAC goes with it, so a derived one is the same in the worker.
        nlohmann::json message = {{"add", port_to_json(port.config)}, {"slot", *slot}};
        int fds[] = {port.listener.get()};
        // A worker that cannot take it now is dying: its successor starts with it.
        if (!send_with_fds(worker_channel, message.dump(), fds))
            log::warn("{}: the worker did not take the new port: {}", port.config.name, std::strerror(errno));
    }
    log::info("{}: port added ({})", port.config.name, cli::format_mac(port.config.identity.mac));
    return socket_path(port.config);
}

Result<void> Server::remove(std::string_view name, int worker_channel) {
    Port* port = find(name);
    if (port == nullptr) return bad_input("no port is named '{}'", name);
    ::unlink(socket_path(port->config).c_str());
    if (worker_channel >= 0 && !send_with_fds(worker_channel, nlohmann::json{{"remove", name}}.dump(), {}))
        log::warn("{}: the worker did not take the removal: {}", name, std::strerror(errno));
    port->shared->used = false;
    log::info("{}: port removed", name);
    for (auto& slot : ports_)
        if (slot.get() == port) slot.reset();
    return {};
}

void Server::manager_message() {
    auto message = receive_with_fds(channel_);
    if (!message) return;
    auto request = nlohmann::json::parse(message->text, nullptr, false);
    if (!request.is_object()) return;
    if (auto removed = request.find("remove"); removed != request.end() && removed->is_string()) {
        for (auto& port : ports_) {
            if (!port || port->config.name != removed->get<std::string>()) continue;
            close_connection(*port);
            ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, port->listener.get(), nullptr);
            switch_.remove_guest_port(port->switch_port);
            port.reset();
        }
        return;
    }
    // An added port: the supervisor made its socket.
    auto config = port_from_json(request.value("add", nlohmann::json()));
    size_t slot = request.value("slot", kMaxPorts);
    if (!config || message->fds.size() != 1 || slot >= kMaxPorts || find(config->name) != nullptr) {
        log::error("a malformed message from the supervisor");
        return;
    }
    auto port = std::make_unique<Port>();
    port->listener = std::move(message->fds[0]);
    port->shared = shared_ports() + slot;
    port->config = std::move(*config);
    if (ports_.size() <= slot) ports_.resize(slot + 1);
    ports_[slot] = std::move(port);
    if (auto r = start_serving(slot); !r) log::error("{}: {}", ports_[slot]->config.name, r.error().message);
}

Result<void> Server::start_serving(size_t slot) {
    auto& port = *ports_[slot];
    port.wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!port.wake.valid()) return errno_error("eventfd");
    int wake = port.wake.get();
    port.switch_port = switch_.add_guest_port(port.config.name, port.config.identity, [wake] {
        uint64_t one = 1;
        [[maybe_unused]] auto written = ::write(wake, &one, sizeof(one));
    }, &port.shared->counters);
    switch_.set_policy(port.switch_port, port.shared->policy, Clock::now());
    epoll_event add{EPOLLIN, {.u64 = 2 * slot}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, port.listener.get(), &add) != 0) return errno_error("epoll_ctl");
    return {};
}

void Server::accept(Port& port) {
    UniqueFd socket(::accept4(port.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!socket.valid()) return;
    if (port.connection) {
        // One front-end per port: a second would be the same guest twice.
        log::warn("{}: refusing a second connection while one is served", port.config.name);
        return;
    }
    auto device = devices::VirtioNet::create(
        std::make_unique<SwitchPort>(switch_, port.switch_port, port.wake.get()),
        port.config.identity.mac);
    if (!device) {
        log::warn("{}: {}", port.config.name, device.error().message);
        return;
    }
    auto connection = vhost_user::BackendConnection::create(vhost_user::Channel(std::move(socket)), std::move(*device),
                                                            port.config.name);
    if (!connection) {
        log::warn("{}: {}", port.config.name, connection.error().message);
        return;
    }
    size_t index = 0;
    while (ports_[index].get() != &port) ++index;
    epoll_event add{EPOLLIN, {.u64 = 2 * index + 1}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, (*connection)->fd(), &add) != 0) {
        log::warn("{}: epoll_ctl: {}", port.config.name, std::strerror(errno));
        return;
    }
    port.connection = std::move(*connection);
    ++port.shared->connections;
    log::info("{}: connected ({} so far)", port.config.name, port.shared->connections);
}

void Server::close_connection(Port& port) {
    if (!port.connection) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, port.connection->fd(), nullptr);
    port.connection.reset();
    switch_.set_down(port.switch_port);
    log::info("{}: connection ended", port.config.name);
}

void Server::uplink_ready() {
    for (unsigned i = 0; i < devices::VirtioNet::kBurst; ++i) {
        auto got = uplink_->receive(uplink_packet_);
        if (!got) {
            log::warn("uplink {}: {}", uplink_->name(), got.error().message);
            return;
        }
        if (*got == 0) return;
        iovec part{uplink_packet_.data(), *got};
        (void)switch_.input(uplink_port_, std::span<const iovec>(&part, 1));
    }
}

std::vector<PortStatus> Server::ports() const {
    std::vector<PortStatus> result;
    for (const auto& slot : ports_) {
        if (!slot) continue;
        const Port& port = *slot;
        PortStatus status;
        status.name = port.config.name;
        status.mac = cli::format_mac(port.config.identity.mac);
        char text[INET6_ADDRSTRLEN];
        for (const auto& a : port.config.identity.ipv4)
            status.ips.push_back(::inet_ntop(AF_INET, a.data(), text, sizeof(text)));
        for (const auto& a : port.config.identity.ipv6)
            status.ips.push_back(::inet_ntop(AF_INET6, a.data(), text, sizeof(text)));
        status.connected = port.connection != nullptr;
        status.connections = port.shared->connections;
        status.counters = port.shared->counters;
        status.policy = port.shared->policy;
        result.push_back(std::move(status));
    }
    if (uplink_) {
        PortStatus status;
        status.name = uplink_->name();
        status.uplink = true;
        status.connected = true;
        status.counters = uplink_shared_->counters;
        status.policy.tx = uplink_shared_->limits;
        result.push_back(std::move(status));
    }
    return result;
}

Result<void> Server::set_port(std::string_view name, const PolicyChanges& changes) {
    if (Port* port = find(name); port != nullptr) {
        PortPolicy policy = port->shared->policy;
        for (const auto& [key, value] : changes)
            if (auto r = set_policy(policy, key, value); !r) return r;
        port->shared->policy = policy;
        switch_.set_policy(port->switch_port, policy, Clock::now());
        log::info("{}: weight {}, transmit pps {} bps {} (bursts {}, {}), receive pps {} bps {} (bursts {}, {})", name,
                  policy.weight, policy.tx.pps, policy.tx.bps, policy.tx.pps_burst, policy.tx.bps_burst, policy.rx.pps,
                  policy.rx.bps, policy.rx.pps_burst, policy.rx.bps_burst);
        return {};
    }
    return bad_input("no port is named '{}'", name);
}

Result<void> Server::set_uplink(const PolicyChanges& changes) {
    if (!uplink_) return bad_input("this back-end has no uplink");
    Limits limits = uplink_shared_->limits;
    for (const auto& [key, value] : changes)
        if (auto r = set_policy(limits, key, value); !r) return r;
    uplink_shared_->limits = limits;
    switch_.set_uplink_limits(limits, Clock::now());
    log::info("uplink {}: pps {} bps {} (bursts {}, {})", uplink_->name(), limits.pps, limits.bps, limits.pps_burst,
              limits.bps_burst);
    return {};
}

int Server::serve(bool test_hooks, int channel) {
    channel_ = channel;
    epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) return kExitHostError;
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (test_hooks) sigaddset(&signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    epoll_event event{EPOLLIN, {.u64 = kTagSignals}};
    if (!signal_fd.valid() || ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, signal_fd.get(), &event) != 0) {
        log::error("signalfd: {}", std::strerror(errno));
        return kExitHostError;
    }
    epoll_event control{EPOLLIN, {.u64 = kTagControl}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, control_.listener(), &control) != 0) return kExitHostError;
    epoll_event manager{EPOLLIN, {.u64 = kTagManager}};
    if (channel_ >= 0 && ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, channel_, &manager) != 0) return kExitHostError;
    for (size_t i = 0; i < ports_.size(); ++i) {
        if (!ports_[i]) continue;
        if (auto r = start_serving(i); !r) {
            log::error("{}", r.error().message);
            return kExitHostError;
        }
    }
    if (uplink_) {
        uplink_packet_.resize(Switch::kMaxPacket);
        auto* tap = &*uplink_;
        uplink_port_ = switch_.add_uplink(tap->name(), [tap](std::span<const iovec> parts) { return tap->send(parts); },
                                          &uplink_shared_->counters);
        switch_.set_uplink_limits(uplink_shared_->limits, Clock::now());
        epoll_event add{EPOLLIN, {.u64 = kTagUplink}};
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, tap->fd(), &add) != 0) return kExitHostError;
    }
    for (;;) {
        epoll_event events[32];
        // Caps hold ports back until a moment: wake up then.
        int timeout = -1;
        if (auto wakeup = switch_.next_wakeup()) {
            auto wait = std::chrono::ceil<std::chrono::milliseconds>(*wakeup - Clock::now()).count();
            timeout = static_cast<int>(std::clamp<int64_t>(wait, 0, 1000));
        }
        int count = ::epoll_wait(epoll_.get(), events, 32, timeout);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) {
            log::error("epoll_wait: {}", std::strerror(errno));
            return kExitHostError;
        }
        for (int i = 0; i < count; ++i) {
            uint64_t tag = events[i].data.u64;
            if (tag == kTagSignals) {
                signalfd_siginfo info{};
                if (::read(signal_fd.get(), &info, sizeof(info)) != sizeof(info)) continue;
                if (info.ssi_signo == SIGUSR1) {
                    // The test hook: a system call outside the allowlist.
                    log::warn("test hook: running /bin/true");
                    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
                    ::execve("/bin/true", argv, nullptr);
                    log::error("test hook: the forbidden execve returned ({})", std::strerror(errno));
                    continue;
                }
                for (auto& port : ports_)
                    if (port) close_connection(*port);
                return 0;
            }
            if (tag == kTagControl) {
                control_.accept(epoll_.get(), kTagControlClient);
            } else if (tag == kTagUplink) {
                uplink_ready();
            } else if (tag == kTagManager) {
                if (events[i].events & (EPOLLHUP | EPOLLERR)) return kExitHostError;  // the supervisor is gone
                manager_message();
            } else if (tag >= kTagControlClient) {
                control_.serve(epoll_.get(), tag - kTagControlClient,
                               [this](std::string_view request) { return control_answer(*this, request); });
            } else {
                if (tag / 2 >= ports_.size() || !ports_[tag / 2]) continue;  // removed in this batch
                auto& port = *ports_[tag / 2];
                if (tag % 2 == 0)
                    accept(port);
                else if (port.connection && !port.connection->process())
                    close_connection(port);
            }
        }
        switch_.tick(Clock::now());
    }
}

}  // namespace hospes::netback
