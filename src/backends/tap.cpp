#include "backends/tap.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <filesystem>

#include "common/log.hpp"

namespace hospes::backends {

namespace {

ifreq request_for(const std::string& name) {
    ifreq request{};  // zeroed: the name stays NUL-terminated
    std::memcpy(request.ifr_name, name.data(), std::min<size_t>(name.size(), IFNAMSIZ - 1));
    return request;
}

// Interface ioctls (flags, bridge ports) go through any socket; a datagram
// socket needs no address.
Result<UniqueFd> control_socket() {
    UniqueFd socket(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!socket.valid()) return errno_error("cannot open a control socket");
    return socket;
}

// The bridge an interface is a port of, or "" (sysfs: brport/bridge links
// to the bridge's directory).
std::string bridge_of(const std::string& interface) {
    std::error_code error;
    auto target = std::filesystem::read_symlink("/sys/class/net/" + interface + "/brport/bridge", error);
    return error ? std::string() : target.filename().string();
}

Result<void> add_to_bridge(const std::string& tap, const std::string& bridge) {
    unsigned tap_index = ::if_nametoindex(tap.c_str());
    if (tap_index == 0) return errno_error("tap {} vanished", tap);
    if (::if_nametoindex(bridge.c_str()) == 0) return bad_input("bridge {} does not exist", bridge);
    auto socket = control_socket();
    if (!socket) return std::unexpected(socket.error());
    ifreq request = request_for(bridge);
    request.ifr_ifindex = static_cast<int>(tap_index);
    // Safe: SIOCBRADDIF reads an ifreq naming the bridge and the port's index.
    if (::ioctl(socket->get(), SIOCBRADDIF, &request) == 0) return {};
    int error = errno;
    if (error == EOPNOTSUPP || error == EINVAL) return bad_input("{} is not a bridge", bridge);
    if (error == EBUSY) {
        std::string current = bridge_of(tap);
        if (current == bridge) return {};  // already a port of it: the operator's set-up
        if (!current.empty()) return bad_input("tap {} is already a port of bridge {}", tap, current);
    }
    errno = error;
    return errno_error("cannot add tap {} to bridge {}", tap, bridge);
}

}  // namespace

Result<Tap> Tap::open(const std::string& name, const std::string& bridge) {
    if (name.size() >= IFNAMSIZ) return bad_input("tap name '{}' is longer than {} characters", name, IFNAMSIZ - 1);
    Tap tap;
    tap.fd_ = UniqueFd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!tap.fd_.valid()) return errno_error("cannot open /dev/net/tun");

    // IFF_VNET_HDR: every packet carries a virtio-net header, so checksum and
    // segmentation offloads pass between the guest and the host untouched.
    ifreq request = request_for(name.empty() ? "hospes%d" : name);
    request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    // Safe: TUNSETIFF reads and updates (the chosen name) one ifreq.
    if (::ioctl(tap.fd_.get(), TUNSETIFF, &request) != 0) {
        int error = errno;
        if (error == EBUSY) return host_error("tap {} is in use by another process", name);
        if (error == EINVAL && !name.empty())
            return bad_input("cannot use tap {}: an interface of that name exists and is not a tap", name);
        errno = error;
        return errno_error("cannot create tap{}{}", name.empty() ? "" : " ", name);
    }
    tap.name_ = request.ifr_name;
    // Safe: TUNGETIFF fills one ifreq; IFF_PERSIST says the operator made it.
    if (::ioctl(tap.fd_.get(), TUNGETIFF, &request) == 0) tap.persistent_ = (request.ifr_flags & IFF_PERSIST) != 0;

    int header_size = static_cast<int>(kHeaderSize);  // virtio 1.x: the header always has num_buffers
    // Safe: both ioctls read one int.
    if (::ioctl(tap.fd_.get(), TUNSETVNETHDRSZ, &header_size) != 0)
        return errno_error("cannot set the vnet header size of tap {}", tap.name_);
    int little_endian = 1;  // virtio 1.x headers are little-endian whatever the host
    if (::ioctl(tap.fd_.get(), TUNSETVNETLE, &little_endian) != 0)
        return errno_error("cannot make the vnet header of tap {} little-endian", tap.name_);
    if (auto r = tap.set_offloads({}); !r) return std::unexpected(r.error());

