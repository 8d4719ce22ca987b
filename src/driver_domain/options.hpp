// Command-line pieces the driver domains share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"
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

// --user UID[:GID] (numbers; GID defaults to UID).
Result<void> parse_user(std::string_view text, sandbox::Confinement& confinement);

}  // namespace hospes::driver_domain
