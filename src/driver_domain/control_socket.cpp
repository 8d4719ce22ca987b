#include "driver_domain/control_socket.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/fd_message.hpp"
#include "common/log.hpp"
#include "vhost_user/channel.hpp"

namespace hospes::driver_domain {

Result<ControlSocket> ControlSocket::listen(const std::string& path) {
    auto listener = vhost_user::listen_unix(path);
    if (!listener) return std::unexpected(listener.error());
    // Whoever may connect may change the policy: root only.
    if (::chmod(path.c_str(), 0600) != 0) return errno_error("cannot chmod '{}'", path);
    ControlSocket control;
    control.listener_ = std::move(*listener);
    return control;
}

Result<std::unique_ptr<ManageSocket>> ManageSocket::listen(const std::string& path, Answer answer) {
    auto socket = ControlSocket::listen(path);
    if (!socket) return std::unexpected(socket.error());
    UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    epoll_event event{EPOLLIN, {.u64 = 0}};
    if (!epoll.valid() || ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, socket->listener(), &event) != 0)
        return errno_error("epoll");
    return std::unique_ptr<ManageSocket>(new ManageSocket(std::move(*socket), std::move(epoll), std::move(answer)));
}

void ManageSocket::ready(int worker_channel) {
    // Tag 0 is the listener, 1 + slot a client.
    epoll_event events[ControlSocket::kMaxClients + 1];
    int count = ::epoll_wait(epoll_.get(), events, ControlSocket::kMaxClients + 1, 0);
    for (int i = 0; i < count; ++i) {
        if (events[i].data.u64 == 0)
            socket_.accept(epoll_.get(), 1);
        else
            socket_.serve(epoll_.get(), events[i].data.u64 - 1,
                          [&](std::string_view request) { return answer_(request, worker_channel); });
    }
}

std::string manage_answer(std::string_view request_text, std::string_view noun,
                          const std::function<Result<std::string>(const nlohmann::json& device)>& add,
                          const std::function<Result<void>(std::string_view name)>& remove, uint64_t worker_restarts) {
    using nlohmann::json;
    auto error = [](std::string_view message) { return json{{"error", message}}.dump(); };
    json request = json::parse(request_text, nullptr, /*allow_exceptions=*/false);
    if (!request.is_object()) return error("the request must be a JSON object");
    auto execute = request.find("execute");
    if (execute == request.end() || !execute->is_string()) return error("the request has no \"execute\" string");
    const auto& command = execute->get_ref<const std::string&>();
    if (command == "status" && request.size() == 1) return json{{"return", {{"worker_restarts", worker_restarts}}}}.dump();
    if (command != "add-" + std::string(noun) && command != "remove-" + std::string(noun))
        return error("unknown command '" + command + "'");
    auto argument = request.find(noun);
    bool adding = command.starts_with("add-");
    if (request.size() != 2 || argument == request.end() || !(argument->is_string() || (adding && argument->is_object())))
        return error(fmt::format("{} takes one \"{}\": {}", command, noun, adding ? "a string or an object" : "a name"));
    if (adding) {
        auto socket = add(*argument);
        if (!socket) return error(socket.error().message);
        return json{{"return", {{"socket", *socket}}}}.dump();
    }
    auto removed = remove(argument->get_ref<const std::string&>());
    if (!removed) return error(removed.error().message);
    return json{{"return", json::object()}}.dump();
}

void ControlSocket::accept(int epoll, uint64_t first_tag) {
    UniqueFd socket(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!socket.valid()) return;
    // Besides the socket's mode: only root or this process's own user.
    ucred peer{};
    socklen_t size = sizeof(peer);
    if (check_peer_ && (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0 ||
                        (peer.uid != 0 && peer.uid != ::geteuid()))) {
        log::warn("control: refusing a client of user {} (pid {})", peer.uid, peer.pid);
        return;
    }
    for (size_t slot = 0; slot < kMaxClients; ++slot) {
        if (slot == clients_.size()) clients_.emplace_back();
        if (clients_[slot]) continue;
        epoll_event add{EPOLLIN, {.u64 = first_tag + slot}};
        if (::epoll_ctl(epoll, EPOLL_CTL_ADD, socket.get(), &add) != 0) return;
        clients_[slot] = Client{std::move(socket), {}, {}};
        return;
    }
    log::warn("control: refusing a client: {} are connected", kMaxClients);
}

void ControlSocket::serve(int epoll, size_t slot, const Answer& answer) {
    if (slot >= clients_.size() || !clients_[slot]) return;
    if (serve(*clients_[slot], answer)) return;
    ::epoll_ctl(epoll, EPOLL_CTL_DEL, clients_[slot]->socket.get(), nullptr);
    clients_[slot].reset();
}

bool ControlSocket::serve(Client& client, const Answer& answer) {
    char buffer[4096];
    iovec data{buffer, sizeof(buffer)};
    alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(client.socket.get(), &message, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n <= 0) return false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            client.fds.emplace_back(fd);
        }
    }
    // More than a request may carry: all of them go.
    if (client.fds.size() > kMaxFds || (message.msg_flags & MSG_CTRUNC)) client.fds.clear();
    client.input.append(buffer, static_cast<size_t>(n));
    for (size_t end; (end = client.input.find('\n')) != std::string::npos;) {
        received_ = std::move(client.fds);
        client.fds.clear();
        std::string reply = answer(std::string_view(client.input).substr(0, end)) + "\n";
        received_.clear();
        client.input.erase(0, end + 1);
        // Answers are short; a client that does not read them is dropped
        // rather than waited for.
        if (::write(client.socket.get(), reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) {
            log::warn("control: dropping a client that does not read its answers");
            return false;
        }
    }
    if (client.input.size() > kMaxLine) {
        log::warn("control: dropping a client whose request is longer than {} bytes", kMaxLine);
        return false;
    }
    return true;
}

int send_request(const std::string& path, std::string request, int fd) {
    auto channel = vhost_user::connect_unix(path);
    if (!channel) {
        log::error("{}", channel.error().message);
        return kExitHostError;
    }
    request += '\n';
    std::array<int, 1> fds{fd};
    if (!send_with_fds(channel->fd(), request, std::span<const int>(fds.data(), fd >= 0 ? 1 : 0))) {
        log::error("cannot send to '{}': {}", path, std::strerror(errno));
        return kExitHostError;
    }
    std::string answer;
    char c = 0;
    while (::read(channel->fd(), &c, 1) == 1 && c != '\n') answer += c;
    if (c != '\n') {
        log::error("'{}' closed without an answer", path);
        return kExitHostError;
    }
    std::printf("%s\n", answer.c_str());
    return answer.starts_with("{\"return\"") ? 0 : 1;
}

}  // namespace hospes::driver_domain
