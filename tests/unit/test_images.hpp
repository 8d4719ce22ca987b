// Synthetic kernel images for the unit tests: just enough of a bzImage or
// a vmlinux ELF for the loader's checks.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace hospes::test {

template <class T>
void poke(std::vector<uint8_t>& bytes, size_t offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// A bzImage with 4 setup sectors and `payload` bytes of protected-mode code.
inline std::vector<uint8_t> make_bzimage(size_t payload) {
    std::vector<uint8_t> file(5 * 512 + payload, 0x90);
    poke<uint8_t>(file, 0x1f1, 4);                                  // setup_sects
    poke<uint32_t>(file, 0x1f4, static_cast<uint32_t>(payload / 16)); // syssize
    poke<uint16_t>(file, 0x1fe, 0xaa55);
    poke<uint16_t>(file, 0x200, 0x6aeb);                            // jmp: header ends at 0x26c
    poke<uint32_t>(file, 0x202, 0x53726448);                        // "HdrS"
    poke<uint16_t>(file, 0x206, 0x020f);
    poke<uint8_t>(file, 0x211, 0x01);                               // loaded high
    poke<uint32_t>(file, 0x22c, 0x7fffffff);                        // initrd_addr_max
    poke<uint32_t>(file, 0x230, 0x200000);
    poke<uint8_t>(file, 0x234, 1);                                  // relocatable
    poke<uint16_t>(file, 0x236, 0x3);                               // 64-bit entry
    poke<uint32_t>(file, 0x238, 2047);                              // cmdline_size
    poke<uint64_t>(file, 0x258, 0x1000000);                         // pref_address
    poke<uint32_t>(file, 0x260, 0x800000);                          // init_size
    return file;
}

inline constexpr uint32_t kPvhEntry = 0x1000040;
inline constexpr size_t kNoteOffset = sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr);

// An ELF with one PT_LOAD of `size` bytes at `paddr` and, when asked, a
// PT_NOTE with Xen's PHYS32_ENTRY note.
inline std::vector<uint8_t> make_elf(uint64_t paddr, uint64_t entry, size_t size, bool pvh_note) {
    constexpr size_t kNoteSize = sizeof(Elf64_Nhdr) + 4 + 8;
    size_t data_offset = 4096;
    std::vector<uint8_t> file(data_offset + size, 0);
    Elf64_Ehdr header{};
    std::memcpy(header.e_ident, ELFMAG, SELFMAG);
    header.e_ident[EI_CLASS] = ELFCLASS64;
    header.e_ident[EI_DATA] = ELFDATA2LSB;
    header.e_ident[EI_VERSION] = EV_CURRENT;
    header.e_type = ET_EXEC;
    header.e_machine = EM_X86_64;
    header.e_version = EV_CURRENT;
    header.e_entry = entry;
    header.e_phoff = sizeof(Elf64_Ehdr);
    header.e_ehsize = sizeof(Elf64_Ehdr);
    header.e_phentsize = sizeof(Elf64_Phdr);
    header.e_phnum = pvh_note ? 2 : 1;
    std::memcpy(file.data(), &header, sizeof(header));

    Elf64_Phdr load{};
    load.p_type = PT_LOAD;
    load.p_offset = data_offset;
    load.p_vaddr = 0xffffffff80000000ull + paddr;
    load.p_paddr = paddr;
    load.p_filesz = size;
    load.p_memsz = size;
    std::memcpy(file.data() + sizeof(Elf64_Ehdr), &load, sizeof(load));
    if (pvh_note) {
        Elf64_Phdr note{};
        note.p_type = PT_NOTE;
        note.p_offset = kNoteOffset;
        note.p_filesz = kNoteSize;
        std::memcpy(file.data() + sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr), &note, sizeof(note));
        Elf64_Nhdr nhdr{4, 8, 18};
        std::memcpy(file.data() + kNoteOffset, &nhdr, sizeof(nhdr));
        std::memcpy(file.data() + kNoteOffset + sizeof(nhdr), "Xen", 4);
        uint64_t value = kPvhEntry;
        std::memcpy(file.data() + kNoteOffset + sizeof(nhdr) + 4, &value, 8);
    }
    return file;
}

}  // namespace hospes::test
