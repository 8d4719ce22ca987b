// Command-line pieces the driver domains share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "sandbox/confine.hpp"

namespace hospes::driver_domain {

// A disk's or port's name, which names its socket NAME.sock: 1 to 64
// letters, digits, '-', '_' and '.', not starting with '.'.
bool valid_name(std::string_view name);

// The number in `text`, option `key` of `spec` (for the error line);
// `suffixes`: K, M or G (binary) may follow.
Result<uint64_t> parse_count(std::string_view spec, std::string_view key, std::string_view text, bool suffixes);

// --socket-dir: made when missing, as a service's runtime directory (mode
// 0700, its missing parents 0755); an existing one is used as it is.
Result<void> make_socket_dir(const std::string& dir);

// Where a device's socket is made and who may connect to it: by default
// SOCKET_DIR/NAME.sock, root's alone; hospesd puts each domain's sockets
// in a directory of the domain's own (bound into its monitor's jail, where
// nothing else is seen), owned by the domain's user.
struct SocketPlace {
    std::string path;   // empty: SOCKET_DIR/NAME.sock
    uint32_t owner = 0;  // uid (and gid) that owns it, 0600; 0: root
};
// The "socket" and "owner" fields of a device's object, when there.
Result<void> read_socket_place(std::string_view key, const nlohmann::json& value, SocketPlace& place);
// Makes the listening socket at `path` (an old socket file is replaced),
// owned as `place` says.
Result<UniqueFd> listen_device(const std::string& path, const SocketPlace& place);

// --user UID[:GID] (numbers; GID defaults to UID).
Result<void> parse_user(std::string_view text, sandbox::Confinement& confinement);

}  // namespace hospes::driver_domain
