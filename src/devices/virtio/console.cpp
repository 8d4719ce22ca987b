#include "devices/virtio/console.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace hospes::devices {

VirtioConsole::VirtioConsole(OutputSink output, std::optional<WindowSize> size)
    : output_(std::move(output)), size_(size) {}

uint64_t VirtioConsole::features() const { return kFeatureEmergWrite | (size_ ? kFeatureSize : 0); }

void VirtioConsole::read_config(uint64_t offset, std::span<uint8_t> data) {
    std::array<uint8_t, kConfigSize> config{};
    if (size_) {
        std::memcpy(&config[kConfigCols], &size_->cols, 2);
        std::memcpy(&config[kConfigRows], &size_->rows, 2);
    }
    uint32_t ports = 1;  // only meaningful with MULTIPORT; one port is the truth anyway
    std::memcpy(&config[kConfigMaxPorts], &ports, 4);
    // emerg_wr is write-only and reads as zero. Beyond the structure: zeros.
    std::memset(data.data(), 0, data.size());
    if (offset < kConfigSize)
        std::memcpy(data.data(), &config[offset], std::min<uint64_t>(data.size(), kConfigSize - offset));
}

void VirtioConsole::write_config(uint64_t offset, std::span<const uint8_t> data) {
    // The spec lets a driver use emerg_wr before (or without) negotiating
    // anything, for messages from the earliest boot or a dying kernel.
    if (offset == kConfigEmergWrite && !data.empty()) output_(data.first(1));
}

Result<void> VirtioConsole::activate(uint64_t, virtio::ActiveQueues queues) {
    active_ = std::move(queues);
    // Input held since before the driver came goes out as soon as there are
    // buffers for it.
    flush_input();
    return {};
}

void VirtioConsole::reset() {
    // Input not yet delivered stays, bounded, for the next driver: it was
    // typed for the guest, and the driver's own probe starts with a reset.
    active_ = {};
}

void VirtioConsole::fail(const Error& error) {
    // The queues are not touched again until the driver resets the device.
    auto report = std::move(active_.fail);
    active_ = {};
    report(error);
}

void VirtioConsole::queue_notify(uint16_t index) {
    if (active_.queues == nullptr) return;
    if (index == kTransmitQueue) transmit();
    if (index == kReceiveQueue) flush_input();
}

void VirtioConsole::transmit() {
    auto& queue = (*active_.queues)[kTransmitQueue];
    bool used = false;
    for (;;) {
        auto chain = queue.pop(*active_.memory);
        if (!chain) {
            fail(chain.error());
            return;
        }
        if (!*chain) break;
        if (!(*chain)->writable.empty()) {
            fail(guest_error("virtio-console: a transmit buffer is device-writable").error());
            return;
        }
        for (auto buffer : (*chain)->readable)
            if (!buffer.empty()) output_(buffer);
        if (auto r = queue.push(*active_.memory, (*chain)->head, 0); !r) {
            fail(r.error());
            return;
        }
        used = true;
    }
    if (used && queue.should_notify(*active_.memory)) active_.interrupt();
}

void VirtioConsole::flush_input() {
    if (active_.queues == nullptr || pending_.empty()) return;
    auto& queue = (*active_.queues)[kReceiveQueue];
    const size_t held = pending_.size();
    bool used = false;
    // Chains are only taken while there is input for them: a popped chain
    // cannot be given back unused.
    auto fill = [&]() -> Result<void> {
        while (!pending_.empty()) {
            auto chain = queue.pop(*active_.memory);
            if (!chain) return std::unexpected(chain.error());
            if (!*chain) break;
            if (!(*chain)->readable.empty()) return guest_error("virtio-console: a receive buffer is device-readable");
            size_t written = 0;
            for (auto buffer : (*chain)->writable) {
                size_t n = std::min(buffer.size(), pending_.size());
                std::copy_n(pending_.begin(), n, buffer.data());
                pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
                written += n;
                if (pending_.empty()) break;
            }
            if (auto r = queue.push(*active_.memory, (*chain)->head, static_cast<uint32_t>(written)); !r) return r;
            used = true;
        }
        return {};
    };
    auto result = fill();
    if (pending_.size() != held) input_taken();
    if (!result) {
        fail(result.error());
        return;
    }
    if (used && queue.should_notify(*active_.memory)) active_.interrupt();
}

size_t VirtioConsole::receive(std::span<const uint8_t> bytes) {
    size_t taken = 0;
    for (;;) {
        size_t n = std::min(kInputCapacity - pending_.size(), bytes.size() - taken);
        pending_.insert(pending_.end(), bytes.begin() + static_cast<std::ptrdiff_t>(taken),
                        bytes.begin() + static_cast<std::ptrdiff_t>(taken + n));
        taken += n;
        size_t before = pending_.size();
        flush_input();
        if (taken == bytes.size() || pending_.size() == before) return taken;
    }
}

void VirtioConsole::input_taken() {
    std::lock_guard lock(space_mutex_);
    ++space_events_;
    space_.notify_all();
}

uint64_t VirtioConsole::input_space_events() const {
    std::lock_guard lock(space_mutex_);
    return space_events_;
}

bool VirtioConsole::wait_input_space(uint64_t seen) {
    std::unique_lock lock(space_mutex_);
    space_.wait(lock, [&] { return input_stopped_ || space_events_ != seen; });
    return !input_stopped_;
}

void VirtioConsole::stop_input() {
    std::lock_guard lock(space_mutex_);
    input_stopped_ = true;
    space_.notify_all();
}

}  // namespace hospes::devices