    auto socket = control_socket();
    if (!socket) return std::unexpected(socket.error());
    ifreq flags = request_for(tap.name_);
    // Safe: SIOCGIFFLAGS/SIOCSIFFLAGS read and write one ifreq.
    if (::ioctl(socket->get(), SIOCGIFFLAGS, &flags) != 0)
        return errno_error("cannot read the flags of tap {}", tap.name_);
    flags.ifr_flags = static_cast<short>(flags.ifr_flags | IFF_UP);
    if (::ioctl(socket->get(), SIOCSIFFLAGS, &flags) != 0) return errno_error("cannot bring tap {} up", tap.name_);

    if (!bridge.empty()) {
        bool was_port = bridge_of(tap.name_) == bridge;
        if (auto r = add_to_bridge(tap.name_, bridge); !r) return std::unexpected(r.error());
        if (tap.persistent_ && !was_port) {
            tap.bridge_added_ = bridge;
            tap.bridge_socket_ = std::move(*socket);
            tap.ifindex_ = static_cast<int>(::if_nametoindex(tap.name_.c_str()));
        }
    }
    log::debug("tap {}: {}{}{}", tap.name_, tap.persistent_ ? "persistent, " : "created, ",
               bridge.empty() ? "no bridge" : "bridge ", bridge);
    return tap;
}

Tap::Tap(Tap&& other) noexcept
    : fd_(std::move(other.fd_)), name_(std::move(other.name_)), bridge_added_(std::move(other.bridge_added_)),
      persistent_(other.persistent_), bridge_socket_(std::move(other.bridge_socket_)), ifindex_(other.ifindex_) {
    other.bridge_added_.clear();
}

Tap::~Tap() { release(); }

void Tap::release() {
    // A tap we created goes with its last fd (and leaves its bridge then); a
    // persistent one stays, so it is put back as we found it.
    if (bridge_added_.empty() || !fd_.valid() || !bridge_socket_.valid()) return;
    ifreq request = request_for(bridge_added_);
    request.ifr_ifindex = ifindex_;
    // Safe: SIOCBRDELIF reads one ifreq.
    if (::ioctl(bridge_socket_.get(), SIOCBRDELIF, &request) != 0)
        log::warn("tap {}: cannot leave bridge {}: {}", name_, bridge_added_, std::strerror(errno));
    bridge_added_.clear();
}

Result<void> Tap::send(std::span<const iovec> parts) {
    if (parts.size() > IOV_MAX) return bad_input("packet in {} pieces, more than {}", parts.size(), IOV_MAX);
    ssize_t written = ::writev(fd_.get(), parts.data(), static_cast<int>(parts.size()));
    if (written < 0) return errno_error("tap {}: write", name_);
    return {};
}

Result<size_t> Tap::receive(std::span<uint8_t> buffer) {
    for (;;) {
        ssize_t n = ::read(fd_.get(), buffer.data(), buffer.size());
        if (n >= 0) return static_cast<size_t>(n);
        if (errno == EAGAIN) return 0;
        if (errno != EINTR) return errno_error("tap {}: read", name_);
    }
}

Result<void> Tap::set_offloads(NetOffloads offloads) {
    // Segmentation offloads need checksum offload (tun ignores them without).
    unsigned long flags = 0;
    if (offloads.checksum) {
        flags |= TUN_F_CSUM;
        if (offloads.tso4) flags |= TUN_F_TSO4;
        if (offloads.tso6) flags |= TUN_F_TSO6;
        if (offloads.tso_ecn && (offloads.tso4 || offloads.tso6)) flags |= TUN_F_TSO_ECN;
    }
    // Safe: TUNSETOFFLOAD takes its flags by value.
    if (::ioctl(fd_.get(), TUNSETOFFLOAD, flags) != 0) return errno_error("tap {}: cannot set offloads", name_);
    return {};
}

}  // namespace hospes::backends
