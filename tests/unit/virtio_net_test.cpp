// virtio-net driven by the fake driver over a real tap, in a network
// namespace of the test's own: frames the guest sends are read back from a
// packet socket on the tap, frames sent into the tap land in the guest's
// receive buffers, and malformed chains end as dropped or NEEDS_RESET.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <numeric>

#include <gtest/gtest.h>

#include "backends/tap.hpp"
#include "devices/virtio/net.hpp"
#include "support/fake_driver.hpp"
#include "support/net_namespace.hpp"

namespace hospes {
namespace {

using devices::NetHeader;
using devices::VirtioNet;
using test_support::FakeDriver;
using test_support::PacketSocket;
using test_support::private_network;
namespace nf = devices::net_feature;

constexpr uint16_t kRx = VirtioNet::kRxQueue, kTx = VirtioNet::kTxQueue;
constexpr uint16_t kEtherType = 0x88b5;  // IEEE local experimental: nothing in the kernel answers it

// A frame to a broadcast address carrying `payload_size` counting bytes.
std::vector<uint8_t> make_frame(size_t payload_size, uint8_t seed) {
    std::vector<uint8_t> frame(14 + payload_size);
    std::memset(frame.data(), 0xff, 6);
    uint8_t source[6] = {0x02, 0, 0, 0, 0, seed};
    std::memcpy(frame.data() + 6, source, 6);
    frame[12] = kEtherType >> 8;
    frame[13] = kEtherType & 0xff;
    for (size_t i = 0; i < payload_size; ++i) frame[14 + i] = static_cast<uint8_t>(seed + i * 7);
    return frame;
}

int control_socket() { return ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); }

bool set_mtu(const std::string& interface, int mtu) {
    UniqueFd s(control_socket());
    ifreq request{};
    std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
    request.ifr_mtu = mtu;
    return ::ioctl(s.get(), SIOCSIFMTU, &request) == 0;
}

// The tap's TSO state as ethtool reports it (TUNSETOFFLOAD sets it).
int tso_enabled(const std::string& interface) {
    UniqueFd s(control_socket());
    ethtool_value value{};
    value.cmd = ETHTOOL_GTSO;
    ifreq request{};
    std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
    request.ifr_data = reinterpret_cast<char*>(&value);
    if (::ioctl(s.get(), SIOCETHTOOL, &request) != 0) return -1;
    return static_cast<int>(value.data);
}

class VirtioNetTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (auto why = private_network(); !why.empty()) GTEST_SKIP() << why;
        // No IPv6 chatter (router solicitations) from the kernel into the tap.
        std::ofstream("/proc/sys/net/ipv6/conf/default/disable_ipv6") << "1";
        auto tap = backends::Tap::open("vnet-test0", "");
        ASSERT_TRUE(tap) << tap.error().message;
        auto device = VirtioNet::create(std::make_unique<backends::Tap>(std::move(*tap)), std::nullopt);
        ASSERT_TRUE(device) << device.error().message;
        net_ = std::move(*device);
        peer_.emplace("vnet-test0");
        ASSERT_TRUE(peer_->valid());
        driver_.emplace(*net_);
    }
    void TearDown() override {
        driver_.reset();  // resets the device before it goes
        net_.reset();
    }

    uint64_t all_features() const { return net_->features() | virtio::kFeatureVersion1; }
    // Waits until the tap has a packet for the device, then lets it read.
    void pump_rx() {
        pollfd p{net_->backend_events()[0].fd, POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 2000), 1) << "no packet reached the tap";
        net_->backend_ready(0);
    }
    // A transmit chain: the header (zeroed) and the frame in two buffers.
    uint16_t add_tx(const std::vector<uint8_t>& frame) {
        uint64_t header = driver_->alloc(sizeof(NetHeader)), data = driver_->alloc(frame.size());
        driver_->fill(data, frame);
        return *driver_->add_chain(kTx, {{header, sizeof(NetHeader), false},
                                         {data, static_cast<uint32_t>(frame.size()), false}});
    }
    uint64_t add_rx(uint32_t size) {
        uint64_t at = driver_->alloc(size);
        driver_->add_chain(kRx, {{at, size, true}});
        return at;
    }

    std::unique_ptr<VirtioNet> net_;
    std::optional<PacketSocket> peer_;
    std::optional<FakeDriver> driver_;
};

