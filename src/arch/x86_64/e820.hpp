// The guest's physical memory map: RAM below the 32-bit MMIO hole and,
// for guests larger than 3 GiB, the rest above 4 GiB.
#pragma once

#include <cstdint>
#include <vector>

#include "arch/x86_64/boot_params.hpp"

namespace hospes::x86 {

struct RamRange {
    uint64_t guest_address;
    uint64_t size;
};

// The RAM ranges backing `memory_size` bytes of guest memory.
std::vector<RamRange> ram_ranges(uint64_t memory_size);

// The e820 map the kernel sees: RAM, with the EBDA/BIOS area below 1 MiB
// reserved (the MP table lives there).
std::vector<E820Entry> e820_map(uint64_t memory_size);

}  // namespace hospes::x86
