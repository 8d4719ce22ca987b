// The memory layout a guest boots with: e820 for any size (the 3-4 GiB
// hole left out), the MP table's checksums and entries, and the zero page,
// PVH start_info, page tables and initrd placement written into real
// (anonymous) guest memory.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>

#include "arch/x86_64/boot.hpp"
#include "arch/x86_64/e820.hpp"
#include "arch/x86_64/layout.hpp"
#include "arch/x86_64/mptable.hpp"
#include "common/size.hpp"
#include "test_images.hpp"

namespace hospes::x86 {
namespace {

uint64_t ram_in(const std::vector<E820Entry>& map) {
    uint64_t total = 0;
    for (const auto& e : map)
        if (e.type == E820Type::Ram) total += e.size;
    return total;
}

void expect_outside_hole(const std::vector<E820Entry>& map) {
    for (const auto& e : map) {
        if (e.type != E820Type::Ram) continue;
        bool below = e.address + e.size <= kMmioHoleStart;
        bool above = e.address >= kMmioHoleEnd;
        EXPECT_TRUE(below || above) << std::hex << e.address << "+" << e.size;
    }
}

TEST(E820, SmallGuestIsOneLowRange) {
    auto map = e820_map(512 * MiB);
    ASSERT_EQ(map.size(), 3u);
    EXPECT_EQ(map[0].address, 0u);
    EXPECT_EQ(map[0].size, kEbdaAddress);
    EXPECT_EQ(map[1].type, E820Type::Reserved);
    EXPECT_EQ(map[2].address, kHighMemoryStart);
    EXPECT_EQ(map[2].address + map[2].size, 512 * MiB);
    expect_outside_hole(map);
}

class E820Sizes : public ::testing::TestWithParam<uint64_t> {};

TEST_P(E820Sizes, CoversAllMemoryOutsideTheHole) {
    uint64_t size = GetParam();
    auto map = e820_map(size);
    expect_outside_hole(map);
    // RAM seen by the guest = memory minus the reserved EBDA/BIOS area.
    EXPECT_EQ(ram_in(map), size - (kHighMemoryStart - kEbdaAddress));
    uint64_t backed = 0;
    for (const auto& range : ram_ranges(size)) backed += range.size;
    EXPECT_EQ(backed, size);
    if (size > kMmioHoleStart) {
        EXPECT_EQ(map.back().address, kMmioHoleEnd);
        EXPECT_EQ(map.back().size, size - kMmioHoleStart);
    }
}

INSTANTIATE_TEST_SUITE_P(Sizes, E820Sizes,
                         ::testing::Values(16 * MiB, 3 * GiB - 4 * KiB, 3 * GiB, 3 * GiB + 2 * MiB, 4 * GiB,
                                           4608 * MiB, 64 * GiB));

TEST(MpTable, ChecksumsAndEntries) {
    for (uint32_t vcpus : {1u, 2u, 8u, kMaxMpTableVcpus}) {
        auto table = build_mp_table(kEbdaAddress, vcpus);
        ASSERT_TRUE(table) << table.error().message;
        EXPECT_EQ(std::memcmp(table->data(), "_MP_", 4), 0);
        EXPECT_EQ(byte_sum(table->data(), 16), 0) << "floating pointer, vcpus " << vcpus;
        uint32_t config_address;
        std::memcpy(&config_address, table->data() + 4, 4);
        EXPECT_EQ(config_address, kEbdaAddress + 16);
        const uint8_t* config = table->data() + 16;
        EXPECT_EQ(std::memcmp(config, "PCMP", 4), 0);
        uint16_t length, count;
        std::memcpy(&length, config + 4, 2);
        std::memcpy(&count, config + 34, 2);
        EXPECT_EQ(length, table->size() - 16);
        EXPECT_EQ(byte_sum(config, length), 0) << "configuration table, vcpus " << vcpus;
        // vCPUs, one bus, one IOAPIC, 16 ISA interrupts, 2 local interrupts.
        EXPECT_EQ(count, vcpus + 1 + 1 + 16 + 2);
        uint32_t processors = 0, boot_processors = 0;
        const uint8_t* entry = config + 44;
        for (uint16_t i = 0; i < count; ++i) {
            if (entry[0] == 0) {
                EXPECT_EQ(entry[1], processors) << "APIC ids are the vCPU indexes";
                ++processors;
                if (entry[3] & 2) ++boot_processors;
                entry += 20;
            } else {
                if (entry[0] == 2) {
                    EXPECT_EQ(entry[1], vcpus) << "IOAPIC id follows the vCPUs";
                }
                entry += 8;
            }
        }
        EXPECT_EQ(processors, vcpus);
        EXPECT_EQ(boot_processors, 1u);
    }
}

TEST(MpTable, RejectsImpossibleVcpuCounts) {
    EXPECT_FALSE(build_mp_table(kEbdaAddress, 0));
    EXPECT_FALSE(build_mp_table(kEbdaAddress, kMaxMpTableVcpus + 1));
}

class LoadGuest : public ::testing::Test {
protected:
    GuestMemory memory_for(uint64_t size) {
        std::vector<std::pair<uint64_t, uint64_t>> ranges;
        for (const auto& r : ram_ranges(size)) ranges.emplace_back(r.guest_address, r.size);
        auto memory = GuestMemory::create(ranges);
        EXPECT_TRUE(memory);
        return std::move(*memory);
    }
    template <class T>
    T read(const GuestMemory& memory, uint64_t address) {
        T value;
        auto bytes = memory.slice(address, sizeof(T));
        EXPECT_EQ(bytes.size(), sizeof(T));
        std::memcpy(&value, bytes.data(), sizeof(T));
        return value;
    }
};

TEST_F(LoadGuest, WritesZeroPageForBzImage) {
    auto file = test::make_bzimage(64 * KiB);
    auto kernel = parse_kernel_image(file);
    ASSERT_TRUE(kernel);
    std::vector<uint8_t> initrd(3 * MiB + 123, 0xab);
    uint64_t size = 4608 * MiB;
    auto memory = memory_for(size);
    auto entry = load_guest(memory, *kernel, BootConfig{size, 2, "console=ttyS0 quiet", initrd});
    ASSERT_TRUE(entry) << entry.error().message;
    EXPECT_EQ(entry->mode, EntryMode::Linux64);
    EXPECT_EQ(entry->rip, 0x100200u);
    EXPECT_EQ(entry->boot_info, kBootParamsAddress);

    auto params = read<BootParams>(memory, kBootParamsAddress);
    EXPECT_EQ(params.hdr.boot_flag, kBootFlag);
    EXPECT_EQ(params.hdr.type_of_loader, kLoaderTypeUndefined);
    EXPECT_TRUE(params.hdr.loadflags & kCanUseHeap);
    EXPECT_EQ(params.hdr.cmd_line_ptr, kCmdlineAddress);
    auto cmdline = memory.slice(kCmdlineAddress, 20);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(cmdline.data())), "console=ttyS0 quiet");
    // The initrd sits page-aligned as high as initrd_addr_max (2 GiB) allows, intact.
    EXPECT_EQ(params.hdr.ramdisk_size, initrd.size());
    EXPECT_EQ(params.hdr.ramdisk_image % 4096, 0u);
    EXPECT_LE(params.hdr.ramdisk_image + initrd.size(), 0x80000000u);
    EXPECT_GT(params.hdr.ramdisk_image + initrd.size(), 0x80000000u - 4096);
    auto placed = memory.slice(params.hdr.ramdisk_image, initrd.size());
    EXPECT_EQ(std::memcmp(placed.data(), initrd.data(), initrd.size()), 0);
    // The e820 map in the zero page is the one for this size, high RAM included.
    auto expected = e820_map(size);
    ASSERT_EQ(params.e820_entries, expected.size());
    EXPECT_EQ(params.e820_table[params.e820_entries - 1].address, kMmioHoleEnd);
    EXPECT_EQ(params.e820_table[params.e820_entries - 1].size, size - kMmioHoleStart);
    // Identity map: PML4 -> PDPT -> 2 MiB pages; 3 GiB + 2 MiB maps to itself.
    EXPECT_EQ(read<uint64_t>(memory, kPml4Address) & ~0xfffull, kPdptAddress);
    uint64_t pd3 = read<uint64_t>(memory, kPdptAddress + 3 * 8) & ~0xfffull;
    EXPECT_EQ(read<uint64_t>(memory, pd3 + 8), (3 * GiB + 2 * MiB) | 0x83);
    // The kernel's protected-mode code is at 1 MiB, and the MP table in the EBDA.
    EXPECT_EQ(read<uint8_t>(memory, 0x100000), 0x90);
    EXPECT_EQ(std::memcmp(memory.slice(kEbdaAddress, 4).data(), "_MP_", 4), 0);
}