TEST_F(VirtioNetTest, ConfigSpaceHasMacAndLinkUp) {
    uint8_t config[8];
    net_->read_config(0, config);
    EXPECT_EQ(0, std::memcmp(config, net_->mac().data(), 6));
    EXPECT_EQ(config[0] & 3, 2) << "random MAC: unicast and locally administered";
    EXPECT_EQ(config[6], 1);  // VIRTIO_NET_S_LINK_UP
    uint8_t beyond[4] = {1, 1, 1, 1};
    net_->read_config(100, beyond);
    EXPECT_EQ(beyond[0] | beyond[1] | beyond[2] | beyond[3], 0);
}

TEST_F(VirtioNetTest, TransmittedFramesReachTheTap) {
    ASSERT_TRUE(driver_->start(all_features()));
    std::vector<std::vector<uint8_t>> frames = {make_frame(46, 1), make_frame(1486, 2), make_frame(300, 3)};
    for (auto& frame : frames) add_tx(frame);
    driver_->kick(kTx);
    for (auto& frame : frames) EXPECT_EQ(peer_->receive(), frame);
    for (int i = 0; i < 3; ++i) {
        auto used = driver_->next_used(kTx);
        ASSERT_TRUE(used);
        EXPECT_EQ(used->length, 0u);
    }
    EXPECT_EQ(driver_->interrupts(), 1) << "one interrupt per batch";
    EXPECT_EQ(net_->stats().tx_packets, 3u);
    EXPECT_TRUE(driver_->failures().empty());
}

TEST_F(VirtioNetTest, TransmitCapHoldsFramesInTheRingUntilCreditComes) {
    // 100,000 bytes/s with a burst of 1,000 bytes: frames of 1,014 bytes
    // (a header and 1,000) go while the balance is positive, each taking
    // its whole cost, and the rest wait in the ring for the cap's timer:
    // ten need (10,140 - 1,000 - the last one's debt of 1,014) / 100,000 s.
    ASSERT_TRUE(net_->set_tx_cap(100000, 1000));
    ASSERT_TRUE(driver_->start(all_features()));
    for (int i = 0; i < 10; ++i) add_tx(make_frame(1000, static_cast<uint8_t>(i)));
    auto start = std::chrono::steady_clock::now();
    driver_->kick(kTx);
    EXPECT_EQ(driver_->used_index(kTx), 1) << "one frame's burst, the rest wait";
    int timer = net_->backend_events()[2].fd;
    while (driver_->used_index(kTx) < 10) {
        pollfd p{timer, POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 2000), 1) << "the cap's timer never fired";
        net_->backend_ready(2);
    }
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GE(elapsed, 0.0812) << "81.3 ms at the cap";
    EXPECT_LT(elapsed, 0.5);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(peer_->receive(), make_frame(1000, static_cast<uint8_t>(i)));
    auto counters = net_->counters();
    auto sent = std::find_if(counters.begin(), counters.end(),
                             [](const auto& c) { return std::string_view(c.first) == "tx_bytes"; });
    ASSERT_NE(sent, counters.end());
    EXPECT_EQ(sent->second, 10140u) << "frame bytes, without the virtio-net header";
    EXPECT_TRUE(driver_->failures().empty());
}

TEST_F(VirtioNetTest, BatchOf32IsOneInterrupt) {
    ASSERT_TRUE(driver_->start(all_features()));
    for (int i = 0; i < 32; ++i) add_tx(make_frame(50, static_cast<uint8_t>(i)));
    driver_->kick(kTx);
    for (int i = 0; i < 32; ++i) ASSERT_EQ(peer_->receive(), make_frame(50, static_cast<uint8_t>(i)));
    EXPECT_EQ(driver_->used_index(kTx), 32);
    EXPECT_EQ(driver_->interrupts(), 1);
}

