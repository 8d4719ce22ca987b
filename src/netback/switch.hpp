// hospes-netback's virtual switch: guests' virtio-net devices and host
// uplinks are its ports. A guest port's MAC address is known; behind an
// uplink the switch learns which source addresses are there (entries age
// out, the table is bounded). A unicast frame goes only to its port;
// broadcast, multicast and unknown destinations are flooded to every other
// port.
// Frames between guests on one back-end never leave the process.
//
// A guest port is told its MAC address: a frame from any other source is
// dropped and counted (anti-spoofing), and so is, when the port has a list
// of IP addresses, an IPv4, ARP, IPv6 or neighbour discovery packet from
// an address not on it. Guests are untrusted: every frame is bounds-checked
// before it is parsed, and a port's receive queue is bounded (a full queue
// drops, it never grows).
//
// Every packet is a 12-byte virtio-net header (struct virtio_net_hdr_v1)
// and the Ethernet frame. A packet whose checksum is left to the receiver
// (NEEDS_CSUM) is completed here for a guest that did not accept partial
// checksums; a segmentation offload packet (GSO) such a guest did not
// accept is dropped and counted.
#pragma once

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/net_backend.hpp"
#include "common/error.hpp"

namespace hospes::netback {

using Mac = std::array<uint8_t, 6>;

// Per port, as the control socket shows them. "in" is what the port's
// guest or uplink sent into the switch, "out" what the switch gave it.
struct PortCounters {
    uint64_t in_packets = 0, in_bytes = 0;
    uint64_t out_packets = 0, out_bytes = 0;
    uint64_t drop_spoofed_mac = 0;  // a source MAC not the port's
    uint64_t drop_spoofed_ip = 0;   // an IP, ARP or ND source not the port's
    uint64_t drop_malformed = 0;    // shorter than header + Ethernet header, or a bad header
    uint64_t drop_queue_full = 0;   // the port's guest did not take its frames fast enough
    uint64_t drop_offload = 0;      // a GSO packet for a guest that does not take them
    uint64_t drop_down = 0;         // for a port with no guest connected
};

// Addresses a guest port may send from: its MAC always; IPv4 and IPv6
// addresses only when `ips` is not empty (then nothing else).
struct PortIdentity {
    Mac mac{};
    std::vector<std::array<uint8_t, 4>> ipv4;
    std::vector<std::array<uint8_t, 16>> ipv6;
    bool restrict_ip() const { return !ipv4.empty() || !ipv6.empty(); }
};

class Switch {
public:
    static constexpr size_t kHeaderSize = 12;
    static constexpr size_t kMaxPacket = kHeaderSize + 64 * 1024;
    static constexpr size_t kQueueLimit = 512;                 // packets waiting for one guest
    static constexpr size_t kQueueBytes = 4 << 20;             // and their bytes
    static constexpr size_t kTableLimit = 4096;                // learned addresses
    static constexpr auto kAgeing = std::chrono::seconds(300);  // as Linux bridges

    // A guest port: frames for it wait in its queue; `wake` is called when
    // the queue stops being empty.
    size_t add_guest_port(std::string name, PortIdentity identity, std::function<void()> wake,
                          PortCounters* counters);
    // An uplink: frames for it go to `send` at once (a tap).
    size_t add_uplink(std::string name, std::function<Result<void>(std::span<const iovec>)> send,
                      PortCounters* counters);

    // A guest connected (it takes these offloads) or went away (its queue
    // is emptied; frames for it are dropped until it is back).
    void set_up(size_t port, backends::NetOffloads offloads);
    void set_down(size_t port);

    // One packet from `port` into the switch. An error names why it was
    // dropped (counted already); the caller decides whether to log.
    Result<void> input(size_t port, std::span<const iovec> packet);

    // The next packet waiting for guest port `port` into `buffer` (its
    // size), or 0 when none waits.
    size_t take(size_t port, std::span<uint8_t> buffer);

    const std::string& port_name(size_t port) const { return ports_[port].name; }
    size_t learned() const { return table_.size(); }

private:
    struct Port {
        std::string name;
        bool uplink = false;
        bool up = false;
        PortIdentity identity;
        backends::NetOffloads offloads;
        std::function<void()> wake;
        std::function<Result<void>(std::span<const iovec>)> send;
        std::deque<std::vector<uint8_t>> queue;
        size_t queued_bytes = 0;
        PortCounters* counters;
    };
    struct Entry {
        size_t port;
        std::chrono::steady_clock::time_point seen;
    };

    Result<void> check_source(const Port& port, std::span<const uint8_t> packet) const;
    void learn(const Mac& mac, size_t port);
    void output(size_t port, std::span<const uint8_t> packet);

    std::vector<Port> ports_;
    std::unordered_map<uint64_t, size_t> guests_;  // each guest port's own MAC
    std::unordered_map<uint64_t, Entry> table_;      // learned behind uplinks
    std::vector<uint8_t> scratch_;  // the packet being switched
    std::vector<std::vector<uint8_t>> spare_;  // queue buffers for reuse
};

// Completes a NEEDS_CSUM packet's checksum in place (the Internet checksum
// from csum_start to the end, stored at csum_start + csum_offset); false
// when the offsets lie outside the packet.
bool complete_checksum(std::span<uint8_t> packet);

}  // namespace hospes::netback
