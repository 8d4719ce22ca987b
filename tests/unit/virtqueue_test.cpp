// The split virtqueue driven by a fake driver that lays out its rings in
// real guest memory, well-formed and malformed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "virtio/queue.hpp"

namespace hospes::virtio {
namespace {

constexpr uint16_t kNext = 1;
constexpr uint16_t kWrite = 2;
constexpr uint16_t kIndirect = 4;

constexpr uint64_t kRamSize = 1 << 20;
constexpr uint64_t kDescriptors = 0x1000;
constexpr uint64_t kAvail = 0x2000;
constexpr uint64_t kUsed = 0x3000;
constexpr uint64_t kTables = 0x4000;   // indirect tables
constexpr uint64_t kBuffers = 0x10000;  // buffer contents

struct Used {
    uint32_t id, length;
};

// The driver side: writes descriptors and the available ring, reads the
// used ring, all through guest memory as a guest would.
class VirtqueueTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::pair<uint64_t, uint64_t> ranges[] = {{0, kRamSize}};
        auto created = GuestMemory::create(ranges);
        ASSERT_TRUE(created) << created.error().message;
        memory_ = std::move(*created);
    }

    // Configures and activates a queue of `size` with the standard layout.
    void start(uint16_t size, bool event_idx = false) {
        size_ = size;
        queue_.set_size(size);
        queue_.set_descriptor_table(kDescriptors);
        queue_.set_driver_area(kAvail);
        queue_.set_device_area(kUsed);
        queue_.set_event_idx(event_idx);
        auto activated = queue_.activate(memory_);
        ASSERT_TRUE(activated) << activated.error().message;
    }

    template <class T>
    void put(uint64_t address, T value) {
        ASSERT_TRUE(memory_.write_object(address, value));
    }
    template <class T>
    T get(uint64_t address) {
        T value{};
        auto bytes = memory_.slice(address, sizeof(T));
        EXPECT_EQ(bytes.size(), sizeof(T));
        if (bytes.size() == sizeof(T)) std::memcpy(&value, bytes.data(), sizeof(T));
        return value;
    }

    void descriptor(uint64_t table, uint16_t index, uint64_t address, uint32_t length, uint16_t flags = 0,
                    uint16_t next = 0) {
        uint64_t at = table + 16 * uint64_t{index};
        put(at, address);
        put(at + 8, length);
        put(at + 12, flags);
        put(at + 14, next);
    }
    void descriptor(uint16_t index, uint64_t address, uint32_t length, uint16_t flags = 0, uint16_t next = 0) {
        descriptor(kDescriptors, index, address, length, flags, next);
    }

    // Puts `head` in the next available ring slot and publishes it.
    void make_available(uint16_t head) {
        put(kAvail + 4 + 2 * uint64_t(avail_idx_ % size_), head);
        set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
    }
    void set_avail_idx(uint16_t index) {
        avail_idx_ = index;
        put<uint16_t>(kAvail + 2, index);
    }
    void set_avail_flags(uint16_t flags) { put(kAvail, flags); }
    void set_used_event(uint16_t index) { put(kAvail + 4 + 2 * uint64_t{size_}, index); }
    uint16_t avail_event() { return get<uint16_t>(kUsed + 4 + 8 * uint64_t{size_}); }
    uint16_t used_idx() { return get<uint16_t>(kUsed + 2); }
    Used used(uint16_t slot) { return get<Used>(kUsed + 4 + 8 * uint64_t(slot % size_)); }

