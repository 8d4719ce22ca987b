// Network tests' surroundings: a network namespace of the test's own, and
// a packet socket on an interface (the far end of a tap).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"

namespace hospes::test_support {

// The other end of the tap: an AF_PACKET socket bound to it. What the
// device writes to the tap arrives here; what is sent here leaves through
// the tap to the device.
class PacketSocket {
public:
    explicit PacketSocket(const std::string& interface) {
        fd_ = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
        sockaddr_ll address{};
        address.sll_family = AF_PACKET;
        address.sll_protocol = htons(ETH_P_ALL);
        address.sll_ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
        index_ = address.sll_ifindex;
        if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) fd_.reset();
    }
    bool valid() const { return fd_.valid() && index_ != 0; }
    bool send(const std::vector<uint8_t>& frame) {
        return ::send(fd_.get(), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size());
    }
    // The next frame that came in from the tap (not one we sent), or empty
    // after a second of silence.
    std::vector<uint8_t> receive() {
        std::vector<uint8_t> buffer(70000);
        for (;;) {
            pollfd p{fd_.get(), POLLIN, 0};
            if (::poll(&p, 1, 1000) != 1) return {};
            sockaddr_ll from{};
            socklen_t length = sizeof(from);
            ssize_t n = ::recvfrom(fd_.get(), buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from),
                                   &length);
            if (n < 0) return {};
            if (from.sll_pkttype == PACKET_OUTGOING) continue;
            buffer.resize(static_cast<size_t>(n));
            return buffer;
        }
    }

private:
    UniqueFd fd_;
    int index_ = 0;
};

// A network namespace of the test's own, with a sysfs that shows it (sysfs
// shows the namespace of whoever mounted it, hence a mount namespace too):
// the taps' frames never reach the host's network and names cannot collide.
// Empty on success, else why the test is skipped.
inline std::string private_network() {
    if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0)
        return std::string("cannot make network and mount namespaces: ") + std::strerror(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0)
        return std::string("cannot mount a sysfs of the namespace: ") + std::strerror(errno);
    UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!tun.valid()) return std::string("/dev/net/tun: ") + std::strerror(errno);
    return {};
}

}  // namespace hospes::test_support
