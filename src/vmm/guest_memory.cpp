#include "vmm/guest_memory.hpp"

namespace hospes {

Result<GuestMemory> GuestMemory::create(std::span<const std::pair<uint64_t, uint64_t>> ranges) {
    GuestMemory memory;
    for (auto [address, size] : ranges) {
        auto host = Mapping::anonymous(size);
        if (!host) return std::unexpected(host.error());
        memory.regions_.push_back({address, std::move(*host)});
    }
    return memory;
}

Result<void> GuestMemory::write(uint64_t address, std::span<const uint8_t> bytes) const {
    auto target = slice(address, bytes.size());
    if (target.size() != bytes.size() || (bytes.empty() && slice(address, 1).empty()))
        return bad_input("{} bytes at guest address {:#x} do not fit in guest memory", bytes.size(), address);
    if (!bytes.empty()) std::memcpy(target.data(), bytes.data(), bytes.size());
    return {};
}

}  // namespace hospes
