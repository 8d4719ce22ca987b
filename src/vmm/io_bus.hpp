// Dispatch of port I/O and MMIO exits: a map of non-overlapping address
// ranges to devices, fixed before the vCPUs start (so lookups need no lock).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>

#include "common/error.hpp"

namespace hospes {

// A device on a bus. Offsets are relative to the range it was added at;
// accesses arrive on vCPU threads, so a device serialises its own state.
class BusDevice {
public:
    virtual ~BusDevice() = default;
    virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class IoBus {
public:
    Result<void> add(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device);
    // False when no device claims the address; reads then see all ones.
    bool read(uint64_t address, std::span<uint8_t> data) const;
    bool write(uint64_t address, std::span<const uint8_t> data) const;

private:
    struct Range {
        uint64_t size;
        std::shared_ptr<BusDevice> device;
    };
    const std::pair<const uint64_t, Range>* find(uint64_t address) const;
    std::map<uint64_t, Range> ranges_;
};

}  // namespace hospes
