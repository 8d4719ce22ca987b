// Where the monitor puts things in guest-physical memory.
#pragma once

#include <cstdint>

namespace hospes::x86 {

inline constexpr uint64_t kGdtAddress = 0x500;
inline constexpr uint64_t kPvhStartInfoAddress = 0x6000;  // start_info, module list, memory map
inline constexpr uint64_t kBootParamsAddress = 0x7000;    // the zero page
inline constexpr uint64_t kPml4Address = 0x9000;
inline constexpr uint64_t kPdptAddress = 0xa000;
inline constexpr uint64_t kPdAddress = 0xb000;            // four page directories: 0xb000-0xefff
inline constexpr uint64_t kCmdlineAddress = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 0x10000;
inline constexpr uint64_t kEbdaAddress = 0x9fc00;         // MP table; reserved up to 1 MiB
inline constexpr uint64_t kAcpiAddress = 0xe0000;         // RSDP and tables, where the kernel scans
inline constexpr uint64_t kHighMemoryStart = 0x100000;   // kernels load at 1 MiB
inline constexpr uint64_t kMmioHoleStart = 0xc0000000;   // 3 GiB: 32-bit devices, IOAPIC, LAPIC
inline constexpr uint64_t kMmioHoleEnd = 0x100000000;    // 4 GiB
inline constexpr uint64_t kVirtioMmioBase = 0xd0000000;   // one 4 KiB window per virtio device
inline constexpr uint32_t kVirtioFirstGsi = 16;           // IOAPIC pins above the ISA IRQs
inline constexpr uint32_t kVirtioMaxDevices = 8;          // GSIs 16-23
inline constexpr uint64_t kIdentityMapAddress = 0xfffbc000;  // VMX's identity map page
inline constexpr uint64_t kTssAddress = 0xfffbd000;          // VMX's real-mode TSS (3 pages)
inline constexpr uint64_t kIoapicAddress = 0xfec00000;
inline constexpr uint64_t kLapicAddress = 0xfee00000;

// The GDT the monitor hands the kernel: the boot protocol wants __BOOT_CS
// at 0x10 and __BOOT_DS at 0x18; PVH's 32-bit entry uses the code32 slot.
inline constexpr uint16_t kCode64Selector = 0x10;
inline constexpr uint16_t kDataSelector = 0x18;
inline constexpr uint16_t kCode32Selector = 0x20;

}  // namespace hospes::x86