    // Pops a chain that must be there.
    Chain pop() {
        auto popped = queue_.pop(memory_);
        EXPECT_TRUE(popped) << popped.error().message;
        if (!popped || !*popped) {
            ADD_FAILURE() << "no chain available";
            return {};
        }
        return std::move(**popped);
    }
    // Pops what must be a malformed chain; returns the error message.
    std::string pop_error() {
        auto popped = queue_.pop(memory_);
        if (popped) {
            ADD_FAILURE() << "a malformed chain was accepted";
            return {};
        }
        EXPECT_EQ(popped.error().kind, ErrorKind::Guest);
        EXPECT_FALSE(popped.error().message.empty());
        EXPECT_EQ(popped.error().message.find('\n'), std::string::npos) << "one line";
        return popped.error().message;
    }
    void push(uint16_t head, uint32_t written) {
        auto pushed = queue_.push(memory_, head, written);
        ASSERT_TRUE(pushed) << pushed.error().message;
    }
    // A round trip of a one-buffer chain, to move the indexes along.
    void cycle() {
        descriptor(0, kBuffers, 1);
        make_available(0);
        auto chain = pop();
        push(chain.head, 0);
    }

    // The span is host memory of the guest at `address`.
    bool is_guest(std::span<uint8_t> span, uint64_t address) {
        auto expected = memory_.slice(address, span.size());
        return span.data() == expected.data() && span.size() == expected.size();
    }

    GuestMemory memory_;
    Queue queue_{256};
    uint16_t size_ = 0;
    uint16_t avail_idx_ = 0;
};

// --- Activation and reset --------------------------------------------------

TEST_F(VirtqueueTest, ActivatesPowerOfTwoSizesUpToMax) {
    for (uint16_t size : {1, 2, 128, 256}) {
        queue_.reset();
        start(size);
        EXPECT_TRUE(queue_.ready());
    }
}

TEST_F(VirtqueueTest, RejectsBadSizes) {
    for (uint16_t size : {0, 3, 100, 512}) {
        queue_.reset();
        queue_.set_size(size);
        queue_.set_descriptor_table(kDescriptors);
        queue_.set_driver_area(kAvail);
        queue_.set_device_area(kUsed);
        auto activated = queue_.activate(memory_);
        ASSERT_FALSE(activated) << "size " << size;
        EXPECT_EQ(activated.error().kind, ErrorKind::Guest);
        EXPECT_FALSE(queue_.ready());
    }
}

TEST_F(VirtqueueTest, RejectsMisalignedAreas) {
    struct Case {
        uint64_t descriptors, avail, used;
    };
    for (auto [d, a, u] : {Case{kDescriptors + 8, kAvail, kUsed}, Case{kDescriptors, kAvail + 1, kUsed},
                           Case{kDescriptors, kAvail, kUsed + 2}}) {
        queue_.reset();
        queue_.set_size(16);
        queue_.set_descriptor_table(d);
        queue_.set_driver_area(a);
        queue_.set_device_area(u);
        auto activated = queue_.activate(memory_);
        ASSERT_FALSE(activated) << d << " " << a << " " << u;
        EXPECT_NE(activated.error().message.find("aligned"), std::string::npos) << activated.error().message;
        EXPECT_FALSE(queue_.ready());
    }
}

TEST_F(VirtqueueTest, RejectsAreasOutsideMemory) {
    struct Case {
        uint64_t descriptors, avail, used;
    };
    // Each area in turn ends just past the end of RAM (or starts far beyond).
    for (auto [d, a, u] :
         {Case{kRamSize - 16 * 15, kAvail, kUsed}, Case{kDescriptors, kRamSize - (6 + 2 * 16) + 2, kUsed},
          Case{kDescriptors, kAvail, kRamSize - 132}, Case{~uint64_t{0} - 15, kAvail, kUsed}}) {
        queue_.reset();
        queue_.set_size(16);
        queue_.set_descriptor_table(d);
        queue_.set_driver_area(a);
        queue_.set_device_area(u);
        auto activated = queue_.activate(memory_);
        ASSERT_FALSE(activated) << d << " " << a << " " << u;
        EXPECT_NE(activated.error().message.find("outside guest memory"), std::string::npos)
            << activated.error().message;
    }
}

