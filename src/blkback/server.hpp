// hospes-blkback's server: one vhost-user socket per disk in a socket
// directory; each guest's monitor connects to its disk's socket and is
// served virtio-blk on io_uring. One thread, one epoll set: a connection
// is one fd in it (see BackendConnection).
//
// The server is made in the privileged supervisor (it opens and locks the
// disks and makes the sockets) and runs in the confined worker (serve()),
// which needs nothing else from the host.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/uring_block.hpp"
#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "vhost_user/backend.hpp"
#include "vmm/machine.hpp"

namespace hospes::blkback {

struct DiskExport {
    std::string name;  // the socket is <socket dir>/<name>.sock
    DiskConfig disk;
};

// NAME=PATH[,ro][,direct]
Result<DiskExport> parse_export(std::string_view spec);

class Server {
public:
    // Opens and locks every disk and makes its socket.
    static Result<std::unique_ptr<Server>> create(const std::string& socket_dir, std::vector<DiskExport> exports);
    // Serves until SIGTERM or SIGINT (which must be blocked); returns the
    // exit status. `test_hooks`: SIGUSR1 makes the server try a system
    // call the worker is not allowed (opening its first disk by path), to
    // show the confinement works.
    int serve(bool test_hooks);
    const std::vector<std::string>& socket_paths() const { return socket_paths_; }

private:
    struct Export {
        DiskExport config;
        UniqueFd listener;
        backends::OpenDisk disk;
        std::unique_ptr<vhost_user::BackendConnection> connection;  // one guest at a time
        uint64_t connections = 0;
    };

    void accept(Export& disk);
    void close_connection(Export& disk);

    UniqueFd epoll_;
    std::vector<Export> exports_;
    std::vector<std::string> socket_paths_;
};

}  // namespace hospes::blkback
