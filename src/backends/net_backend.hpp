// The narrow interface between a network device model and the host side of
// the link. A device only sends and receives whole packets, each one a
// virtio-net header (struct virtio_net_hdr_v1, 12 bytes) followed by the
// Ethernet frame, and waits on one file descriptor. Nothing here is tun
// specific, so the backend can later move behind vhost-user into a separate
// process without the device noticing.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>

#include "common/error.hpp"

namespace hospes::backends {

// What the guest can take in packets it receives: partial checksums and
// TCP segmentation (the host then leaves the work to the guest).
struct NetOffloads {
    bool checksum = false;
    bool tso4 = false;
    bool tso6 = false;
    bool tso_ecn = false;
    bool operator==(const NetOffloads&) const = default;
};

class NetBackend {
public:
    virtual ~NetBackend() = default;
    // For diagnostics: the host interface's name.
    virtual const std::string& name() const = 0;
    // Readable (edge-triggered use is fine) when packets wait to be received.
    virtual int fd() const = 0;
    // Sends one packet (header + frame) gathered from `parts`.
    virtual Result<void> send(std::span<const iovec> parts) = 0;
    // Receives one packet (header + frame) into `buffer`; 0 when none waits.
    virtual Result<size_t> receive(std::span<uint8_t> buffer) = 0;
    virtual Result<void> set_offloads(NetOffloads offloads) = 0;
    // False while the host side will not take more packets now (a cap):
    // the device leaves them in the guest's ring and sends again when fd()
    // becomes readable.
    virtual bool may_send() { return true; }
    // Gives back what it changed on the host, for a monitor that exits
    // without tearing down (a persistent tap leaves the bridge it joined).
    virtual void release() {}
};

}  // namespace hospes::backends