TEST_F(VirtqueueTest, AcceptsAreasEndingAtEndOfMemory) {
    queue_.set_size(16);
    queue_.set_descriptor_table(kRamSize - 16 * 16);  // ends at the end
    queue_.set_driver_area(kAvail);
    queue_.set_device_area(kRamSize - 0x1000 - 136);
    EXPECT_TRUE(queue_.activate(memory_));
    queue_.reset();
    queue_.set_size(16);
    queue_.set_descriptor_table(kDescriptors);
    queue_.set_driver_area(kRamSize - (6 + 2 * 16));  // ends at the end
    queue_.set_device_area(kRamSize - 0x1000 - 136);
    EXPECT_TRUE(queue_.activate(memory_));
}

TEST_F(VirtqueueTest, ResetReturnsToInitialState) {
    start(16, true);
    cycle();
    queue_.reset();
    EXPECT_FALSE(queue_.ready());
    EXPECT_EQ(queue_.size(), 256) << "size reads as the maximum after reset";
    EXPECT_EQ(queue_.descriptor_table(), 0u);
    EXPECT_EQ(queue_.driver_area(), 0u);
    EXPECT_EQ(queue_.device_area(), 0u);
    auto popped = queue_.pop(memory_);
    ASSERT_TRUE(popped);
    EXPECT_FALSE(*popped) << "a queue that is not ready has nothing";
}

TEST_F(VirtqueueTest, SizeStartsAtMax) { EXPECT_EQ(Queue(64).size(), 64); }

TEST_F(VirtqueueTest, ReactivationStartsFromIndexZero) {
    start(4);
    cycle();
    cycle();
    queue_.reset();
    std::memset(memory_.slice(kAvail, 0x2000).data(), 0, 0x2000);
    avail_idx_ = 0;
    start(4);
    cycle();
    EXPECT_EQ(used_idx(), 1);
}

// --- Well-formed chains ----------------------------------------------------

TEST_F(VirtqueueTest, PopReturnsNothingWhenNothingIsAvailable) {
    start(16);
    auto popped = queue_.pop(memory_);
    ASSERT_TRUE(popped);
    EXPECT_FALSE(*popped);
}

TEST_F(VirtqueueTest, PopsSingleReadableBuffer) {
    start(16);
    descriptor(3, kBuffers, 100);
    make_available(3);
    auto chain = pop();
    EXPECT_EQ(chain.head, 3);
    ASSERT_EQ(chain.readable.size(), 1u);
    EXPECT_TRUE(chain.writable.empty());
    EXPECT_TRUE(is_guest(chain.readable[0], kBuffers));
    EXPECT_EQ(chain.readable_size(), 100u);
    auto again = queue_.pop(memory_);
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again) << "one buffer, popped once";
}

TEST_F(VirtqueueTest, SplitsChainIntoReadableThenWritable) {
    start(16);
    descriptor(0, kBuffers, 16, kNext, 5);
    descriptor(5, kBuffers + 0x100, 32, kNext, 2);
    descriptor(2, kBuffers + 0x200, 64, kWrite | kNext, 7);
    descriptor(7, kBuffers + 0x300, 1, kWrite);
    make_available(0);
    auto chain = pop();
    ASSERT_EQ(chain.readable.size(), 2u);
    ASSERT_EQ(chain.writable.size(), 2u);
    EXPECT_TRUE(is_guest(chain.readable[0], kBuffers));
    EXPECT_TRUE(is_guest(chain.readable[1], kBuffers + 0x100));
    EXPECT_TRUE(is_guest(chain.writable[0], kBuffers + 0x200));
    EXPECT_TRUE(is_guest(chain.writable[1], kBuffers + 0x300));
    EXPECT_EQ(chain.readable_size(), 48u);
    EXPECT_EQ(chain.writable_size(), 65u);
}

TEST_F(VirtqueueTest, AcceptsWritableOnlyChain) {
    start(16);
    descriptor(0, kBuffers, 8, kWrite);
    make_available(0);
    auto chain = pop();
    EXPECT_TRUE(chain.readable.empty());
    EXPECT_EQ(chain.writable_size(), 8u);
}

