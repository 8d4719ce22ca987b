#include "arch/x86_64/kernel_image.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "arch/x86_64/layout.hpp"

namespace hospes::x86 {

namespace {

constexpr uint32_t kXenElfNotePhys32Entry = 18;  // XEN_ELFNOTE_PHYS32_ENTRY
constexpr uint16_t kMinimumProtocol = 0x020c;     // 2.12: xloadflags and the 64-bit entry

template <class T>
T read_at(std::span<const uint8_t> file, size_t offset) {
    T value;
    std::memcpy(&value, file.data() + offset, sizeof(T));
    return value;
}

// True when [offset, offset + size) lies inside a file of `file_size` bytes.
bool fits(uint64_t offset, uint64_t size, uint64_t file_size) {
    return offset <= file_size && size <= file_size - offset;
}

Result<KernelImage> parse_bzimage(std::span<const uint8_t> file) {
    auto header = read_at<SetupHeader>(file, kSetupHeaderOffset);
    if (header.version < kMinimumProtocol)
        return bad_input("kernel uses boot protocol {}.{:02}; hospes needs 2.12 or later", header.version >> 8,
                         header.version & 0xff);
    if ((header.xloadflags & kXloadKernel64) == 0) return bad_input("kernel has no 64-bit entry point");
    uint64_t setup_sectors = header.setup_sects == 0 ? 4 : header.setup_sects;
    uint64_t kernel_offset = (setup_sectors + 1) * 512;
    uint64_t kernel_size = uint64_t{header.syssize} * 16;
    if (kernel_size == 0 || !fits(kernel_offset, kernel_size, file.size()))
        return bad_input("kernel image is truncated: its header describes {} bytes, the file has {}",
                         kernel_offset + kernel_size, file.size());

    KernelImage image;
    image.setup_header = header;
    image.segments.push_back({kHighMemoryStart, file.subspan(kernel_offset), file.size() - kernel_offset});
    image.entry = kHighMemoryStart + 0x200;
    image.mode = EntryMode::Linux64;
    // A relocatable kernel moves itself to pref_address before decompressing.
    uint64_t run_address = std::max<uint64_t>(kHighMemoryStart, header.relocatable_kernel ? header.pref_address : 0);
    image.load_end = std::max(kHighMemoryStart + (file.size() - kernel_offset), run_address + header.init_size);
    image.initrd_limit = uint64_t{header.initrd_addr_max} + 1;
    image.cmdline_limit = header.cmdline_size;
    return image;
}

// Finds the PVH entry in one PT_NOTE segment, if it is there.
std::optional<uint64_t> find_pvh_entry(std::span<const uint8_t> notes) {
    size_t offset = 0;
    auto align4 = [](uint64_t n) { return (n + 3) & ~uint64_t{3}; };
    while (notes.size() - offset >= sizeof(Elf64_Nhdr)) {
        auto note = read_at<Elf64_Nhdr>(notes, offset);
        offset += sizeof(Elf64_Nhdr);
        uint64_t name_size = align4(note.n_namesz);
        uint64_t desc_size = align4(note.n_descsz);
        if (!fits(offset, name_size, notes.size()) || !fits(offset + name_size, desc_size, notes.size()))
            return std::nullopt;
        bool is_xen = note.n_namesz == 4 && std::memcmp(notes.data() + offset, "Xen", 4) == 0;
        if (is_xen && note.n_type == kXenElfNotePhys32Entry && note.n_descsz >= 4) {
            // The note holds a 32-bit physical address, stored as 4 or 8 bytes.
            return read_at<uint32_t>(notes, offset + name_size);
        }
        offset += name_size + desc_size;
    }
    return std::nullopt;
}

Result<KernelImage> parse_elf(std::span<const uint8_t> file) {
    if (file.size() < sizeof(Elf64_Ehdr)) return bad_input("ELF kernel is truncated: no complete ELF header");
    auto elf = read_at<Elf64_Ehdr>(file, 0);
    if (elf.e_ident[EI_CLASS] != ELFCLASS64 || elf.e_ident[EI_DATA] != ELFDATA2LSB || elf.e_machine != EM_X86_64)
        return bad_input("ELF kernel is not a 64-bit x86 image");
    if (elf.e_type != ET_EXEC) return bad_input("ELF kernel is not an executable (e_type {})", elf.e_type);
    if (elf.e_phentsize != sizeof(Elf64_Phdr) || elf.e_phnum == 0 ||
        !fits(elf.e_phoff, uint64_t{elf.e_phnum} * sizeof(Elf64_Phdr), file.size()))
        return bad_input("ELF kernel is truncated or malformed: bad program header table");

    KernelImage image;
    std::optional<uint64_t> pvh_entry;
    for (uint16_t i = 0; i < elf.e_phnum; ++i) {
        auto segment = read_at<Elf64_Phdr>(file, elf.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr));
        if (segment.p_type != PT_LOAD && segment.p_type != PT_NOTE) continue;
        if (!fits(segment.p_offset, segment.p_filesz, file.size()))
            return bad_input("ELF kernel is truncated: segment {} lies beyond the end of the file", i);
        auto bytes = file.subspan(segment.p_offset, segment.p_filesz);
        if (segment.p_type == PT_NOTE) {
            if (!pvh_entry) pvh_entry = find_pvh_entry(bytes);
            continue;
        }
        if (segment.p_filesz > segment.p_memsz || segment.p_paddr > kMmioHoleStart ||
            segment.p_memsz > kMmioHoleStart - segment.p_paddr)
            return bad_input("ELF kernel segment {} does not fit below 3 GiB", i);
        image.segments.push_back({segment.p_paddr, bytes, segment.p_memsz});
        image.load_end = std::max(image.load_end, segment.p_paddr + segment.p_memsz);
    }
    if (image.segments.empty()) return bad_input("ELF kernel has no loadable segment");
    if (pvh_entry) {
        image.mode = EntryMode::Pvh32;
        image.entry = *pvh_entry;
    } else {
        image.mode = EntryMode::Linux64;
        image.entry = elf.e_entry;
    }
    return image;
}

}  // namespace

Result<KernelImage> parse_kernel_image(std::span<const uint8_t> file) {
    if (file.size() >= 4 && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0) return parse_elf(file);
    if (file.size() >= kSetupHeaderOffset + sizeof(SetupHeader)) {
        auto header = read_at<SetupHeader>(file, kSetupHeaderOffset);
        if (header.boot_flag == kBootFlag && header.header == kHeaderMagic) return parse_bzimage(file);
    }
    if (file.size() < kSetupHeaderOffset + sizeof(SetupHeader) && file.size() >= 0x202 &&
        read_at<uint16_t>(file, 0x1fe) == kBootFlag)
        return bad_input("kernel image is truncated: {} bytes is shorter than its setup header", file.size());
    return bad_input("not a kernel: neither a bzImage nor an x86-64 ELF");
}

}  // namespace hospes::x86
