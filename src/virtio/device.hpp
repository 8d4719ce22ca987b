// The interface between a virtio transport and a device model (virtio 1.2,
// section 2): feature bits, configuration space, queue sizes, and the
// notifications. A device knows no transport; the transport (virtio-mmio
// today) owns the queues and the interrupt, and hands them over on
// activation.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "virtio/queue.hpp"
#include "vmm/guest_memory.hpp"

namespace hospes::virtio {

inline constexpr uint64_t kFeatureIndirectDescriptors = 1ull << 28;  // VIRTIO_F_INDIRECT_DESC
inline constexpr uint64_t kFeatureEventIndex = 1ull << 29;           // VIRTIO_F_EVENT_IDX
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;             // VIRTIO_F_VERSION_1

// What a device gets when the driver sets DRIVER_OK.
struct ActiveQueues {
    const GuestMemory* memory = nullptr;
    std::vector<Queue>* queues = nullptr;
    // Raises a used-buffer interrupt for the driver.
    std::function<void()> interrupt;
    // Reports a driver error the device cannot continue from (one log line;
    // the transport then sets DEVICE_NEEDS_RESET).
    std::function<void(const Error&)> fail;
    // For a device whose queues run in another process: the eventfd each
    // queue's notifications arrive on (KVM's ioeventfd) and the one that
    // raises the interrupt (KVM's irqfd); empty and -1 when there are none.
    std::vector<int> notify_fds;
    int interrupt_fd = -1;
};

class Device {
public:
    virtual ~Device() = default;
    virtual uint32_t device_type() const = 0;  // 4 entropy, 2 block, 1 network, 3 console
    // Device-specific feature bits; the transport adds the ring features.
    virtual uint64_t features() const = 0;
    virtual std::vector<uint16_t> queue_max_sizes() const = 0;
    virtual void read_config(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write_config(uint64_t offset, std::span<const uint8_t> data) = 0;
    // The driver accepted `features` and set DRIVER_OK.
    virtual Result<void> activate(uint64_t features, ActiveQueues queues) = 0;
    // The driver notified queue `index` (on the monitor's I/O thread).
    virtual void queue_notify(uint16_t index) = 0;
    // Back to the state before activation.
    virtual void reset() = 0;
    // Waits for every request in flight and returns it to the driver, so
    // the rings can be handed over (vhost-user GET_VRING_BASE).
    virtual void quiesce() {}

    // Host file descriptors the device waits on (a backend's completions, a
    // tap's packets). When one is readable the I/O thread calls
    // backend_ready(index) through the transport, under its lock, whether or
    // not the driver has activated the device.
    struct BackendEvent {
        int fd;
        bool edge_triggered;  // true: woken once per new event, not while readable
    };
    virtual std::vector<BackendEvent> backend_events() const { return {}; }
    virtual void backend_ready(size_t /*index*/) {}

    // True when the queues are served by another process (vhost-user): the
    // transport then offers only the device's own feature bits, hands it
    // the queue eventfds and irqfd, and cannot know when it interrupts.
    virtual bool runs_queues_elsewhere() const { return false; }

    // Gives back what the device changed on the host (see
    // backends::NetBackend::release), for a monitor that exits without
    // tearing down.
    virtual void release_host() {}

    // What the device has done, by name (requests, bytes, packets), for
    // the monitor's query and the toolstack's top and metrics. Read under
    // the transport's lock.
    using Counters = std::vector<std::pair<const char*, uint64_t>>;
    virtual Counters counters() const { return {}; }
};

}  // namespace hospes::virtio
