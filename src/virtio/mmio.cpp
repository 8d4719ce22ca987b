#include "virtio/mmio.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "common/log.hpp"

namespace hospes::virtio {

namespace {

// Register offsets (section 4.2.2).
enum : uint64_t {
    kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
    kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024,
    kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038, kQueueReady = 0x044, kQueueNotify = 0x050,
    kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070,
    kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094,
    kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4, kConfigGeneration = 0x0fc, kConfig = 0x100,
};

constexpr uint32_t kMagicValue = 0x74726976;  // "virt"
constexpr uint32_t kVendor = 0x50534f48;      // "HOSP"
constexpr uint32_t kStatusDriverOk = 4, kStatusFeaturesOk = 8, kStatusNeedsReset = 64;
constexpr uint32_t kInterruptUsedBuffer = 1, kInterruptConfigChange = 2;

void set_low(uint64_t& value, uint32_t low) { value = (value & ~0xffffffffull) | low; }
void set_high(uint64_t& value, uint32_t high) { value = (value & 0xffffffffull) | (uint64_t{high} << 32); }

}  // namespace

MmioTransport::MmioTransport(std::unique_ptr<Device> device, const GuestMemory& memory, RaiseInterrupt interrupt)
    : device_(std::move(device)), memory_(memory), interrupt_(std::move(interrupt)) {
    for (uint16_t size : device_->queue_max_sizes()) queues_.emplace_back(size);
    // A device served elsewhere offers what its back-end implements, ring
    // features included; here the transport's queue code does.
    offered_features_ = device_->features() | kFeatureVersion1;
    if (!device_->runs_queues_elsewhere()) offered_features_ |= kFeatureEventIndex | kFeatureIndirectDescriptors;
}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
    std::unique_lock lock(mutex_);
    wait_for_work(lock);
    if (offset >= kConfig) {
        device_->read_config(offset - kConfig, data);
        return;
    }
    // Registers are 32 bits wide and read whole; anything else reads as zero.
    uint32_t value = (data.size() == 4 && offset % 4 == 0) ? read_register(offset) : 0;
    std::memset(data.data(), 0, data.size());
    std::memcpy(data.data(), &value, std::min<size_t>(data.size(), 4));
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
    std::unique_lock lock(mutex_);
    wait_for_work(lock);
    if (offset >= kConfig) {
        device_->write_config(offset - kConfig, data);
    } else if (data.size() == 4 && offset % 4 == 0) {
        uint32_t value;
        std::memcpy(&value, data.data(), 4);
        write_register(offset, value);
    }
    done(lock);
}

Result<int> MmioTransport::defer_work() {
    std::lock_guard lock(mutex_);
    work_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!work_fd_.valid()) return errno_error("eventfd");
    return work_fd_.get();
}

void MmioTransport::wait_for_work(std::unique_lock<std::mutex>& lock) {
    if (!work_fd_.valid()) return done(lock);  // no I/O thread: done here
    work_done_.wait(lock, [this] { return !reset_pending_ && !activate_pending_ && !quiesce_pending_; });
}

void MmioTransport::done(std::unique_lock<std::mutex>&) {
    if (!reset_pending_ && !activate_pending_ && !quiesce_pending_) return;
    if (!work_fd_.valid()) {
        // A failed activation asks for a quiesce: done in the same loop.
        while (reset_pending_ || activate_pending_ || quiesce_pending_) do_work();
        return;
    }
    if (work_signalled_) return;
    work_signalled_ = true;
    uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(work_fd_.get(), &one, sizeof(one));
}

void MmioTransport::run_work() {
    uint64_t count;
    [[maybe_unused]] auto got = ::read(work_fd_.get(), &count, sizeof(count));
    std::unique_lock lock(mutex_);
    work_signalled_ = false;
    do_work();
    // Work a device asked for while doing this (a failed activation) is
    // signalled again.
    done(lock);
}

void MmioTransport::do_work() {
    // A failed device stops taking requests and finishes those in flight
    // (a device's reset waits for them), so nothing it does later reaches
    // guest memory the driver may reuse once it has reset the device.
    if (quiesce_pending_ || reset_pending_) {
        quiesce_pending_ = false;
        device_->reset();
    }
    if (reset_pending_) {
        reset_pending_ = false;
        activate_pending_ = false;
        for (auto& queue : queues_) queue.reset();
        driver_features_ = 0;
        device_features_select_ = driver_features_select_ = queue_select_ = 0;
        status_ = 0;
        interrupt_status_ = 0;
        active_ = false;
    }
    if (activate_pending_) {
        activate_pending_ = false;
        ActiveQueues active{&memory_, &queues_, [this] {
                                // Called from device code with mutex_ held.
                                raise(kInterruptUsedBuffer);
                            },
                            [this](const Error& error) { fail(error); }, notify_fds_, interrupt_fd_};
        if (auto r = device_->activate(driver_features_, std::move(active)); !r)
            fail(r.error());
        else if (!(status_ & kStatusNeedsReset))
            active_ = true;
    }
    work_done_.notify_all();
}

