#include "driver_domain/options.hpp"

#include <filesystem>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <cctype>
#include <cerrno>
#include <charconv>

#include "vhost_user/channel.hpp"

namespace hospes::driver_domain {

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
    return name[0] != '.';
}

Result<uint64_t> parse_count(std::string_view spec, std::string_view key, std::string_view text, bool suffixes) {
    uint64_t value = 0, unit = 1;
    std::string_view digits = text;
    if (suffixes && !text.empty()) {
        switch (text.back()) {
        case 'K': case 'k': unit = 1ull << 10; break;
        case 'M': case 'm': unit = 1ull << 20; break;
        case 'G': case 'g': unit = 1ull << 30; break;
        default: break;
        }
        if (unit != 1) digits.remove_suffix(1);
    }
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || value > (1ull << 50) / unit)
        return bad_input("'{}': {}={} is not a number{}", spec, key, text, suffixes ? " (with K, M or G)" : "");
    return value * unit;
}

Result<void> make_socket_dir(const std::string& dir) {
    if (dir.empty()) return bad_input("--socket-dir is empty");
    // Each missing component from the top down; only the last is private.
    for (size_t end = dir.find('/', 1);; end = dir.find('/', end + 1)) {
        std::string path = dir.substr(0, end);
        bool last = end == std::string::npos || dir.find_first_not_of('/', end) == std::string::npos;
        if (::mkdir(path.c_str(), last ? 0700 : 0755) != 0 && errno != EEXIST)
            return errno_error("cannot make the socket directory '{}'", path);
        if (last) break;
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return errno_error("cannot use the socket directory '{}'", dir);
    if (!S_ISDIR(st.st_mode)) return bad_input("--socket-dir '{}' is not a directory", dir);
    return {};
}

Result<void> read_socket_place(std::string_view key, const nlohmann::json& value, SocketPlace& place) {
    if (key == "socket") {
        const std::string* path = value.is_string() ? &value.get_ref<const std::string&>() : nullptr;
        if (path == nullptr || !path->starts_with('/') || path->size() >= 108 ||
            std::any_of(path->begin(), path->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
            return bad_input("\"socket\" must be an absolute path of less than 108 bytes");
        place.path = *path;
        return {};
    }
    if (!value.is_number_unsigned() || value.get<uint64_t>() == 0 || value.get<uint64_t>() >= 0xffffffffu)
        return bad_input("\"owner\" must be a user id, not 0");
    place.owner = value.get<uint32_t>();
    return {};
}

Result<UniqueFd> listen_device(const std::string& path, const SocketPlace& place) {
    auto listener = vhost_user::listen_unix(path);
    if (!listener) return std::unexpected(listener.error());
    uid_t owner = place.owner;
    gid_t group = place.owner;
    // A socket made in a directory given to a user (a jailed monitor's,
    // which sees that directory) is that user's: a back-end started again
    // makes it anew, and the monitor must be able to connect to it.
    struct stat dir{};
    if (owner == 0 && ::stat(std::filesystem::path(path).parent_path().c_str(), &dir) == 0 && dir.st_uid != 0) {
        owner = dir.st_uid;
        group = dir.st_gid;
    }
    if (owner != 0 && (::chown(path.c_str(), owner, group) != 0 || ::chmod(path.c_str(), 0600) != 0))
        return errno_error("cannot give the socket '{}' to user {}", path, owner);
    return std::move(*listener);
}

Result<void> parse_user(std::string_view text, sandbox::Confinement& confinement) {
    auto number = [](std::string_view digits, uint32_t& out) {
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
        return !digits.empty() && ec == std::errc{} && end == digits.data() + digits.size();
    };
    size_t colon = text.find(':');
    uint32_t uid = 0, gid = 0;
    if (!number(text.substr(0, colon), uid) ||
        (colon != std::string_view::npos ? !number(text.substr(colon + 1), gid) : (gid = uid, false)))
        return bad_input("--user '{}': expected UID or UID:GID (numbers)", text);
    confinement.uid = uid;
    confinement.gid = gid;
    return {};
}

}  // namespace hospes::driver_domain
