#include "devices/virtio/balloon.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

namespace hospes::devices {

namespace {

// Config space (virtio_balloon_config): num_pages, actual, then fields for
// features not offered here.
constexpr uint64_t kNumPagesOffset = 0, kActualOffset = 4, kConfigSize = 16;

// Gives the pages behind `host` back to the host: RAM is a shared memfd
// mapping, so the file's pages are released (MADV_REMOVE), not just this
// mapping's. Partial pages at the ends are kept.
uint64_t release(std::span<uint8_t> host) {
    auto start = reinterpret_cast<uintptr_t>(host.data());
    uintptr_t first = (start + VirtioBalloon::kPageSize - 1) & ~(VirtioBalloon::kPageSize - 1);
    uintptr_t end = (start + host.size()) & ~(VirtioBalloon::kPageSize - 1);
    if (end <= first) return 0;
    if (::madvise(reinterpret_cast<void*>(first), end - first, MADV_REMOVE) != 0) return 0;
    return end - first;
}

}  // namespace

void VirtioBalloon::read_config(uint64_t offset, std::span<uint8_t> data) {
    uint8_t config[kConfigSize] = {};
    uint32_t target = target_pages_, actual = actual_pages_;
    std::memcpy(config + kNumPagesOffset, &target, 4);  // little-endian, as the host
    std::memcpy(config + kActualOffset, &actual, 4);
    std::memset(data.data(), 0, data.size());
    if (offset < kConfigSize) std::memcpy(data.data(), config + offset, std::min<uint64_t>(data.size(), kConfigSize - offset));
}

void VirtioBalloon::write_config(uint64_t offset, std::span<const uint8_t> data) {
    // Only `actual` is the driver's to write.
    if (offset != kActualOffset || data.size() != 4) return;
    uint32_t actual;
    std::memcpy(&actual, data.data(), 4);
    actual_pages_ = actual;
}

Result<void> VirtioBalloon::activate(uint64_t, virtio::ActiveQueues queues) {
    active_ = std::move(queues);
    return {};
}

void VirtioBalloon::reset() {
    active_ = {};
    actual_pages_ = 0;
}

void VirtioBalloon::inflate(const virtio::Chain& chain) {
    // An array of 32-bit page frame numbers of 4 KiB pages.
    for (auto buffer : chain.readable) {
        for (size_t i = 0; i + 4 <= buffer.size(); i += 4) {
            uint32_t pfn;
            std::memcpy(&pfn, buffer.data() + i, 4);
            auto page = active_.memory->slice(uint64_t{pfn} * kPageSize, kPageSize);
            if (!page.empty()) discarded_bytes_ += release(page);  // a frame outside RAM is ignored
        }
    }
}

void VirtioBalloon::report(const virtio::Chain& chain) {
    // Each device-writable buffer is a range of free guest memory.
    for (auto buffer : chain.writable) discarded_bytes_ += release(buffer);
}

void VirtioBalloon::queue_notify(uint16_t index) {
    if (index > 2 || active_.queues == nullptr || index >= active_.queues->size()) return;
    auto& queue = (*active_.queues)[index];
    bool used = false;
    for (;;) {
        auto chain = queue.pop(*active_.memory);
        if (!chain) {
            active_.fail(chain.error());
            return;
        }
        if (!*chain) break;
        if (index == 0) inflate(**chain);
        if (index == 2) report(**chain);
        // Deflated pages come back when the guest touches them.
        if (auto r = queue.push(*active_.memory, (*chain)->head, 0); !r) {
            active_.fail(r.error());
            return;
        }
        used = true;
    }
    if (used && queue.should_notify(*active_.memory)) active_.interrupt();
}

}  // namespace hospes::devices
