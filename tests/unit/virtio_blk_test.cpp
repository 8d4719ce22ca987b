// virtio-blk driven by the fake driver over a real image file on io_uring:
// every request type, read-only disks, and malformed requests, which must
// end as an error status or NEEDS_RESET and never touch the host otherwise.
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "backends/uring_block.hpp"
#include "devices/virtio/blk.hpp"
#include "support/fake_driver.hpp"

namespace hospes {
namespace {

using test_support::FakeDriver;
using Buffer = FakeDriver::Buffer;

constexpr uint64_t kDiskSize = 1 << 20;

std::vector<uint8_t> pattern(size_t size, uint8_t seed) {
    std::vector<uint8_t> bytes(size);
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 7 + i / 512);
    return bytes;
}

class VirtioBlkTest : public ::testing::Test {
protected:
    void SetUp() override {
        path_ = std::filesystem::temp_directory_path() / ("hospes-blk-test-" + std::to_string(::getpid()));
        auto contents = pattern(kDiskSize, 1);
        std::ofstream(path_, std::ios::binary).write(reinterpret_cast<const char*>(contents.data()), kDiskSize);
    }
    void TearDown() override {
        driver_.reset();
        device_.reset();
        std::filesystem::remove(path_);
    }

    void open(bool read_only = false, bool direct = false) {
        auto backend = backends::UringBlock::open(path_, {read_only, direct});
        ASSERT_TRUE(backend) << backend.error().message;
        device_ = std::make_unique<devices::VirtioBlk>(std::move(*backend));
        driver_ = std::make_unique<FakeDriver>(*device_);
        auto started = driver_->start();
        ASSERT_TRUE(started) << started.error().message;
    }

    // Lays out header + data + status; returns the status byte's address.
    struct Request {
        uint64_t header, data, status;
    };
    Request request(uint32_t type, uint64_t sector, uint32_t data_size, bool data_writable) {
        Request r{driver_->alloc(16), driver_->alloc(std::max<uint32_t>(data_size, 1), 512), driver_->alloc(1)};
        driver_->put<uint32_t>(r.header, type);
        driver_->put<uint32_t>(r.header + 4, 0);
        driver_->put<uint64_t>(r.header + 8, sector);
        driver_->put<uint8_t>(r.status, 0xee);
        if (data_size)
            driver_->add_chain(0, {{r.header, 16, false}, {r.data, data_size, data_writable}, {r.status, 1, true}});
        else
            driver_->add_chain(0, {{r.header, 16, false}, {r.status, 1, true}});
        return r;
    }

    // Kicks, then reaps completions until `count` requests are used.
    std::vector<FakeDriver::Used> run(size_t count) {
        driver_->kick(0);
        std::vector<FakeDriver::Used> used;
        // The completion eventfd is edge-style (never read), so wait by
        // looking again, for up to 10 s.
        for (int spins = 0; spins < 100000; ++spins) {
            while (auto u = driver_->next_used(0)) used.push_back(*u);
            if (used.size() >= count) break;
            ::usleep(100);
            device_->backend_ready(0);
        }
        EXPECT_EQ(used.size(), count);
        return used;
    }
    uint8_t status(const Request& r) { return driver_->get<uint8_t>(r.status); }
    std::vector<uint8_t> file_bytes(uint64_t offset, size_t size) {
        std::vector<uint8_t> bytes(size);
        std::ifstream file(path_, std::ios::binary);
        file.seekg(static_cast<std::streamoff>(offset));
        file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
        return bytes;
    }

    std::filesystem::path path_;
    std::unique_ptr<devices::VirtioBlk> device_;
    std::unique_ptr<FakeDriver> driver_;
};

TEST_F(VirtioBlkTest, ConfigAndFeatures) {
    open();
    uint64_t capacity = 0;
    device_->read_config(0, {reinterpret_cast<uint8_t*>(&capacity), 8});
    EXPECT_EQ(capacity, kDiskSize / 512);
    uint32_t seg_max = 0;
    device_->read_config(12, {reinterpret_cast<uint8_t*>(&seg_max), 4});
    EXPECT_EQ(seg_max, devices::VirtioBlk::kSegmentMax);
    EXPECT_TRUE(device_->features() & (1u << VIRTIO_BLK_F_FLUSH));
    EXPECT_FALSE(device_->features() & (1u << VIRTIO_BLK_F_RO));
    uint8_t beyond[8];
    device_->read_config(4096, beyond);  // past the structure: zeroes, no crash
    EXPECT_EQ(beyond[0], 0);
}

TEST_F(VirtioBlkTest, ReadsTheImage) {
    open();
    auto r = request(VIRTIO_BLK_T_IN, 8, 4096, true);
    auto used = run(1);
    EXPECT_EQ(used[0].length, 4097u);
    EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
    auto expected = pattern(kDiskSize, 1);
    auto got = driver_->bytes(r.data, 4096);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin() + 8 * 512));
    EXPECT_GE(driver_->interrupts(), 1);
}

