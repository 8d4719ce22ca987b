// libFuzzer target for virtio-blk's request parser: the input is a series
// of requests a hostile driver might build (any type, sector, descriptor
// count, lengths, directions, addresses in or out of guest memory, and the
// odd raw descriptor with a random next link), served by the real device on
// a real io_uring backend over a memfd. A crash, a sanitizer report, a hang,
// a used length beyond the chain's writable bytes, or a change to a
// read-only disk is a bug.
//
// Input layout:
//   byte 0      bit 0: read-only disk; bits 1-7: requests per kick
//   then, per request (8 bytes, fewer at the end = stop):
//     byte 0    type: 0-7 pick IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES,
//               an unknown type, or a raw type from the next bytes
//     bytes 1-2 sector (small, so both in range and past the end occur), or
//               with bit 7 of byte 0 a sector near 2^64
//     byte 3    descriptors: 1-6 (low 3 bits), bit 3: raw next link
//     bytes 4-7 per descriptor a length selector and direction bit
#include <sys/mman.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "support/fake_driver.hpp"
#include "backends/uring_block.hpp"
#include "devices/virtio/blk.hpp"
#include "common/log.hpp"

namespace {

using hospes::test_support::FakeDriver;

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

constexpr uint64_t kDiskSize = 256 * 1024;

// One memfd "disk" per process, refilled for every input.
int disk_fd() {
    static int fd = [] {
        int f = ::memfd_create("blk-fuzz", MFD_CLOEXEC);
        CHECK(f >= 0);
        return f;
    }();
    return fd;
}

uint64_t checksum(int fd) {
    std::vector<uint8_t> bytes(kDiskSize);
    CHECK(::pread(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(kDiskSize));
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
    return h;
}

uint32_t length_for(uint8_t selector) {
    static constexpr uint32_t kLengths[] = {0, 1, 8, 15, 16, 17, 20, 21, 512, 513, 4096, 8192, 0xffffffffu, 65536};
    return kLengths[selector % std::size(kLengths)];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);  // a log line per bad request would drown the fuzzer's output
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const bool read_only = data[0] & 1;
    const unsigned per_kick = 1 + (data[0] >> 1) % 16;
    ++data;
    --size;

    static std::vector<uint8_t> pattern = [] {
        std::vector<uint8_t> p(kDiskSize);
        for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(i * 31 + 7);
        return p;
    }();
    CHECK(::ftruncate(disk_fd(), 0) == 0 && ::ftruncate(disk_fd(), kDiskSize) == 0);
    CHECK(::pwrite(disk_fd(), pattern.data(), pattern.size(), 0) == static_cast<ssize_t>(kDiskSize));
    const uint64_t before = checksum(disk_fd());

    auto backend = hospes::backends::UringBlock::open("/proc/self/fd/" + std::to_string(disk_fd()),
                                                      {read_only, false, 64});
    CHECK(backend);
    hospes::devices::VirtioBlk device(std::move(*backend));
    {
        FakeDriver driver(device, 48 << 20);
        CHECK(driver.start(std::nullopt, 64));
        std::vector<uint32_t> writable_of(64, 0);  // per head: the writable bytes it offered
        unsigned queued = 0;

        auto drain = [&] {
            driver.kick(0);
            // Stops after a few looks without progress: whatever is still in
            // flight is waited for by the device's reset at the end.
            for (int idle = 0; idle < 3 && driver.failures().empty();) {
                device.backend_ready(0);
                bool progress = false;
                while (auto used = driver.next_used(0)) {
                    CHECK(used->id < writable_of.size());
                    CHECK(used->length <= writable_of[used->id]);
                    progress = true;
                }
                idle = progress ? 0 : idle + 1;
                if (!progress) ::usleep(200);
            }
            queued = 0;
        };

        while (size >= 8 && driver.failures().empty()) {
            const uint8_t* r = data;
            data += 8;
            size -= 8;
            static constexpr uint32_t kTypes[] = {VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,          VIRTIO_BLK_T_FLUSH,
                                                  VIRTIO_BLK_T_GET_ID,  VIRTIO_BLK_T_DISCARD,      VIRTIO_BLK_T_WRITE_ZEROES,
                                                  0x12345};
            uint32_t type = (r[0] & 7) < 7 ? kTypes[r[0] & 7] : uint32_t{r[1]} | uint32_t{r[2]} << 8;
            uint64_t sector = uint64_t{r[1]} | uint64_t{r[2]} << 8;
            if (r[0] & 0x80) sector = ~uint64_t{0} - sector;
            unsigned count = 1 + r[3] % 6;

            uint64_t header = driver.alloc(32);
            driver.put<uint32_t>(header, type);
            driver.put<uint64_t>(header + 8, sector);
            // A range segment right after the header, for DISCARD/WRITE_ZEROES.
            driver.put<uint64_t>(header + 16, sector / 2);
            driver.put<uint32_t>(header + 24, uint32_t{r[4]} * 3);
            driver.put<uint32_t>(header + 28, r[5] & 0x81);

            std::vector<FakeDriver::Buffer> buffers;
            uint32_t writable = 0;
            for (unsigned i = 0; i < count; ++i) {
                uint8_t selector = r[4 + i % 4] >> (i / 4);
                bool is_writable = (selector & 0x80) || i + 1 == count;
                uint32_t length = i == 0 && !(selector & 0x40) ? ((r[5] & 1) ? 32 : 16) : length_for(selector);
                uint64_t address;
                if ((selector & 0x3c) == 0x3c)
                    address = uint64_t{1} << 40;  // outside guest memory
                else if (i == 0)
                    address = header;
                else
                    address = driver.alloc(std::min<uint32_t>(length, 65536) + 1, 512);
                if (is_writable) writable += length;
                buffers.push_back({address, length, is_writable});
            }
            auto head = driver.add_chain(0, buffers);
            if (!head) {
                drain();
                continue;
            }
            writable_of[*head] = writable;
            if (r[3] & 8) {
                // Rewrite the head's next link to any descriptor: loops,
                // chains into free slots, indices past the table.
                uint64_t at = FakeDriver::kRingBase + 16 * uint64_t{*head};
                driver.put<uint16_t>(at + 12, static_cast<uint16_t>(driver.get<uint16_t>(at + 12) | FakeDriver::kNext));
                driver.put<uint16_t>(at + 14, static_cast<uint16_t>(r[6] | (r[7] & 1) << 8));
                writable_of[*head] = UINT32_MAX;  // the chain is no longer the one laid out
            }
            if (++queued >= per_kick) drain();
        }
        drain();
    }
    if (read_only) CHECK(checksum(disk_fd()) == before);
    return 0;
}
