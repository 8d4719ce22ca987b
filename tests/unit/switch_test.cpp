// hospes-netback's switch on its own: learning, flooding and forwarding;
// anti-spoofing by MAC and by IPv4/ARP/IPv6/neighbour discovery addresses;
// bounded queues; checksum completion and offloads per guest; hostile
// packets; caps on what a guest sends and receives, and a capped uplink
// shared by weight.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "netback/server.hpp"
#include "netback/switch.hpp"

namespace hospes {
namespace {

using netback::Mac;
using netback::PortCounters;
using netback::PortIdentity;
using netback::PortPolicy;
using Clock = netback::Clock;
using namespace std::chrono_literals;
using netback::Switch;
using Bytes = std::vector<uint8_t>;

constexpr Mac kMacA{0x02, 0, 0, 0, 0, 0xa}, kMacB{0x02, 0, 0, 0, 0, 0xb}, kMacC{0x02, 0, 0, 0, 0, 0xc};
constexpr Mac kHost{0x52, 0x54, 0, 0, 0, 1}, kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
constexpr uint16_t kExperimental = 0x88b5;

// A 12-byte virtio-net header (zero unless given) and an Ethernet frame.
Bytes packet(const Mac& to, const Mac& from, uint16_t type, const Bytes& payload, const Bytes& header = {}) {
    Bytes p(12, 0);
    std::copy(header.begin(), header.end(), p.begin());
    p.insert(p.end(), to.begin(), to.end());
    p.insert(p.end(), from.begin(), from.end());
    p.push_back(static_cast<uint8_t>(type >> 8));
    p.push_back(static_cast<uint8_t>(type));
    p.insert(p.end(), payload.begin(), payload.end());
    return p;
}

std::array<uint8_t, 4> v4(const char* text) {
    std::array<uint8_t, 4> a{};
    EXPECT_EQ(::inet_pton(AF_INET, text, a.data()), 1);
    return a;
}
std::array<uint8_t, 16> v6(const char* text) {
    std::array<uint8_t, 16> a{};
    EXPECT_EQ(::inet_pton(AF_INET6, text, a.data()), 1);
    return a;
}

Bytes ipv4(const char* source, uint8_t protocol = 6) {
    Bytes ip(20, 0);
    ip[0] = 0x45;
    ip[9] = protocol;
    auto s = v4(source), d = v4("10.0.0.1");
    std::copy(s.begin(), s.end(), ip.begin() + 12);
    std::copy(d.begin(), d.end(), ip.begin() + 16);
    return ip;
}
Bytes arp(const Mac& sender_mac, const char* sender_ip) {
    Bytes a = {0, 1, 8, 0, 6, 4, 0, 1};
    a.insert(a.end(), sender_mac.begin(), sender_mac.end());
    auto s = v4(sender_ip), t = v4("10.0.0.1");
    a.insert(a.end(), s.begin(), s.end());
    a.insert(a.end(), 6, 0);
    a.insert(a.end(), t.begin(), t.end());
    return a;
}
// An IPv6 header from `source`, then `extension` (hop-by-hop options) when
// given, then `upper` (protocol `next`).
Bytes ipv6(const char* source, uint8_t next, const Bytes& upper, bool extension = false) {
    Bytes ip(40, 0);
    ip[0] = 0x60;
    ip[6] = extension ? 0 : next;
    ip[7] = 255;
    auto s = v6(source), d = v6("ff02::1");
    std::copy(s.begin(), s.end(), ip.begin() + 8);
    std::copy(d.begin(), d.end(), ip.begin() + 24);
    if (extension) ip.insert(ip.end(), {next, 0, 5, 2, 0, 0, 1, 0});  // padded to 8 bytes
    ip.insert(ip.end(), upper.begin(), upper.end());
    return ip;
}
Bytes neighbour_advertisement(const char* target) {
    Bytes icmp(24, 0);
    icmp[0] = 136;
    auto t = v6(target);
    std::copy(t.begin(), t.end(), icmp.begin() + 8);
    return icmp;
}

class SwitchTest : public ::testing::Test {
protected:
    void SetUp() override {
        a_ = add(kMacA);
        b_ = add(kMacB);
        c_ = add(kMacC);
        uplink_ = fabric_.add_uplink(
            "uplink",
            [this](std::span<const iovec> parts) -> Result<void> {
                Bytes p;
                for (auto part : parts)
                    p.insert(p.end(), static_cast<uint8_t*>(part.iov_base),
                             static_cast<uint8_t*>(part.iov_base) + part.iov_len);
                sent_.push_back(std::move(p));
                return {};
            },
            &counters_[next_++]);
        for (size_t port : {a_, b_, c_}) fabric_.set_up(port, {true, true, true, true});
    }
    size_t add(const Mac& mac, PortIdentity identity = {}) {
        identity.mac = mac;
        // The switch numbers ports in the order they are added.
        size_t index = next_++;
        wakes_.resize(index + 1);
        return fabric_.add_guest_port("port" + std::to_string(index), identity, [this, index] { ++wakes_[index]; },
                                      &counters_[index]);
    }
    Result<void> send(size_t port, const Bytes& p) {
        iovec part{const_cast<uint8_t*>(p.data()), p.size()};
        return fabric_.input(port, std::span<const iovec>(&part, 1));
    }
    // Everything queued for a guest port.
    std::vector<Bytes> drain(size_t port) {
        std::vector<Bytes> got;
        Bytes buffer(Switch::kMaxPacket);
        while (size_t n = fabric_.take(port, buffer)) got.emplace_back(buffer.begin(), buffer.begin() + n);
        return got;
    }
    std::vector<Bytes> uplink() { return std::exchange(sent_, {}); }

