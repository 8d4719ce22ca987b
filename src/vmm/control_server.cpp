#include "vmm/control_server.hpp"

#include <sys/epoll.h>
#include <unistd.h>

namespace hospes {

Result<ControlServer> ControlServer::listen(const std::string& path) {
    auto socket = driver_domain::ControlSocket::listen(path);
    if (!socket) return std::unexpected(socket.error());
    socket->check_peer_credentials();
    UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll.valid()) return errno_error("epoll_create1");
    epoll_event add{EPOLLIN, {.u64 = 0}};
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, socket->listener(), &add) != 0) return errno_error("epoll_ctl");
    return ControlServer(std::move(*socket), std::move(epoll), path);
}

ControlServer::~ControlServer() { remove_socket_file(); }

void ControlServer::remove_socket_file() {
    if (!path_.empty()) ::unlink(path_.c_str());
    path_.clear();
}

void ControlServer::ready(const driver_domain::ControlSocket::Answer& answer) {
    epoll_event events[8];
    int n = ::epoll_wait(epoll_.get(), events, 8, 0);
    for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == 0)
            socket_.accept(epoll_.get(), 1);
        else
            socket_.serve(epoll_.get(), events[i].data.u64 - 1, answer);
    }
}

}  // namespace hospes
