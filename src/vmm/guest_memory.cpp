#include "vmm/guest_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace hospes {

namespace {
// The host's free default-size huge pages, for the error message.
uint64_t free_huge_pages() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    uint64_t value = 0;
    while (meminfo >> key >> value) {
        if (key == "HugePages_Free:") return value;
        meminfo.ignore(64, '\n');
    }
    return 0;
}
}  // namespace

Result<GuestMemory> GuestMemory::create(std::span<const std::pair<uint64_t, uint64_t>> ranges, bool hugepages) {
    uint64_t total = 0;
    for (auto [address, size] : ranges) total += size;
    UniqueFd file(
        ::memfd_create("hospes-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING | (hugepages ? MFD_HUGETLB : 0u)));
    if (!file.valid()) return errno_error("cannot create guest memory{}", hugepages ? " on huge pages" : "");
    if (hugepages)
        for (auto [address, size] : ranges)
            if (address % kHugePageSize != 0 || size % kHugePageSize != 0)
                return bad_input("guest memory on huge pages must come in whole {} MiB pages", kHugePageSize / (1 << 20));
    // The file's size reserves nothing: pages are allocated when first touched.
    if (::ftruncate(file.get(), static_cast<off_t>(total)) != 0)
        return errno_error("cannot size guest memory to {} bytes", total);
    // Sealed at that size: a process it is shared with can rely on every
    // page staying there (a shrunk file would fault its accesses).
    if (::fcntl(file.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return errno_error("cannot seal guest memory");
    GuestMemory memory;
    uint64_t offset = 0;
    for (auto [address, size] : ranges) {
        // Safe: a fresh shared mapping of our own file, within its size.
        // Huge pages are reserved now (no MAP_NORESERVE): too few is an
        // error here, not a SIGBUS when the guest first touches the page.
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | (hugepages ? 0 : MAP_NORESERVE),
                         file.get(), static_cast<off_t>(offset));
        if (p == MAP_FAILED && hugepages)
            return errno_error("cannot reserve {} MiB of huge pages for guest memory (free: {} MiB; reserve more in "
                               "/proc/sys/vm/nr_hugepages)", size / (1 << 20), free_huge_pages() * kHugePageSize / (1 << 20));
        if (p == MAP_FAILED) return errno_error("cannot map {} bytes of guest memory", size);
        // Shared memory gets transparent huge pages only when asked for
        // (and the host's shmem_enabled is advise or always): without them
        // every guest page is a 4 KiB mapping, as anonymous memory was not.
        if (!hugepages) ::madvise(p, size, MADV_HUGEPAGE);
        memory.regions_.push_back({address, Mapping(p, size), file.get(), offset});
        offset += size;
    }
    memory.files_.push_back(std::move(file));
    return memory;
}

Result<GuestMemory> GuestMemory::map(std::span<const SharedRegion> regions) {
    GuestMemory memory;
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    for (const auto& shared : regions) {
        if (shared.size == 0 || shared.size % page != 0 || shared.file_offset % page != 0)
            return bad_input("memory region at {:#x}: size {:#x} or file offset {:#x} is not a whole number of pages",
                             shared.guest_address, shared.size, shared.file_offset);
        if (shared.guest_address + shared.size < shared.guest_address)
            return bad_input("memory region at {:#x} of {:#x} bytes wraps around", shared.guest_address, shared.size);
        for (const auto& other : memory.regions_)
            if (shared.guest_address < other.guest_address + other.host.size() &&
                other.guest_address < shared.guest_address + shared.size)
                return bad_input("memory regions at {:#x} and {:#x} overlap", shared.guest_address,
                                 other.guest_address);
        UniqueFd file(::fcntl(shared.file, F_DUPFD_CLOEXEC, 0));
        if (!file.valid()) return errno_error("memory region at {:#x}: bad file", shared.guest_address);
        // The sender's file may be shorter than it claims, or shrink later:
        // mmap would succeed and a later access fault (SIGBUS). Only a file
        // sealed against shrinking, and long enough, is mapped.
        int seals = ::fcntl(file.get(), F_GET_SEALS);
        if (seals < 0 || !(seals & F_SEAL_SHRINK))
            return bad_input("memory region at {:#x}: its file is not sealed against shrinking (F_SEAL_SHRINK)",
                             shared.guest_address);
        off_t end = ::lseek(file.get(), 0, SEEK_END);
        if (end < 0 || static_cast<uint64_t>(end) < shared.file_offset ||
            static_cast<uint64_t>(end) - shared.file_offset < shared.size)
            return bad_input("memory region at {:#x}: {:#x} bytes from offset {:#x} do not fit in its file",
                             shared.guest_address, shared.size, shared.file_offset);
        // Safe: checked above to lie within the file.
        void* p = ::mmap(nullptr, shared.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, file.get(),
                         static_cast<off_t>(shared.file_offset));
        if (p == MAP_FAILED) return errno_error("cannot map memory region at {:#x}", shared.guest_address);
        memory.regions_.push_back({shared.guest_address, Mapping(p, shared.size), file.get(), shared.file_offset});
        memory.files_.push_back(std::move(file));
    }
    return memory;
}

Result<void> GuestMemory::write(uint64_t address, std::span<const uint8_t> bytes) const {
    auto target = slice(address, bytes.size());
    if (target.size() != bytes.size() || (bytes.empty() && slice(address, 1).empty()))
        return bad_input("{} bytes at guest address {:#x} do not fit in guest memory", bytes.size(), address);
    if (!bytes.empty()) std::memcpy(target.data(), bytes.data(), bytes.size());
    return {};
}

}  // namespace hospes
