// Messages with file descriptors (SCM_RIGHTS) over a SOCK_SEQPACKET
// socket: how a back-end's supervisor hands what it opened to its worker.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.hpp"

namespace hospes {

// One message with file descriptors over a SOCK_SEQPACKET socket; false
// when it could not be sent whole.
bool send_with_fds(int socket, std::string_view message, std::span<const int> fds);
// The next message and the descriptors that came with it (at most 8;
// any more are closed); nothing when the peer is gone or none waits.
struct MessageWithFds {
    std::string text;
    std::vector<UniqueFd> fds;
};
std::optional<MessageWithFds> receive_with_fds(int socket);

}  // namespace hospes