TEST_F(VirtqueueTest, AcceptsZeroLengthBuffers) {
    start(16);
    descriptor(0, ~uint64_t{0}, 0, kNext, 1);  // no bytes, so no address to check
    descriptor(1, kBuffers, 0, kWrite);
    make_available(0);
    auto chain = pop();
    ASSERT_EQ(chain.readable.size(), 1u);
    ASSERT_EQ(chain.writable.size(), 1u);
    EXPECT_TRUE(chain.readable[0].empty());
    EXPECT_TRUE(chain.writable[0].empty());
}

TEST_F(VirtqueueTest, AcceptsChainAsLongAsQueue) {
    start(4);
    for (uint16_t i = 0; i < 4; ++i) descriptor(i, kBuffers + i, 1, i < 3 ? kNext : 0, static_cast<uint16_t>(i + 1));
    make_available(0);
    EXPECT_EQ(pop().readable.size(), 4u);
}

TEST_F(VirtqueueTest, AcceptsBufferEndingAtEndOfMemory) {
    start(16);
    descriptor(0, kRamSize - 10, 10, kWrite);
    make_available(0);
    auto chain = pop();
    ASSERT_EQ(chain.writable.size(), 1u);
    EXPECT_TRUE(is_guest(chain.writable[0], kRamSize - 10));
}

TEST_F(VirtqueueTest, FollowsIndirectTable) {
    start(16);
    descriptor(kTables, 0, kBuffers, 10, kNext, 2);
    descriptor(kTables, 2, kBuffers + 0x100, 20, kNext | kWrite, 1);
    descriptor(kTables, 1, kBuffers + 0x200, 30, kWrite);
    descriptor(4, kTables, 3 * 16, kIndirect);
    make_available(4);
    auto chain = pop();
    EXPECT_EQ(chain.head, 4);
    ASSERT_EQ(chain.readable.size(), 1u);
    ASSERT_EQ(chain.writable.size(), 2u);
    EXPECT_TRUE(is_guest(chain.readable[0], kBuffers));
    EXPECT_TRUE(is_guest(chain.writable[0], kBuffers + 0x100));
    EXPECT_TRUE(is_guest(chain.writable[1], kBuffers + 0x200));
}

TEST_F(VirtqueueTest, IgnoresIndirectTableOwnWriteFlag) {
    start(16);
    descriptor(kTables, 0, kBuffers, 10);
    descriptor(0, kTables, 16, kIndirect | kWrite);
    make_available(0);
    auto chain = pop();
    EXPECT_EQ(chain.readable.size(), 1u) << "the entry's flags decide, not the table's";
    EXPECT_TRUE(chain.writable.empty());
}

TEST_F(VirtqueueTest, AcceptsIndirectTableAtEndOfDirectChain) {
    start(16);
    descriptor(kTables, 0, kBuffers + 0x100, 10, kWrite);
    descriptor(0, kBuffers, 5, kNext, 1);
    descriptor(1, kTables, 16, kIndirect);
    make_available(0);
    auto chain = pop();
    EXPECT_EQ(chain.readable_size(), 5u);
    EXPECT_EQ(chain.writable_size(), 10u);
}

TEST_F(VirtqueueTest, AcceptsIndirectTableOfMaxLength) {
    start(16);
    for (uint16_t i = 0; i < Queue::kMaxChainLength; ++i)
        descriptor(kTables, i, kBuffers, 1, i + 1u < Queue::kMaxChainLength ? kNext : 0, static_cast<uint16_t>(i + 1));
    descriptor(0, kTables, 16 * Queue::kMaxChainLength, kIndirect);
    make_available(0);
    EXPECT_EQ(pop().readable.size(), Queue::kMaxChainLength);
}

TEST_F(VirtqueueTest, PushWritesUsedElementThenIndex) {
    start(16);
    descriptor(9, kBuffers, 4, kWrite);
    make_available(9);
    auto chain = pop();
    push(chain.head, 4);
    EXPECT_EQ(used_idx(), 1);
    EXPECT_EQ(used(0).id, 9u);
    EXPECT_EQ(used(0).length, 4u);
}

