// The virtio-mmio transport's register protocol, driven the way Linux's
// virtio_mmio driver drives it, against a recording fake device; and the
// AML that announces each device window in the DSDT.
#include <gtest/gtest.h>

#include <poll.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <string>

#include "arch/x86_64/aml.hpp"
#include "common/size.hpp"
#include "virtio/mmio.hpp"

namespace hospes::virtio {
namespace {

class FakeDevice : public Device {
public:
    uint32_t device_type() const override { return 42; }
    uint64_t features() const override { return 1u << 3; }
    std::vector<uint16_t> queue_max_sizes() const override { return {8, 16}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0xa0 + offset + i);
    }
    void write_config(uint64_t offset, std::span<const uint8_t> data) override { config_writes += offset + data.size(); }
    Result<void> activate(uint64_t features, ActiveQueues queues) override {
        ++activations;
        activated_features = features;
        active = std::move(queues);
        return {};
    }
    void queue_notify(uint16_t index) override {
        notified.push_back(index);
        active.interrupt();
    }
    void reset() override { ++resets; }

    uint64_t activated_features = 0;
    int activations = 0;
    ActiveQueues active;
    std::vector<uint16_t> notified;
    int resets = 0;
    uint64_t config_writes = 0;
};

class MmioTest : public ::testing::Test {
protected:
    MmioTest() {
        std::vector<std::pair<uint64_t, uint64_t>> ranges{{0, 1 * MiB}};
        memory_.emplace(std::move(*GuestMemory::create(ranges)));
        auto device = std::make_unique<FakeDevice>();
        device_ = device.get();
        transport_.emplace(std::move(device), *memory_, [this] { ++interrupts_; });
    }
    uint32_t in(uint64_t offset) {
        uint32_t value = 0;
        transport_->read(offset, {reinterpret_cast<uint8_t*>(&value), 4});
        return value;
    }
    void out(uint64_t offset, uint32_t value) { transport_->write(offset, {reinterpret_cast<uint8_t*>(&value), 4}); }
    uint64_t device_features() {
        out(0x14, 0);
        uint64_t low = in(0x10);
        out(0x14, 1);
        return low | (uint64_t{in(0x10)} << 32);
    }
    void set_driver_features(uint64_t features) {
        out(0x24, 0);
        out(0x20, static_cast<uint32_t>(features));
        out(0x24, 1);
        out(0x20, static_cast<uint32_t>(features >> 32));
    }
    void setup_queue(uint32_t index, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used) {
        out(0x30, index);
        out(0x38, size);
        out(0x80, static_cast<uint32_t>(desc));
        out(0x84, static_cast<uint32_t>(desc >> 32));
        out(0x90, static_cast<uint32_t>(avail));
        out(0x94, static_cast<uint32_t>(avail >> 32));
        out(0xa0, static_cast<uint32_t>(used));
        out(0xa4, static_cast<uint32_t>(used >> 32));
        out(0x44, 1);
    }

