// hospes-blkback's server: one vhost-user socket per disk in a socket
// directory; each guest's monitor connects to its disk's socket and is
// served virtio-blk on io_uring. One thread, one epoll set: a connection
// is one fd in it (see BackendConnection).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

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
    static Result<std::unique_ptr<Server>> create(const std::string& socket_dir, std::vector<DiskExport> exports);
    // Serves until SIGTERM or SIGINT (which must be blocked in every thread); returns the exit status.
    int run();

private:
    struct Export {
        DiskExport config;
        std::string socket_path;
        UniqueFd listener;
        std::unique_ptr<vhost_user::BackendConnection> connection;  // one guest at a time
        uint64_t connections = 0, resubmitted = 0;
    };

    void accept(Export& disk);
    void close_connection(Export& disk);

    UniqueFd epoll_;
    UniqueFd signals_;
    std::vector<Export> exports_;
};

}  // namespace hospes::blkback
