// virtio-console driven by the fake driver: guest output reaches the host
// in order, host input fills receive buffers or waits for them, malformed
// chains put the device in need of a reset, and a reset keeps held input.
#include "devices/virtio/console.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "support/fake_driver.hpp"

namespace hospes {
namespace {

using devices::VirtioConsole;
using test_support::FakeDriver;
constexpr uint16_t kRx = VirtioConsole::kReceiveQueue, kTx = VirtioConsole::kTransmitQueue;

std::span<const uint8_t> bytes_of(const std::string& text) {
    return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

struct Fixture {
    std::string output;
    VirtioConsole console{[this](std::span<const uint8_t> bytes) { output.append(bytes.begin(), bytes.end()); }};
};

// A device-readable buffer holding `text`.
FakeDriver::Buffer out_buffer(FakeDriver& driver, const std::string& text) {
    uint64_t at = driver.alloc(text.size());
    driver.fill(at, bytes_of(text));
    return {at, static_cast<uint32_t>(text.size()), false};
}

std::string read_back(FakeDriver& driver, uint64_t address, uint32_t length) {
    auto span = driver.bytes(address, length);
    return std::string(span.begin(), span.end());
}

TEST(VirtioConsole, OutputReachesTheHostInOrderAcrossChains) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    driver.add_chain(kTx, {out_buffer(driver, "hel"), out_buffer(driver, "lo ")});
    driver.add_chain(kTx, {out_buffer(driver, "wor"), {driver.alloc(1), 0, false}, out_buffer(driver, "ld\n")});
    driver.kick(kTx);
    EXPECT_EQ(f.output, "hello world\n");
    auto first = driver.next_used(kTx), second = driver.next_used(kTx);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->length, 0u);
    EXPECT_EQ(second->length, 0u);
    EXPECT_FALSE(driver.next_used(kTx));
    EXPECT_EQ(driver.interrupts(), 1);  // one per batch
    EXPECT_TRUE(driver.failures().empty());
}

TEST(VirtioConsole, InputFillsReceiveBuffersAcrossDescriptors) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    uint64_t a = driver.alloc(2), b = driver.alloc(8);
    driver.add_chain(kRx, {{a, 2, true}, {b, 8, true}});
    driver.kick(kRx);  // buffers but no input: nothing used
    EXPECT_FALSE(driver.next_used(kRx));
    EXPECT_EQ(f.console.receive(bytes_of("ls -l")), 5u);
    auto used = driver.next_used(kRx);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->length, 5u);
    EXPECT_EQ(read_back(driver, a, 2) + read_back(driver, b, 3), "ls -l");
    EXPECT_EQ(driver.interrupts(), 1);
    EXPECT_EQ(f.console.pending_input(), 0u);
}

TEST(VirtioConsole, InputWaitsForBuffersAndFlushesInOrder) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    uint64_t events = f.console.input_space_events();
    EXPECT_EQ(f.console.receive(bytes_of("0123456789")), 10u);
    EXPECT_EQ(f.console.pending_input(), 10u);
    EXPECT_FALSE(driver.next_used(kRx));

    uint64_t a = driver.alloc(4);
    driver.add_chain(kRx, {{a, 4, true}});
    driver.kick(kRx);
    auto used = driver.next_used(kRx);
    ASSERT_TRUE(used);
    EXPECT_EQ(read_back(driver, a, used->length), "0123");
    EXPECT_EQ(f.console.pending_input(), 6u);
    EXPECT_NE(f.console.input_space_events(), events);

    uint64_t b = driver.alloc(64);
    driver.add_chain(kRx, {{b, 64, true}});
    driver.kick(kRx);
    used = driver.next_used(kRx);
    ASSERT_TRUE(used);
    EXPECT_EQ(read_back(driver, b, used->length), "456789");
    EXPECT_EQ(f.console.pending_input(), 0u);
}

