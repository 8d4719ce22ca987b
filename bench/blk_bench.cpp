// blk_bench: virtio-blk's own cost on the data path. A fake guest (the
// test suite's FakeDriver, no KVM) drives the real device and io_uring
// backend with 4 KiB random reads at queue depth 32 on a file in the page
// cache; beside it, in the same run and on the same file with the same
// offsets, a plain io_uring loop does the same reads. Reported: requests
// per second of CPU time of both (median over rounds, interleaved so both
// see the same noise) and their ratio (goal: at least 0.95).
//
// Usage: blk_bench [--rounds N] [--requests M] [--file PATH] [--only plain|virtio]
//   defaults: 9 rounds of 200000 requests each, on a 256 MiB file made in
//   $TMPDIR (and removed); the file is read once first so it is cached.
#include <fcntl.h>
#include <liburing.h>
#include <linux/virtio_blk.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backends/uring_block.hpp"
#include "common/log.hpp"
#include "devices/virtio/blk.hpp"
#include "support/fake_driver.hpp"

namespace {

using hospes::test_support::FakeDriver;

constexpr unsigned kDepth = 32;
constexpr uint32_t kBlock = 4096;

// Thread CPU time: both loops are single-threaded and page-cache reads are
// done in the submitting thread, so this is their whole cost, and it is far
// less disturbed than wall time by whatever else shares this host.
double now_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// The same offset sequence for both loops.
struct Offsets {
    explicit Offsets(uint64_t file_size) : blocks(file_size / kBlock) {}
    uint64_t next() { return (rng() % blocks) * kBlock; }
    uint64_t blocks;
    std::mt19937_64 rng{42};
};

double plain_uring(const std::string& path, uint64_t file_size, uint64_t requests) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    io_uring ring;
    io_uring_queue_init(kDepth, &ring, 0);
    std::vector<std::vector<uint8_t>> buffers(kDepth, std::vector<uint8_t>(kBlock));
    std::vector<iovec> iov(kDepth);
    Offsets offsets(file_size);
    auto issue = [&](unsigned slot) {
        iov[slot] = {buffers[slot].data(), kBlock};
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_readv(sqe, fd, &iov[slot], 1, offsets.next());
        io_uring_sqe_set_data64(sqe, slot);
    };
    double start = now_seconds();
    uint64_t issued = 0, done = 0;
    for (unsigned slot = 0; slot < kDepth; ++slot, ++issued) issue(slot);
    while (done < requests) {
        io_uring_submit_and_wait(&ring, 1);
        io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            if (cqe->res != int(kBlock)) std::fprintf(stderr, "blk_bench: plain read failed: %d\n", cqe->res);
            ++seen;
            ++done;
            if (issued < requests) {
                issue(static_cast<unsigned>(io_uring_cqe_get_data64(cqe)));
                ++issued;
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
    double elapsed = now_seconds() - start;
    io_uring_queue_exit(&ring);
    ::close(fd);
    return double(requests) / elapsed;
}

double virtio_blk(const std::string& path, uint64_t file_size, uint64_t requests) {
    auto backend = hospes::backends::UringBlock::open(path, {true, false});
    if (!backend) {
        std::fprintf(stderr, "blk_bench: %s\n", backend.error().message.c_str());
        std::exit(1);
    }
    hospes::devices::VirtioBlk device(std::move(*backend));
    FakeDriver driver(device);
    if (!driver.start(std::nullopt, 128)) std::exit(1);
    // The fake guest recycles its 32 chains the way a lean driver would:
    // descriptors written once, then per request only the header's sector
    // and an available-ring entry, published once per batch with the kick.
    struct Slot {
        uint64_t header, data, status;
    };
    std::vector<Slot> slots;
    std::vector<uint16_t> heads;
    Offsets offsets(file_size);
    for (unsigned i = 0; i < kDepth; ++i) {
        Slot s{driver.alloc(16), driver.alloc(kBlock, kBlock), driver.alloc(1)};
        driver.put<uint32_t>(s.header, VIRTIO_BLK_T_IN);
        driver.put<uint64_t>(s.header + 8, offsets.next() / 512);
        heads.push_back(*driver.add_chain(0, {{s.header, 16, false}, {s.data, kBlock, true}, {s.status, 1, true}}, false));
        slots.push_back(s);
    }
    std::vector<int> slot_of_head(128, -1);
    for (unsigned i = 0; i < kDepth; ++i) slot_of_head[heads[i]] = int(i);
    double start = now_seconds();
    uint64_t issued = kDepth, done = 0;
    driver.publish(0);
    driver.kick(0);
    while (done < requests) {
        // What the monitor's I/O thread does when the completion fd fires;
        // page-cache reads complete during submission, so it has work.
        device.backend_ready(0);
        bool added = false;
        while (auto used = driver.next_used(0)) {
            int slot = slot_of_head[used->id];
            if (driver.get<uint8_t>(slots[slot].status) != VIRTIO_BLK_S_OK)
                std::fprintf(stderr, "blk_bench: virtio read failed\n");
            ++done;
            if (issued < requests) {
                driver.put<uint64_t>(slots[slot].header + 8, offsets.next() / 512);
                driver.make_available(0, static_cast<uint16_t>(used->id), false);
                ++issued;
                added = true;
            }
        }
        if (added) {
            driver.publish(0);
            driver.kick(0);
        }
    }
    return double(requests) / (now_seconds() - start);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    unsigned rounds = 9;
    uint64_t requests = 200000;
    std::string path;
    std::string only;  // "plain" or "virtio": one side alone, for profiling
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string option = argv[i];
        if (option == "--rounds")
            rounds = unsigned(std::stoul(argv[i + 1]));
        else if (option == "--requests")
            requests = std::stoull(argv[i + 1]);
        else if (option == "--file")
            path = argv[i + 1];
        else if (option == "--only")
            only = argv[i + 1];
        else {
            std::fprintf(stderr, "usage: blk_bench [--rounds N] [--requests M] [--file PATH] [--only plain|virtio]\n");
            return 2;
        }
    }
    hospes::log::init(false);
    bool made = path.empty();
    if (made) {
        path = (std::filesystem::temp_directory_path() / ("blk_bench." + std::to_string(::getpid()))).string();
        std::vector<uint8_t> chunk(1 << 20, 0x5a);
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        for (int i = 0; i < 256; ++i)
            if (::write(fd, chunk.data(), chunk.size()) != ssize_t(chunk.size())) return 1;
        ::close(fd);
    }
    uint64_t file_size = std::filesystem::file_size(path);
    {  // into the page cache
        std::vector<uint8_t> chunk(1 << 20);
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        while (::read(fd, chunk.data(), chunk.size()) > 0) {
        }
        ::close(fd);
    }
    std::printf("blk_bench: 4 KiB random reads, queue depth %u, %.0f MiB file in the page cache, %u rounds of %llu\n",
                kDepth, double(file_size) / (1 << 20), rounds, static_cast<unsigned long long>(requests));
    std::vector<double> plain, device, ratios;
    for (unsigned r = 0; r < rounds; ++r) {
        // Alternate which goes first, so neither always runs on a warmer cache.
        double a = 0, b = 0;
        if (only == "plain") {
            a = b = plain_uring(path, file_size, requests);
        } else if (only == "virtio") {
            a = b = virtio_blk(path, file_size, requests);
        } else if (r % 2 == 0) {
            a = plain_uring(path, file_size, requests);
            b = virtio_blk(path, file_size, requests);
        } else {
            b = virtio_blk(path, file_size, requests);
            a = plain_uring(path, file_size, requests);
        }
        plain.push_back(a);
        device.push_back(b);
        ratios.push_back(b / a);
        std::printf("  round %u: plain io_uring %.0f req/s, virtio-blk %.0f req/s (per CPU second), ratio %.3f\n", r + 1, a, b, b / a);
    }
    std::printf("plain io_uring:         median %.0f req/s\n", median(plain));
    std::printf("virtio-blk (fake guest): median %.0f req/s\n", median(device));
    std::printf("ratio virtio-blk / plain io_uring: median of rounds %.3f, of medians %.3f (goal >= 0.95)\n",
                median(ratios), median(device) / median(plain));
    if (made) std::filesystem::remove(path);
    return 0;
}
