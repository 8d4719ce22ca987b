// virtio-rng driven by the fake driver: buffers filled, bad chains refused.
#include "support/fake_driver.hpp"
#include "devices/virtio/rng.hpp"
#include <gtest/gtest.h>
namespace hospes { namespace {
TEST(VirtioRngDevice, FillsWritableBuffers) {
    devices::VirtioRng rng;
    test_support::FakeDriver driver(rng);
    ASSERT_TRUE(driver.start());
    uint64_t a = driver.alloc(64), b = driver.alloc(32);
    driver.add_chain(0, {{a, 64, true}, {b, 32, true}});
    driver.kick(0);
    auto used = driver.next_used(0);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->length, 96u);
    EXPECT_EQ(driver.interrupts(), 1);
    EXPECT_FALSE(driver.next_used(0));
}
TEST(VirtioRngDevice, DescriptorOutsideMemoryNeedsReset) {
    devices::VirtioRng rng;
    test_support::FakeDriver driver(rng);
    ASSERT_TRUE(driver.start());
    driver.add_chain(0, {{uint64_t{1} << 40, 64, true}});
    driver.kick(0);
    EXPECT_EQ(driver.failures().size(), 1u);
    EXPECT_FALSE(driver.next_used(0));
}
}}