    Switch fabric_;
    PortCounters counters_[5];
    std::vector<int> wakes_;
    std::vector<Bytes> sent_;
    size_t a_ = 0, b_ = 0, c_ = 0, uplink_ = 0, next_ = 0;
};

TEST_F(SwitchTest, FloodsBroadcastsAndForwardsLearnedUnicast) {
    auto hello = packet(kBroadcast, kMacA, kExperimental, Bytes(50, 1));
    ASSERT_TRUE(send(a_, hello));
    EXPECT_TRUE(drain(a_).empty()) << "never back to the sender";
    EXPECT_EQ(drain(b_), std::vector<Bytes>{hello});
    EXPECT_EQ(drain(c_), std::vector<Bytes>{hello});
    EXPECT_EQ(uplink(), std::vector<Bytes>{hello});
    EXPECT_EQ(wakes_[b_], 1);

    // A was learned: B's answer goes to A alone.
    auto answer = packet(kMacA, kMacB, kExperimental, Bytes(60, 2));
    ASSERT_TRUE(send(b_, answer));
    EXPECT_EQ(drain(a_), std::vector<Bytes>{answer});
    EXPECT_TRUE(drain(c_).empty());
    EXPECT_TRUE(uplink().empty());

    // An unknown unicast address is flooded.
    Mac stranger{0x02, 9, 9, 9, 9, 9};
    auto lost = packet(stranger, kMacC, kExperimental, Bytes(46, 3));
    ASSERT_TRUE(send(c_, lost));
    EXPECT_EQ(drain(a_).size(), 1u);
    EXPECT_EQ(drain(b_).size(), 1u);
    EXPECT_EQ(uplink().size(), 1u);

    // Hosts behind the uplink are learned there; a guest's address is not
    // (the uplink cannot take it over).
    ASSERT_TRUE(send(uplink_, packet(kBroadcast, kMacB, kExperimental, Bytes(46, 4))));
    for (size_t port : {a_, b_, c_}) drain(port);
    ASSERT_TRUE(send(a_, packet(kMacB, kMacA, kExperimental, Bytes(46, 4))));
    EXPECT_EQ(drain(b_).size(), 1u);
    EXPECT_TRUE(uplink().empty());
    ASSERT_TRUE(send(uplink_, packet(kBroadcast, kHost, kExperimental, Bytes(46, 4))));
    for (size_t port : {a_, b_, c_}) drain(port);
    ASSERT_TRUE(send(a_, packet(kHost, kMacA, kExperimental, Bytes(46, 5))));
    EXPECT_EQ(uplink().size(), 1u);
    EXPECT_TRUE(drain(b_).empty());
    EXPECT_TRUE(drain(c_).empty());
    EXPECT_EQ(counters_[a_].in_packets, 3u);
    EXPECT_EQ(counters_[a_].out_packets, 4u);  // answer, lost, the uplink's two broadcasts
    EXPECT_EQ(counters_[3].out_packets, 3u);   // hello, lost, A to the host
}

TEST_F(SwitchTest, AFrameFromAnotherMacIsDroppedAndCounted) {
    ASSERT_TRUE(send(b_, packet(kBroadcast, kMacB, kExperimental, Bytes(46, 1))));
    drain(a_);
    drain(c_);
    uplink();
    // A pretends to be B, to the broadcast address and to B's address.
    auto r = send(a_, packet(kBroadcast, kMacB, kExperimental, Bytes(46, 2)));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("MAC"), std::string::npos) << r.error().message;
    EXPECT_FALSE(send(a_, packet(kMacC, kMacC, kExperimental, Bytes(46, 3))));
    EXPECT_TRUE(drain(b_).empty());
    EXPECT_TRUE(drain(c_).empty());
    EXPECT_TRUE(uplink().empty());
    EXPECT_EQ(counters_[a_].drop_spoofed_mac, 2u);
    // B's address is still B's.
    ASSERT_TRUE(send(c_, packet(kMacB, kMacC, kExperimental, Bytes(46, 4))));
    EXPECT_EQ(drain(b_).size(), 1u);
    EXPECT_TRUE(drain(a_).empty());
}

TEST_F(SwitchTest, AnIpRestrictedPortSendsOnlyFromItsAddresses) {
    PortIdentity identity;
    identity.ipv4 = {v4("10.0.0.2")};
    identity.ipv6 = {v6("fd00::2")};
    Mac mac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    size_t d = add(mac, identity);
    fabric_.set_up(d, {});
    struct Case {
        const char* what;
        uint16_t type;
        Bytes payload;
        bool allowed;
    };
    const char* link_local = "fe80::11:22ff:fe33:4455";  // EUI-64 of the MAC
    Case cases[] = {
        {"IPv4 from its address", 0x0800, ipv4("10.0.0.2"), true},
        {"DHCP from 0.0.0.0", 0x0800, ipv4("0.0.0.0", 17), true},
        {"ARP for its address", 0x0806, arp(mac, "10.0.0.2"), true},
        {"ARP probe", 0x0806, arp(mac, "0.0.0.0"), true},
        {"IPv6 from its address", 0x86dd, ipv6("fd00::2", 6, Bytes(20, 0)), true},
        {"IPv6 from its link-local address", 0x86dd, ipv6(link_local, 6, Bytes(20, 0)), true},
        {"duplicate address detection from ::", 0x86dd, ipv6("::", 58, neighbour_advertisement("fd00::2")), true},
        {"a neighbour advertisement for its address", 0x86dd,
         ipv6("fd00::2", 58, neighbour_advertisement("fd00::2")), true},
        {"IPv4 from another address", 0x0800, ipv4("10.0.0.3"), false},
        {"TCP from 0.0.0.0", 0x0800, ipv4("0.0.0.0", 6), false},
        {"ARP claiming another address", 0x0806, arp(mac, "10.0.0.3"), false},
        {"ARP with another sender MAC", 0x0806, arp(kMacB, "10.0.0.2"), false},
        {"IPv6 from another address", 0x86dd, ipv6("fd00::3", 6, Bytes(20, 0)), false},
        {"IPv6 from another link-local address", 0x86dd, ipv6("fe80::1", 6, Bytes(20, 0)), false},
        {"a neighbour advertisement for another address", 0x86dd,
         ipv6("fd00::2", 58, neighbour_advertisement("fd00::3")), false},
        {"one behind a hop-by-hop header", 0x86dd,
         ipv6("fd00::2", 58, neighbour_advertisement("fd00::3"), true), false},
        {"a truncated IPv4 header", 0x0800, Bytes(19, 0x45), false},
        {"a truncated ARP packet", 0x0806, Bytes(27, 0), false},
        {"another protocol", kExperimental, Bytes(46, 0), false},
    };
    uint64_t dropped = 0;
    for (const auto& c : cases) {
        auto r = send(d, packet(kBroadcast, mac, c.type, c.payload));
        EXPECT_EQ(r.has_value(), c.allowed) << c.what;
        EXPECT_EQ(drain(a_).size(), c.allowed ? 1u : 0u) << c.what;
        if (!c.allowed) ++dropped;
    }
    EXPECT_EQ(counters_[d].drop_spoofed_ip, dropped);
    EXPECT_EQ(counters_[d].drop_spoofed_mac, 0u);
}

TEST_F(SwitchTest, QueuesAreBoundedAndPortsWithoutAGuestDrop) {
    fabric_.set_down(b_);
    ASSERT_TRUE(send(a_, packet(kMacB, kMacA, kExperimental, Bytes(46, 0))));
    EXPECT_EQ(counters_[b_].drop_down, 1u);
    fabric_.set_up(b_, {});
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(send(a_, packet(kMacB, kMacA, kExperimental, Bytes(46, uint8_t(i)))));
    EXPECT_EQ(counters_[b_].drop_queue_full, 600 - Switch::kQueueLimit);
    auto got = drain(b_);
    ASSERT_EQ(got.size(), Switch::kQueueLimit);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].back(), uint8_t(i)) << "in order";
    // Big packets: the bytes bound comes first.
    for (int i = 0; i < 100; ++i)
        ASSERT_TRUE(send(a_, packet(kMacB, kMacA, kExperimental, Bytes(60000, 0))));
    EXPECT_EQ(drain(b_).size(), Switch::kQueueBytes / (12 + 14 + 60000));
    // A guest going away takes its queue with it.
    ASSERT_TRUE(send(a_, packet(kMacB, kMacA, kExperimental, Bytes(46, 0))));
    fabric_.set_down(b_);
    fabric_.set_up(b_, {});
    EXPECT_TRUE(drain(b_).empty());
}