TEST_F(VirtioNetTest, ReceivedFrameLandsWithHeader) {
    ASSERT_TRUE(driver_->start(virtio::kFeatureVersion1 | nf::kMac));  // no offloads, no mergeable buffers
    uint64_t buffer = add_rx(2048);
    auto frame = make_frame(700, 9);
    ASSERT_TRUE(peer_->send(frame));
    pump_rx();
    auto used = driver_->next_used(kRx);
    ASSERT_TRUE(used);
    ASSERT_EQ(used->length, sizeof(NetHeader) + frame.size());
    auto header = driver_->get<NetHeader>(buffer);
    EXPECT_EQ(header.flags, 0);
    EXPECT_EQ(header.gso_type, 0);
    EXPECT_EQ(header.num_buffers, 1);
    auto data = driver_->bytes(buffer + sizeof(NetHeader), frame.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), frame.begin()));
    EXPECT_EQ(driver_->interrupts(), 1);
}

TEST_F(VirtioNetTest, MergeableBuffersCarryOneFrameAcrossSeveral) {
    ASSERT_TRUE(set_mtu("vnet-test0", 9000));
    ASSERT_TRUE(driver_->start(all_features()));
    std::vector<uint64_t> buffers;
    for (int i = 0; i < 4; ++i) buffers.push_back(add_rx(1024));
    auto frame = make_frame(2986, 4);  // 3000 bytes + 12 of header: three buffers
    ASSERT_TRUE(peer_->send(frame));
    pump_rx();
    std::vector<uint8_t> received;
    std::vector<uint32_t> lengths;
    while (auto used = driver_->next_used(kRx)) {
        lengths.push_back(used->length);
        auto bytes = driver_->bytes(buffers[lengths.size() - 1], used->length);
        received.insert(received.end(), bytes.begin(), bytes.end());
    }
    ASSERT_EQ(lengths, (std::vector<uint32_t>{1024, 1024, 964}));
    NetHeader header;
    std::memcpy(&header, received.data(), sizeof(header));
    EXPECT_EQ(header.num_buffers, 3);
    EXPECT_TRUE(std::equal(frame.begin(), frame.end(), received.begin() + sizeof(NetHeader)));
    // The fourth buffer is kept for the next frame.
    auto next = make_frame(100, 5);
    ASSERT_TRUE(peer_->send(next));
    pump_rx();
    auto used = driver_->next_used(kRx);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->length, sizeof(NetHeader) + next.size());
    EXPECT_EQ(driver_->get<NetHeader>(buffers[3]).num_buffers, 1);
}

TEST_F(VirtioNetTest, FramesWaitInTheTapUntilBuffersCome) {
    ASSERT_TRUE(driver_->start(all_features()));
    auto first = make_frame(60, 1), second = make_frame(61, 2);
    ASSERT_TRUE(peer_->send(first));
    ASSERT_TRUE(peer_->send(second));
    pump_rx();
    EXPECT_EQ(driver_->used_index(kRx), 0);
    EXPECT_EQ(net_->stats().rx_dropped, 0u);
    // Both arrive on one notification once the guest adds buffers.
    uint64_t a = add_rx(2048), b = add_rx(2048);
    driver_->kick(kRx);
    EXPECT_EQ(driver_->used_index(kRx), 2);
    EXPECT_EQ(driver_->bytes(a + sizeof(NetHeader), 1)[0], first[0]);
    EXPECT_EQ(driver_->bytes(a + 6 + sizeof(NetHeader), 6)[5], 1);
    EXPECT_EQ(driver_->bytes(b + 6 + sizeof(NetHeader), 6)[5], 2);
    EXPECT_EQ(net_->stats().rx_packets, 2u);
}

TEST_F(VirtioNetTest, BufferWithoutPacketIsKeptForTheNext) {
    ASSERT_TRUE(driver_->start(all_features()));
    add_rx(2048);
    driver_->kick(kRx);  // nothing in the tap yet
    EXPECT_EQ(driver_->used_index(kRx), 0);
    ASSERT_TRUE(peer_->send(make_frame(80, 7)));
    pump_rx();
    EXPECT_EQ(driver_->used_index(kRx), 1);
}

TEST_F(VirtioNetTest, FrameLargerThanTheBufferIsDropped) {
    ASSERT_TRUE(set_mtu("vnet-test0", 9000));
    ASSERT_TRUE(driver_->start(virtio::kFeatureVersion1));
    add_rx(1000);
    ASSERT_TRUE(peer_->send(make_frame(2000, 1)));
    pump_rx();
    EXPECT_EQ(driver_->used_index(kRx), 0);
    EXPECT_EQ(net_->stats().rx_dropped, 1u);
    ASSERT_TRUE(peer_->send(make_frame(200, 2)));  // the buffer still serves the next one
    pump_rx();
    EXPECT_EQ(driver_->used_index(kRx), 1);
}

