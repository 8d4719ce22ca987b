// virtio-console (virtio 1.2, section 5.3) with one port and no control
// queues (no VIRTIO_CONSOLE_F_MULTIPORT): the guest's hvc0. Queue 0
// (receiveq0) takes host input, queue 1 (transmitq0) carries guest output.
//
// Host input arrives on the host console's own thread, through the
// transport's lock (MmioTransport::with_device). It goes straight into the
// guest's receive buffers; while the guest has none (not booted yet, or not
// reading) up to kInputCapacity bytes wait here, and the input thread waits
// in wait_input_space() for the guest to take some, so typed input is
// neither lost nor unbounded.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "virtio/device.hpp"

namespace hospes::devices {

class VirtioConsole : public virtio::Device {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint16_t kReceiveQueue = 0, kTransmitQueue = 1;
    // Feature bits (section 5.3.3).
    static constexpr uint64_t kFeatureSize = 1ull << 0;        // VIRTIO_CONSOLE_F_SIZE: cols/rows valid
    static constexpr uint64_t kFeatureEmergWrite = 1ull << 2;  // VIRTIO_CONSOLE_F_EMERG_WRITE
    // Configuration space offsets (struct virtio_console_config).
    static constexpr uint64_t kConfigCols = 0, kConfigRows = 2, kConfigMaxPorts = 4, kConfigEmergWrite = 8;
    static constexpr uint64_t kConfigSize = 12;
    // Host input held while the guest has no receive buffers.
    static constexpr size_t kInputCapacity = 4096;

    struct WindowSize {
        uint16_t cols, rows;
    };
    using OutputSink = std::function<void(std::span<const uint8_t>)>;

    // `size`: the host terminal's size, offered as VIRTIO_CONSOLE_F_SIZE
    // when known.
    explicit VirtioConsole(OutputSink output, std::optional<WindowSize> size = std::nullopt);

    uint32_t device_type() const override { return 3; }
    uint64_t features() const override;
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize, kQueueSize}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t offset, std::span<const uint8_t> data) override;
    Result<void> activate(uint64_t features, virtio::ActiveQueues queues) override;
    void queue_notify(uint16_t index) override;
    void reset() override;

    // Host input, called under the transport's lock: takes as many of
    // `bytes` as fit (in the guest's buffers or held here) and returns how
    // many; the caller waits with wait_input_space() to offer the rest.
    size_t receive(std::span<const uint8_t> bytes);
    size_t pending_input() const { return pending_.size(); }

    // For the input thread, without the transport's lock: a counter that
    // moves whenever held input is taken by the guest (or dropped), and a
    // wait for it to move past `seen`. False once stop_input() was called.
    uint64_t input_space_events() const;
    bool wait_input_space(uint64_t seen);
    void stop_input();

private:
    void transmit();
    void flush_input();
    void input_taken();
    void fail(const Error& error);

    OutputSink output_;
    std::optional<WindowSize> size_;
    virtio::ActiveQueues active_;
    std::deque<uint8_t> pending_;

    // Guards only the two fields below; taken after the transport's lock,
    // never before it.
    mutable std::mutex space_mutex_;
    std::condition_variable space_;
    uint64_t space_events_ = 0;
    bool input_stopped_ = false;
};

}  // namespace hospes::devices