TEST_F(VirtqueueTest, PopsInOrderAroundTheRing) {
    start(4);
    for (uint16_t i = 0; i < 4; ++i) descriptor(i, kBuffers + 0x100 * i, 1);
    for (int round = 0; round < 3; ++round) {
        for (uint16_t head : {2, 0, 3, 1}) make_available(head);
        for (uint16_t head : {2, 0, 3, 1}) {
            auto chain = pop();
            EXPECT_EQ(chain.head, head);
            push(chain.head, round);
        }
    }
    EXPECT_EQ(used_idx(), 12);
    EXPECT_EQ(used(11).id, 1u);
    EXPECT_EQ(used(11).length, 2u);
}

TEST_F(VirtqueueTest, AcceptsFullRing) {
    start(4);
    for (uint16_t i = 0; i < 4; ++i) {
        descriptor(i, kBuffers, 1);
        make_available(i);
    }
    for (uint16_t i = 0; i < 4; ++i) EXPECT_EQ(pop().head, i);
}

// The 16-bit indexes run from 65535 to 0 without a hitch.
TEST_F(VirtqueueTest, IndexesWrapAt65536) {
    start(4);
    while (avail_idx_ != 65534) cycle();
    for (uint16_t i = 0; i < 4; ++i) descriptor(i, kBuffers, 1);
    for (uint16_t head : {0, 1, 2, 3}) make_available(head);  // 65534, 65535, 0, 1
    EXPECT_EQ(avail_idx_, 2);
    for (uint16_t head : {0, 1, 2, 3}) {
        auto chain = pop();
        EXPECT_EQ(chain.head, head);
        push(chain.head, 7);
    }
    EXPECT_EQ(used_idx(), 2);
    EXPECT_EQ(used(1).id, 3u);
    auto again = queue_.pop(memory_);
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);
}

TEST_F(VirtqueueTest, RejectsTooManyAvailableAcrossWrap) {
    start(4);
    while (avail_idx_ != 65534) cycle();
    set_avail_idx(3);  // 5 past the device's 65534
    EXPECT_NE(pop_error().find("5 buffers"), std::string::npos);
}

// --- Notification decisions ------------------------------------------------

TEST_F(VirtqueueTest, NotifiesWithoutNoInterruptFlag) {
    start(16);
    cycle();
    EXPECT_TRUE(queue_.should_notify(memory_));
}

TEST_F(VirtqueueTest, HonoursNoInterruptFlag) {
    start(16);
    set_avail_flags(1);
    cycle();
    EXPECT_FALSE(queue_.should_notify(memory_));
    set_avail_flags(0);
    cycle();
    EXPECT_TRUE(queue_.should_notify(memory_));
}

TEST_F(VirtqueueTest, EventIdxIgnoresNoInterruptFlag) {
    start(16, true);
    set_avail_flags(1);
    set_used_event(0);
    cycle();
    EXPECT_TRUE(queue_.should_notify(memory_));
}

TEST_F(VirtqueueTest, EventIdxFirstDecisionNotifies) {
    start(16, true);
    set_used_event(100);  // far ahead: only the first decision ignores it
    cycle();
    EXPECT_TRUE(queue_.should_notify(memory_));
    cycle();
    EXPECT_FALSE(queue_.should_notify(memory_));
}

TEST_F(VirtqueueTest, EventIdxNotifiesWhenUsedIndexPassesUsedEvent) {
    start(16, true);
    set_used_event(0);
    cycle();  // used 0 -> 1
    EXPECT_TRUE(queue_.should_notify(memory_));
    set_used_event(3);  // the driver wants to hear when entry 3 is used
    cycle();            // 1 -> 2
    EXPECT_FALSE(queue_.should_notify(memory_));
    cycle();  // 2 -> 3
    EXPECT_FALSE(queue_.should_notify(memory_));
    cycle();  // 3 -> 4: entry 3 used
    EXPECT_TRUE(queue_.should_notify(memory_));
    cycle();  // 4 -> 5: event 3 already passed
    EXPECT_FALSE(queue_.should_notify(memory_));
}