TEST_F(LoadGuest, WritesPvhStartInfoForElfWithNote) {
    auto file = test::make_elf(0x1000000, 0x1000000, 8192, true);
    auto kernel = parse_kernel_image(file);
    ASSERT_TRUE(kernel);
    std::vector<uint8_t> initrd(100000, 0x5a);
    auto memory = memory_for(256 * MiB);
    auto entry = load_guest(memory, *kernel, BootConfig{256 * MiB, 1, "root=/dev/vda", initrd});
    ASSERT_TRUE(entry) << entry.error().message;
    EXPECT_EQ(entry->mode, EntryMode::Pvh32);
    EXPECT_EQ(entry->rip, test::kPvhEntry);
    auto info = read<PvhStartInfo>(memory, entry->boot_info);
    EXPECT_EQ(info.magic, kPvhStartMagic);
    EXPECT_EQ(info.version, 1u);
    EXPECT_EQ(info.cmdline_paddr, kCmdlineAddress);
    ASSERT_EQ(info.nr_modules, 1u);
    auto module = read<PvhModule>(memory, info.modlist_paddr);
    EXPECT_EQ(module.size, initrd.size());
    EXPECT_EQ(read<uint8_t>(memory, module.paddr), 0x5a);
    auto map = e820_map(256 * MiB);
    ASSERT_EQ(info.memmap_entries, map.size());
    auto last = read<PvhMemmapEntry>(memory, info.memmap_paddr + (map.size() - 1) * sizeof(PvhMemmapEntry));
    EXPECT_EQ(last.address + last.size, 256 * MiB);
    EXPECT_EQ(last.type, 1u);
}

