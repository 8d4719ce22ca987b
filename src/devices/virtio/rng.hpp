// virtio-rng (virtio 1.2, section 5.4): one queue of device-writable
// buffers, filled from the host's getrandom(), so guests never stall
// waiting for entropy.
#pragma once

#include "virtio/device.hpp"

namespace hospes::devices {

class VirtioRng : public virtio::Device {
public:
    static constexpr uint16_t kQueueSize = 256;
    // A request is served up to this many bytes; the driver asks again.
    static constexpr size_t kMaxBytesPerRequest = 64 * 1024;

    uint32_t device_type() const override { return 4; }
    uint64_t features() const override { return 0; }
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
    void read_config(uint64_t, std::span<uint8_t> data) override;
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    Result<void> activate(uint64_t features, virtio::ActiveQueues queues) override;
    void queue_notify(uint16_t index) override;
    void reset() override { active_ = {}; }

private:
    virtio::ActiveQueues active_;
};

}  // namespace hospes::devices
