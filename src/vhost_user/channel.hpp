// One end of a vhost-user connection: a connected unix stream socket that
// carries whole messages, each with up to kMaxFds file descriptors.
// Everything received is checked for framing only (header, size, fd
// count); the meaning is the receiver's to check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <span>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "vhost_user/protocol.hpp"

namespace hospes::vhost_user {

struct Message {
    Header header{};
    std::vector<uint8_t> payload;
    std::vector<UniqueFd> fds;

    // The payload as a T, when it is exactly that size (or, with
    // `at_least`, longer): nullptr otherwise.
    template <class T>
    const T* as(bool at_least = false) const {
        static_assert(std::is_trivially_copyable_v<T>);
        if (payload.size() < sizeof(T) || (!at_least && payload.size() != sizeof(T))) return nullptr;
        return reinterpret_cast<const T*>(payload.data());  // safe: the vector's storage is suitably aligned
    }
};

class Channel {
public:
    Channel() = default;
    explicit Channel(UniqueFd socket) : socket_(std::move(socket)) {}

    int fd() const { return socket_.get(); }
    bool connected() const { return socket_.valid(); }
    void close() { socket_.reset(); }

    // Reads what the socket has of the next message: the message once it is
    // whole, nullopt while a non-blocking socket has no more (or a blocking
    // one timed out); an error when the peer closed the socket or broke the
    // framing (then nothing more can be read).
    Result<std::optional<Message>> receive();
    Result<void> send(uint32_t request, uint32_t flags, std::span<const uint8_t> payload,
                      std::span<const int> fds = {});
    template <class T>
    Result<void> send_object(uint32_t request, uint32_t flags, const T& payload, std::span<const int> fds = {}) {
        return send(request, flags, {reinterpret_cast<const uint8_t*>(&payload), sizeof(T)}, fds);
    }

private:
    UniqueFd socket_;
    Message partial_;      // the message being received
    size_t received_ = 0;  // bytes of header and payload so far
};

// Connects to a listening vhost-user socket.
Result<Channel> connect_unix(const std::string& path);
// Creates a listening socket at `path` (an old socket file there is replaced).
Result<UniqueFd> listen_unix(const std::string& path);

}  // namespace hospes::vhost_user