Queue* MmioTransport::selected_queue() {
    return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

uint32_t MmioTransport::read_register(uint64_t offset) {
    Queue* queue = selected_queue();
    switch (offset) {
    case kMagic: return kMagicValue;
    case kVersion: return 2;
    case kDeviceId: return device_->device_type();
    case kVendorId: return kVendor;
    case kDeviceFeatures:
        return device_features_select_ == 0   ? static_cast<uint32_t>(offered_features_)
               : device_features_select_ == 1 ? static_cast<uint32_t>(offered_features_ >> 32)
                                              : 0;
    case kQueueNumMax: return queue ? queue->max_size() : 0;
    case kQueueReady: return queue && queue->ready() ? 1 : 0;
    case kInterruptStatus:
        // A back-end in another process raises the irqfd itself; the
        // monitor never learns of it. Reporting a used buffer whenever the
        // device runs makes the driver look at its queues on every
        // interrupt, so none is missed (a look that finds nothing is cheap,
        // and an interrupt nobody claims would count as spurious).
        if (active_ && device_->runs_queues_elsewhere()) return interrupt_status_ | kInterruptUsedBuffer;
        return interrupt_status_;
    case kStatus: return status_;
    case kConfigGeneration: return 0;
    default: return 0;
    }
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
    Queue* queue = selected_queue();
    // Queue layout may only change while the queue is not ready.
    bool queue_writable = queue != nullptr && !queue->ready();
    switch (offset) {
    case kDeviceFeaturesSel: device_features_select_ = value; break;
    case kDriverFeaturesSel: driver_features_select_ = value; break;
    case kDriverFeatures:
        if (status_ & kStatusFeaturesOk) break;
        if (driver_features_select_ == 0) set_low(driver_features_, value);
        if (driver_features_select_ == 1) set_high(driver_features_, value);
        break;
    case kQueueSel: queue_select_ = value; break;
    case kQueueNum:
        if (queue_writable) queue->set_size(static_cast<uint16_t>(std::min<uint32_t>(value, 0xffff)));
        break;
    case kQueueDescLow:
    case kQueueDescHigh:
    case kQueueDriverLow:
    case kQueueDriverHigh:
    case kQueueDeviceLow:
    case kQueueDeviceHigh: {
        if (!queue_writable) break;
        uint64_t address = offset < kQueueDriverLow   ? queue->descriptor_table()
                           : offset < kQueueDeviceLow ? queue->driver_area()
                                                      : queue->device_area();
        if (offset % 8 == 0)
            set_low(address, value);
        else
            set_high(address, value);
        if (offset < kQueueDriverLow)
            queue->set_descriptor_table(address);
        else if (offset < kQueueDeviceLow)
            queue->set_driver_area(address);
        else
            queue->set_device_area(address);
        break;
    }
    case kQueueReady:
        if (queue == nullptr) break;
        if (value == 0) {
            queue->reset();
            break;
        }
        if (queue->ready()) break;
        queue->set_event_idx(driver_features_ & kFeatureEventIndex);
        if (auto r = queue->activate(memory_); !r) fail(r.error());
        break;
    case kQueueNotify:
        // Without ioeventfd (or for a queue it does not cover) the
        // notification arrives here, on the vCPU thread: it is passed to
        // the queue's eventfd, which the I/O thread (or a back-end) reads.
        if (value < notify_fds_.size()) {
            uint64_t one = 1;
            [[maybe_unused]] auto written = ::write(notify_fds_[value], &one, sizeof(one));
        } else if (active_ && value < queues_.size()) {
            device_->queue_notify(static_cast<uint16_t>(value));
        }
        break;
    case kInterruptAck: interrupt_status_ &= ~value; break;
    case kStatus: write_status(value); break;
    default: break;
    }
}

void MmioTransport::write_status(uint32_t value) {
    if (value == 0) {
        // Done by the transport's work; notifications stop at once.
        reset_pending_ = true;
        active_ = false;
        return;
    }
    uint32_t added = value & ~status_;
    if (added & kStatusFeaturesOk) {
        // Refuse features never offered, and legacy (pre-1.0) drivers: the
        // driver sees FEATURES_OK missing when it reads the status back.
        if ((driver_features_ & ~offered_features_) != 0 || !(driver_features_ & kFeatureVersion1)) {
            log::warn("virtio device {}: driver asked for unsupported features {:#x}", device_->device_type(),
                      driver_features_ & ~offered_features_);
            value &= ~kStatusFeaturesOk;
        }
    }
    status_ = value | (status_ & kStatusNeedsReset);
    // After DEVICE_NEEDS_RESET only a reset starts the device again
    // (virtio 1.2, 2.1.2): a driver setting DRIVER_OK anew would have it
    // activated with requests of the failed run still in flight.
    if ((added & kStatusDriverOk) && !active_ && (status_ & kStatusFeaturesOk) && !(status_ & kStatusNeedsReset))
        activate_pending_ = true;
}

void MmioTransport::fail(const Error& error) {
    if (status_ & kStatusNeedsReset) return;  // one log line per failure
    log::warn("virtio device {}: {}; the device needs a reset", device_->device_type(), error.message);
    status_ |= kStatusNeedsReset;
    active_ = false;
    quiesce_pending_ = true;
    raise(kInterruptConfigChange);
}

void MmioTransport::config_changed() {
    std::unique_lock lock(mutex_);
    raise(kInterruptConfigChange);
}

void MmioTransport::raise(uint32_t cause) {
    interrupt_status_ |= cause;
    interrupt_();
}

void MmioTransport::set_event_fds(std::vector<int> notify_fds, int interrupt_fd) {
    std::lock_guard lock(mutex_);
    notify_fds_ = std::move(notify_fds);
    interrupt_fd_ = interrupt_fd;
}

void MmioTransport::backend_ready(size_t index) {
    std::unique_lock lock(mutex_);
    device_->backend_ready(index);
    done(lock);
}

void MmioTransport::notify(uint16_t index) {
    std::unique_lock lock(mutex_);
    // A notification that came before pending work (a kick racing the
    // DRIVER_OK that came first) is handled after it.
    if (work_fd_.valid() && (reset_pending_ || activate_pending_ || quiesce_pending_)) {
        work_signalled_ = false;
        do_work();
    }
    if (active_ && index < queues_.size()) device_->queue_notify(index);
    done(lock);
}

}  // namespace hospes::virtio
