// Recognises and validates a kernel image: a bzImage (64-bit entry of the
// Linux boot protocol) or an uncompressed vmlinux ELF (PVH entry when its
// note is present, otherwise the 64-bit entry). Parsing only: nothing is
// written to guest memory here, so every check is unit-testable.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "arch/x86_64/boot_params.hpp"
#include "common/error.hpp"

namespace hospes::x86 {

enum class EntryMode {
    Linux64,  // long mode, paging on, %rsi = boot_params
    Pvh32,    // 32-bit protected mode, paging off, %ebx = hvm_start_info
};

struct KernelSegment {
    uint64_t guest_address;
    std::span<const uint8_t> bytes;  // copied to guest_address
    uint64_t memory_size;            // bytes beyond `bytes` are zero
};

struct KernelImage {
    std::vector<KernelSegment> segments;
    uint64_t entry = 0;
    EntryMode mode = EntryMode::Linux64;
    // The bzImage's setup header, copied into boot_params; absent for ELF.
    std::optional<SetupHeader> setup_header;
    // The end of the memory the kernel claims while it boots (a bzImage
    // decompresses into init_size bytes from its preferred address).
    uint64_t load_end = 0;
    // Largest address an initrd may end at (initrd_addr_max + 1).
    uint64_t initrd_limit = 0x80000000;
    // Longest command line the kernel accepts, without the NUL.
    uint64_t cmdline_limit = 2047;
};

// `file` must outlive the result: segments point into it.
Result<KernelImage> parse_kernel_image(std::span<const uint8_t> file);

}  // namespace hospes::x86
