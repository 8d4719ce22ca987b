// --disk, --net and --console specs: what parses, and that every malformed
// spec gives an error naming the option and the offending part.
#include <gtest/gtest.h>

#include "cli/device_options.hpp"

namespace hospes::cli {
namespace {

TEST(DiskSpec, PathAndFlags) {
    auto plain = parse_disk("/var/lib/hospes/web1.img");
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->path, "/var/lib/hospes/web1.img");
    EXPECT_FALSE(plain->read_only);
    EXPECT_FALSE(plain->direct);
    auto ro = parse_disk("/dev/vg0/web1,ro,direct");
    ASSERT_TRUE(ro);
    EXPECT_EQ(ro->path, "/dev/vg0/web1");
    EXPECT_TRUE(ro->read_only);
    EXPECT_TRUE(ro->direct);
    EXPECT_FALSE(parse_disk("a.img,ro,rw")->read_only) << "the last of ro/rw wins";
}

TEST(DiskSpec, Malformed) {
    for (auto bad : {"", ",ro", "a.img,", "a.img,readonly", "a.img,ro,,"}) {
        auto r = parse_disk(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().kind, ErrorKind::BadInput);
        EXPECT_EQ(r.error().message.rfind("--disk", 0), 0u) << r.error().message;
    }
    EXPECT_NE(parse_disk("a.img,rox").error().message.find("'rox'"), std::string::npos);
}

TEST(NetSpec, TapBridgeAndMac) {
    auto tap = parse_net("tap=vif1.0");
    ASSERT_TRUE(tap);
    EXPECT_EQ(tap->tap, "vif1.0");
    EXPECT_TRUE(tap->bridge.empty());
    EXPECT_FALSE(tap->mac);
    auto bridge = parse_net("bridge=xenbr0,mac=02:16:3E:0a:0b:0c");
    ASSERT_TRUE(bridge);
    EXPECT_TRUE(bridge->tap.empty());
    EXPECT_EQ(bridge->bridge, "xenbr0");
    ASSERT_TRUE(bridge->mac);
    EXPECT_EQ(*bridge->mac, (std::array<uint8_t, 6>{0x02, 0x16, 0x3e, 0x0a, 0x0b, 0x0c}));
    auto both = parse_net("tap=web1,bridge=br0");
    ASSERT_TRUE(both);
    EXPECT_EQ(both->tap, "web1");
    EXPECT_EQ(both->bridge, "br0");
    EXPECT_EQ(both->tx_bps, 0u);
    auto capped = parse_net("tap=web1,tx_bps=1250000,tx_bps_burst=62500");
    ASSERT_TRUE(capped);
    EXPECT_EQ(capped->tx_bps, 1250000u);
    EXPECT_EQ(capped->tx_bps_burst, 62500u);
}

TEST(NetSpec, Malformed) {
    for (auto bad : {"", "tap", "tap=", "bridge=", "mac=02:00:00:00:00:01", "tap=a/b", "tap=has space",
                     "tap=waytoolonginterfacename", "tap=t%d", "tap=t0,colour=red", "tap=t0,mac=01:00:00:00:00:01",
                     "tap=t0,mac=00:00:00:00:00:00", "tap=t0,mac=02:00:00:00:00", "tap=t0,mac=02:00:00:00:00:1",
                     "tap=t0,mac=02:00:00:00:00:0g", "tap=t0,mac=02-00-00-00-00-01", "tap=t0,mac=02:00:00:00:00:01:02",
                     "tap=t0,tx_bps=0", "tap=t0,tx_bps=-1", "tap=t0,tx_bps=1e6", "tap=t0,tx_bps_burst=",
                     "tap=t0,tx_bps=99999999999999999999"}) {
        auto r = parse_net(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().kind, ErrorKind::BadInput);
        EXPECT_EQ(r.error().message.rfind("--net", 0), 0u) << r.error().message;
    }
}

TEST(ConsoleSpec, SerialOrVirtio) {
    EXPECT_EQ(parse_console("serial").value(), ConsoleKind::Serial);
    EXPECT_EQ(parse_console("virtio").value(), ConsoleKind::Virtio);
    EXPECT_FALSE(parse_console("hvc0"));
    EXPECT_FALSE(parse_console("Serial"));
}

}  // namespace
}  // namespace hospes::cli