    std::optional<GuestMemory> memory_;
    FakeDevice* device_ = nullptr;
    std::optional<MmioTransport> transport_;
    int interrupts_ = 0;
};

TEST_F(MmioTest, IdentifiesAsVersion2Device) {
    EXPECT_EQ(in(0x000), 0x74726976u);
    EXPECT_EQ(in(0x004), 2u);
    EXPECT_EQ(in(0x008), 42u);
    out(0x30, 1);
    EXPECT_EQ(in(0x034), 16u);
    out(0x30, 2);
    EXPECT_EQ(in(0x034), 0u) << "no third queue";
}

TEST_F(MmioTest, OffersRingFeaturesBesideTheDevicesOwn) {
    uint64_t features = device_features();
    EXPECT_TRUE(features & (1u << 3));
    EXPECT_TRUE(features & kFeatureVersion1);
    EXPECT_TRUE(features & kFeatureEventIndex);
    EXPECT_TRUE(features & kFeatureIndirectDescriptors);
}

TEST_F(MmioTest, NegotiatesAndActivates) {
    out(0x70, 1 | 2);
    set_driver_features(kFeatureVersion1 | kFeatureEventIndex | (1u << 3));
    out(0x70, 1 | 2 | 8);
    EXPECT_EQ(in(0x70) & 8, 8u) << "FEATURES_OK kept";
    setup_queue(0, 8, 0x1000, 0x2000, 0x3000);
    setup_queue(1, 16, 0x4000, 0x5000, 0x6000);
    out(0x30, 0);
    EXPECT_EQ(in(0x44), 1u);
    out(0x70, 1 | 2 | 8 | 4);
    EXPECT_EQ(device_->activated_features, kFeatureVersion1 | kFeatureEventIndex | (1u << 3));
    ASSERT_NE(device_->active.queues, nullptr);
    EXPECT_EQ((*device_->active.queues)[1].size(), 16);

    transport_->notify(1);
    EXPECT_EQ(device_->notified, std::vector<uint16_t>{1});
    EXPECT_EQ(interrupts_, 1);
    EXPECT_EQ(in(0x60), 1u) << "used-buffer interrupt pending";
    out(0x64, 1);
    EXPECT_EQ(in(0x60), 0u);
    out(0x50, 0);  // a notification by MMIO write works too
    EXPECT_EQ(device_->notified, (std::vector<uint16_t>{1, 0}));
}

TEST_F(MmioTest, RefusesUnofferedFeaturesAndLegacyDrivers) {
    out(0x70, 1 | 2);
    set_driver_features(kFeatureVersion1 | (1ull << 40));
    out(0x70, 1 | 2 | 8);
    EXPECT_EQ(in(0x70) & 8, 0u);
    out(0x70, 0);
    out(0x70, 1 | 2);
    set_driver_features(1u << 3);  // no VERSION_1
    out(0x70, 1 | 2 | 8);
    EXPECT_EQ(in(0x70) & 8, 0u);
}

TEST_F(MmioTest, BadQueueSetsNeedsResetOnce) {
    out(0x70, 1 | 2);
    set_driver_features(kFeatureVersion1);
    out(0x70, 1 | 2 | 8);
    setup_queue(0, 8, 0x1000 + 3, 0x2000, 0x3000);  // misaligned descriptor table
    EXPECT_EQ(in(0x44), 0u);
    EXPECT_EQ(in(0x70) & 64, 64u);
    EXPECT_EQ(in(0x60) & 2, 2u) << "configuration-change interrupt";
    setup_queue(1, 16, 0x1000, 0x2000, 2 * MiB);  // used ring outside memory
    EXPECT_EQ(interrupts_, 1) << "one failure, one notice";
    EXPECT_EQ(device_->resets, 1) << "the failure quiesced the device";
    out(0x70, 0);
    EXPECT_EQ(in(0x70), 0u);
    EXPECT_EQ(device_->resets, 2);
}

// A review found it: after DEVICE_NEEDS_RESET a driver could set DRIVER_OK
// again without a reset, and the device was activated anew with requests
// of the failed run in flight (virtio-blk then cleared the slots those
// requests would complete into). Only a reset starts it again.
TEST_F(MmioTest, AfterNeedsResetOnlyAResetStartsTheDeviceAgain) {
    auto start = [&] {
        out(0x70, 1 | 2);
        set_driver_features(kFeatureVersion1);
        out(0x70, 1 | 2 | 8);
        setup_queue(0, 8, 0x1000, 0x2000, 0x3000);
        out(0x70, 1 | 2 | 8 | 4);
    };
    start();
    ASSERT_EQ(device_->activations, 1);
    device_->active.fail(Error{ErrorKind::Guest, "a malformed chain"});
    EXPECT_EQ(in(0x70) & 64, 64u) << "DEVICE_NEEDS_RESET";
    EXPECT_EQ(device_->resets, 1) << "the failed device is quiesced";
    transport_->notify(0);
    EXPECT_TRUE(device_->notified.empty()) << "no request is taken after the failure";
    out(0x70, 1 | 2 | 8);
    out(0x70, 1 | 2 | 8 | 4);
    EXPECT_EQ(device_->activations, 1) << "DRIVER_OK again without a reset is refused";
    EXPECT_EQ(in(0x70) & 64, 64u);
    out(0x70, 0);
    EXPECT_EQ(in(0x70), 0u);
    start();
    EXPECT_EQ(device_->activations, 2) << "after the reset the device starts again";
    EXPECT_EQ(in(0x70) & 64, 0u);
}

// Activation and reset wait for the I/O thread when the transport defers
// its work: a vCPU that touches the registers meanwhile waits for it.
TEST_F(MmioTest, DeferredWorkRunsOnTheIoThreadAndRegistersWaitForIt) {
    auto fd = transport_->defer_work();
    ASSERT_TRUE(fd) << fd.error().message;
    out(0x70, 1 | 2);
    set_driver_features(kFeatureVersion1);
    out(0x70, 1 | 2 | 8);
    setup_queue(0, 8, 0x1000, 0x2000, 0x3000);
    out(0x70, 1 | 2 | 8 | 4);
    EXPECT_EQ(device_->activations, 0) << "not on the vCPU's thread";
    std::thread io([&] {
        pollfd ready{*fd, POLLIN, 0};
        ASSERT_EQ(::poll(&ready, 1, 5000), 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        transport_->run_work();
    });
    EXPECT_EQ(in(0x70), 1u | 2 | 8 | 4u) << "the read waits for the activation";
    EXPECT_EQ(device_->activations, 1);
    io.join();
    out(0x70, 0);
    EXPECT_EQ(device_->resets, 0);
    std::thread io2([&] { transport_->run_work(); });
    io2.join();
    EXPECT_EQ(device_->resets, 1);
    EXPECT_EQ(in(0x70), 0u);
}

TEST_F(MmioTest, QueueLayoutFrozenWhileReady) {
    out(0x70, 1 | 2);
    set_driver_features(kFeatureVersion1);
    out(0x70, 1 | 2 | 8);
    setup_queue(0, 8, 0x1000, 0x2000, 0x3000);
    out(0x38, 4);
    out(0x80, 0x9000);
    out(0x30, 0);
    EXPECT_EQ(transport_->queue_count(), 2);
    out(0x70, 1 | 2 | 8 | 4);
    EXPECT_EQ((*device_->active.queues)[0].size(), 8);
    EXPECT_EQ((*device_->active.queues)[0].descriptor_table(), 0x1000u);
}

TEST_F(MmioTest, ConfigSpaceAndOddAccesses) {
    uint8_t config[4] = {};
    transport_->read(0x104, config);
    EXPECT_EQ(config[0], 0xa4);
    EXPECT_EQ(config[3], 0xa7);
    uint8_t narrow[2] = {0xff, 0xff};
    transport_->read(0x000, narrow);
    EXPECT_EQ(narrow[0] | narrow[1], 0) << "registers are 32-bit only";
    transport_->write(0x070, std::span<const uint8_t>(narrow, 2));
    EXPECT_EQ(in(0x70), 0u);
    out(0x30, 1000);  // select a queue that does not exist
    out(0x38, 8);
    out(0x44, 1);
    EXPECT_EQ(in(0x44), 0u);
}

TEST(Aml, VirtioMmioDeviceEncoding) {
    auto aml = x86::virtio_mmio_device_aml(3, 0xd0003000, 0x1000, 19);
    ASSERT_GE(aml.size(), 10u);
    EXPECT_EQ(aml[0], 0x5b);
    EXPECT_EQ(aml[1], 0x82);
    EXPECT_EQ(aml[2] & 0xc0, 0) << "one-byte PkgLength";
    EXPECT_EQ(aml[2], aml.size() - 2) << "PkgLength covers the rest of the device";
    std::string text(aml.begin(), aml.end());
    EXPECT_EQ(text.substr(3, 4), "VR03");
    EXPECT_NE(text.find("_HID\x0dLNRO0005"), std::string::npos);
    auto memory = text.find("\x86\x09");
    ASSERT_NE(memory, std::string::npos);
    uint32_t base, size, gsi;
    std::memcpy(&base, aml.data() + memory + 4, 4);
    std::memcpy(&size, aml.data() + memory + 8, 4);
    EXPECT_EQ(base, 0xd0003000u);
    EXPECT_EQ(size, 0x1000u);
    EXPECT_EQ(static_cast<uint8_t>(text[memory + 12]), 0x89);
    EXPECT_EQ(static_cast<uint8_t>(text[memory + 15]), 0x03) << "consumer, edge, active high";
    std::memcpy(&gsi, aml.data() + memory + 17, 4);
    EXPECT_EQ(gsi, 19u);
    EXPECT_EQ(static_cast<uint8_t>(aml[aml.size() - 2]), 0x79) << "end tag";
}

}  // namespace
}  // namespace hospes::virtio
