#include "arch/x86_64/e820.hpp"

#include <algorithm>

#include "arch/x86_64/layout.hpp"

namespace hospes::x86 {

std::vector<RamRange> ram_ranges(uint64_t memory_size) {
    std::vector<RamRange> ranges;
    uint64_t low = std::min(memory_size, kMmioHoleStart);
    ranges.push_back({0, low});
    if (memory_size > kMmioHoleStart) ranges.push_back({kMmioHoleEnd, memory_size - kMmioHoleStart});
    return ranges;
}

std::vector<E820Entry> e820_map(uint64_t memory_size) {
    std::vector<E820Entry> map;
    map.push_back({0, kEbdaAddress, E820Type::Ram});
    map.push_back({kEbdaAddress, kHighMemoryStart - kEbdaAddress, E820Type::Reserved});
    for (const auto& range : ram_ranges(memory_size)) {
        uint64_t start = std::max(range.guest_address, kHighMemoryStart);
        uint64_t end = range.guest_address + range.size;
        if (end > start) map.push_back({start, end - start, E820Type::Ram});
    }
    return map;
}

}  // namespace hospes::x86
