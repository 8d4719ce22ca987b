// A split virtqueue (virtio 1.2, section 2.7) seen from the device side:
// reads descriptor chains the driver made available, returns them through
// the used ring, and decides when the driver wants an interrupt
// (VIRTIO_F_RING_EVENT_IDX or the NO_INTERRUPT flag). It knows no device.
//
// Everything in the rings is written by an untrusted guest: every index,
// address and length is checked, descriptors are copied before use, and a
// ring the driver broke is reported as an error (the device then sets
// DEVICE_NEEDS_RESET) instead of being followed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/error.hpp"
#include "virtio/inflight.hpp"
#include "vmm/guest_memory.hpp"

namespace hospes::virtio {

// One available request: its buffers, translated to host memory, in order.
// A zero-length buffer is an empty span whose data() may be null.
struct Chain {
    uint16_t head = 0;                         // what goes back in the used ring
    std::vector<std::span<uint8_t>> readable;  // driver -> device
    std::vector<std::span<uint8_t>> writable;  // device -> driver
    size_t readable_size() const;
    size_t writable_size() const;
};

class Queue {
public:
    // The longest chain accepted, direct or through an indirect table.
    static constexpr uint32_t kMaxChainLength = 1024;

    explicit Queue(uint16_t max_size) : max_size_(max_size) {}

    // Configuration, written by the transport while the queue is not ready.
    uint16_t max_size() const { return max_size_; }
    uint16_t size() const { return size_; }
    void set_size(uint16_t size) { size_ = size; }
    void set_descriptor_table(uint64_t address) { descriptors_ = address; }
    void set_driver_area(uint64_t address) { avail_ = address; }  // the available ring
    void set_device_area(uint64_t address) { used_ = address; }   // the used ring
    uint64_t descriptor_table() const { return descriptors_; }
    uint64_t driver_area() const { return avail_; }
    uint64_t device_area() const { return used_; }
    bool ready() const { return ready_; }
    void set_event_idx(bool enabled) { event_idx_ = enabled; }

    // Checks size (a power of two, at most max_size), alignment and that the
    // three areas lie in guest memory; on success the queue is ready.
    Result<void> activate(const GuestMemory& memory);
    // Back to the state after device reset.
    void reset();

    // Records pops and pushes in `log` (not owned; null: none).
    void set_inflight_log(InflightLog* log) { inflight_ = log; }
    // For a ready queue that continues where another device process left it
    // (vhost-user): the used index is read from the used ring, and the next
    // available entry is `next_available`. With an inflight log, what the
    // previous back-end left there decides instead: the requests it had in
    // flight are popped again first, oldest first, and the available
    // position follows them. Returns how many are popped again.
    size_t resume(uint16_t next_available);
    uint16_t next_available() const { return next_avail_; }

    // The next available chain; nullopt when the driver has made none.
    Result<std::optional<Chain>> pop(const GuestMemory& memory);
    // The same into `chain`, reusing its storage (no allocation on the data
    // path); false when the driver has made none.
    Result<bool> pop(const GuestMemory& memory, Chain& chain);
    // Returns chain `head` to the driver with `written` bytes written.
    Result<void> push(const GuestMemory& memory, uint16_t head, uint32_t written);
    // After one or more push(): true when the driver asked to be interrupted.
    bool should_notify(const GuestMemory& memory);

private:
    // Fills `chain` from the descriptors at `head`.
    Result<void> read_chain(const GuestMemory& memory, uint16_t head, Chain& chain);

    uint16_t max_size_;
    // After reset the size reads as the maximum (virtio-pci's queue_size
    // resets to it); the driver writes the size it chose before activating.
    uint16_t size_ = max_size_;
    uint64_t descriptors_ = 0, avail_ = 0, used_ = 0;
    bool ready_ = false;
    // Host addresses of the three areas, taken when the queue became ready.
    uint8_t* desc_ring_ = nullptr;
    uint8_t* avail_ring_ = nullptr;
    uint8_t* used_ring_ = nullptr;
    bool event_idx_ = false;
    uint16_t next_avail_ = 0;  // the device's position in the available ring
    uint16_t known_avail_ = 0;  // the available index as last read
    uint16_t next_used_ = 0;   // the used ring's index as the device last wrote it
    uint16_t signalled_used_ = 0;  // used index at the last interrupt (EVENT_IDX)
    bool signalled_valid_ = false;
    InflightLog* inflight_ = nullptr;
    std::vector<uint16_t> resubmit_;  // heads to pop again, in order
    size_t resubmit_next_ = 0;
};

}  // namespace hospes::virtio
