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
// accept is segmented here (TCP over IPv4 or IPv6), or dropped and counted
// when it cannot be.
#pragma once

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/net_backend.hpp"
#include "common/error.hpp"
#include "common/token_bucket.hpp"

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
    uint64_t drop_offload = 0;      // a GSO packet for a guest that does not take them, which was not segmented
    uint64_t drop_down = 0;         // for a port with no guest connected
    uint64_t held_tx = 0;           // times the guest was held back: its transmit cap or a full uplink queue
    uint64_t held_rx = 0;           // times its receive cap held frames back
    uint64_t segments = 0;          // packets made by segmenting GSO frames for it (counted in out_packets too)
};

using driver_domain::Clock;

// A cap; 0 means none. Bursts are the buckets' sizes (packets, bytes); 0:
// a tenth of a second at the rate.
struct Limits {
    uint64_t pps = 0, bps = 0;  // packets and bytes (of Ethernet frames) per second
    uint64_t pps_burst = 0, bps_burst = 0;
    bool operator==(const Limits&) const = default;
};

struct PortPolicy {
    static constexpr uint32_t kMaxWeight = 10000;
    uint32_t weight = 100;  // share of a capped uplink, 1 to kMaxWeight
    Limits tx, rx;          // what the guest sends, what it receives
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
    static constexpr size_t kUplinkQueueBytes = 256 << 10;     // a guest's frames waiting for a capped uplink, at most
    // The smallest gso_size a segmentation offload frame may carry: Linux's
    // TCP never sends less payload per segment (net.ipv4.tcp_min_snd_mss,
    // the floor set after CVE-2019-11479, when tiny MSS values were used
    // to make hosts spend themselves on segments).
    static constexpr uint16_t kMinGsoSize = 48;

    // A guest port: frames for it wait in its queue; `wake` is called when
    // the queue stops being empty.
    size_t add_guest_port(std::string name, PortIdentity identity, std::function<void()> wake,
                          PortCounters* counters);
    // The uplink (one at most): frames for it go to `send` (a tap), at once
    // unless it is capped.
    // The port goes: frames for it are no longer switched, its MAC may be
    // another port's, and its slot is used again by the next one added.
    void remove_guest_port(size_t port);
    size_t add_uplink(std::string name, std::function<Result<void>(std::span<const iovec>)> send,
                      PortCounters* counters);

    // A guest connected (it takes these offloads) or went away (its queue
    // is emptied; frames for it are dropped until it is back).
    void set_up(size_t port, backends::NetOffloads offloads);
    void set_down(size_t port);

    void set_policy(size_t port, const PortPolicy& policy, Clock::time_point now);
    void set_uplink_limits(const Limits& limits, Clock::time_point now);
    // Whether guest port `port` may send now; when not, it is woken once
    // it may again.
    bool may_send(size_t port, Clock::time_point now);
    // The same, reading the clock only when the port has a cap.
    bool may_send(size_t port) {
        const auto& p = ports_[port];
        if (!p.capped && !p.tx_ready && p.uplink_bytes < uplink_queue_bytes_) return true;
        return may_send(port, Clock::now());
    }
    // Sends to the uplink what its cap allows and wakes the ports whose
    // caps let them go on; call it by next_wakeup() at the latest.
    void tick(Clock::time_point now);
    std::optional<Clock::time_point> next_wakeup() const;

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
        bool removed = false;
        PortIdentity identity;
        backends::NetOffloads offloads;
        std::function<void()> wake;
        std::function<Result<void>(std::span<const iovec>)> send;
        std::deque<std::vector<uint8_t>> queue;
        size_t queued_bytes = 0;
        PortCounters* counters = nullptr;
        // Policy (guest ports; an uplink has only `limits`).
        uint32_t weight = 100;
        driver_domain::TokenBucket tx_packets, tx_bytes, rx_packets, rx_bytes;
        size_t rx_queue_bytes = kQueueBytes;  // shorter under a receive cap
        std::optional<Clock::time_point> tx_ready, rx_ready;  // held back until then
        // Frames for a capped uplink, and this port's virtual time there.
        std::deque<std::vector<uint8_t>> uplink_queue;
        size_t uplink_bytes = 0;
        double finish = 0;
        bool uplink_held = false;  // held back by a full uplink queue
        bool capped = false;       // a transmit cap is set
    };
    struct Entry {
        size_t port;
        std::chrono::steady_clock::time_point seen;
    };

    Result<void> check_source(const Port& port, std::span<const uint8_t> packet) const;
    void learn(const Mac& mac, size_t port);
    void output(size_t from, size_t port, std::span<const uint8_t> packet);
    bool enqueue(Port& port, std::span<const uint8_t> packet);  // false: dropped (counted)
    void send_uplink(Port& uplink, std::span<const uint8_t> packet);
    void drain_uplink(Clock::time_point now);
    std::vector<uint8_t> buffer(std::span<const uint8_t> packet);
    void recycle(std::vector<uint8_t>&& buffer);

    std::vector<Port> ports_;
    std::optional<size_t> uplink_port_;  // one per switch
    std::unordered_map<uint64_t, size_t> guests_;  // each guest port's own MAC
    std::unordered_map<uint64_t, Entry> table_;      // learned behind uplinks
    std::vector<uint8_t> scratch_;  // the packet being switched
    std::vector<std::vector<uint8_t>> spare_;  // queue buffers for reuse
    std::vector<uint8_t> segments_;             // one segment being made
    // A capped uplink: its buckets and virtual time (start-time fair queueing).
    driver_domain::TokenBucket uplink_packets_, uplink_bytes_;
    double uplink_time_ = 0;
    size_t uplink_queue_bytes_ = kUplinkQueueBytes;  // per guest: an eighth of a second at the cap
    std::optional<Clock::time_point> uplink_ready_;
};

// Completes a NEEDS_CSUM packet's checksum in place (the Internet checksum
// from csum_start to the end, stored at csum_start + csum_offset); false
// when the offsets lie outside the packet.
bool complete_checksum(std::span<uint8_t> packet);

// A TCP segmentation offload packet (GSO TCPv4 or TCPv6, no IPv6 extension
// headers) as segment_tcp cuts it: parsed once, so that what the segments
// would cost is known before any is made.
struct TcpSegmentation {
    bool v4 = true;
    size_t ip_size = 0, tcp_size = 0;  // header lengths
    size_t mss = 0;                    // gso_size: payload bytes per segment
    size_t payload = 0;                // payload bytes in all
    size_t headers() const { return 14 + ip_size + tcp_size; }  // Ethernet, IP and TCP
    size_t count() const { return (payload + mss - 1) / mss; }
    // All segments' bytes, each with its virtio-net header.
    size_t bytes() const { return count() * (Switch::kHeaderSize + headers()) + payload; }
};

// The packet's segmentation, or none when it is not one segment_tcp can cut.
std::optional<TcpSegmentation> parse_tcp_segmentation(std::span<const uint8_t> packet);

// Splits a TCP segmentation offload packet into packets of at most gso_size
// payload bytes, each with its IP and TCP headers and checksums complete,
// handed to `emit` one after the other in `scratch`.
void segment_tcp(std::span<const uint8_t> packet, const TcpSegmentation& layout, std::vector<uint8_t>& scratch,
                 const std::function<void(std::span<const uint8_t>)>& emit);

}  // namespace hospes::netback
