#include "arch/x86_64/boot.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "arch/x86_64/acpi.hpp"
#include "arch/x86_64/e820.hpp"
#include "arch/x86_64/layout.hpp"
#include "arch/x86_64/mptable.hpp"
#include "common/size.hpp"

namespace hospes::x86 {

namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kPagePresentWritable = 0x3;
constexpr uint64_t kPageHuge = 0x80;
constexpr uint64_t kIdentityMappedGiB = 4;
constexpr uint16_t kHeapEnd = 0xfe00;
constexpr uint16_t kVideoModeNormal = 0xffff;

Result<void> write_gdt(const GuestMemory& memory) {
    std::array<uint64_t, 5> gdt{0, 0, kGdtCode64, kGdtData, kGdtCode32};
    return memory.write(kGdtAddress, {reinterpret_cast<const uint8_t*>(gdt.data()), sizeof(gdt)});
}

// Identity-maps the first 4 GiB with 2 MiB pages: the 64-bit boot protocol
// needs the kernel, zero page and command line mapped 1:1.
Result<void> write_page_tables(const GuestMemory& memory) {
    if (auto r = memory.write_object(kPml4Address, kPdptAddress | kPagePresentWritable); !r) return r;
    for (uint64_t gib = 0; gib < kIdentityMappedGiB; ++gib) {
        uint64_t pd = kPdAddress + gib * kPageSize;
        if (auto r = memory.write_object(kPdptAddress + gib * 8, pd | kPagePresentWritable); !r) return r;
        std::array<uint64_t, 512> entries{};
        for (uint64_t i = 0; i < entries.size(); ++i)
            entries[i] = (gib * GiB + i * 2 * MiB) | kPagePresentWritable | kPageHuge;
        if (auto r = memory.write_object(pd, entries); !r) return r;
    }
    return {};
}

Result<void> write_kernel(const GuestMemory& memory, const KernelImage& kernel) {
    for (const auto& segment : kernel.segments) {
        auto target = memory.slice(segment.guest_address, segment.memory_size);
        if (target.empty())
            return bad_input("memory too small: the kernel needs {:#x}-{:#x}", segment.guest_address,
                             segment.guest_address + segment.memory_size);
        std::memcpy(target.data(), segment.bytes.data(), segment.bytes.size());
        std::memset(target.data() + segment.bytes.size(), 0, segment.memory_size - segment.bytes.size());
    }
    return {};
}

struct Placed {
    uint64_t address = 0;
    uint64_t size = 0;
};

// The initrd goes as high in low memory as the kernel allows, above
// everything the kernel claims while it decompresses.
Result<Placed> place_initrd(const GuestMemory& memory, const KernelImage& kernel, const BootConfig& config) {
    uint64_t low_end = std::min(config.memory_size, kMmioHoleStart);
    if (kernel.load_end > low_end)
        return bad_input("memory too small: this kernel needs at least {} MiB", (kernel.load_end + MiB - 1) / MiB);
    if (config.initrd.empty()) return Placed{};
    uint64_t limit = std::min(low_end, kernel.initrd_limit);
    uint64_t size = config.initrd.size();
    if (size > limit || ((limit - size) & ~(kPageSize - 1)) < kernel.load_end)
        return bad_input("memory too small: kernel and initrd need at least {} MiB",
                         (kernel.load_end + size + kPageSize + MiB - 1) / MiB);
    uint64_t address = (limit - size) & ~(kPageSize - 1);
    if (auto r = memory.write(address, config.initrd); !r) return std::unexpected(r.error());
    return Placed{address, size};
}

Result<uint64_t> write_zero_page(const GuestMemory& memory, const KernelImage& kernel, const BootConfig& config,
                                 Placed initrd, uint64_t rsdp) {
    BootParams params{};
    if (kernel.setup_header) {
        params.hdr = *kernel.setup_header;
        // Only the bytes up to the header's own end are header; zero the rest.
        size_t header_end = 0x202 + (params.hdr.jump >> 8);
        auto* raw = reinterpret_cast<uint8_t*>(&params);
        if (header_end < kSetupHeaderOffset + sizeof(SetupHeader))
            std::memset(raw + header_end, 0, kSetupHeaderOffset + sizeof(SetupHeader) - header_end);
    } else {
        // An ELF vmlinux has no header of its own: describe a protocol 2.12 loader.
        params.hdr.boot_flag = kBootFlag;
        params.hdr.header = kHeaderMagic;
        params.hdr.version = 0x020c;
        params.hdr.kernel_alignment = 0x1000000;
    }
    params.hdr.type_of_loader = kLoaderTypeUndefined;
    params.hdr.loadflags |= kLoadedHigh | kCanUseHeap;
    params.hdr.heap_end_ptr = kHeapEnd;
    params.hdr.vid_mode = kVideoModeNormal;
    params.hdr.cmd_line_ptr = static_cast<uint32_t>(kCmdlineAddress);
    params.hdr.ramdisk_image = static_cast<uint32_t>(initrd.address);
    params.hdr.ramdisk_size = static_cast<uint32_t>(initrd.size);
    params.acpi_rsdp_addr = rsdp;
    auto map = e820_map(config.memory_size);
    std::copy(map.begin(), map.end(), params.e820_table);
    params.e820_entries = static_cast<uint8_t>(map.size());
    if (auto r = memory.write_object(kBootParamsAddress, params); !r) return std::unexpected(r.error());
    return kBootParamsAddress;
}

Result<uint64_t> write_pvh_start_info(const GuestMemory& memory, const BootConfig& config, Placed initrd,
                                      uint64_t rsdp) {
    constexpr uint64_t kModuleAddress = kPvhStartInfoAddress + 0x40;
    constexpr uint64_t kMemmapAddress = kPvhStartInfoAddress + 0x100;
    PvhStartInfo info{};
    info.magic = kPvhStartMagic;
    info.version = 1;
    info.cmdline_paddr = kCmdlineAddress;
    info.rsdp_paddr = rsdp;
    if (initrd.size != 0) {
        PvhModule module{initrd.address, initrd.size, 0, 0};
        if (auto r = memory.write_object(kModuleAddress, module); !r) return std::unexpected(r.error());
        info.nr_modules = 1;
        info.modlist_paddr = kModuleAddress;
    }
    auto map = e820_map(config.memory_size);
    for (size_t i = 0; i < map.size(); ++i) {
        PvhMemmapEntry entry{map[i].address, map[i].size, static_cast<uint32_t>(map[i].type), 0};
        if (auto r = memory.write_object(kMemmapAddress + i * sizeof(entry), entry); !r)
            return std::unexpected(r.error());
    }
    info.memmap_paddr = kMemmapAddress;
    info.memmap_entries = static_cast<uint32_t>(map.size());
    if (auto r = memory.write_object(kPvhStartInfoAddress, info); !r) return std::unexpected(r.error());
    return kPvhStartInfoAddress;
}

}  // namespace

