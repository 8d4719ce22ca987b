// libFuzzer target for the virtio-mmio transport and the devices behind it,
// driven together as a hostile driver would: any register written or read
// in any order (status, features, queue layout, queue ready, interrupt
// acknowledgements, the configuration space), guest memory rewritten under
// the device (descriptors, rings, requests), notifications and back-end
// completions at any moment. The device is chosen by the first byte: a
// virtio-blk on a real io_uring over a memfd disk (read-write or read-only),
// virtio-rng, virtio-balloon or virtio-console.
//
// A crash or sanitizer report is a bug; so is a change to a read-only disk,
// and a status that does not read back 0 after the driver's reset. (A
// review found what this target was written for: a driver that set
// DRIVER_OK again after DEVICE_NEEDS_RESET had virtio-blk activated with
// requests in flight; their completions wrote through freed slots.)
//
// Input: byte 0 picks the device (% 5), then operations, each one byte op
// and its arguments:
//   op % 8 == 0  register write: u8 register (% 22 of the layout's, or a
//                raw offset below 0x200 when >= 22), u32 value
//   op % 8 == 1  register read: u8 register as above
//   op % 8 == 2  guest memory write: u16 offset into the ring area, u8
//                length, that many bytes
//   op % 8 == 3  the I/O thread sees queue u8 % 4 notified
//   op % 8 == 4  the I/O thread sees back-end event u8 % 4 ready (I/O done)
//   op % 8 == 5  a well-behaved driver's set-up: reset, features (u32 of
//                the device's, low word), every queue at a fixed place,
//                DRIVER_OK
//   op % 8 == 6  a request on queue u8 % 4: u8 descriptors (1-4), each u16
//                length and u8 flags (bit 0: device-writable); its header
//                bytes from the input (u8 length, bytes); made available
//   op % 8 == 7  the guest's reset (status 0), read back
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "backends/uring_block.hpp"
#include "common/log.hpp"
#include "common/size.hpp"
#include "devices/virtio/balloon.hpp"
#include "devices/virtio/blk.hpp"
#include "devices/virtio/console.hpp"
#include "devices/virtio/rng.hpp"
#include "input.hpp"
#include "virtio/mmio.hpp"

namespace {

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

using hospes::fuzz::Input;
using hospes::virtio::MmioTransport;

constexpr uint64_t kDiskSize = 256 * 1024;
constexpr uint64_t kMemorySize = 1 << 20;
// The area the rings and requests live in, which op 2 rewrites.
constexpr uint64_t kRingArea = 0x10000, kRingAreaSize = 0x40000;
// Where the well-behaved set-up puts queue q: descriptors, driver and device areas.
constexpr uint64_t queue_base(unsigned q) { return kRingArea + q * 0x8000; }
constexpr uint16_t kQueueSize = 16;

constexpr uint64_t kRegisters[] = {0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038,
                                   0x044, 0x050, 0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0fc};

int disk_fd() {
    static int fd = [] {
        int f = ::memfd_create("mmio-fuzz", MFD_CLOEXEC);
        CHECK(f >= 0);
        return f;
    }();
    return fd;
}

uint64_t checksum() {
    std::vector<uint8_t> bytes(kDiskSize);
    CHECK(::pread(disk_fd(), bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(kDiskSize));
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
    return h;
}

uint64_t register_offset(uint8_t selector) {
    if (selector < std::size(kRegisters)) return kRegisters[selector];
    return (uint64_t{selector} * 4) % 0x200;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);  // a warning per failure would drown the fuzzer's output
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const unsigned kind = in.u8() % 5;
    const bool read_only = kind == 1;

    std::vector<std::pair<uint64_t, uint64_t>> ranges{{0, kMemorySize}};
    auto memory = hospes::GuestMemory::create(ranges);
    CHECK(memory);
    uint8_t* ram = memory->regions()[0].host.data();

    std::unique_ptr<hospes::virtio::Device> device;
    uint64_t before = 0;
    if (kind <= 1) {
        CHECK(::ftruncate(disk_fd(), 0) == 0 && ::ftruncate(disk_fd(), kDiskSize) == 0);
        std::vector<uint8_t> pattern(kDiskSize);
        for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 31 + 7);
        CHECK(::pwrite(disk_fd(), pattern.data(), pattern.size(), 0) == static_cast<ssize_t>(kDiskSize));
        before = checksum();
        auto backend = hospes::backends::UringBlock::open("/proc/self/fd/" + std::to_string(disk_fd()),
                                                          {read_only, false, 64});
        CHECK(backend);
        device = std::make_unique<hospes::devices::VirtioBlk>(std::move(*backend));
    } else if (kind == 2) {
        device = std::make_unique<hospes::devices::VirtioRng>();
    } else if (kind == 3) {
        device = std::make_unique<hospes::devices::VirtioBalloon>();
    } else {
        device = std::make_unique<hospes::devices::VirtioConsole>([](std::span<const uint8_t>) {});
    }
    const auto backend_events = device->backend_events();
    const uint64_t features = device->features() | hospes::virtio::kFeatureVersion1;
    const size_t queue_count = device->queue_max_sizes().size();
    MmioTransport transport(std::move(device), *memory, [] {});