TEST_F(VirtqueueTest, EventIdxCountsAllPushesSinceLastDecision) {
    start(16, true);
    set_used_event(0);
    cycle();
    EXPECT_TRUE(queue_.should_notify(memory_));
    set_used_event(2);
    for (int i = 0; i < 4; ++i) cycle();  // 1 -> 5 in one batch passes 2
    EXPECT_TRUE(queue_.should_notify(memory_));
}

TEST_F(VirtqueueTest, EventIdxDoesNotNotifyWithoutNewUsedBuffers) {
    start(16, true);
    set_used_event(0);
    cycle();
    EXPECT_TRUE(queue_.should_notify(memory_));
    EXPECT_FALSE(queue_.should_notify(memory_));
}

TEST_F(VirtqueueTest, EventIdxNotifiesAcrossWrap) {
    start(4, true);
    set_used_event(0);
    while (avail_idx_ != 65534) cycle();
    EXPECT_TRUE(queue_.should_notify(memory_));  // first decision
    set_used_event(65535);
    cycle();  // 65534 -> 65535
    EXPECT_FALSE(queue_.should_notify(memory_));
    cycle();  // 65535 -> 0: entry 65535 used
    EXPECT_TRUE(queue_.should_notify(memory_));
    set_used_event(0);
    cycle();  // 0 -> 1: entry 0 used
    EXPECT_TRUE(queue_.should_notify(memory_));
    set_used_event(65530);  // behind: passed long ago
    cycle();
    EXPECT_FALSE(queue_.should_notify(memory_));
}

TEST_F(VirtqueueTest, EventIdxPopPublishesAvailEvent) {
    start(16, true);
    descriptor(0, kBuffers, 1);
    make_available(0);
    make_available(0);
    pop();
    EXPECT_EQ(avail_event(), 1);
    pop();
    EXPECT_EQ(avail_event(), 2);
}

TEST_F(VirtqueueTest, EventIdxEmptyPopPublishesAvailEvent) {
    start(16, true);
    put<uint16_t>(kUsed + 4 + 8 * 16, 999);
    auto popped = queue_.pop(memory_);
    ASSERT_TRUE(popped);
    EXPECT_FALSE(*popped);
    EXPECT_EQ(avail_event(), 0) << "the driver must notify for the very next buffer";
}

TEST_F(VirtqueueTest, WithoutEventIdxAvailEventIsUntouched) {
    start(16);
    put<uint16_t>(kUsed + 4 + 8 * 16, 999);
    cycle();
    EXPECT_EQ(avail_event(), 999);
}

// --- Malformed rings: each is an error, never a crash ------------------------

TEST_F(VirtqueueTest, RejectsMoreAvailableBuffersThanQueueSize) {
    start(16);
    set_avail_idx(17);
    EXPECT_EQ(pop_error(), "driver made 17 buffers available in a queue of 16");
}

TEST_F(VirtqueueTest, RejectsHeadOutOfRange) {
    start(16);
    make_available(16);
    EXPECT_NE(pop_error().find("descriptor 16"), std::string::npos);
}

TEST_F(VirtqueueTest, RejectsNextOutOfRange) {
    start(16);
    descriptor(0, kBuffers, 1, kNext, 16);
    make_available(0);
    EXPECT_NE(pop_error().find("descriptor 16"), std::string::npos);
}

TEST_F(VirtqueueTest, RejectsLoopingChain) {
    start(16);
    descriptor(0, kBuffers, 1, kNext, 1);
    descriptor(1, kBuffers, 1, kNext, 0);
    make_available(0);
    EXPECT_NE(pop_error().find("loop"), std::string::npos);
}

