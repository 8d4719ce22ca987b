// The inflight log (vhost-user "Inflight I/O tracking") with real queues:
// a back-end that dies with requests popped but not completed, or between
// publishing a used element and clearing its flag, leaves the region so
// that the next one runs exactly the unfinished requests again, oldest
// first, and takes up the available ring after them.
#include <gtest/gtest.h>

#include <vector>

#include "support/fake_driver.hpp"
#include "virtio/inflight.hpp"

namespace hospes {
namespace {

using test_support::FakeDriver;

// Exposes the queues the fake driver sets up, and does nothing else.
class RingsOnly : public virtio::Device {
public:
    uint32_t device_type() const override { return 2; }
    uint64_t features() const override { return 0; }
    std::vector<uint16_t> queue_max_sizes() const override { return {16}; }
    void read_config(uint64_t, std::span<uint8_t>) override {}
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    Result<void> activate(uint64_t, virtio::ActiveQueues queues) override {
        active = queues;
        return {};
    }
    void queue_notify(uint16_t) override {}
    void reset() override {}
    virtio::ActiveQueues active;
};

class InflightTest : public ::testing::Test {
protected:
    void SetUp() override {
        driver_.emplace(device_);
        ASSERT_TRUE(driver_->start(std::nullopt, 16));
        buffer_ = driver_->alloc(64);
    }
    virtio::Queue& queue() { return (*device_.active.queues)[0]; }
    // A queue as a new back-end process sets it up on the same rings, with
    // an inflight log over `area` (resume() is the test's to call).
    struct Backend {
        explicit Backend(std::span<uint8_t> area) : log(area) {}
        virtio::InflightLog log;
        virtio::Queue queue{16};
    };
    std::unique_ptr<Backend> restart(std::span<uint8_t> area) {
        auto b = std::make_unique<Backend>(area);
        b->queue.set_size(16);
        b->queue.set_descriptor_table(queue().descriptor_table());
        b->queue.set_driver_area(queue().driver_area());
        b->queue.set_device_area(queue().device_area());
        EXPECT_TRUE(b->queue.activate(driver_->memory()));
        b->queue.set_inflight_log(&b->log);
        return b;
    }
    uint16_t add() { return *driver_->add_chain(0, {FakeDriver::Buffer{buffer_, 64, true}}); }
    uint16_t pop(virtio::Queue& q) {
        virtio::Chain chain;
        auto popped = q.pop(driver_->memory(), chain);
        EXPECT_TRUE(popped && *popped);
        return chain.head;
    }
    bool empty(virtio::Queue& q) {
        virtio::Chain chain;
        auto popped = q.pop(driver_->memory(), chain);
        return popped && !*popped;
    }

    RingsOnly device_;
    std::optional<FakeDriver> driver_;
    uint64_t buffer_ = 0;
    std::vector<uint8_t> region_ = std::vector<uint8_t>(virtio::inflight_queue_bytes(16));
};

TEST_F(InflightTest, RequestsInFlightAtACrashAreRunAgainOldestFirst) {
    virtio::InflightLog log(region_);
    queue().set_inflight_log(&log);
    EXPECT_EQ(queue().resume(0), 0u);  // a fresh region
    uint16_t a = add(), b = add(), c = add(), d = add();
    EXPECT_EQ(pop(queue()), a);
    EXPECT_EQ(pop(queue()), b);
    EXPECT_EQ(pop(queue()), c);
    EXPECT_EQ(pop(queue()), d);
    ASSERT_TRUE(queue().push(driver_->memory(), b, 1));
    ASSERT_TRUE(queue().push(driver_->memory(), d, 1));
    // The back-end dies; a new one starts from the region alone.
    auto again = restart(region_);
    auto& next = again->queue;
    EXPECT_EQ(next.resume(0), 2u);
    EXPECT_EQ(next.next_available(), 4);
    EXPECT_EQ(pop(next), a);
    EXPECT_EQ(pop(next), c);
    EXPECT_TRUE(empty(next));
    uint16_t e = add();
    EXPECT_EQ(pop(next), e);
    // Completed, they leave the log.
    for (uint16_t head : {a, c, e}) ASSERT_TRUE(next.push(driver_->memory(), head, 1));
    auto third = restart(region_);
    EXPECT_EQ(third->queue.resume(0), 0u);
    EXPECT_EQ(third->queue.next_available(), 5);
}

TEST_F(InflightTest, ABatchPublishedButNotClearedCountsAsDone) {
    virtio::InflightLog log(region_);
    queue().set_inflight_log(&log);
    queue().resume(0);
    uint16_t a = add(), b = add();
    pop(queue());
    pop(queue());
    ASSERT_TRUE(queue().push(driver_->memory(), a, 1));
    // Death between the used index store and clearing b's flag: b is in
    // the used ring, the region still says in flight, with the old index.
    auto* header = reinterpret_cast<virtio::InflightQueueHeader*>(region_.data());
    auto* entries = reinterpret_cast<virtio::InflightDescriptor*>(region_.data() + sizeof(*header));
    uint16_t used_before = header->used_index;
    ASSERT_TRUE(queue().push(driver_->memory(), b, 1));
    entries[b].inflight = 1;
    header->used_index = used_before;
    auto again = restart(region_);
    EXPECT_EQ(again->queue.resume(0), 0u);
    EXPECT_EQ(again->queue.next_available(), 2);
}

TEST_F(InflightTest, GarbageInTheRegionIsBoundedByTheQueue) {
    // The front-end may write anything there: the queue never goes past
    // its own size, and a mismatched region starts afresh.
    std::fill(region_.begin(), region_.end(), 0xff);
    virtio::InflightLog log(region_);
    queue().set_inflight_log(&log);
    EXPECT_EQ(queue().resume(0), 0u);
    auto* header = reinterpret_cast<virtio::InflightQueueHeader*>(region_.data());
    EXPECT_EQ(header->descriptor_count, 16);
    EXPECT_EQ(header->version, 1);
    // A well-formed header over garbage entries: every head marked in flight
    // is at most the queue's 16, the batch head out of range is ignored, and
    // flags that are neither 0 nor 1 count as not in flight.
    auto* entries = reinterpret_cast<virtio::InflightDescriptor*>(region_.data() + sizeof(*header));
    for (uint16_t i = 0; i < 16; ++i) {
        entries[i].inflight = i % 2 ? 1 : 7;
        entries[i].counter = 1000 - i;
    }
    header->last_batch_head = 0xffff;
    header->used_index = 3;
    auto again = restart(region_);
    EXPECT_EQ(again->queue.resume(0), 8u);
    EXPECT_EQ(again->queue.next_available(), 8);  // the used ring's 0 + 8 in flight
    EXPECT_EQ(pop(again->queue), 15);             // the smallest counter first
    EXPECT_EQ(entries[0].inflight, 0);
    // Too small a region is not used at all, and not written.
    std::vector<uint8_t> tiny(8, 0xee);
    auto small = restart(tiny);
    EXPECT_EQ(small->queue.resume(0), 0u);
    EXPECT_EQ(tiny, std::vector<uint8_t>(8, 0xee));
}

}  // namespace
}  // namespace hospes
