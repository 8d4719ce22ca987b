// Inflight I/O tracking for one split virtqueue (vhost-user specification,
// "Inflight I/O tracking"): a region of shared memory the front-end keeps
// across back-end crashes, where the back-end records every request it
// took from the available ring until its used element is published. After
// a crash, the next back-end learns from it which requests to run again,
// oldest first, and where the available ring stands.
//
// The front-end can write this memory at any time: every value read from
// it is checked before use.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hospes::virtio {

struct InflightDescriptor {
    uint8_t inflight;  // 1 from pop to used-ring publication (head descriptors only)
    uint8_t padding[5];
    uint16_t next;      // links the last batch of used descriptors
    uint64_t counter;   // pop order
};
static_assert(sizeof(InflightDescriptor) == 16);

struct InflightQueueHeader {
    uint64_t features;
    uint16_t version;
    uint16_t descriptor_count;  // desc_num: the queue size the region was made for
    uint16_t last_batch_head;
    uint16_t used_index;        // the used ring's index once the last batch was published
};
static_assert(sizeof(InflightQueueHeader) == 16);

// Bytes of one queue's part of the region (64-byte aligned, as
// libvhost-user lays it out, so regions from either side fit).
constexpr uint64_t inflight_queue_bytes(uint16_t queue_size) {
    return (sizeof(InflightQueueHeader) + sizeof(InflightDescriptor) * uint64_t{queue_size} + 63) / 64 * 64;
}

class InflightLog {
public:
    // `area` is this queue's part of the shared region.
    explicit InflightLog(std::span<uint8_t> area) : area_(area) {}

    // Called when the queue starts with `queue_size` entries and the used
    // ring at `used_index`. A fresh region is initialised; otherwise the
    // last interrupted batch is settled and the heads still in flight are
    // returned, oldest first. Empty when the region is too small or its
    // contents make no sense for this queue (then it is reinitialised).
    std::vector<uint16_t> start(uint16_t queue_size, uint16_t used_index);

    // Head `head` was taken from the available ring.
    void popped(uint16_t head);
    // Before head's used element is written, and after its index published it.
    void before_push(uint16_t head);
    void after_push(uint16_t head, uint16_t used_index);

private:
    InflightQueueHeader* header() const;
    InflightDescriptor* descriptors() const;
    void initialise(uint16_t queue_size);

    std::span<uint8_t> area_;
    uint16_t size_ = 0;
    uint64_t counter_ = 0;
};

}  // namespace hospes::virtio
