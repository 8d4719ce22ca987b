// The guest's RAM: host mappings for each guest-physical range, with
// bounds-checked access. Every guest-supplied address goes through here.
//
// RAM is a shared mapping of a memfd, so that it can be handed to another
// process (a vhost-user backend) as a file descriptor; each region knows
// its file and offset. This is the one place that knows them: the
// vhost-user memory table and, later, snapshots read them from here.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "common/error.hpp"
#include "common/mapping.hpp"
#include "common/unique_fd.hpp"

namespace hospes {

class GuestMemory {
public:
    struct Region {
        uint64_t guest_address;
        Mapping host;
        int file;              // the memfd (or received file) this region maps, owned by GuestMemory
        uint64_t file_offset;  // where the region starts in it
    };

    // A region someone else created, to be mapped here (a backend mapping
    // a frontend's memory table).
    struct SharedRegion {
        uint64_t guest_address;
        uint64_t size;
        int file;  // duplicated; the caller keeps its own
        uint64_t file_offset;
    };

    // Creates RAM for each (guest address, size) range, in one memfd
    // (`hugepages`: on the host's huge pages, which must then be reserved).
    static constexpr uint64_t kHugePageSize = 2 << 20;  // the host's default huge page size on x86-64
    static Result<GuestMemory> create(std::span<const std::pair<uint64_t, uint64_t>> ranges, bool hugepages = false);
    // Maps regions of files received from another process.
    static Result<GuestMemory> map(std::span<const SharedRegion> regions);

    const std::vector<Region>& regions() const { return regions_; }

    // The host view of [address, address + size), or an empty span when any
    // part of it is not RAM or it crosses a region boundary.
    // Inline: it is on every virtqueue access of the data path.
    std::span<uint8_t> slice(uint64_t address, uint64_t size) const {
        for (const auto& region : regions_) {
            uint64_t offset = address - region.guest_address;
            // Unsigned wrap-around makes an address below the region's start
            // huge; no sum here can overflow with guest-chosen values.
            if (address < region.guest_address || offset >= region.host.size()) continue;
            if (size > region.host.size() - offset) return {};
            return {region.host.data() + offset, size};
        }
        return {};
    }

    Result<void> write(uint64_t address, std::span<const uint8_t> bytes) const;

    template <class T>
    Result<void> write_object(uint64_t address, const T& object) const {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(address, {reinterpret_cast<const uint8_t*>(&object), sizeof(T)});
    }

private:
    std::vector<UniqueFd> files_;
    std::vector<Region> regions_;
};

}  // namespace hospes
