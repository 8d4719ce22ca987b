// i8042 (probe and reset), CMOS RTC (formats and guest-set time) and the
// I/O bus's range map.
#include <gtest/gtest.h>

#include "arch/x86_64/aml.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/pvpanic.hpp"
#include "devices/legacy/rtc.hpp"
#include "vmm/io_bus.hpp"

namespace hospes::devices {
namespace {

uint8_t in(BusDevice& device, uint64_t offset) {
    uint8_t value = 0;
    device.read(offset, {&value, 1});
    return value;
}
void out(BusDevice& device, uint64_t offset, uint8_t value) { device.write(offset, {&value, 1}); }

TEST(I8042, SelfTestAndControlRegister) {
    int resets = 0;
    I8042 controller([&] { ++resets; }, [](bool) {});
    out(controller, 4, 0xaa);
    EXPECT_EQ(in(controller, 4) & 1, 1);
    EXPECT_EQ(in(controller, 0), 0x55);
    EXPECT_EQ(in(controller, 4) & 1, 0);
    out(controller, 4, 0x60);
    out(controller, 0, 0x45);
    out(controller, 4, 0x20);
    EXPECT_EQ(in(controller, 0), 0x45);
    EXPECT_EQ(resets, 0);
}

TEST(I8042, ResetByCommandAndByOutputPort) {
    int resets = 0;
    I8042 controller([&] { ++resets; }, [](bool) {});
    out(controller, 4, 0xfe);
    EXPECT_EQ(resets, 1);
    out(controller, 4, 0xd1);
    out(controller, 0, 0x01);  // bit 0 set: CPU runs
    EXPECT_EQ(resets, 1);
    out(controller, 4, 0xd1);
    out(controller, 0, 0x00);
    EXPECT_EQ(resets, 2);
}

TEST(I8042, KeyboardAcksAndInterrupts) {
    std::vector<bool> irq;
    I8042 controller([] {}, [&](bool level) { irq.push_back(level); });
    out(controller, 0, 0xff);  // keyboard reset
    EXPECT_EQ(irq, std::vector<bool>{true});
    EXPECT_EQ(in(controller, 0), 0xfa);
    EXPECT_EQ(in(controller, 0), 0xaa);
    EXPECT_EQ(irq, (std::vector<bool>{true, false}));
}

TEST(Rtc, ReportsHostTimeInBcd) {
    // 2026-11-23 20:15:42 UTC, a Monday.
    Rtc rtc([] { return time_t{1795464942}; });
    auto reg = [&](uint8_t index) {
        out(rtc, 0, index);
        return in(rtc, 1);
    };
    EXPECT_EQ(reg(0x00), 0x42);
    EXPECT_EQ(reg(0x02), 0x15);
    EXPECT_EQ(reg(0x04), 0x20);
    EXPECT_EQ(reg(0x07), 0x23);
    EXPECT_EQ(reg(0x08), 0x11);
    EXPECT_EQ(reg(0x09), 0x26);
    EXPECT_EQ(reg(0x32), 0x20);
    EXPECT_EQ(reg(0x06), 0x02);
    EXPECT_EQ(reg(0x0a) & 0x80, 0) << "never update-in-progress";
    EXPECT_EQ(reg(0x0d), 0x80);
}

TEST(Rtc, BinaryAnd12HourModes) {
    Rtc rtc([] { return time_t{1795464942}; });
    out(rtc, 0, 0x0b);
    out(rtc, 1, 0x04);  // binary, 12-hour
    out(rtc, 0, 0x04);
    EXPECT_EQ(in(rtc, 1), 0x80 | 8) << "20h is 8 PM";
    out(rtc, 0, 0x00);
    EXPECT_EQ(in(rtc, 1), 42);
}

TEST(Rtc, GuestSetTimeIsKeptAsOffset) {
    time_t now = 1795464942;
    Rtc rtc([&] { return now; });
    out(rtc, 0, 0x09);
    out(rtc, 1, 0x30);  // year 2030
    now += 5;
    out(rtc, 0, 0x09);
    EXPECT_EQ(in(rtc, 1), 0x30);
    out(rtc, 0, 0x00);
    EXPECT_EQ(in(rtc, 1), 0x47) << "the clock keeps running";
}

class Recorder : public BusDevice {
public:
    void read(uint64_t offset, std::span<uint8_t> data) override { data[0] = static_cast<uint8_t>(offset); }
    void write(uint64_t offset, std::span<const uint8_t>) override { last_write = offset; }
    uint64_t last_write = ~0ull;
};

TEST(PvPanic, OffersPanickedAndCrashLoadedAndReportsThem) {
    int panics = 0, crash_loads = 0;
    devices::PvPanic pvpanic([&] { ++panics; }, [&] { ++crash_loads; });
    uint8_t value = 0;
    pvpanic.read(0, std::span(&value, 1));
    EXPECT_EQ(value, devices::PvPanic::kPanicked | devices::PvPanic::kCrashLoaded);
    uint8_t crash_loaded = devices::PvPanic::kCrashLoaded;
    pvpanic.write(0, std::span<const uint8_t>(&crash_loaded, 1));
    EXPECT_EQ(crash_loads, 1);
    EXPECT_EQ(panics, 0);
    uint8_t panicked = devices::PvPanic::kPanicked | 0x80;  // unknown bits are ignored
    pvpanic.write(0, std::span<const uint8_t>(&panicked, 1));
    EXPECT_EQ(panics, 1);
    uint8_t nothing = 0;
    pvpanic.write(0, std::span<const uint8_t>(&nothing, 1));
    EXPECT_EQ(panics + crash_loads, 2);
}

TEST(PvPanic, DsdtDeviceEncoding) {
    auto aml = x86::pvpanic_device_aml(0x505);
    std::string text(aml.begin(), aml.end());
    ASSERT_GE(aml.size(), 3u);
    EXPECT_EQ(aml[0], 0x5b);
    EXPECT_EQ(aml[1], 0x82);
    EXPECT_EQ(aml[2], aml.size() - 2) << "PkgLength covers the rest of the device";
    EXPECT_EQ(text.substr(3, 4), "PEVT");
    EXPECT_NE(text.find(std::string("_HID\x0dQEMU0001\0", 14)), std::string::npos);
    // IO (Decode16, 0x505, 0x505, 1, 1), then the end tag.
    EXPECT_NE(text.find(std::string("\x47\x01\x05\x05\x05\x05\x01\x01\x79\x00", 10)), std::string::npos);
}

TEST(IoBus, DispatchesByRangeAndRejectsOverlap) {
    IoBus bus;
    auto a = std::make_shared<Recorder>();
    auto b = std::make_shared<Recorder>();
    ASSERT_TRUE(bus.add(0x3f8, 8, a));
    ASSERT_TRUE(bus.add(0x60, 5, b));
    EXPECT_FALSE(bus.add(0x3fc, 8, b));
    EXPECT_FALSE(bus.add(0x3f0, 9, b));
    EXPECT_FALSE(bus.add(0x100, 0, b));
    EXPECT_FALSE(bus.add(~0ull - 2, 8, b));
    uint8_t value = 0;
    EXPECT_TRUE(bus.read(0x3fd, {&value, 1}));
    EXPECT_EQ(value, 5);
    EXPECT_TRUE(bus.write(0x64, {&value, 1}));
    EXPECT_EQ(b->last_write, 4u);
    uint8_t wide[4] = {};
    EXPECT_FALSE(bus.read(0x400, wide));
    EXPECT_EQ(wide[3], 0xff) << "nothing there reads as all ones";
    EXPECT_FALSE(bus.write(0x5f, {&value, 1}));
}

}  // namespace
}  // namespace hospes::devices