TEST(VirtioConsole, HeldInputIsBoundedAndTheInputThreadWaits) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    std::string big(VirtioConsole::kInputCapacity + 100, 'x');
    EXPECT_EQ(f.console.receive(bytes_of(big)), VirtioConsole::kInputCapacity);
    EXPECT_EQ(f.console.receive(bytes_of("more")), 0u);

    // The input thread waits until the guest takes some.
    uint64_t seen = f.console.input_space_events();
    std::atomic<bool> woke{false};
    std::thread waiter([&] { woke = f.console.wait_input_space(seen); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(woke);
    uint64_t a = driver.alloc(1000);
    driver.add_chain(kRx, {{a, 1000, true}});
    driver.kick(kRx);
    waiter.join();
    EXPECT_TRUE(woke);
    EXPECT_EQ(f.console.receive(bytes_of(big)), 1000u);
}

TEST(VirtioConsole, StopInputEndsAWait) {
    Fixture f;
    uint64_t seen = f.console.input_space_events();
    std::atomic<int> result{-1};
    std::thread waiter([&] { result = f.console.wait_input_space(seen) ? 1 : 0; });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    f.console.stop_input();
    waiter.join();
    EXPECT_EQ(result, 0);
}

TEST(VirtioConsole, InputBeforeTheDriverIsDeliveredAfterActivation) {
    Fixture f;
    EXPECT_EQ(f.console.receive(bytes_of("early")), 5u);
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    uint64_t a = driver.alloc(16);
    driver.add_chain(kRx, {{a, 16, true}});
    driver.kick(kRx);
    auto used = driver.next_used(kRx);
    ASSERT_TRUE(used);
    EXPECT_EQ(read_back(driver, a, used->length), "early");
}

TEST(VirtioConsole, WritableTransmitBufferNeedsReset) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    driver.add_chain(kTx, {out_buffer(driver, "abc"), {driver.alloc(8), 8, true}});
    driver.kick(kTx);
    EXPECT_EQ(driver.failures().size(), 1u);
    EXPECT_EQ(f.output, "");
}

TEST(VirtioConsole, ReadableReceiveBufferNeedsResetAndKeepsInput) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    driver.add_chain(kRx, {out_buffer(driver, "zz"), {driver.alloc(8), 8, true}});
    EXPECT_EQ(f.console.receive(bytes_of("abc")), 3u);
    EXPECT_EQ(driver.failures().size(), 1u);
    EXPECT_EQ(f.console.pending_input(), 3u);
    EXPECT_FALSE(driver.next_used(kRx));
}

TEST(VirtioConsole, TransmitBufferOutsideMemoryStopsTheDevice) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    driver.add_chain(kTx, {{uint64_t{1} << 40, 16, false}});
    driver.kick(kTx);
    EXPECT_EQ(driver.failures().size(), 1u);
    // Until a reset the queues are left alone; input is held.
    uint64_t a = driver.alloc(8);
    driver.add_chain(kRx, {{a, 8, true}});
    EXPECT_EQ(f.console.receive(bytes_of("x")), 1u);
    EXPECT_EQ(f.console.pending_input(), 1u);
    EXPECT_FALSE(driver.next_used(kRx));
    EXPECT_EQ(driver.failures().size(), 1u);
    EXPECT_EQ(f.output, "");
}

TEST(VirtioConsole, ReceiveBufferOutsideMemoryNeedsReset) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    driver.add_chain(kRx, {{(uint64_t{64} << 20) - 4, 16, true}});  // straddles the end of RAM
    EXPECT_EQ(f.console.receive(bytes_of("x")), 1u);
    EXPECT_EQ(driver.failures().size(), 1u);
    EXPECT_EQ(f.console.pending_input(), 1u);
}

TEST(VirtioConsole, BrokenAvailableRingNeedsReset) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start(std::nullopt, 8));
    driver.descriptor(kTx, 0, driver.alloc(4), 4, FakeDriver::kNext, 0);  // a chain that loops on itself
    driver.make_available(kTx, 0);
    driver.kick(kTx);
    EXPECT_EQ(driver.failures().size(), 1u);
}

