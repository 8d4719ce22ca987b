// The monitor's control socket (`hospes run --control PATH`): the JSON-lines
// protocol of the driver domains' control sockets (one request per line, one
// answer line each; 0600, so only root), served on the monitor's I/O thread.
// The toolstack drives a running guest through it (docs/running.md).
#pragma once

#include <string>
#include <utility>

#include "common/unique_fd.hpp"
#include "driver_domain/control_socket.hpp"

namespace hospes {

class ControlServer {
public:
    static Result<ControlServer> listen(const std::string& path);
    ControlServer(ControlServer&& other) noexcept
        : socket_(std::move(other.socket_)), epoll_(std::move(other.epoll_)), path_(std::exchange(other.path_, {})) {}
    ControlServer& operator=(ControlServer&&) = delete;
    ~ControlServer();  // removes the socket file

    // Readable when a client connects or sends: then call ready().
    int fd() const { return epoll_.get(); }
    void ready(const driver_domain::ControlSocket::Answer& answer);
    // While an answer is made: descriptors that came with the request.
    std::vector<UniqueFd>& received_fds() { return socket_.received_fds(); }
    // The socket file stays when it ends (a jailed monitor cannot name it).
    void keep_socket_file() { path_.clear(); }
    // Removes the socket file now (a monitor that exits without tearing down).
    void remove_socket_file();

private:
    ControlServer(driver_domain::ControlSocket socket, UniqueFd epoll, std::string path)
        : socket_(std::move(socket)), epoll_(std::move(epoll)), path_(std::move(path)) {}

    driver_domain::ControlSocket socket_;
    UniqueFd epoll_;  // the listener (tag 0) and the clients (1 + slot)
    std::string path_;
};

}  // namespace hospes
