// The device options of `hospes run`: --disk, --net and --console specs,
// parsed into the machine's device configuration. Each error names the
// option and the offending part.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "vmm/machine.hpp"

namespace hospes::cli {

// PATH[,ro|rw][,direct] | vhost-user=SOCKET
Result<DiskConfig> parse_disk(std::string_view spec);
// tap=NAME | bridge=BR | both, each with an optional mac=XX:XX:XX:XX:XX:XX;
// or vhost-user=SOCKET
Result<NetConfig> parse_net(std::string_view spec);
// serial | virtio
Result<ConsoleKind> parse_console(std::string_view spec);
// A name Linux takes for a network interface (a tap or a bridge); the
// error says what such a name is.
Result<void> check_interface_name(std::string_view name);
// Six colon-separated hex bytes, a unicast address.
Result<std::array<uint8_t, 6>> parse_mac(std::string_view text);
// The same form, lowercase: 02:00:00:00:00:0a.
std::string format_mac(const std::array<uint8_t, 6>& mac);

}  // namespace hospes::cli