TEST_F(VirtioNetTest, MalformedTransmitChainsAreDroppedAndReturned) {
    ASSERT_TRUE(driver_->start(all_features()));
    uint64_t buffer = driver_->alloc(VirtioNet::kMaxPacket + 1);
    driver_->add_chain(kTx, {{buffer, 0, false}});                                 // no bytes at all
    driver_->add_chain(kTx, {{buffer, 8, false}});                                 // shorter than the header
    driver_->add_chain(kTx, {{buffer, 64, false}, {buffer + 64, 64, true}});       // device-writable part
    driver_->add_chain(kTx, {{buffer, static_cast<uint32_t>(VirtioNet::kMaxPacket + 1), false}});  // too large
    auto good = make_frame(64, 3);
    add_tx(good);
    driver_->kick(kTx);
    EXPECT_EQ(peer_->receive(), good);
    EXPECT_EQ(driver_->used_index(kTx), 5);
    EXPECT_EQ(net_->stats().tx_malformed, 4u);
    EXPECT_EQ(net_->stats().tx_packets, 1u);
    EXPECT_TRUE(driver_->failures().empty());
}

TEST_F(VirtioNetTest, BufferOutsideGuestMemoryNeedsReset) {
    ASSERT_TRUE(driver_->start(all_features()));
    driver_->add_chain(kTx, {{uint64_t{1} << 40, 64, false}});
    driver_->kick(kTx);
    ASSERT_EQ(driver_->failures().size(), 1u);
    EXPECT_EQ(driver_->used_index(kTx), 0);
    // Stopped until reset: neither queue nor the tap moves it again.
    add_tx(make_frame(64, 1));
    driver_->kick(kTx);
    add_rx(2048);
    driver_->kick(kRx);
    net_->backend_ready(0);
    net_->backend_ready(1);
    EXPECT_EQ(driver_->failures().size(), 1u);
    EXPECT_EQ(driver_->used_index(kRx), 0);
    // A reset and a new start bring it back.
    net_->reset();
    ASSERT_TRUE(driver_->start(all_features()));
    auto frame = make_frame(64, 2);
    add_tx(frame);
    driver_->kick(kTx);
    EXPECT_EQ(peer_->receive(), frame);
}

TEST_F(VirtioNetTest, DescriptorLoopNeedsReset) {
    ASSERT_TRUE(driver_->start(all_features()));
    uint64_t buffer = driver_->alloc(64);
    driver_->descriptor(kTx, 5, buffer, 64, FakeDriver::kNext, 5);
    driver_->make_available(kTx, 5);
    driver_->kick(kTx);
    EXPECT_EQ(driver_->failures().size(), 1u);
}

TEST_F(VirtioNetTest, ReceiveChainTooSmallForTheHeaderIsReturned) {
    ASSERT_TRUE(driver_->start(all_features()));
    add_rx(4);
    uint64_t good = add_rx(2048);
    ASSERT_TRUE(peer_->send(make_frame(64, 1)));
    pump_rx();
    auto first = driver_->next_used(kRx);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->length, 0u);
    auto second = driver_->next_used(kRx);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->length, sizeof(NetHeader) + 78);
    EXPECT_EQ(driver_->get<NetHeader>(good).num_buffers, 1);
    EXPECT_EQ(net_->stats().rx_malformed, 1u);
    EXPECT_TRUE(driver_->failures().empty());
}

TEST_F(VirtioNetTest, OffloadsFollowTheGuestsFeatures) {
    EXPECT_EQ(tso_enabled("vnet-test0"), 0);
    ASSERT_TRUE(driver_->start(virtio::kFeatureVersion1 | nf::kGuestCsum | nf::kGuestTso4));
    EXPECT_EQ(tso_enabled("vnet-test0"), 1);
    net_->reset();
    EXPECT_EQ(tso_enabled("vnet-test0"), 0);
    ASSERT_TRUE(driver_->start(virtio::kFeatureVersion1 | nf::kGuestTso4));  // TSO without checksums: not enabled
    EXPECT_EQ(tso_enabled("vnet-test0"), 0);
}