// The Internet checksum of a UDP datagram over IPv4, from scratch.
uint16_t udp_checksum(const Bytes& ip_and_udp) {
    uint32_t sum = 0;
    auto add = [&](const uint8_t* p, size_t n) {
        for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
        if (n % 2) sum += static_cast<uint32_t>(p[n - 1] << 8);
    };
    size_t length = ip_and_udp.size() - 20;
    add(&ip_and_udp[12], 8);  // source and destination
    sum += 17 + static_cast<uint32_t>(length);
    Bytes udp(ip_and_udp.begin() + 20, ip_and_udp.end());
    udp[6] = udp[7] = 0;
    add(udp.data(), udp.size());
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

TEST_F(SwitchTest, ChecksumsAreCompletedForGuestsThatDoNotTakePartialOnes) {
    fabric_.set_up(b_, {});                         // no offloads
    fabric_.set_up(c_, {true, false, false, false});  // partial checksums only
    // UDP from A with its checksum left to the receiver: the field holds
    // the pseudo-header's sum, as Linux leaves it.
    Bytes ip = ipv4("10.0.0.2", 17);
    Bytes udp = {0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0};
    for (int i = 0; i < 101; ++i) udp.push_back(static_cast<uint8_t>(i * 13));  // odd length
    udp[4] = static_cast<uint8_t>(udp.size() >> 8);
    udp[5] = static_cast<uint8_t>(udp.size());
    ip.insert(ip.end(), udp.begin(), udp.end());
    uint32_t pseudo = static_cast<uint32_t>(ip[12] << 8 | ip[13]) + (ip[14] << 8 | ip[15]) + (ip[16] << 8 | ip[17]) +
                      (ip[18] << 8 | ip[19]) + 17 + static_cast<uint32_t>(udp.size());
    while (pseudo >> 16) pseudo = (pseudo & 0xffff) + (pseudo >> 16);
    ip[26] = static_cast<uint8_t>(pseudo >> 8);
    ip[27] = static_cast<uint8_t>(pseudo);
    // flags NEEDS_CSUM, csum_start 34 (Ethernet + IP), csum_offset 6.
    Bytes header = {1, 0, 0, 0, 0, 0, 34, 0, 6, 0};
    auto partial = packet(kBroadcast, kMacA, 0x0800, ip, header);
    ASSERT_TRUE(send(a_, partial));

    auto to_b = drain(b_);
    ASSERT_EQ(to_b.size(), 1u);
    EXPECT_EQ(to_b[0][0], 0) << "NEEDS_CSUM is cleared";
    Bytes b_ip(to_b[0].begin() + 26, to_b[0].end());
    uint16_t expected = udp_checksum(ip);
    EXPECT_EQ(b_ip[26] << 8 | b_ip[27], expected);
    EXPECT_EQ(drain(c_), std::vector<Bytes>{partial}) << "left partial for a guest that takes it";
    EXPECT_EQ(uplink(), std::vector<Bytes>{partial}) << "the tap takes partial checksums";

    // Offsets outside the packet: dropped for B, whom it would have to be
    // completed for.
    Bytes bad = {1, 0, 0, 0, 0, 0, 0xff, 0x7f, 6, 0};
    ASSERT_TRUE(send(a_, packet(kBroadcast, kMacA, 0x0800, ip, bad)));
    EXPECT_TRUE(drain(b_).empty());
    EXPECT_EQ(counters_[b_].drop_malformed, 1u);
    EXPECT_EQ(drain(c_).size(), 1u);
}

TEST_F(SwitchTest, SegmentationOffloadGoesOnlyToGuestsThatTakeIt) {
    fabric_.set_up(c_, {true, false, false, false});
    Bytes tcpv4 = {1, 1, 54, 0, 0xa8, 0x05, 34, 0, 16, 0};  // NEEDS_CSUM, GSO_TCPV4, gso_size 1448
    auto big = packet(kBroadcast, kMacA, 0x0800, Bytes(30000, 0), tcpv4);
    ASSERT_TRUE(send(a_, big));
    EXPECT_EQ(drain(b_).size(), 1u);
    EXPECT_TRUE(drain(c_).empty());
    EXPECT_EQ(counters_[c_].drop_offload, 1u);
    EXPECT_EQ(uplink().size(), 1u);
    Bytes ecn = {1, 0x81, 54, 0, 0xa8, 0x05, 34, 0, 16, 0};  // TCPV4 with ECN
    fabric_.set_up(b_, {true, true, true, false});
    ASSERT_TRUE(send(a_, packet(kBroadcast, kMacA, 0x0800, Bytes(30000, 0), ecn)));
    EXPECT_TRUE(drain(b_).empty());
    EXPECT_EQ(counters_[b_].drop_offload, 1u);
}

TEST_F(SwitchTest, MalformedPacketsAreDropped) {
    for (size_t size : {0, 11, 12, 25}) {
        Bytes p(size, 0xff);
        EXPECT_FALSE(send(a_, p)) << size;
    }
    EXPECT_FALSE(send(a_, Bytes(Switch::kMaxPacket + 1, 0)));
    EXPECT_EQ(counters_[a_].drop_malformed, 5u);
    EXPECT_TRUE(drain(b_).empty());
    // From the uplink too (it is untrusted as well).
    EXPECT_FALSE(send(uplink_, Bytes(20, 0)));
    EXPECT_EQ(counters_[3].drop_malformed, 1u);
}

TEST_F(SwitchTest, TheAddressTableIsBounded) {
    for (uint32_t i = 0; i < 6000; ++i) {
        Mac mac{0x02, 0xee, uint8_t(i >> 16), uint8_t(i >> 8), uint8_t(i), 1};
        ASSERT_TRUE(send(uplink_, packet(kMacA, mac, kExperimental, Bytes(46, 0))));
    }
    EXPECT_LE(fabric_.learned(), Switch::kTableLimit);
    EXPECT_EQ(drain(a_).size(), Switch::kQueueLimit);
}

TEST_F(SwitchTest, ATransmitCapHoldsAGuestBackUntilItMaySendAgain) {
    PortPolicy policy;
    policy.tx.pps = 100;
    policy.tx.pps_burst = 5;
    auto t0 = Clock::now();
    fabric_.set_policy(a_, policy, t0);
    auto frame = packet(kHost, kMacA, kExperimental, Bytes(46, 0));
    int sent = 0;
    while (fabric_.may_send(a_, t0)) {
        ASSERT_TRUE(send(a_, frame));
        ++sent;
    }
    EXPECT_EQ(sent, 5) << "the burst";
    EXPECT_EQ(counters_[a_].held_tx, 1u);
    ASSERT_TRUE(fabric_.next_wakeup());
    EXPECT_LE(*fabric_.next_wakeup(), t0 + 20ms);
    // A second of the guest sending whenever it may: the rate, and a wake-up
    // each time it was held back.
    int wakes = wakes_[a_];
    for (auto t = t0; t < t0 + 1s; t += 1ms) {
        fabric_.tick(t);
        while (fabric_.may_send(a_, t)) {
            ASSERT_TRUE(send(a_, frame));
            ++sent;
        }
    }
    EXPECT_GE(sent, 104);
    EXPECT_LE(sent, 106);
    EXPECT_GE(wakes_[a_] - wakes, 95);
    EXPECT_EQ(uplink().size(), static_cast<size_t>(sent)) << "held back, never dropped";
    // Lifting the cap lets it go at once.
    fabric_.set_policy(a_, {}, t0 + 1s);
    EXPECT_TRUE(fabric_.may_send(a_, t0 + 1s));
}

TEST_F(SwitchTest, AReceiveCapMakesFramesWaitAndKeepsTheQueueShort) {
    PortPolicy policy;
    policy.rx.bps = 1000;  // bytes of frames per second; the bucket holds a tenth of a second
    fabric_.set_policy(b_, policy, Clock::now());
    auto frame = packet(kMacB, kMacA, kExperimental, Bytes(486, 0));  // 500 bytes with the Ethernet header
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(send(a_, frame));
    // The queue holds a quarter of a second at the cap, at least one
    // packet of the largest size: the rest is dropped.
    size_t queued = Switch::kMaxPacket / frame.size();
    EXPECT_EQ(counters_[b_].drop_queue_full, 200 - queued);
    // 100 bytes in the bucket: one frame goes (the bucket goes into debt),
    // then the guest waits.
    EXPECT_EQ(drain(b_).size(), 1u);
    EXPECT_EQ(counters_[b_].held_rx, 1u);
    ASSERT_TRUE(fabric_.next_wakeup());
    EXPECT_GT(*fabric_.next_wakeup(), Clock::now() + 300ms) << "the 400-byte debt at 1000 bytes/s";
    int wakes = wakes_[b_];
    fabric_.tick(*fabric_.next_wakeup());
    EXPECT_EQ(wakes_[b_], wakes + 1);
}

TEST_F(SwitchTest, ACappedUplinkIsSharedByWeight) {
    auto t0 = Clock::now();
    fabric_.set_uplink_limits({.bps = 100000}, t0);  // 10 kB in its bucket
    PortPolicy light, heavy;
    light.weight = 100;
    heavy.weight = 300;
    fabric_.set_policy(a_, light, t0);
    fabric_.set_policy(b_, heavy, t0);
    // Both guests keep their queues for the uplink full: 1,000-byte frames,
    // the last byte says whose.
    auto from_a = packet(kHost, kMacA, kExperimental, Bytes(986, 'a'));
    auto from_b = packet(kHost, kMacB, kExperimental, Bytes(986, 'b'));
    auto fill = [&](Clock::time_point t) {
        while (fabric_.may_send(a_, t)) ASSERT_TRUE(send(a_, from_a));
        while (fabric_.may_send(b_, t)) ASSERT_TRUE(send(b_, from_b));
    };
    fill(t0);
    EXPECT_EQ(counters_[a_].held_tx, 1u) << "held back by its full queue";
    uplink();  // the first bucket's worth
    std::map<uint8_t, int> share;
    for (auto t = t0; t < t0 + 10s; t += 5ms) {
        fabric_.tick(t);
        fill(t);
        for (const auto& p : uplink()) ++share[p.back()];
    }
    int total = share['a'] + share['b'];
    EXPECT_NEAR(total, 1000, 20) << "the uplink's rate: 100 frames a second";
    EXPECT_NEAR(share['a'] * 100.0 / total, 25, 2);
    EXPECT_NEAR(share['b'] * 100.0 / total, 75, 2);
    EXPECT_EQ(counters_[3].drop_queue_full, 0u) << "nothing dropped";

    // Work-conserving: B stops, A gets the whole rate, and B, back, may
    // catch up half a queue's worth of what it missed, no more.
    share.clear();
    auto t1 = t0 + 10s;
    for (auto t = t1; t < t1 + 5s; t += 5ms) {
        fabric_.tick(t);
        while (fabric_.may_send(a_, t)) ASSERT_TRUE(send(a_, from_a));
        for (const auto& p : uplink()) ++share[p.back()];
    }
    // B's queue: an eighth of a second at the cap, at least a 64 KiB packet.
    int queued = static_cast<int>(Switch::kMaxPacket / from_b.size()) + 1;
    EXPECT_NEAR(share['a'] + share['b'], 500, 10);
    EXPECT_LE(share['b'], queued) << "only what was queued";
    share.clear();
    auto t2 = t1 + 5s;
    for (auto t = t2; t < t2 + 2s; t += 5ms) {
        fabric_.tick(t);
        fill(t);
        for (const auto& p : uplink()) ++share[p.back()];
    }
    // 200 frames in 2 s: 75 % is B's share, and half its queue (the
    // queue is one 64 KiB packet at this cap) of 1,000-byte frames more.
    int credit = static_cast<int>(Switch::kMaxPacket / 2 / from_b.size());
    EXPECT_GE(share['b'], 150 - 2);
    EXPECT_LE(share['b'], 150 + credit + 2);
}

// The Internet checksum of `n` bytes plus `sum`, from scratch.
uint16_t internet_checksum(const uint8_t* p, size_t n, uint32_t sum = 0) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n % 2) sum += static_cast<uint32_t>(p[n - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

TEST_F(SwitchTest, SegmentationOffloadIsSegmentedForGuestsThatDoNotTakeIt) {
    fabric_.set_up(c_, {});  // no offloads at all
    for (bool over6 : {false, true}) {
        SCOPED_TRACE(over6 ? "TCP over IPv6" : "TCP over IPv4");
        // A TSO packet as Linux sends it: 3,000 bytes of payload, MSS
        // 1,000, ACK|PSH|FIN, the checksum left partial.
        Bytes payload(3000);
        for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7 + 1);
        size_t ip_size = over6 ? 40 : 20;
        Bytes l3(ip_size, 0);
        if (over6) {
            l3[0] = 0x60;
            l3[6] = 6;
            l3[7] = 64;
            auto s6 = v6("fd00::a"), d6 = v6("fd00::c");
            std::copy(s6.begin(), s6.end(), l3.begin() + 8);
            std::copy(d6.begin(), d6.end(), l3.begin() + 24);
        } else {
            l3 = ipv4("10.0.0.2");
            l3[4] = 0x12, l3[5] = 0x34;  // id
        }
        Bytes tcp(20, 0);
        tcp[0] = 0x30, tcp[1] = 0x39, tcp[2] = 0x01, tcp[3] = 0xbb;  // ports
        tcp[4] = 0xff, tcp[5] = 0xff, tcp[6] = 0xff, tcp[7] = 0x00;  // sequence near the wrap
        tcp[12] = 0x50;
        tcp[13] = 0x19;  // ACK, PSH, FIN
        Bytes body = l3;
        body.insert(body.end(), tcp.begin(), tcp.end());
        body.insert(body.end(), payload.begin(), payload.end());
        uint16_t csum_start = static_cast<uint16_t>(14 + ip_size);
        Bytes header = {1, static_cast<uint8_t>(over6 ? 4 : 1), 0, 0, 0xe8, 0x03,
                        static_cast<uint8_t>(csum_start), static_cast<uint8_t>(csum_start >> 8), 16, 0};
        ASSERT_TRUE(send(a_, packet(kMacC, kMacA, over6 ? 0x86dd : 0x0800, body, header)));
        auto got = drain(c_);
        ASSERT_EQ(got.size(), 3u);
        Bytes joined;
        for (size_t i = 0; i < got.size(); ++i) {
            const auto& p = got[i];
            ASSERT_EQ(p.size(), 12 + 14 + ip_size + 20 + 1000);
            EXPECT_TRUE(std::all_of(p.begin(), p.begin() + 12, [](uint8_t b) { return b == 0; })) << "no offload";
            const uint8_t* ip = &p[26];
            const uint8_t* t = ip + ip_size;
            uint32_t pseudo;
            if (over6) {
                EXPECT_EQ(ip[4] << 8 | ip[5], 1020);
                pseudo = 6 + 1020 + (0xffff - internet_checksum(ip + 8, 32));
            } else {
                EXPECT_EQ(ip[2] << 8 | ip[3], 1040);
                EXPECT_EQ(ip[4] << 8 | ip[5], 0x1234 + static_cast<int>(i)) << "consecutive IDs";
                EXPECT_EQ(internet_checksum(ip, 20), 0) << "IPv4 header checksum";
                pseudo = 6 + 1020 + (0xffff - internet_checksum(ip + 12, 8));
            }
            EXPECT_EQ(internet_checksum(t, 1020, pseudo), 0) << "TCP checksum of segment " << i;
            uint32_t sequence = static_cast<uint32_t>(t[4] << 24 | t[5] << 16 | t[6] << 8 | t[7]);
            EXPECT_EQ(sequence, static_cast<uint32_t>(0xffffff00u + 1000 * i));
            EXPECT_EQ(t[13], i == 2 ? 0x19 : 0x10) << "FIN and PSH on the last only";
            joined.insert(joined.end(), t + 20, t + 1020);
        }
        EXPECT_EQ(joined, payload);
    }
    EXPECT_EQ(counters_[c_].drop_offload, 0u);
    EXPECT_EQ(counters_[c_].segments, 6u) << "3 segments each over IPv4 and IPv6";
    // What cannot be segmented (not TCP) is still dropped and counted.
    Bytes udp_gso = {1, 1, 0, 0, 0xe8, 0x03, 34, 0, 6, 0};
    ASSERT_TRUE(send(a_, packet(kMacC, kMacA, 0x0800, ipv4("10.0.0.2", 17), udp_gso)));
    EXPECT_TRUE(drain(c_).empty());
    EXPECT_EQ(counters_[c_].drop_offload, 1u);
}

// What one frame may cost the shared worker: a fuzzer's broadcast TSO
// frame was segmented for every guest that takes none, and a gso_size of
// 1 asks for a segment per payload byte. A gso_size below 48 is refused;
// only a frame addressed to the guest is segmented, and only when all its
// segments fit in its queue.
TEST_F(SwitchTest, SegmentationIsBoundedByTheGuestsQueue) {
    fabric_.set_up(c_, {});
    Bytes tcp(20, 0);
    tcp[12] = 0x50;
    auto tso = [&](const Mac& to, uint16_t mss, size_t payload) {
        Bytes body = ipv4("10.0.0.2");
        body.insert(body.end(), tcp.begin(), tcp.end());
        body.insert(body.end(), payload, 0x5a);
        Bytes header = {0, 1, 0, 0, static_cast<uint8_t>(mss), static_cast<uint8_t>(mss >> 8)};
        return packet(to, kMacA, 0x0800, body, header);
    };
    // Flooded: C would discard the segments (not its MAC), so none are made.
    ASSERT_TRUE(send(a_, tso(kBroadcast, 1000, 3000)));
    EXPECT_TRUE(drain(c_).empty());
    EXPECT_EQ(counters_[c_].drop_offload, 1u);
    // gso_size 1 (60,000 segments) is refused at once: below Linux's
    // smallest MSS, 48.
    EXPECT_FALSE(send(a_, tso(kMacC, 1, 60000)));
    EXPECT_EQ(counters_[a_].drop_malformed, 1u);
    // gso_size 48: 1,250 segments would be more than a queue ever holds.
    ASSERT_TRUE(send(a_, tso(kMacC, 48, 60000)));
    EXPECT_TRUE(drain(c_).empty());
    EXPECT_EQ(counters_[c_].drop_offload, 2u);
    EXPECT_EQ(counters_[c_].segments, 0u);
    // As many segments as the queue holds are made; one more frame's
    // segments would not fit and the frame is dropped whole.
    size_t mss = 100;
    ASSERT_TRUE(send(a_, tso(kMacC, static_cast<uint16_t>(mss), (Switch::kQueueLimit - 1) * mss)));
    ASSERT_TRUE(send(a_, tso(kMacC, static_cast<uint16_t>(mss), 2 * mss)));
    EXPECT_EQ(counters_[c_].segments, Switch::kQueueLimit - 1);
    EXPECT_EQ(counters_[c_].drop_queue_full, 1u);
    EXPECT_EQ(drain(c_).size(), Switch::kQueueLimit - 1);
    ASSERT_TRUE(send(a_, tso(kMacC, static_cast<uint16_t>(mss), 2 * mss)));
    EXPECT_EQ(drain(c_).size(), 2u) << "room again once the guest took its frames";
    EXPECT_EQ(counters_[c_].out_packets, Switch::kQueueLimit + 1);
}

}  // namespace
}  // namespace hospes