TEST_F(VirtioBlkTest, WritesReachTheFileAndFlushCompletes) {
    open();
    auto data = pattern(8192, 99);
    auto w = request(VIRTIO_BLK_T_OUT, 100, 8192, false);
    driver_->fill(w.data, data);
    run(1);
    EXPECT_EQ(status(w), VIRTIO_BLK_S_OK);
    auto f = request(VIRTIO_BLK_T_FLUSH, 0, 0, false);
    run(1);
    EXPECT_EQ(status(f), VIRTIO_BLK_S_OK);
    EXPECT_EQ(file_bytes(100 * 512, 8192), data);
}

TEST_F(VirtioBlkTest, DataSplitAcrossDescriptorsAndStatusSharingTheLastOne) {
    open();
    // Header split in two, data in three pieces, status at the end of the
    // last data buffer: legal layouts a driver may use.
    uint64_t header = driver_->alloc(16), a = driver_->alloc(512), b = driver_->alloc(1024), c = driver_->alloc(513);
    driver_->put<uint32_t>(header, VIRTIO_BLK_T_IN);
    driver_->put<uint64_t>(header + 8, 2);
    driver_->add_chain(0, {{header, 5, false}, {header + 5, 11, false}, {a, 512, true}, {b, 1024, true},
                           {c, 513, true}});
    auto used = run(1);
    EXPECT_EQ(used[0].length, 2049u);
    EXPECT_EQ(driver_->get<uint8_t>(c + 512), VIRTIO_BLK_S_OK);
    auto expected = pattern(kDiskSize, 1);
    EXPECT_EQ(driver_->get<uint8_t>(b + 3), expected[2 * 512 + 512 + 3]);
}

TEST_F(VirtioBlkTest, ManyRequestsInFlight) {
    open();
    // 85 three-descriptor requests fill the 256-entry ring.
    std::vector<Request> requests;
    for (uint32_t i = 0; i < 85; ++i) requests.push_back(request(VIRTIO_BLK_T_IN, i * 8, 4096, true));
    run(85);
    auto expected = pattern(kDiskSize, 1);
    for (uint32_t i = 0; i < 85; ++i) {
        ASSERT_EQ(status(requests[i]), VIRTIO_BLK_S_OK);
        auto got = driver_->bytes(requests[i].data, 4096);
        ASSERT_TRUE(std::equal(got.begin(), got.end(), expected.begin() + i * 4096)) << i;
    }
}