TEST_F(VirtqueueTest, RejectsSelfLoopInQueueOfOne) {
    start(1);
    descriptor(0, kBuffers, 1, kNext, 0);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsIndirectTableOfZeroLength) {
    start(16);
    descriptor(0, kTables, 0, kIndirect);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsIndirectTableLengthNotMultipleOf16) {
    start(16);
    descriptor(kTables, 0, kBuffers, 1);
    descriptor(0, kTables, 24, kIndirect);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsIndirectTableLongerThanMaxChain) {
    start(16);
    descriptor(kTables, 0, kBuffers, 1);
    descriptor(0, kTables, 16 * (Queue::kMaxChainLength + 1), kIndirect);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsIndirectTableOutsideMemory) {
    start(16);
    descriptor(0, kRamSize - 16, 32, kIndirect);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsIndirectTableAtHugeAddress) {
    start(16);
    descriptor(0, ~uint64_t{0} - 8, 16, kIndirect);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsIndirectWithNext) {
    start(16);
    descriptor(kTables, 0, kBuffers, 1);
    descriptor(0, kTables, 16, kIndirect | kNext, 1);
    descriptor(1, kBuffers, 1);
    make_available(0);
    EXPECT_NE(pop_error().find("NEXT and INDIRECT"), std::string::npos);
}

TEST_F(VirtqueueTest, RejectsNestedIndirectTable) {
    start(16);
    descriptor(kTables + 0x100, 0, kBuffers, 1);
    descriptor(kTables, 0, kTables + 0x100, 16, kIndirect);
    descriptor(0, kTables, 16, kIndirect);
    make_available(0);
    EXPECT_NE(pop_error().find("nests"), std::string::npos);
}

TEST_F(VirtqueueTest, RejectsLoopInIndirectTable) {
    start(16);
    descriptor(kTables, 0, kBuffers, 1, kNext, 1);
    descriptor(kTables, 1, kBuffers, 1, kNext, 0);
    descriptor(0, kTables, 32, kIndirect);
    make_available(0);
    EXPECT_NE(pop_error().find("loop"), std::string::npos);
}

TEST_F(VirtqueueTest, RejectsIndirectNextOutOfTable) {
    start(16);
    descriptor(kTables, 0, kBuffers, 1, kNext, 2);
    descriptor(kTables, 1, kBuffers, 1);
    descriptor(kTables, 2, kBuffers, 1);  // in memory, but past the table's length
    descriptor(0, kTables, 32, kIndirect);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsReadableAfterWritable) {
    start(16);
    descriptor(0, kBuffers, 1, kWrite | kNext, 1);
    descriptor(1, kBuffers, 1);
    make_available(0);
    EXPECT_NE(pop_error().find("readable buffer after a writable"), std::string::npos);
}

TEST_F(VirtqueueTest, RejectsReadableAfterWritableInIndirectTable) {
    start(16);
    descriptor(kTables, 0, kBuffers, 1, kWrite | kNext, 1);
    descriptor(kTables, 1, kBuffers, 1);
    descriptor(0, kTables, 32, kIndirect);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsReadableIndirectEntryAfterWritableDirectOne) {
    start(16);
    descriptor(kTables, 0, kBuffers, 1);
    descriptor(0, kBuffers, 1, kWrite | kNext, 1);
    descriptor(1, kTables, 16, kIndirect);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsBufferOutsideMemory) {
    start(16);
    descriptor(0, kRamSize, 1);
    make_available(0);
    EXPECT_NE(pop_error().find("outside guest memory"), std::string::npos);
}

TEST_F(VirtqueueTest, RejectsBufferCrossingEndOfMemory) {
    start(16);
    descriptor(0, kRamSize - 10, 11, kWrite);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsBufferWhoseEndOverflows) {
    start(16);
    descriptor(0, ~uint64_t{0} - 2, 0xffffffff);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsBadBufferLaterInChain) {
    start(16);
    descriptor(0, kBuffers, 1, kNext, 1);
    descriptor(1, kRamSize + 0x1000, 8, kWrite);
    make_available(0);
    pop_error();
}

