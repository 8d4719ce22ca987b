// hospes-netback's server: one vhost-user socket per port in a socket
// directory; each guest's monitor connects to its port's socket and is
// served virtio-net, whose frames go through the switch (switch.hpp) to
// the other ports and the uplink (a tap). One thread, one epoll set. The
// control socket reads the counters.
//
// The server is made in the privileged supervisor (it opens the uplink's
// tap and makes the sockets) and runs in the confined worker (serve()).
// Counters live in memory shared with the supervisor, so a restarted worker
// goes on counting. Ports come and go while it runs, as hospes-blkback's
// disks do: the supervisor makes the socket (add()), keeps it for later
// workers and hands it to the running one over their channel.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/tap.hpp"
#include "common/error.hpp"
#include "common/mapping.hpp"
#include "common/unique_fd.hpp"
#include "driver_domain/control_socket.hpp"
#include "driver_domain/options.hpp"
#include "sandbox/filter.hpp"
#include "netback/switch.hpp"
#include "vhost_user/backend.hpp"

namespace hospes::netback {

struct PortConfig {
    std::string name;  // the socket is <socket dir>/<name>.sock, unless `socket` says
    PortIdentity identity;
    bool mac_given = false;  // else derived from the name and the host (stable across restarts)
    PortPolicy policy;
    driver_domain::SocketPlace socket;
};
// NAME[,mac=MAC][,ip=ADDRESS]...[,weight=N][,tx_bps=N][,rx_pps=N]... (IPv4
// or IPv6 addresses; the policy keys of set_policy()).
Result<PortConfig> parse_port(std::string_view spec);
// The same as named fields: {"name", "mac", "ips": [...], the policy
// keys, "socket", "owner"} (all but name optional; nothing else), as
// hospesd and the supervisor send it.
Result<PortConfig> port_from_json(const nlohmann::json& fields);
nlohmann::json port_to_json(const PortConfig& port);

struct UplinkConfig {
    std::string tap, bridge;  // as hospes run's --net tap=NAME|bridge=BR
    Limits limits;
};
// tap=NAME | bridge=BR | tap=NAME,bridge=BR, then [,bps=N][,pps=N]...
Result<UplinkConfig> parse_uplink(std::string_view spec);

// Sets policy key `key` to `value`: a guest port's weight, tx_ and rx_
// pps, bps, pps_burst and bps_burst; `uplink`'s pps, bps, pps_burst and
// bps_burst. An error names the key or value that is wrong.
Result<void> set_policy(PortPolicy& policy, std::string_view key, uint64_t value);
Result<void> set_policy(Limits& uplink, std::string_view key, uint64_t value);

struct PortStatus {
    std::string name, mac;
    std::vector<std::string> ips;
    bool uplink = false, connected = false;
    uint64_t connections = 0;
    PortCounters counters;
    PortPolicy policy;  // an uplink's cap is policy.tx
};

using PolicyChanges = std::vector<std::pair<std::string, uint64_t>>;

// What the worker may call; anything else kills it (sandbox/filter.hpp).
sandbox::Allowlist worker_allowlist();

class Server {
public:
    static constexpr size_t kMaxPorts = 1024;  // at once; their shared counters are reserved up front

    // Makes every port's socket and the control socket, opens the uplink.
    static Result<std::unique_ptr<Server>> create(const std::string& socket_dir, std::vector<PortConfig> ports,
                                                  std::optional<UplinkConfig> uplink, const std::string& control_path);
    // Serves until SIGTERM or SIGINT (which must be blocked); returns the
    // exit status. `test_hooks`: SIGUSR1 makes the worker try a forbidden
    // system call (execve).
    int serve(bool test_hooks, int channel);

    // In the supervisor: makes the port's socket (returns its path) and
    // hands it to the worker on `worker_channel` (-1: none runs now).
    Result<std::string> add(PortConfig port, int worker_channel);
    // In the supervisor: the socket goes; the worker ends the port's
    // connection and forgets it.
    Result<void> remove(std::string_view name, int worker_channel);

    std::vector<PortStatus> ports() const;
    // Changes a running back-end's policy, all of `changes` or (with an
    // error) none.
    Result<void> set_port(std::string_view name, const PolicyChanges& changes);
    Result<void> set_uplink(const PolicyChanges& changes);

private:
    // A restarted worker keeps counting, and keeps the policy as changed.
    struct SharedPort {
        bool used = false;
        PortCounters counters;
        uint64_t connections = 0;
        PortPolicy policy;  // guest ports
        Limits limits;      // the uplink
    };
    struct Port {
        PortConfig config;
        UniqueFd listener;
        SharedPort* shared = nullptr;
        size_t switch_port = 0;
        UniqueFd wake;  // eventfd: frames wait in the switch for this port
        std::unique_ptr<vhost_user::BackendConnection> connection;  // one guest at a time
    };

    void accept(Port& port);
    void close_connection(Port& port);
    void uplink_ready();
public:
    // The descriptors a worker keeps (all others are closed before it is
    // confined: the supervisor's management socket among them).
    std::vector<int> worker_fds() const;

private:
    // Makes the port's socket (supervisor); the slot it gets.
    Result<size_t> open_port(PortConfig config);
    // Into the worker's switch and epoll set.
    Result<void> start_serving(size_t slot);
    void manager_message();
    Port* find(std::string_view name);
    std::string socket_path(const PortConfig& port) const;
    SharedPort* shared_ports() const { return reinterpret_cast<SharedPort*>(shared_.data()); }

    UniqueFd epoll_;
    std::string socket_dir_;
    int channel_ = -1;
    std::vector<std::unique_ptr<Port>> ports_;  // by slot; empty slots are null
    std::optional<backends::Tap> uplink_;
    SharedPort* uplink_shared_ = nullptr;
    size_t uplink_port_ = 0;
    Mapping shared_;
    Switch switch_;
    std::vector<uint8_t> uplink_packet_;
    driver_domain::ControlSocket control_;
};

}  // namespace hospes::netback