TEST(VirtioConsole, ZeroLengthReceiveBufferIsReturnedEmpty) {
    Fixture f;
    FakeDriver driver(f.console);
    ASSERT_TRUE(driver.start());
    driver.add_chain(kRx, {{driver.alloc(1), 0, true}});
    uint64_t a = driver.alloc(8);
    driver.add_chain(kRx, {{a, 8, true}});
    EXPECT_EQ(f.console.receive(bytes_of("ok")), 2u);
    auto first = driver.next_used(kRx), second = driver.next_used(kRx);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->length, 0u);
    EXPECT_EQ(read_back(driver, a, second->length), "ok");
}

TEST(VirtioConsole, ResetForgetsTheDriverButKeepsHeldInput) {
    Fixture f;
    {
        FakeDriver driver(f.console);
        ASSERT_TRUE(driver.start());
        EXPECT_EQ(f.console.receive(bytes_of("kept")), 4u);
        f.console.reset();
        // No driver: notifications are ignored and nothing is touched.
        driver.add_chain(kTx, {out_buffer(driver, "lost")});
        driver.add_chain(kRx, {{driver.alloc(8), 8, true}});
        driver.kick(kTx);
        driver.kick(kRx);
        EXPECT_FALSE(driver.next_used(kTx));
        EXPECT_FALSE(driver.next_used(kRx));
        EXPECT_EQ(f.output, "");
    }
    FakeDriver driver(f.console);  // a new driver, fresh rings
    ASSERT_TRUE(driver.start());
    uint64_t a = driver.alloc(8);
    driver.add_chain(kRx, {{a, 8, true}});
    driver.kick(kRx);
    auto used = driver.next_used(kRx);
    ASSERT_TRUE(used);
    EXPECT_EQ(read_back(driver, a, used->length), "kept");
}

TEST(VirtioConsole, ConfigurationSpaceAndEmergencyWrite) {
    Fixture f;
    EXPECT_EQ(f.console.features(), VirtioConsole::kFeatureEmergWrite);  // no size without a terminal
    uint32_t value = 0xffffffff;
    f.console.read_config(VirtioConsole::kConfigMaxPorts, {reinterpret_cast<uint8_t*>(&value), 4});
    EXPECT_EQ(value, 1u);
    // Before any driver set-up, as the spec allows.
    uint32_t character = 'Z';
    f.console.write_config(VirtioConsole::kConfigEmergWrite, {reinterpret_cast<const uint8_t*>(&character), 4});
    f.console.write_config(VirtioConsole::kConfigCols, {reinterpret_cast<const uint8_t*>(&character), 4});
    EXPECT_EQ(f.output, "Z");

    VirtioConsole sized([&](std::span<const uint8_t>) {}, VirtioConsole::WindowSize{132, 43});
    EXPECT_EQ(sized.features(), VirtioConsole::kFeatureEmergWrite | VirtioConsole::kFeatureSize);
    uint16_t cols = 0, rows = 0;
    sized.read_config(VirtioConsole::kConfigCols, {reinterpret_cast<uint8_t*>(&cols), 2});
    sized.read_config(VirtioConsole::kConfigRows, {reinterpret_cast<uint8_t*>(&rows), 2});
    EXPECT_EQ(cols, 132);
    EXPECT_EQ(rows, 43);
    // Reads past the structure, or straddling its end, give zeros there.
    uint8_t tail[8];
    std::memset(tail, 0xaa, sizeof(tail));
    sized.read_config(VirtioConsole::kConfigSize - 2, tail);
    for (uint8_t byte : tail) EXPECT_EQ(byte, 0);
    uint64_t far = 0xaa;
    sized.read_config(~uint64_t{0} - 3, {reinterpret_cast<uint8_t*>(&far), 8});
    EXPECT_EQ(far, 0u);
}

}  // namespace
}  // namespace hospes
