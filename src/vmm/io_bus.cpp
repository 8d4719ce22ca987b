#include "vmm/io_bus.hpp"

#include <algorithm>

namespace hospes {

Result<void> IoBus::add(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device) {
    if (size == 0 || base + size < base) return host_error("bus range at {:#x} has an invalid size", base);
    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->first < base + size)
        return host_error("bus range {:#x}+{:#x} overlaps one at {:#x}", base, size, next->first);
    if (next != ranges_.begin()) {
        auto previous = std::prev(next);
        if (previous->first + previous->second.size > base)
            return host_error("bus range {:#x}+{:#x} overlaps one at {:#x}", base, size, previous->first);
    }
    ranges_.emplace(base, Range{size, std::move(device)});
    return {};
}

const std::pair<const uint64_t, IoBus::Range>* IoBus::find(uint64_t address) const {
    auto it = ranges_.upper_bound(address);
    if (it == ranges_.begin()) return nullptr;
    --it;
    if (address - it->first >= it->second.size) return nullptr;
    return &*it;
}

bool IoBus::read(uint64_t address, std::span<uint8_t> data) const {
    auto entry = find(address);
    if (entry == nullptr) {
        std::fill(data.begin(), data.end(), 0xff);
        return false;
    }
    entry->second.device->read(address - entry->first, data);
    return true;
}

bool IoBus::write(uint64_t address, std::span<const uint8_t> data) const {
    auto entry = find(address);
    if (entry == nullptr) return false;
    entry->second.device->write(address - entry->first, data);
    return true;
}

}  // namespace hospes
