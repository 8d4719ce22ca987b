#include "vhost_user/channel.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>

namespace hospes::vhost_user {

const char* request_name(uint32_t request) {
    switch (static_cast<Request>(request)) {
    case Request::GetFeatures: return "GET_FEATURES";
    case Request::SetFeatures: return "SET_FEATURES";
    case Request::SetOwner: return "SET_OWNER";
    case Request::ResetOwner: return "RESET_OWNER";
    case Request::SetMemTable: return "SET_MEM_TABLE";
    case Request::SetLogBase: return "SET_LOG_BASE";
    case Request::SetLogFd: return "SET_LOG_FD";
    case Request::SetVringNum: return "SET_VRING_NUM";
    case Request::SetVringAddr: return "SET_VRING_ADDR";
    case Request::SetVringBase: return "SET_VRING_BASE";
    case Request::GetVringBase: return "GET_VRING_BASE";
    case Request::SetVringKick: return "SET_VRING_KICK";
    case Request::SetVringCall: return "SET_VRING_CALL";
    case Request::SetVringErr: return "SET_VRING_ERR";
    case Request::GetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case Request::SetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case Request::GetQueueNum: return "GET_QUEUE_NUM";
    case Request::SetVringEnable: return "SET_VRING_ENABLE";
    case Request::SetBackendReqFd: return "SET_BACKEND_REQ_FD";
    case Request::GetConfig: return "GET_CONFIG";
    case Request::SetConfig: return "SET_CONFIG";
    case Request::GetInflightFd: return "GET_INFLIGHT_FD";
    case Request::SetInflightFd: return "SET_INFLIGHT_FD";
    case Request::ResetDevice: return "RESET_DEVICE";
    case Request::GetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    }
    return "unknown request";
}

Result<std::optional<Message>> Channel::receive() {
    if (!socket_.valid()) return host_error("not connected");
    for (;;) {
        const bool in_header = received_ < sizeof(Header);
        if (!in_header && received_ == sizeof(Header) + partial_.header.size) break;
        uint8_t* into;
        size_t want;
        if (in_header) {
            into = reinterpret_cast<uint8_t*>(&partial_.header) + received_;
            want = sizeof(Header) - received_;
        } else {
            size_t at = received_ - sizeof(Header);
            into = partial_.payload.data() + at;
            want = partial_.header.size - at;
        }
        iovec iov{into, want};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
        if (n < 0) return errno_error("vhost-user socket");
        // Take every descriptor that came, even from a message about to be
        // refused, so none leaks.
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                partial_.fds.emplace_back(fd);
            }
        }
        if (msg.msg_flags & MSG_CTRUNC) return bad_input("vhost-user message with more than {} file descriptors", kMaxFds);
        if (partial_.fds.size() > kMaxFds)
            return bad_input("vhost-user message with more than {} file descriptors", kMaxFds);
        if (n == 0) return host_error("the vhost-user peer closed the connection");
        received_ += static_cast<size_t>(n);
        if (in_header && received_ == sizeof(Header)) {
            if ((partial_.header.flags & 3) != kVersion)
                return bad_input("vhost-user message of version {}, not {}", partial_.header.flags & 3, kVersion);
            if (partial_.header.size > kMaxPayload)
                return bad_input("vhost-user {} with a payload of {} bytes (at most {})",
                                 request_name(partial_.header.request), partial_.header.size, kMaxPayload);
            partial_.payload.resize(partial_.header.size);
        }
    }
    Message done = std::move(partial_);
    partial_ = Message{};
    received_ = 0;
    return std::optional<Message>(std::move(done));
}

Result<void> Channel::send(uint32_t request, uint32_t flags, std::span<const uint8_t> payload,
                           std::span<const int> fds) {
    if (!socket_.valid()) return host_error("not connected");
    if (fds.size() > kMaxFds) return host_error("too many file descriptors for one vhost-user message");
    Header header{request, flags | kVersion, static_cast<uint32_t>(payload.size())};
    iovec iov[2] = {{&header, sizeof(header)}, {const_cast<uint8_t*>(payload.data()), payload.size()}};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = payload.empty() ? 1 : 2;
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    size_t total = sizeof(header) + payload.size();
    ssize_t n;
    do n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) return errno_error("vhost-user {}", request_name(request));
    // Messages are small; a socket that cannot take one whole is a peer that
    // stopped reading.
    if (static_cast<size_t>(n) != total) return host_error("vhost-user {}: the peer stopped reading", request_name(request));
    return {};
}

namespace {

Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(address.sun_path))
        return bad_input("socket path '{}' is empty or longer than {} bytes", path, sizeof(address.sun_path) - 1);
    std::memcpy(address.sun_path, path.data(), path.size());
    return address;
}

}  // namespace

Result<Channel> connect_unix(const std::string& path) {
    auto address = unix_address(path);
    if (!address) return std::unexpected(address.error());
    UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!socket.valid()) return errno_error("socket");
    if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0)
        return errno_error("cannot connect to '{}'", path);
    return Channel(std::move(socket));
}

Result<UniqueFd> listen_unix(const std::string& path) {
    auto address = unix_address(path);
    if (!address) return std::unexpected(address.error());
    UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket.valid()) return errno_error("socket");
    // A socket left by an earlier run is replaced; any other file is the
    // user's and stays.
    struct stat old{};
    if (::lstat(path.c_str(), &old) == 0) {
        if (!S_ISSOCK(old.st_mode)) return bad_input("'{}' exists and is not a socket", path);
        ::unlink(path.c_str());
    }
    if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0)
        return errno_error("cannot bind '{}'", path);
    if (::listen(socket.get(), 16) != 0) return errno_error("cannot listen on '{}'", path);
    return socket;
}

}  // namespace hospes::vhost_user
