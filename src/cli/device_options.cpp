#include "cli/device_options.hpp"

#include <net/if.h>

#include <charconv>
#include <vector>

namespace hospes::cli {

namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    for (;;) {
        auto at = text.find(separator);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return parts;
        text.remove_prefix(at + 1);
    }
}

}  // namespace

// Interface names: what the kernel accepts (dev_valid_name), shorter than
// IFNAMSIZ, and no '%' so that a given name is never a template.
Result<void> check_interface_name(std::string_view name) {
    bool valid = !name.empty() && name.size() < IFNAMSIZ && name != "." && name != "..";
    for (char c : name)
        if (c == '/' || c == ':' || c == '%' || c <= ' ' || c == 0x7f) valid = false;
    if (valid) return {};
    return bad_input("'{}' is not a valid interface name (1 to {} characters, no '/', ':', '%' or spaces)", name,
                     IFNAMSIZ - 1);
}

Result<DiskConfig> parse_disk(std::string_view spec) {
    DiskConfig disk;
    if (spec.starts_with("vhost-user=")) {
        disk.vhost_user_socket = std::string(spec.substr(11));
        if (disk.vhost_user_socket.empty()) return bad_input("--disk '{}': no socket given", spec);
        if (disk.vhost_user_socket.find(',') != std::string::npos)
            return bad_input("--disk '{}': a vhost-user disk takes no options (the back-end decides them)", spec);
        return disk;
    }
    auto parts = split(spec, ',');
    disk.path = std::string(parts[0]);
    if (disk.path.empty()) return bad_input("--disk '{}': no path given", spec);
    for (size_t i = 1; i < parts.size(); ++i) {
        if (parts[i] == "ro")
            disk.read_only = true;
        else if (parts[i] == "rw")
            disk.read_only = false;
        else if (parts[i] == "direct")
            disk.direct = true;
        else
            return bad_input("--disk '{}': unknown option '{}' (expected ro, rw or direct)", spec, parts[i]);
    }
    return disk;
}

Result<std::array<uint8_t, 6>> parse_mac(std::string_view text) {
    auto bytes = split(text, ':');
    std::array<uint8_t, 6> mac{};
    if (bytes.size() != mac.size()) return bad_input("mac '{}': expected six hex bytes like 02:00:00:00:00:01", text);
    for (size_t i = 0; i < mac.size(); ++i) {
        auto b = bytes[i];
        auto [end, ec] = std::from_chars(b.data(), b.data() + b.size(), mac[i], 16);
        if (b.size() != 2 || ec != std::errc{} || end != b.data() + b.size())
            return bad_input("mac '{}': '{}' is not a hex byte", text, b);
    }
    if (mac[0] & 1) return bad_input("mac '{}' is a multicast address", text);
    if (mac == std::array<uint8_t, 6>{}) return bad_input("mac '{}' is all zeroes", text);
    return mac;
}

std::string format_mac(const std::array<uint8_t, 6>& mac) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

Result<NetConfig> parse_net(std::string_view spec) {
    constexpr const char* kNetKeys = "tap, bridge, mac, tx_bps, tx_bps_burst";
    NetConfig net;
    if (spec.starts_with("vhost-user=")) {
        net.vhost_user_socket = std::string(spec.substr(11));
        if (net.vhost_user_socket.empty()) return bad_input("--net '{}': no socket given", spec);
        if (net.vhost_user_socket.find(',') != std::string::npos)
            return bad_input("--net '{}': a vhost-user card takes no options (the back-end gives its MAC)", spec);
        return net;
    }
    bool tap_given = false, bridge_given = false;
    for (auto part : split(spec, ',')) {
        auto equals = part.find('=');
        if (equals == std::string_view::npos)
            return bad_input("--net '{}': '{}' is not key=value (keys: {})", spec, part, kNetKeys);
        auto key = part.substr(0, equals), value = part.substr(equals + 1);
        if (key == "tap" || key == "bridge") {
            if (auto valid = check_interface_name(value); !valid)
                return bad_input("--net '{}': {}", spec, valid.error().message);
            (key == "tap" ? net.tap : net.bridge) = std::string(value);
            (key == "tap" ? tap_given : bridge_given) = true;
        } else if (key == "mac") {
            auto mac = parse_mac(value);
            if (!mac) return bad_input("--net '{}': {}", spec, mac.error().message);
            net.mac = *mac;
        } else if (key == "tx_bps" || key == "tx_bps_burst") {
            uint64_t n = 0;
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc() || end != value.data() + value.size() || n == 0)
                return bad_input("--net '{}': {} '{}' is not a number of bytes above 0", spec, key, value);
            (key == "tx_bps" ? net.tx_bps : net.tx_bps_burst) = n;
        } else {
            return bad_input("--net '{}': unknown key '{}' (keys: {})", spec, key, kNetKeys);
        }
    }
    if (!tap_given && !bridge_given)
        return bad_input("--net '{}': give tap=NAME, bridge=BRIDGE or vhost-user=SOCKET", spec);
    return net;
}

Result<ConsoleKind> parse_console(std::string_view spec) {
    if (spec == "serial") return ConsoleKind::Serial;
    if (spec == "virtio") return ConsoleKind::Virtio;
    return bad_input("--console '{}': expected serial or virtio", spec);
}

}  // namespace hospes::cli