Result<BootEntry> load_guest(const GuestMemory& memory, const KernelImage& kernel, const BootConfig& config) {
    uint64_t cmdline_limit = std::min(kernel.cmdline_limit, kCmdlineMaxSize - 1);
    if (config.cmdline.size() > cmdline_limit)
        return bad_input("kernel command line is {} bytes; this kernel accepts at most {}", config.cmdline.size(),
                         cmdline_limit);
    if (auto r = write_kernel(memory, kernel); !r) return std::unexpected(r.error());
    auto initrd = place_initrd(memory, kernel, config);
    if (!initrd) return std::unexpected(initrd.error());
    std::string cmdline = config.cmdline;
    if (auto r = memory.write(kCmdlineAddress, {reinterpret_cast<const uint8_t*>(cmdline.c_str()), cmdline.size() + 1});
        !r)
        return std::unexpected(r.error());
    auto mp_table = build_mp_table(kEbdaAddress, config.vcpus);
    if (!mp_table) return std::unexpected(mp_table.error());
    if (auto r = memory.write(kEbdaAddress, *mp_table); !r) return std::unexpected(r.error());
    auto acpi = build_acpi_tables(kAcpiAddress, config.vcpus, config.acpi_devices);
    if (!acpi) return std::unexpected(acpi.error());
    if (kAcpiAddress + acpi->bytes.size() > kHighMemoryStart) return bad_input("ACPI tables do not fit below 1 MiB");
    if (auto r = memory.write(kAcpiAddress, acpi->bytes); !r) return std::unexpected(r.error());
    if (auto r = write_gdt(memory); !r) return std::unexpected(r.error());

    BootEntry entry{kernel.mode, kernel.entry, 0};
    Result<uint64_t> info = kernel.mode == EntryMode::Pvh32
                                ? write_pvh_start_info(memory, config, *initrd, acpi->rsdp_address)
                                : write_zero_page(memory, kernel, config, *initrd, acpi->rsdp_address);
    if (!info) return std::unexpected(info.error());
    entry.boot_info = *info;
    if (kernel.mode == EntryMode::Linux64) {
        if (auto r = write_page_tables(memory); !r) return std::unexpected(r.error());
    }
    return entry;
}

}  // namespace hospes::x86