    auto out = [&](uint64_t offset, uint32_t value) {
        transport.write(offset, {reinterpret_cast<const uint8_t*>(&value), 4});
    };
    auto read = [&](uint64_t offset) {
        uint32_t value = 0;
        transport.read(offset, {reinterpret_cast<uint8_t*>(&value), 4});
        return value;
    };
    std::vector<uint16_t> avail_index(4, 0), next_descriptor(4, 0);

    while (!in.empty()) {
        uint8_t op = in.u8();
        switch (op % 8) {
        case 0: {
            uint64_t offset = register_offset(in.u8());
            out(offset, in.u32());
            break;
        }
        case 1: (void)read(register_offset(in.u8())); break;
        case 2: {
            uint64_t offset = in.u16() % kRingAreaSize;
            auto bytes = in.bytes(in.u8());
            size_t n = std::min<size_t>(bytes.size(), kRingAreaSize - offset);
            if (n != 0) std::memcpy(ram + kRingArea + offset, bytes.data(), n);
            break;
        }
        case 3: transport.notify(static_cast<uint16_t>(in.u8() % 4)); break;
        case 4: {
            size_t event = in.u8() % 4;
            if (event < backend_events.size()) transport.backend_ready(event);
            break;
        }
        case 5: {
            out(0x070, 0);
            out(0x070, 1 | 2);
            out(0x024, 0);
            out(0x020, static_cast<uint32_t>(features) & in.u32());
            out(0x024, 1);
            out(0x020, static_cast<uint32_t>(features >> 32));
            out(0x070, 1 | 2 | 8);
            for (unsigned q = 0; q < queue_count && q < 4; ++q) {
                uint64_t base = queue_base(q);
                out(0x030, q);
                out(0x038, kQueueSize);
                out(0x080, static_cast<uint32_t>(base));
                out(0x084, 0);
                out(0x090, static_cast<uint32_t>(base + 0x1000));
                out(0x094, 0);
                out(0x0a0, static_cast<uint32_t>(base + 0x2000));
                out(0x0a4, 0);
                out(0x044, 1);
                avail_index[q] = next_descriptor[q] = 0;
            }
            out(0x070, 1 | 2 | 8 | 4);
            break;
        }
        case 6: {
            unsigned q = in.u8() % 4;
            unsigned count = 1 + in.u8() % 4;
            uint64_t base = queue_base(q);
            uint64_t buffers = base + 0x3000;  // this queue's request buffers
            uint16_t head = next_descriptor[q] % kQueueSize;
            for (unsigned i = 0; i < count; ++i) {
                uint16_t index = (head + i) % kQueueSize;
                uint32_t length = in.u16() % 0x1200;
                uint8_t flags = in.u8();
                uint64_t address = buffers + 0x1000 * (i % 4);
                uint16_t descriptor_flags = static_cast<uint16_t>((i + 1 < count ? 1 : 0) | ((flags & 1) ? 2 : 0));
                uint8_t* d = ram + base + 16 * uint64_t{index};
                std::memcpy(d, &address, 8);
                std::memcpy(d + 8, &length, 4);
                std::memcpy(d + 12, &descriptor_flags, 2);
                uint16_t next = (index + 1) % kQueueSize;
                std::memcpy(d + 14, &next, 2);
            }
            auto header = in.bytes(in.u8() % 32);
            if (!header.empty()) std::memcpy(ram + buffers, header.data(), header.size());
            next_descriptor[q] = static_cast<uint16_t>(next_descriptor[q] + count);
            uint8_t* avail = ram + base + 0x1000;
            std::memcpy(avail + 4 + 2 * (avail_index[q] % kQueueSize), &head, 2);
            ++avail_index[q];
            std::memcpy(avail + 2, &avail_index[q], 2);
            break;
        }
        default:
            out(0x070, 0);
            CHECK(read(0x070) == 0);
            break;
        }
    }
    // The guest's last reset: whatever is in flight is waited for.
    out(0x070, 0);
    CHECK(read(0x070) == 0);
    if (read_only) CHECK(checksum() == before);
    return 0;
}
