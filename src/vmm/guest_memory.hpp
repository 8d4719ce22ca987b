// The guest's RAM: host mappings for each guest-physical range, with
// bounds-checked access. Every guest-supplied address goes through here.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "common/error.hpp"
#include "common/mapping.hpp"

namespace hospes {

class GuestMemory {
public:
    struct Region {
        uint64_t guest_address;
        Mapping host;
    };

    // Reserves host memory for each (guest address, size) range.
    static Result<GuestMemory> create(std::span<const std::pair<uint64_t, uint64_t>> ranges);

    const std::vector<Region>& regions() const { return regions_; }

    // The host view of [address, address + size), or an empty span when any
    // part of it is not RAM or it crosses a region boundary.
    std::span<uint8_t> slice(uint64_t address, uint64_t size) const;

    Result<void> write(uint64_t address, std::span<const uint8_t> bytes) const;

    template <class T>
    Result<void> write_object(uint64_t address, const T& object) const {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(address, {reinterpret_cast<const uint8_t*>(&object), sizeof(T)});
    }

private:
    std::vector<Region> regions_;
};

}  // namespace hospes
