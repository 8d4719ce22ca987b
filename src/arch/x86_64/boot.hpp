// Writes everything a kernel needs in guest memory to start without
// firmware: the kernel itself, initrd, command line, zero page or PVH
// start_info, e820 map, MP table, GDT and identity page tables.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "arch/x86_64/kernel_image.hpp"
#include "common/error.hpp"
#include "vmm/guest_memory.hpp"

namespace hospes::x86 {

struct BootConfig {
    uint64_t memory_size = 0;
    uint32_t vcpus = 1;
    std::string cmdline;
    std::span<const uint8_t> initrd;  // empty: no initrd
    std::span<const uint8_t> acpi_devices = {};  // AML for the DSDT: devices that cannot be probed
};

// Where the boot vCPU starts and what it is handed.
struct BootEntry {
    EntryMode mode = EntryMode::Linux64;
    uint64_t rip = 0;
    uint64_t boot_info = 0;  // %rsi (zero page) or %ebx (PVH start_info)
};

Result<BootEntry> load_guest(const GuestMemory& memory, const KernelImage& kernel, const BootConfig& config);

// 64-bit GDT descriptors, shared with the vCPU set-up that loads them.
inline constexpr uint64_t kGdtCode64 = 0x00af9b000000ffff;
inline constexpr uint64_t kGdtData = 0x00cf93000000ffff;
inline constexpr uint64_t kGdtCode32 = 0x00cf9b000000ffff;

}  // namespace hospes::x86
