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
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/uring_block.hpp"
#include "blkback/scheduler.hpp"
#include "common/error.hpp"
#include "common/mapping.hpp"
#include "common/unique_fd.hpp"
#include "driver_domain/control_socket.hpp"
#include "vhost_user/backend.hpp"
#include "vmm/machine.hpp"

namespace hospes::blkback {

struct DiskExport {
    std::string name;  // the socket is <socket dir>/<name>.sock
    DiskConfig disk;
    Policy policy;
};

// NAME=PATH[,ro][,direct][,weight=N][,iops=N][,bps=N][,iops_burst=N][,bps_burst=N]
Result<DiskExport> parse_export(std::string_view spec);

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

class Server {
public:
    // Opens and locks every disk and makes its socket and the control socket.
    static Result<std::unique_ptr<Server>> create(const std::string& socket_dir, std::vector<DiskExport> exports,
                                                  std::vector<HostDiskConfig> host_disks,
                                                  const std::string& control_path);
    // Serves until SIGTERM or SIGINT (which must be blocked); returns the
    // exit status. `test_hooks`: SIGUSR1 makes the server try a system
    // call the worker is not allowed (opening its first disk by path), to
    // show the confinement works.
    int serve(bool test_hooks);
    const std::vector<std::string>& socket_paths() const { return socket_paths_; }

    // For the control socket.
    std::vector<DiskStatus> disks() const;
    std::vector<HostDiskStatus> host_disks() const;
    Result<void> set_disk(std::string_view name, const PolicyChange& change);
    Result<void> set_host_disk(std::string_view id, const PolicyChange& change);

private:
    // Kept in memory shared with the supervisor.
    struct SharedDisk {
        Policy policy;
        ClientCounters counters;
        uint64_t connections = 0, resubmitted = 0;
    };
    struct SharedHostDisk {
        uint64_t device = 0;
        uint32_t depth = 0;
        Limits limits;
    };
    struct Export {
        DiskExport config;
        UniqueFd listener;
        backends::OpenDisk disk;
        uint64_t host_device = 0;
        SharedDisk* shared = nullptr;
        Client* client = nullptr;
        std::unique_ptr<vhost_user::BackendConnection> connection;  // one guest at a time
    };
    void accept(Export& disk);
    void close_connection(Export& disk);

    UniqueFd epoll_;
    std::vector<Export> exports_;
    std::vector<std::string> socket_paths_;
    Mapping shared_;
    std::vector<SharedHostDisk*> shared_hosts_;
    Scheduler scheduler_;
    driver_domain::ControlSocket control_;
};

}  // namespace hospes::blkback