// Tap lifecycle and configuration errors, in a namespace of their own.
class TapTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (auto why = private_network(); !why.empty()) GTEST_SKIP() << why;
    }
};

TEST_F(TapTest, CreatedTapGoesAwayAndKernelNamesIt) {
    {
        auto tap = backends::Tap::open("", "");
        ASSERT_TRUE(tap) << tap.error().message;
        EXPECT_EQ(tap->name().rfind("hospes", 0), 0u) << tap->name();
        EXPECT_FALSE(tap->persistent());
        EXPECT_NE(::if_nametoindex(tap->name().c_str()), 0u);
    }
    EXPECT_EQ(::if_nametoindex("hospes0"), 0u);
}

TEST_F(TapTest, PersistentTapIsUsedAndLeftInPlace) {
    {
        UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
        ifreq request{};
        std::strcpy(request.ifr_name, "ptap0");
        request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        ASSERT_EQ(::ioctl(fd.get(), TUNSETIFF, &request), 0);
        ASSERT_EQ(::ioctl(fd.get(), TUNSETPERSIST, 1), 0);
    }
    {
        auto tap = backends::Tap::open("ptap0", "");
        ASSERT_TRUE(tap) << tap.error().message;
        EXPECT_TRUE(tap->persistent());
        auto busy = backends::Tap::open("ptap0", "");
        ASSERT_FALSE(busy);
        EXPECT_NE(busy.error().message.find("in use"), std::string::npos) << busy.error().message;
    }
    EXPECT_NE(::if_nametoindex("ptap0"), 0u);
}

TEST_F(TapTest, ConfigurationErrorsNameTheCulprit) {
    auto no_bridge = backends::Tap::open("t0", "nosuchbr");
    ASSERT_FALSE(no_bridge);
    EXPECT_EQ(no_bridge.error().kind, ErrorKind::BadInput);
    EXPECT_EQ(no_bridge.error().message, "bridge nosuchbr does not exist");
    EXPECT_EQ(::if_nametoindex("t0"), 0u) << "a refused tap is not left behind";

    auto not_a_bridge = backends::Tap::open("t0", "lo");
    ASSERT_FALSE(not_a_bridge);
    EXPECT_EQ(not_a_bridge.error().message, "lo is not a bridge");

    auto not_a_tap = backends::Tap::open("lo", "");
    ASSERT_FALSE(not_a_tap);
    EXPECT_NE(not_a_tap.error().message.find("not a tap"), std::string::npos) << not_a_tap.error().message;

    auto too_long = backends::Tap::open("a-name-far-too-long", "");
    ASSERT_FALSE(too_long);
    EXPECT_EQ(too_long.error().kind, ErrorKind::BadInput);
}

TEST_F(TapTest, JoinsABridgeAndLeavesWithIt) {
    // The bridge is made with the same ioctl family brctl uses.
    UniqueFd s(control_socket());
    if (::ioctl(s.get(), SIOCBRADDBR, const_cast<char*>("testbr0")) != 0)
        GTEST_SKIP() << "cannot create a bridge: " << std::strerror(errno);
    {
        auto tap = backends::Tap::open("t1", "testbr0");
        ASSERT_TRUE(tap) << tap.error().message;
        char link[64] = {};
        ASSERT_GT(::readlink("/sys/class/net/t1/brport/bridge", link, sizeof(link) - 1), 0);
        EXPECT_NE(std::string(link).find("testbr0"), std::string::npos);
    }
    EXPECT_EQ(::if_nametoindex("t1"), 0u);

    // A persistent tap is put back as it was found: out of the bridge.
    {
        UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
        ifreq request{};
        std::strcpy(request.ifr_name, "ptap1");
        request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        ASSERT_EQ(::ioctl(fd.get(), TUNSETIFF, &request), 0);
        ASSERT_EQ(::ioctl(fd.get(), TUNSETPERSIST, 1), 0);
    }
    {
        auto tap = backends::Tap::open("ptap1", "testbr0");
        ASSERT_TRUE(tap) << tap.error().message;
        EXPECT_EQ(::access("/sys/class/net/ptap1/brport", F_OK), 0);
    }
    EXPECT_NE(::if_nametoindex("ptap1"), 0u);
    EXPECT_NE(::access("/sys/class/net/ptap1/brport", F_OK), 0);
}

}  // namespace
}  // namespace hospes