TEST_F(VirtioBlkTest, OutOfRangeAndPartialSectorsAreIoErrors) {
    open();
    auto past_end = request(VIRTIO_BLK_T_IN, kDiskSize / 512, 512, true);
    auto straddling = request(VIRTIO_BLK_T_OUT, kDiskSize / 512 - 1, 1024, false);
    auto huge_sector = request(VIRTIO_BLK_T_IN, ~uint64_t{0} - 1, 4096, true);
    auto odd_length = request(VIRTIO_BLK_T_OUT, 0, 100, false);
    run(4);
    for (auto& r : {past_end, straddling, huge_sector, odd_length}) EXPECT_EQ(status(r), VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(file_bytes(0, 512), std::vector<uint8_t>(pattern(512, 1)));
}

TEST_F(VirtioBlkTest, ReadOnlyDiskRefusesWritesAndKeepsTheFile) {
    open(true);
    EXPECT_TRUE(device_->features() & (1u << VIRTIO_BLK_F_RO));
    auto before = file_bytes(0, kDiskSize);
    auto w = request(VIRTIO_BLK_T_OUT, 0, 4096, false);
    driver_->fill(w.data, pattern(4096, 200));
    auto z = request(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false);
    driver_->put<uint64_t>(z.data, 0);
    driver_->put<uint32_t>(z.data + 8, 8);
    auto r = request(VIRTIO_BLK_T_IN, 0, 512, true);
    run(3);
    EXPECT_EQ(status(w), VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(status(z), VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
    EXPECT_EQ(file_bytes(0, kDiskSize), before);
}

TEST_F(VirtioBlkTest, DirectIoBypassesThePageCacheWhereTheFileSystemAllows) {
    // O_DIRECT needs a file system that supports it (ext4 does, tmpfs did
    // not before 6.6); where it does not, opening says so in one line.
    auto probe = backends::UringBlock::open(path_, {false, true});
    if (!probe) {
        EXPECT_NE(probe.error().message.find("O_DIRECT"), std::string::npos) << probe.error().message;
        GTEST_SKIP() << probe.error().message;
    }
    probe->reset();
    open(false, true);
    auto data = pattern(4096, 42);
    auto w = request(VIRTIO_BLK_T_OUT, 64, 4096, false);  // buffers 512-aligned (FakeDriver::alloc)
    driver_->fill(w.data, data);
    run(1);
    EXPECT_EQ(status(w), VIRTIO_BLK_S_OK);
    auto r = request(VIRTIO_BLK_T_IN, 64, 4096, true);
    run(1);
    EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
    auto got = driver_->bytes(r.data, 4096);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin()));
    EXPECT_EQ(file_bytes(64 * 512, 4096), data);
}

TEST_F(VirtioBlkTest, GetIdGivesTheImageName) {
    open();
    auto r = request(VIRTIO_BLK_T_GET_ID, 0, 20, true);
    auto used = run(1);
    EXPECT_EQ(used[0].length, 21u);
    EXPECT_EQ(status(r), VIRTIO_BLK_S_OK);
    auto id = driver_->bytes(r.data, 20);
    std::string name(reinterpret_cast<const char*>(id.data()), strnlen(reinterpret_cast<const char*>(id.data()), 20));
    EXPECT_EQ(name, path_.filename().string().substr(0, 20));
}

TEST_F(VirtioBlkTest, WriteZeroesAndDiscard) {
    open();
    auto z = request(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false);
    driver_->put<uint64_t>(z.data, 16);
    driver_->put<uint32_t>(z.data + 8, 16);
    driver_->put<uint32_t>(z.data + 12, 0);
    auto d = request(VIRTIO_BLK_T_DISCARD, 0, 16, false);
    driver_->put<uint64_t>(d.data, 64);
    driver_->put<uint32_t>(d.data + 8, 8);
    driver_->put<uint32_t>(d.data + 12, 0);
    auto bad_flags = request(VIRTIO_BLK_T_DISCARD, 0, 16, false);
    driver_->put<uint64_t>(bad_flags.data, 0);
    driver_->put<uint32_t>(bad_flags.data + 8, 8);
    driver_->put<uint32_t>(bad_flags.data + 12, 0x80);
    run(3);
    EXPECT_EQ(status(z), VIRTIO_BLK_S_OK);
    EXPECT_EQ(status(d), VIRTIO_BLK_S_OK);
    EXPECT_EQ(status(bad_flags), VIRTIO_BLK_S_UNSUPP);
    EXPECT_EQ(file_bytes(16 * 512, 16 * 512), std::vector<uint8_t>(16 * 512, 0));
    auto original = pattern(kDiskSize, 1);
    EXPECT_EQ(file_bytes(15 * 512, 512), std::vector<uint8_t>(original.begin() + 15 * 512, original.begin() + 16 * 512));
}

TEST_F(VirtioBlkTest, UnknownTypeIsUnsupported) {
    open();
    auto r = request(0x7777, 0, 512, true);
    auto scsi = request(2, 0, 512, true);  // legacy SCSI passthrough
    run(2);
    EXPECT_EQ(status(r), VIRTIO_BLK_S_UNSUPP);
    EXPECT_EQ(status(scsi), VIRTIO_BLK_S_UNSUPP);
}

TEST_F(VirtioBlkTest, MalformedRequestsFailAndTheDeviceGoesOn) {
    open();
    // No device-writable byte at all: nowhere to put a status.
    uint64_t header = driver_->alloc(16);
    driver_->put<uint32_t>(header, VIRTIO_BLK_T_IN);
    driver_->add_chain(0, {{header, 16, false}});
    // A header of 8 bytes.
    uint64_t short_header = driver_->alloc(8), s1 = driver_->alloc(1);
    driver_->add_chain(0, {{short_header, 8, false}, {s1, 1, true}});
    // A write whose data is device-writable (wrong direction).
    auto wrong = request(VIRTIO_BLK_T_OUT, 0, 512, true);
    // A zero-length data descriptor in a read.
    uint64_t h2 = driver_->alloc(16), s2 = driver_->alloc(1);
    driver_->put<uint32_t>(h2, VIRTIO_BLK_T_IN);
    driver_->add_chain(0, {{h2, 16, false}, {s2, 0, true}, {s2, 1, true}});
    auto used = run(4);
    EXPECT_EQ(used[0].length, 0u);
    EXPECT_EQ(driver_->get<uint8_t>(s1), VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(status(wrong), VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(driver_->get<uint8_t>(s2), VIRTIO_BLK_S_OK);
    EXPECT_EQ(device_->bad_requests(), 3u);
    EXPECT_TRUE(driver_->failures().empty());
    // The device still serves good requests.
    auto good = request(VIRTIO_BLK_T_IN, 0, 512, true);
    run(1);
    EXPECT_EQ(status(good), VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkTest, BuffersOutsideGuestMemoryNeedReset) {
    open();
    uint64_t header = driver_->alloc(16), s = driver_->alloc(1);
    driver_->put<uint32_t>(header, VIRTIO_BLK_T_IN);
    driver_->add_chain(0, {{header, 16, false}, {uint64_t{1} << 40, 4096, true}, {s, 1, true}});
    // A huge length that runs off the end of RAM.
    driver_->add_chain(0, {{header, 16, false}, {s, 0xffffffff, true}});
    driver_->kick(0);
    ASSERT_EQ(driver_->failures().size(), 1u);
    EXPECT_FALSE(driver_->next_used(0));
    EXPECT_EQ(file_bytes(0, 512), pattern(512, 1));
}

TEST_F(VirtioBlkTest, LoopingChainNeedsReset) {
    open();
    uint64_t header = driver_->alloc(16);
    driver_->put<uint32_t>(header, VIRTIO_BLK_T_IN);
    driver_->descriptor(0, 0, header, 16, FakeDriver::kNext, 1);
    driver_->descriptor(0, 1, header, 16, FakeDriver::kNext, 0);
    driver_->make_available(0, 0);
    driver_->kick(0);
    EXPECT_EQ(driver_->failures().size(), 1u);
}

TEST_F(VirtioBlkTest, ResetWaitsForRequestsInFlight) {
    open();
    std::vector<Request> requests;
    for (uint32_t i = 0; i < 64; ++i) requests.push_back(request(VIRTIO_BLK_T_IN, i, 512, true));
    driver_->kick(0);
    device_->reset();  // must not leave I/O writing into guest memory later
    auto expected = pattern(kDiskSize, 1);
    for (uint32_t i = 0; i < 64; ++i) {
        auto got = driver_->bytes(requests[i].data, 512);
        ASSERT_TRUE(std::equal(got.begin(), got.end(), expected.begin() + i * 512)) << "read " << i << " unfinished";
    }
}

TEST(UringBlockOpen, AWritableDiskBelongsToOneGuest) {
    auto path = std::filesystem::temp_directory_path() / ("hospes-lock-test-" + std::to_string(::getpid()));
    std::ofstream(path, std::ios::binary) << std::string(4096, 'x');
    {
        auto writer = backends::UringBlock::open(path, {false, false});
        ASSERT_TRUE(writer) << writer.error().message;
        auto second_writer = backends::UringBlock::open(path, {false, false});
        ASSERT_FALSE(second_writer);
        EXPECT_EQ(second_writer.error().kind, ErrorKind::BadInput);
        EXPECT_NE(second_writer.error().message.find("in use by another guest"), std::string::npos);
        EXPECT_FALSE(backends::UringBlock::open(path, {true, false})) << "a reader next to a writer";
    }
    {
        auto reader = backends::UringBlock::open(path, {true, false});
        ASSERT_TRUE(reader);
        EXPECT_TRUE(backends::UringBlock::open(path, {true, false})) << "readers share";
        EXPECT_FALSE(backends::UringBlock::open(path, {false, false})) << "a writer next to a reader";
    }
    EXPECT_TRUE(backends::UringBlock::open(path, {false, false})) << "released when the monitor lets go";
    std::filesystem::remove(path);
}

TEST(UringBlockOpen, ClearErrors) {
    auto missing = backends::UringBlock::open("/nonexistent/disk.img", {});
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind, ErrorKind::BadInput);
    EXPECT_NE(missing.error().message.find("/nonexistent/disk.img"), std::string::npos);
    auto directory = backends::UringBlock::open("/tmp", {true, false});
    ASSERT_FALSE(directory);
    EXPECT_NE(directory.error().message.find("/tmp"), std::string::npos);
    auto path = std::filesystem::temp_directory_path() / "hospes-empty-disk";
    std::ofstream(path).put('x');
    auto tiny = backends::UringBlock::open(path, {});
    ASSERT_FALSE(tiny);
    EXPECT_NE(tiny.error().message.find("smaller than"), std::string::npos);
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace hospes
