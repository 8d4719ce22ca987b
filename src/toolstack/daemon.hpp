// hospesd, the toolstack daemon: it creates domains (one monitor process
// each, started from a DomainConfig), keeps their state in files under its
// state directory, supervises them (on_poweroff, on_reboot, on_crash), and
// answers the CLI's JSON requests on a unix socket (docs/api.md).
//
// Monitors are not its children for good: each runs in a session of its
// own and outlives hospesd, and a new hospesd re-adopts them from the
// state files (the pid and its start time name the process; a pidfd tells
// when it ends; the monitor's exit file says why).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "driver_domain/control_socket.hpp"
#include "sandbox/network_namespaces.hpp"
#include "toolstack/backend_process.hpp"
#include "toolstack/domain_groups.hpp"
#include "toolstack/domain_config.hpp"
#include "toolstack/monitor_process.hpp"

namespace hospes::toolstack {

struct DaemonOptions {
    std::string socket = "/run/hospes/hospesd.sock";
    std::string state_dir = "/var/lib/hospes";
    std::string monitor;  // the `hospes` program that runs a domain
    std::string blkback;  // hospes-blkback, which serves every domain's disks; empty: each monitor serves its own
    std::string netback;  // hospes-netback, one per bridge for the cards on it; empty: each monitor has taps
    bool cgroups = true;  // weights and caps through the host's cgroups
    bool jail = true;     // each monitor jailed (hospes run --jail), as user jail_uid_base + the domain's id
    uint32_t jail_uid_base = 0x70000000;
    bool test_hooks = false;  // monitors get the escape drill's hook (tests only)
    // When not empty: kernels, initrds and disk images must be under one of
    // these directories (symbolic links resolved).
    std::vector<std::string> image_dirs;
};

// A domain as hospesd keeps it (its state file, domain.json).
struct Domain {
    uint32_t id = 0;
    DomainConfig config;  // config.name is the domain's name
    int64_t started_at = 0;  // when this boot began (seconds since the epoch)
    pid_t pid = 0;           // the monitor; 0: none (a preserved domain)
    uint64_t start_ticks = 0;
    bool paused = false;
    bool reboot_requested = false;  // `reboot`: the power-off that follows is a reboot
    std::string stopped;            // a preserved domain: "poweroff", "reboot" or "crash"
    std::string cause;              // why its last monitor ended, when it crashed (the exit report's)
    uint64_t restarts = 0;          // new boots started by on_reboot/on_crash since it was created
    UniqueFd pidfd;                 // readable when the monitor ends
};

class Daemon {
public:
    static Result<std::unique_ptr<Daemon>> create(DaemonOptions options);
    // Serves until SIGTERM, SIGINT or SIGHUP (blocked by the caller); the
    // monitors keep running. Returns the exit status.
    int run();

    // One API request and its answer (public for the fuzz target).
    std::string answer(std::string_view request);

private:
    explicit Daemon(DaemonOptions options) : options_(std::move(options)) {}
    DomainPaths paths(uint32_t id) const;
    std::string domain_dir(uint32_t id) const;
    void save(const Domain& domain) const;
    void adopt_all();
    Result<void> start(Domain& domain, bool paused);
    void watch(Domain& domain);
    void monitor_ended(uint32_t id);
    void remove(uint32_t id);
    Domain* find(const nlohmann::json& request, std::string& error);
    // With --image-dir: the domain's kernel, initrd and disks are under one.
    Result<void> check_image_dirs(const DomainConfig& config) const;
    uint32_t next_id();
    // The domain's disks in hospes-blkback and its cards in the netback of
    // their bridge: added before its monitor starts (the sockets the
    // monitor connects to, in the order of its disks or cards), removed
    // when it ends. `only`: add just those of that back-end.
    Result<std::vector<std::string>> add_disks(const Domain& domain);
    Result<std::vector<std::string>> add_vifs(const Domain& domain, const BackendProcess* only = nullptr);
    void remove_devices(const Domain& domain);
    // The netback of a bridge ("": cards on no bridge), adopted or started
    // when first needed.
    Result<BackendProcess*> netback(const std::string& bridge);
    Result<BackendProcess*> add_backend(std::string name, const std::string& program, std::vector<std::string> arguments,
                                        const std::string& dir);
    void backend_ended(size_t index);
    // The --user of the next back-end added (see backend_user in daemon.cpp).
    std::string backend_user() const;
    // With jails: the device's socket goes in the domain's own directory,
    // owned by its user (the "socket" and "owner" fields of an add).
    void place_socket(const Domain& domain, nlohmann::json& fields) const;

    // The API's commands (docs/api.md), one member each. Those of the host
    // take the request; those of a domain also get the domain it names.
    using json = nlohmann::json;
    json create(const json& request);
    json list_command(const json& request);
    json info_command(const json& request);
    json dmesg(const json& request);
    json top(const json& request);
    json backends(const json& request);
    json destroy(Domain& domain, const json& request);
    json query(Domain& domain, const json& request);
    json rename(Domain& domain, const json& request);
    json sched_credit(Domain& domain, const json& request);
    json vcpu_pin(Domain& domain, const json& request);
    json vcpu_list(Domain& domain, const json& request);
    json mem_max(Domain& domain, const json& request);
    // These need the domain's monitor running.
    json mem_set(Domain& domain, const json& request);
    json console(Domain& domain, const json& request);
    json power_button(Domain& domain, const json& request);  // shutdown and reboot
    json pause_or_unpause(Domain& domain, const json& request);

    json list() const;
    json host_info() const;

    DaemonOptions options_;
    std::map<uint32_t, Domain> domains_;
    std::optional<driver_domain::ControlSocket> socket_;
    std::optional<DomainGroups> groups_;  // none: weights and caps cannot be applied
    std::unique_ptr<sandbox::NetworkNamespaces> network_namespaces_;  // with jails: made ahead for the monitors
    // Shared back-ends, tagged kBackendTag + index; kept while hospesd runs.
    std::vector<std::unique_ptr<BackendProcess>> backends_;
    BackendProcess* blkback_ = nullptr;
    std::map<std::string, BackendProcess*> netbacks_;  // by bridge
    UniqueFd epoll_;
    bool warned_no_limits_ = false;
};

// The six state letters of `xl list` (r b p s, shutdown reason, d).
std::string state_letters(bool running, bool paused, std::string_view stopped);

}  // namespace hospes::toolstack