TEST_F(VirtqueueTest, RejectsPushOfHeadOutOfRange) {
    start(16);
    auto pushed = queue_.push(memory_, 16, 0);
    ASSERT_FALSE(pushed);
    EXPECT_EQ(used_idx(), 0) << "nothing published";
}

TEST_F(VirtqueueTest, RejectsPushToQueueNotReady) { EXPECT_FALSE(queue_.push(memory_, 0, 0)); }

// A buffer beyond a hole between two RAM regions, or straddling two
// regions, is refused: guest memory hands out only contiguous host views.
TEST(VirtqueueMemory, RejectsBufferInHoleOrAcrossRegions) {
    std::pair<uint64_t, uint64_t> ranges[] = {{0, 0x10000}, {0x10000, 0x10000}, {0x40000, 0x10000}};
    auto memory = GuestMemory::create(ranges);
    ASSERT_TRUE(memory);
    const std::pair<uint64_t, uint32_t> buffers[] = {{0x20000, 16}, {0xfff0, 32}, {0x3fff0, 32}};
    for (auto [address, length] : buffers) {
        Queue queue(4);
        queue.set_size(4);
        queue.set_descriptor_table(0x1000);
        queue.set_driver_area(0x2000);
        queue.set_device_area(0x3000);
        ASSERT_TRUE(queue.activate(*memory));
        ASSERT_TRUE(memory->write_object<uint64_t>(0x1000, address));
        ASSERT_TRUE(memory->write_object<uint32_t>(0x1008, length));
        ASSERT_TRUE(memory->write_object<uint16_t>(0x2004, 0));
        ASSERT_TRUE(memory->write_object<uint16_t>(0x2002, 1));
        auto popped = queue.pop(*memory);
        EXPECT_FALSE(popped) << std::hex << address;
    }
}


// Guest memory on the host's huge pages (hospes run --hugepages): reserved
// when made, so too few is an error naming the knob, not a SIGBUS later;
// a back-end maps the same pages. Needs root to reserve the pages.
TEST(GuestMemoryHugePages, ReservedWhenMadeAndSharedWithBackEnds) {
    const char* knob = "/proc/sys/vm/nr_hugepages";
    uint64_t before = 0;
    {
        std::ifstream in(knob);
        if (!(in >> before) || ::access(knob, W_OK) != 0) GTEST_SKIP() << "cannot reserve huge pages here (not root)";
    }
    auto reserve = [&](uint64_t pages) { std::ofstream(knob) << pages << "\n"; };
    reserve(before + 4);
    std::pair<uint64_t, uint64_t> ranges[] = {{0, 8 << 20}};
    auto memory = GuestMemory::create(ranges, true);
    ASSERT_TRUE(memory) << memory.error().message;
    ASSERT_TRUE(memory->write_object<uint64_t>(0x7ff000, 0x1122334455667788));
    const auto& region = memory->regions()[0];
    GuestMemory::SharedRegion shared[] = {{0, region.host.size(), region.file, region.file_offset}};
    auto mapped = GuestMemory::map(shared);
    ASSERT_TRUE(mapped) << mapped.error().message;
    uint64_t seen = 0;
    std::memcpy(&seen, mapped->slice(0x7ff000, 8).data(), 8);
    EXPECT_EQ(seen, 0x1122334455667788u);

    // All four pages are taken: more is refused at once, with the way out.
    auto more = GuestMemory::create(ranges, true);
    reserve(before);
    ASSERT_FALSE(more);
    EXPECT_NE(more.error().message.find("nr_hugepages"), std::string::npos) << more.error().message;
    std::pair<uint64_t, uint64_t> odd[] = {{0, (8 << 20) + 4096}};
    auto unaligned = GuestMemory::create(odd, true);
    ASSERT_FALSE(unaligned);
    EXPECT_NE(unaligned.error().message.find("whole 2 MiB pages"), std::string::npos) << unaligned.error().message;
}

}  // namespace
}  // namespace hospes::virtio
