// The virtio-mmio transport, version 2 (virtio 1.2, section 4.2.2): the
// register window a device is found at, feature negotiation, queue set-up,
// status and the interrupt status. Queue notifications arrive through an
// ioeventfd (see Machine) and call notify(); interrupts leave through an
// irqfd, so neither direction exits to the monitor per request.
//
// Device activation (DRIVER_OK), reset (status 0) and the quiescing of a
// device that failed are the transport's work, not the vCPU's: a vCPU that
// asks for one only records it. With defer_work() the I/O thread then does
// it (run_work(), when work_fd() is readable), so a vCPU thread never runs
// device set-up (io_uring, vhost-user round trips) and needs few system
// calls; until the work is done, a vCPU that touches the registers again
// waits for it, without holding the lock, so the driver sees it done as if
// it had been done at once. Without defer_work() (unit tests, fuzzing) the
// work runs as each call into the transport ends.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <span>
#include <vector>

#include "common/unique_fd.hpp"
#include "virtio/device.hpp"
#include "vmm/io_bus.hpp"

namespace hospes::virtio {

class MmioTransport : public BusDevice {
public:
    static constexpr uint64_t kWindowSize = 0x1000;
    static constexpr uint64_t kQueueNotifyOffset = 0x050;

    using RaiseInterrupt = std::function<void()>;
    MmioTransport(std::unique_ptr<Device> device, const GuestMemory& memory, RaiseInterrupt interrupt);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // The driver notified queue `index` (ioeventfd, on the I/O thread).
    void notify(uint16_t index);
    uint16_t queue_count() const { return static_cast<uint16_t>(queues_.size()); }
    // The eventfds KVM signals for each queue's notifications and the
    // irqfd that raises this device's interrupt, handed to the device on
    // activation (a device whose queues run in another process passes them
    // on; the others do not need them).
    void set_event_fds(std::vector<int> notify_fds, int interrupt_fd);
    bool runs_queues_elsewhere() const { return device_->runs_queues_elsewhere(); }
    // The device's backend event `index` is ready (on the I/O thread).
    void backend_ready(size_t index);
    std::vector<Device::BackendEvent> backend_events() const { return device_->backend_events(); }
    // The device's configuration changed on the host's side (a balloon
    // target): tells the driver with a configuration change interrupt.
    void config_changed();
    // Runs `action` on the device under the transport's lock, for host-side
    // input that does not come through a file descriptor (console input).
    template <class Action>
    void with_device(Action&& action) {
        std::unique_lock lock(mutex_);
        action(*device_);
        done(lock);
    }
    // From now on activation and reset wait for the I/O thread: an eventfd
    // it watches, calling run_work() when readable.
    Result<int> defer_work();
    int work_fd() const { return work_fd_.get(); }
    void run_work();

private:
    uint32_t read_register(uint64_t offset);
    void write_register(uint64_t offset, uint32_t value);
    void write_status(uint32_t value);
    void fail(const Error& error);  // with mutex_ held
    void raise(uint32_t cause);     // with mutex_ held
    Queue* selected_queue();
    // With mutex_ held: waits (releasing it) until no work is pending.
    void wait_for_work(std::unique_lock<std::mutex>& lock);
    // As a call into the transport ends: the work asked for is signalled to
    // the I/O thread, or, without one, done now.
    void done(std::unique_lock<std::mutex>& lock);
    void do_work();  // with mutex_ held

    std::unique_ptr<Device> device_;
    const GuestMemory& memory_;
    RaiseInterrupt interrupt_;

    std::mutex mutex_;
    std::vector<Queue> queues_;
    uint64_t offered_features_;
    uint64_t driver_features_ = 0;
    uint32_t device_features_select_ = 0;
    uint32_t driver_features_select_ = 0;
    uint32_t queue_select_ = 0;
    uint32_t status_ = 0;
    uint32_t interrupt_status_ = 0;
    bool active_ = false;
    std::vector<int> notify_fds_;
    int interrupt_fd_ = -1;

    // Work asked for and not yet done (see the top of this file).
    bool reset_pending_ = false;     // the driver wrote status 0
    bool activate_pending_ = false;  // the driver set DRIVER_OK
    bool quiesce_pending_ = false;   // the device failed: stop it until the driver resets it
    bool work_signalled_ = false;
    std::condition_variable work_done_;
    UniqueFd work_fd_;  // set by defer_work()
};

}  // namespace hospes::virtio