// hospes-netback's --port and --uplink options: a bad one is one error that
// names the option and what is wrong with it.
TEST(NetbackOptions, PortsAndUplinksAreParsedAndBadOnesNamed) {
    auto port = hospes::netback::parse_port("web1,mac=02:00:00:00:00:0a,ip=10.0.0.2,tx_bps=12M,weight=3");
    ASSERT_TRUE(port) << port.error().message;
    EXPECT_EQ(port->name, "web1");
    EXPECT_EQ(port->policy.tx.bps, 12u << 20);
    EXPECT_EQ(port->policy.weight, 3u);
    auto uplink = hospes::netback::parse_uplink("tap=up0,bridge=br0,bps=100M,pps_burst=50");
    ASSERT_TRUE(uplink) << uplink.error().message;
    EXPECT_EQ(uplink->tap, "up0");
    EXPECT_EQ(uplink->bridge, "br0");
    EXPECT_EQ(uplink->limits.bps, 100u << 20);
    EXPECT_EQ(uplink->limits.pps_burst, 50u);

    auto error = [](auto result) { return result ? std::string("(accepted)") : result.error().message; };
    EXPECT_EQ(error(hospes::netback::parse_uplink("tap=up0,mac=02:00:00:00:00:01")),
              "--uplink 'tap=up0,mac=02:00:00:00:00:01': unknown option 'mac=02:00:00:00:00:01' (expected tap=, "
              "bridge=, pps=, bps=, pps_burst= or bps_burst=)");
    EXPECT_EQ(error(hospes::netback::parse_uplink("bps=10M")), "--uplink 'bps=10M': give tap=NAME, bridge=BRIDGE or both");
    EXPECT_EQ(error(hospes::netback::parse_uplink("tap=a/b")),
              "--uplink 'tap=a/b': 'a/b' is not a valid interface name (1 to 15 characters, no '/', ':', '%' or spaces)");
    EXPECT_NE(error(hospes::netback::parse_uplink("tap=up0,bps=lots")).find("--uplink"), std::string::npos);
    EXPECT_NE(error(hospes::netback::parse_port("web1,colour=red")).find("unknown option 'colour=red'"),
              std::string::npos);
}
