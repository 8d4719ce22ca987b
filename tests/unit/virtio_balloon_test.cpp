// virtio-balloon driven by the fake driver: inflated and reported pages
// leave the host's memory (they read back as zeros), frames outside RAM
// are ignored, and the config space carries the host's target and the
// driver's count.
#include "support/fake_driver.hpp"
#include "devices/virtio/balloon.hpp"

#include <algorithm>
#include <cstring>

#include <gtest/gtest.h>

namespace hospes {
namespace {

using test_support::FakeDriver;

constexpr uint64_t kPage = devices::VirtioBalloon::kPageSize;

bool all_zero(std::span<const uint8_t> bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

TEST(VirtioBalloonDevice, InflatedPagesGoBackToTheHost) {
    devices::VirtioBalloon balloon;
    FakeDriver driver(balloon);
    ASSERT_TRUE(driver.start());
    uint64_t page = driver.alloc(2 * kPage, kPage);
    std::memset(driver.bytes(page, 2 * kPage).data(), 0xab, 2 * kPage);
    // Two frame numbers: the first page, and one far outside RAM.
    uint64_t pfns = driver.alloc(8);
    driver.put<uint32_t>(pfns, static_cast<uint32_t>(page / kPage));
    driver.put<uint32_t>(pfns + 4, 0xfffffff0u);
    driver.add_chain(0, {{pfns, 8, false}});
    driver.kick(0);
    ASSERT_TRUE(driver.next_used(0));
    EXPECT_TRUE(all_zero(driver.bytes(page, kPage)));
    EXPECT_EQ(driver.bytes(page + kPage, kPage)[0], 0xab) << "the page next to it is kept";
    EXPECT_EQ(balloon.discarded_bytes(), kPage);
    EXPECT_TRUE(driver.failures().empty());

    // Deflating needs nothing from the host: the page is simply used again.
    driver.add_chain(1, {{pfns, 4, false}});
    driver.kick(1);
    ASSERT_TRUE(driver.next_used(1));
    driver.bytes(page, kPage)[0] = 1;
    EXPECT_EQ(driver.bytes(page, kPage)[0], 1);
}

TEST(VirtioBalloonDevice, ReportedFreeRangesGoBackToTheHost) {
    devices::VirtioBalloon balloon;
    FakeDriver driver(balloon);
    ASSERT_TRUE(driver.start());
    uint64_t range = driver.alloc(4 * kPage, kPage);
    std::memset(driver.bytes(range, 4 * kPage).data(), 0xcd, 4 * kPage);
    // A range that is not page-aligned keeps its partial pages.
    driver.add_chain(2, {{range, static_cast<uint32_t>(2 * kPage), true}, {range + 2 * kPage + 100, 1000, true}});
    driver.kick(2);
    ASSERT_TRUE(driver.next_used(2));
    EXPECT_TRUE(all_zero(driver.bytes(range, 2 * kPage)));
    EXPECT_EQ(driver.bytes(range + 2 * kPage, kPage)[100], 0xcd);
    EXPECT_EQ(balloon.discarded_bytes(), 2 * kPage);
}

TEST(VirtioBalloonDevice, ConfigCarriesTargetAndActual) {
    devices::VirtioBalloon balloon;
    balloon.set_target_pages(300);
    uint8_t config[8] = {};
    balloon.read_config(0, config);
    uint32_t target;
    std::memcpy(&target, config, 4);
    EXPECT_EQ(target, 300u);
    uint32_t actual = 120;
    balloon.write_config(4, {reinterpret_cast<uint8_t*>(&actual), 4});
    EXPECT_EQ(balloon.actual_pages(), 120u);
    // num_pages is the host's; a write there, or past the fields, is ignored.
    balloon.write_config(0, {reinterpret_cast<uint8_t*>(&actual), 4});
    balloon.write_config(64, {reinterpret_cast<uint8_t*>(&actual), 4});
    EXPECT_EQ(balloon.target_pages(), 300u);
    uint8_t past[4] = {1, 1, 1, 1};
    balloon.read_config(100, past);
    EXPECT_TRUE(all_zero(past));
}

}  // namespace
}  // namespace hospes
