// hospes-blkback's server: one vhost-user socket per disk in a socket
// directory; each guest's monitor connects to its disk's socket and is
// served virtio-blk on io_uring. One thread, one epoll set: a connection
// is one fd in it (see BackendConnection). The scheduler (scheduler.hpp)
// decides when each guest's requests are taken from its ring; the control
// socket (control.hpp) reads counters and changes the policy while running.
//
// The server is made in the privileged supervisor (it opens and locks the
// disks and makes the sockets) and runs in the confined worker (serve()),
// which needs nothing else from the host. Policy and counters live in
// memory shared with the supervisor, so a restarted worker keeps both.
// Disks come and go while it runs: the supervisor opens a new one and
// makes its socket (add(), from the management socket), keeps it for
// the workers it starts later, and sends both descriptors to the running
// worker over their channel; remove() likewise.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/uring_block.hpp"
#include "blkback/scheduler.hpp"
#include "common/error.hpp"
#include "common/mapping.hpp"
#include "common/unique_fd.hpp"
#include "driver_domain/control_socket.hpp"
#include "driver_domain/options.hpp"
#include "sandbox/filter.hpp"
#include "vhost_user/backend.hpp"
#include "vmm/machine.hpp"

namespace hospes::blkback {

struct DiskExport {
    std::string name;  // the socket is <socket dir>/<name>.sock, unless `socket` says
    DiskConfig disk;
    Policy policy;
    driver_domain::SocketPlace socket;
};

// NAME=PATH[,ro][,direct][,weight=N][,iops=N][,bps=N][,iops_burst=N][,bps_burst=N]
Result<DiskExport> parse_export(std::string_view spec);
// The same as named fields: {"name", "path", "read_only", "direct",
// "weight", "iops", "bps", "iops_burst", "bps_burst", "socket", "owner"}
// (all but name and path optional; nothing else), as hospesd and the
// supervisor send it.
Result<DiskExport> export_from_json(const nlohmann::json& fields);
nlohmann::json export_to_json(const DiskExport& disk);

// A host disk's settings: PATH names the block device or any file on the
// file system the images are on.
struct HostDiskConfig {
    std::string path;
    uint32_t depth = HostDisk::kDefaultDepth;
    Limits limits;
};
// PATH[,depth=N][,iops=N][,bps=N][,iops_burst=N][,bps_burst=N]
Result<HostDiskConfig> parse_host_disk(std::string_view spec);

// A change of policy from the control socket: what is given changes.
struct PolicyChange {
    std::optional<uint32_t> weight, depth;
    std::optional<uint64_t> iops, bps, iops_burst, bps_burst;
};

struct DiskStatus {
    std::string name, path, host_disk;
    bool connected = false;
    Policy policy;
    ClientCounters counters;
    uint64_t connections = 0, resubmitted = 0;
};
struct HostDiskStatus {
    std::string id;  // "major:minor"
    uint32_t depth = 0;
    Limits limits;
    std::vector<std::string> disks;
};

// What the worker may call; anything else kills it (sandbox/filter.hpp).
sandbox::Allowlist worker_allowlist();

class Server {
public:
    static constexpr size_t kMaxDisks = 1024;  // at once; their shared state is reserved up front

    // Opens and locks every disk and makes its socket and the control socket.
    static Result<std::unique_ptr<Server>> create(const std::string& socket_dir, std::vector<DiskExport> exports,
                                                  std::vector<HostDiskConfig> host_disks,
                                                  const std::string& control_path);
    // Serves until SIGTERM or SIGINT (which must be blocked); returns the
    // exit status. `test_hooks`: SIGUSR1 makes the server try a system
    // call the worker is not allowed (opening its first disk by path), to
    // show the confinement works.
    // `channel`: the worker's end of its channel to the supervisor.
    int serve(bool test_hooks, int channel);

    // In the supervisor: opens and locks a disk, makes its socket (returns
    // its path) and hands both to the worker on `worker_channel` (-1: none
    // runs now; the next one starts with it).
    Result<std::string> add(DiskExport disk, int worker_channel);
    // In the supervisor: the disk's socket goes, and the worker ends its
    // connection and lets the disk go.
    Result<void> remove(std::string_view name, int worker_channel);

    // In the supervisor, before each worker starts: every disk gets a fresh
    // ring (the dead worker's go, and with them whatever it left in flight),
    // and the worker kSpareRings spare ones for the disks added while it
    // runs (it may not make rings, and a ring cannot be sent to it).
    Result<void> prepare_worker();
    static constexpr size_t kSpareRings = 8;
    // In the supervisor: a disk was added that the running worker has no
    // spare ring for; a new worker (started with rings for every disk)
    // must take over. The guests' monitors reconnect, as after a crash.
    bool worker_outgrown() const { return worker_outgrown_; }
    // The descriptors a worker keeps (all others are closed before it is
    // confined: the supervisor's management socket among them).
    std::vector<int> worker_fds() const;

    // For the control socket.
    std::vector<DiskStatus> disks() const;
    std::vector<HostDiskStatus> host_disks() const;
    Result<void> set_disk(std::string_view name, const PolicyChange& change);
    Result<void> set_host_disk(std::string_view id, const PolicyChange& change);

private:
    // Kept in memory shared with the supervisor: kMaxDisks of each, a
    // disk's at the index of its slot in exports_.
    struct SharedDisk {
        bool used = false;
        Policy policy;
        ClientCounters counters;
        uint64_t connections = 0, resubmitted = 0;
    };
    struct SharedHostDisk {
        bool used = false;
        uint64_t device = 0;
        uint32_t depth = 0;
        Limits limits;
    };
    struct Export {
        DiskExport config;
        UniqueFd listener;
        backends::OpenDisk disk;
        backends::DiskRing ring;  // made by the supervisor for each worker (or a spare): the worker makes none
        uint64_t host_device = 0;
        SharedDisk* shared = nullptr;
        Client* client = nullptr;
        std::unique_ptr<vhost_user::BackendConnection> connection;  // one guest at a time
    };
    void accept(Export& disk);
    void close_connection(Export& disk);
    // Opens the export's disk and socket (supervisor); the slot it gets.
    Result<size_t> open_export(DiskExport config, unsigned lock_wait_ms);
    // Into the worker's epoll set and scheduler.
    Result<void> start_serving(size_t slot, Clock::time_point now);
    // A message from the supervisor (worker).
    void manager_message();
    SharedDisk* shared_disks() const { return reinterpret_cast<SharedDisk*>(shared_.data()); }
    SharedHostDisk* shared_host_disks() const {
        return reinterpret_cast<SharedHostDisk*>(shared_.data() + kMaxDisks * sizeof(SharedDisk));
    }
    // The host disk's shared state, made when `make` and it is new.
    SharedHostDisk* shared_host(uint64_t device, bool make);
    Export* find(std::string_view name);
    std::string socket_path(const DiskExport& disk) const;

    UniqueFd epoll_;
    std::string socket_dir_;
    int channel_ = -1;
    std::vector<std::unique_ptr<Export>> exports_;  // by slot; empty slots are null
    std::vector<backends::DiskRing> spare_rings_;  // the running worker's, not yet given a disk
    size_t spares_left_ = 0;                       // the supervisor's count of those
    bool worker_outgrown_ = false;
    Mapping shared_;
    Scheduler scheduler_;
    driver_domain::ControlSocket control_;
};

}  // namespace hospes::blkback
