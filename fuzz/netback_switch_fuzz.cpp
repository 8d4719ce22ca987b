// libFuzzer target for hospes-netback's switch: what guests and the host
// network hand it. Three guest ports (A may send only from its IPv4 and
// IPv6 addresses; B and C from any address; their offloads and policies
// change as the script says) and an uplink that records what it is given.
// Packets are a virtio-net header (any flags, GSO type, offsets) and a
// frame, built from the input with, when the script says so, the sender's
// own MAC as source (to get past anti-spoofing into the IP parsers) and a
// guest's MAC as destination. A crash, a sanitizer report, or a packet
// handed out larger than the buffer or the largest packet is a bug; so is
// a port given more whole frames than came in, or one frame segmented
// into more than a guest's queue holds (the bound on what one frame may
// cost the shared worker).
//
// Input: a series of operations, each one byte op and its arguments:
//   op % 6 == 0  packet from port (u8 % 4; 3 is the uplink): u8 shape (bit
//                0 source = the port's MAC, bits 1-2 destination: as given,
//                A, B, broadcast), u16 length (% 1600), that many bytes
//                (header first)
//   op % 6 == 1  a guest port (u8 % 3) takes a packet into a buffer of
//                u16 bytes
//   op % 6 == 2  a guest port (u8 % 3) gets a policy: u8 weight, u8 tx and
//                rx packets per second, u16 tx and rx bytes per second
//                (0: none), u8 bursts
//   op % 6 == 3  time passes (u8 milliseconds) and the switch ticks
//   op % 6 == 4  a guest port (u8 % 3) goes down or comes up with the
//                offloads in the next byte's low four bits
//   op % 6 == 5  the uplink's cap: u16 bytes per second (0: none)
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "input.hpp"
#include "netback/switch.hpp"

namespace {

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

using hospes::netback::Clock;
using hospes::netback::Mac;
using hospes::netback::PortCounters;
using hospes::netback::PortIdentity;
using hospes::netback::PortPolicy;
using hospes::netback::Switch;

using hospes::fuzz::Input;

constexpr Mac kMacs[3] = {{0x02, 0, 0, 0, 0, 0xa}, {0x02, 0, 0, 0, 0, 0xb}, {0x02, 0, 0, 0, 0, 0xc}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Switch fabric;
    PortCounters counters[4];
    size_t ports[4];
    for (size_t i = 0; i < 3; ++i) {
        PortIdentity identity;
        identity.mac = kMacs[i];
        if (i == 0) {
            std::array<uint8_t, 4> v4{10, 0, 0, 2};
            std::array<uint8_t, 16> v6{};
            CHECK(::inet_pton(AF_INET6, "fd00::2", v6.data()) == 1);
            identity.ipv4.push_back(v4);
            identity.ipv6.push_back(v6);
        }
        ports[i] = fabric.add_guest_port("port" + std::to_string(i), identity, [] {}, &counters[i]);
        fabric.set_up(ports[i], {true, true, true, true});
    }
    size_t uplink_sent = 0;
    ports[3] = fabric.add_uplink(
        "uplink",
        [&](std::span<const iovec> parts) -> hospes::Result<void> {
            size_t bytes = 0;
            for (const auto& part : parts) bytes += part.iov_len;
            CHECK(bytes >= Switch::kHeaderSize + 14 && bytes <= Switch::kMaxPacket);
            ++uplink_sent;
            return {};
        },
        &counters[3]);

    // Segments made so far for all ports; frames that asked for segmentation.
    auto segments = [&] {
        uint64_t made = 0;
        for (const auto& c : counters) made += c.segments;
        return made;
    };
    uint64_t gso_frames = 0;
    auto now = Clock::now();
    std::vector<uint8_t> buffer(Switch::kMaxPacket);
    Input in(data, size);
    while (!in.empty()) {
        uint8_t op = in.u8();
        switch (op % 6) {
        case 0: {
            size_t from = ports[in.u8() % 4];
            uint8_t shape = in.u8();
            auto packet = in.bytes(in.u16() % 1600);
            if (packet.size() >= Switch::kHeaderSize + 12) {
                uint8_t* frame = packet.data() + Switch::kHeaderSize;
                if ((shape & 1) && from < 3) std::memcpy(frame + 6, kMacs[from].data(), 6);
                switch ((shape >> 1) & 3) {
                case 1: std::memcpy(frame, kMacs[0].data(), 6); break;
                case 2: std::memcpy(frame, kMacs[1].data(), 6); break;
                case 3: std::memset(frame, 0xff, 6); break;
                default: break;
                }
            }
            iovec part{packet.data(), packet.size()};
            if (packet.size() > 1 && packet[1] != 0) ++gso_frames;
            uint64_t before = segments();
            (void)fabric.input(from, std::span<const iovec>(&part, 1));
            // Only a frame addressed to one guest is segmented, at most
            // into what its queue holds.
            CHECK(segments() - before <= Switch::kQueueLimit);
            break;
        }
        case 1: {
            size_t port = ports[in.u8() % 3];
            size_t room = in.u16() % (Switch::kMaxPacket + 1);
            size_t got = fabric.take(port, std::span<uint8_t>(buffer.data(), room));
            CHECK(got <= room);
            break;
        }
        case 2: {
            size_t port = ports[in.u8() % 3];
            PortPolicy policy;
            policy.weight = static_cast<uint32_t>(in.u8()) % PortPolicy::kMaxWeight + 1;
            policy.tx.pps = in.u8();
            policy.rx.pps = in.u8();
            policy.tx.bps = in.u16();
            policy.rx.bps = in.u16();
            policy.tx.pps_burst = policy.rx.bps_burst = in.u8();
            fabric.set_policy(port, policy, now);
            break;
        }
        case 3:
            now += std::chrono::milliseconds(in.u8());
            fabric.tick(now);
            for (size_t i = 0; i < 3; ++i) (void)fabric.may_send(ports[i], now);
            break;
        case 4: {
            size_t port = ports[in.u8() % 3];
            uint8_t how = in.u8();
            if (how & 0x80)
                fabric.set_down(port);
            else
                fabric.set_up(port, {(how & 1) != 0, (how & 2) != 0, (how & 4) != 0, (how & 8) != 0});
            break;
        }
        default:
            fabric.set_uplink_limits({.bps = in.u16()}, now);
            break;
        }
    }
    // Each frame reaches a port whole at most once, or as segments.
    uint64_t frames_in = counters[0].in_packets + counters[1].in_packets + counters[2].in_packets + counters[3].in_packets;
    for (const auto& c : counters) {
        CHECK(c.segments <= c.out_packets);
        CHECK(c.out_packets - c.segments <= frames_in);
        CHECK(c.segments <= gso_frames * Switch::kQueueLimit);
    }
    return 0;
}