TEST_F(LoadGuest, RefusesMemoryTooSmallForKernelAndInitrd) {
    auto file = test::make_bzimage(64 * KiB);
    auto kernel = parse_kernel_image(file);
    ASSERT_TRUE(kernel);
    // The kernel claims 16 MiB + 8 MiB while decompressing.
    auto memory = memory_for(16 * MiB);
    auto no_room = load_guest(memory, *kernel, BootConfig{16 * MiB, 1, "", {}});
    ASSERT_FALSE(no_room);
    EXPECT_NE(no_room.error().message.find("memory too small"), std::string::npos) << no_room.error().message;

    std::vector<uint8_t> initrd(8 * MiB, 1);
    auto memory2 = memory_for(30 * MiB);
    auto initrd_too_big = load_guest(memory2, *kernel, BootConfig{30 * MiB, 1, "", initrd});
    ASSERT_FALSE(initrd_too_big);
    EXPECT_NE(initrd_too_big.error().message.find("initrd"), std::string::npos);
}

TEST_F(LoadGuest, RefusesOverlongCommandLine) {
    auto file = test::make_bzimage(64 * KiB);
    auto kernel = parse_kernel_image(file);
    ASSERT_TRUE(kernel);
    auto memory = memory_for(64 * MiB);
    auto r = load_guest(memory, *kernel, BootConfig{64 * MiB, 1, std::string(2048, 'x'), {}});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("command line"), std::string::npos);
    EXPECT_TRUE(load_guest(memory, *kernel, BootConfig{64 * MiB, 1, std::string(2047, 'x'), {}}));
}

}  // namespace
}  // namespace hospes::x86
