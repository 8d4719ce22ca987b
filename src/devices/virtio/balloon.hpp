// virtio-balloon (virtio 1.2, section 5.5): the host asks the guest to give
// back memory (num_pages, a target in 4 KiB pages), the guest's driver
// hands over pages on the inflate queue and takes them back on the deflate
// queue; with free page reporting the driver also reports ranges of free
// memory. Pages handed over or reported free are given back to the host
// (GuestMemory::discard); a page the guest touches again is simply faulted
// back in, so deflating needs nothing from the host.
//
// Queues, in the order Linux's driver numbers them for the features
// offered here: 0 inflate, 1 deflate, 2 reporting. DEFLATE_ON_OOM is not
// offered: with it Linux keeps inflated pages in MemTotal, and operators
// expect a lowered memory to show there.
#pragma once

#include <atomic>

#include "virtio/device.hpp"

namespace hospes::devices {

class VirtioBalloon : public virtio::Device {
public:
    static constexpr uint16_t kQueueSize = 128;
    static constexpr uint64_t kFeatureFreePageReporting = 1ull << 5;  // VIRTIO_BALLOON_F_REPORTING
    static constexpr uint64_t kPageSize = 4096;

    uint32_t device_type() const override { return 5; }
    uint64_t features() const override { return kFeatureFreePageReporting; }
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize, kQueueSize, kQueueSize}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t offset, std::span<const uint8_t> data) override;
    Result<void> activate(uint64_t features, virtio::ActiveQueues queues) override;
    void queue_notify(uint16_t index) override;
    void reset() override;

    // The host's target: this many pages in the balloon (the transport then
    // raises a configuration change interrupt).
    void set_target_pages(uint32_t pages) { target_pages_ = pages; }
    uint32_t target_pages() const { return target_pages_; }
    // What the driver says it holds.
    uint32_t actual_pages() const { return actual_pages_; }
    // Bytes given back to the host so far (inflated and reported).
    uint64_t discarded_bytes() const { return discarded_bytes_; }

private:
    void inflate(const virtio::Chain& chain);
    void report(const virtio::Chain& chain);

    virtio::ActiveQueues active_;
    std::atomic<uint32_t> target_pages_{0};
    std::atomic<uint32_t> actual_pages_{0};
    std::atomic<uint64_t> discarded_bytes_{0};
};

}  // namespace hospes::devices
