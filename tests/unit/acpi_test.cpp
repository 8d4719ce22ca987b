// ACPI tables as a guest's ACPICA reads them (checksums, pointers, MADT
// entries, _S5 in the DSDT) and the PM registers that power off and reset.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "arch/x86_64/acpi.hpp"
#include "arch/x86_64/mptable.hpp"
#include "devices/legacy/acpi_pm.hpp"

namespace hospes::x86 {
namespace {

constexpr uint64_t kBase = 0xe0000;

struct Tables {
    AcpiTables acpi;
    const uint8_t* at(uint64_t address) const { return acpi.bytes.data() + (address - kBase); }
    template <class T>
    T read(uint64_t address) const {
        T value;
        std::memcpy(&value, at(address), sizeof(T));
        return value;
    }
    uint32_t length(uint64_t table) const { return read<uint32_t>(table + 4); }
    std::string signature(uint64_t table) const { return std::string(reinterpret_cast<const char*>(at(table)), 4); }
    void expect_valid(uint64_t table) const {
        ASSERT_GE(table, kBase);
        ASSERT_LE(table - kBase + 36, acpi.bytes.size());
        ASSERT_LE(table - kBase + length(table), acpi.bytes.size());
        EXPECT_EQ(byte_sum(at(table), length(table)), 0) << signature(table) << " checksum";
    }
};

Tables build(uint32_t vcpus) {
    auto acpi = build_acpi_tables(kBase, vcpus);
    EXPECT_TRUE(acpi);
    return Tables{std::move(*acpi)};
}

TEST(Acpi, RsdpPointsToValidTables) {
    auto t = build(4);
    EXPECT_EQ(t.acpi.rsdp_address, kBase);
    EXPECT_EQ(std::memcmp(t.at(kBase), "RSD PTR ", 8), 0);
    EXPECT_EQ(byte_sum(t.at(kBase), 20), 0) << "ACPI 1.0 checksum";
    EXPECT_EQ(byte_sum(t.at(kBase), 36), 0) << "extended checksum";
    EXPECT_EQ(t.read<uint8_t>(kBase + 15), 2) << "revision 2 has an XSDT";
    auto xsdt = t.read<uint64_t>(kBase + 24);
    t.expect_valid(xsdt);
    EXPECT_EQ(t.signature(xsdt), "XSDT");
    ASSERT_EQ(t.length(xsdt), 36u + 16u);
    auto fadt = t.read<uint64_t>(xsdt + 36);
    auto madt = t.read<uint64_t>(xsdt + 44);
    t.expect_valid(fadt);
    t.expect_valid(madt);
    EXPECT_EQ(t.signature(fadt), "FACP");
    EXPECT_EQ(t.signature(madt), "APIC");
}

TEST(Acpi, FadtDescribesPowerManagementAndDsdtHasS5) {
    auto t = build(1);
    auto xsdt = t.read<uint64_t>(kBase + 24);
    auto fadt = t.read<uint64_t>(xsdt + 36);
    EXPECT_EQ(t.length(fadt), 276u);
    EXPECT_EQ(t.read<uint16_t>(fadt + 46), kAcpiSciIrq);
    EXPECT_EQ(t.read<uint32_t>(fadt + 48), 0u) << "no SMI command port: always in ACPI mode";
    EXPECT_EQ(t.read<uint32_t>(fadt + 56), kAcpiPm1EventPort);
    EXPECT_EQ(t.read<uint32_t>(fadt + 64), kAcpiPm1ControlPort);
    EXPECT_EQ(t.read<uint8_t>(fadt + 88), 4);
    EXPECT_EQ(t.read<uint8_t>(fadt + 89), 2);
    EXPECT_EQ(t.read<uint64_t>(fadt + 116 + 4), kAcpiResetPort) << "reset register address";
    EXPECT_EQ(t.read<uint8_t>(fadt + 128), kAcpiResetValue);
    EXPECT_TRUE(t.read<uint32_t>(fadt + 112) & (1u << 10)) << "reset register supported";
    EXPECT_FALSE(t.read<uint32_t>(fadt + 112) & (1u << 20)) << "not hardware-reduced: legacy PIC stays";
    auto facs = t.read<uint32_t>(fadt + 36);
    EXPECT_EQ(facs % 64, 0u);
    EXPECT_EQ(std::memcmp(t.at(facs), "FACS", 4), 0);
    auto dsdt = t.read<uint64_t>(fadt + 140);
    EXPECT_EQ(t.read<uint32_t>(fadt + 40), dsdt);
    t.expect_valid(dsdt);
    std::string aml(reinterpret_cast<const char*>(t.at(dsdt)) + 36, t.length(dsdt) - 36);
    auto s5 = aml.find("_S5_");
    ASSERT_NE(s5, std::string::npos);
    EXPECT_EQ(static_cast<uint8_t>(aml[s5 + 7]), 0x0a) << "byte prefix";
    EXPECT_EQ(static_cast<uint8_t>(aml[s5 + 8]), kAcpiS5SleepType);
}

TEST(Acpi, MadtListsEveryVcpuAndTheIoApic) {
    for (uint32_t vcpus : {1u, 3u, kMaxMpTableVcpus}) {
        auto t = build(vcpus);
        auto xsdt = t.read<uint64_t>(kBase + 24);
        auto madt = t.read<uint64_t>(xsdt + 44);
        t.expect_valid(madt);
        EXPECT_EQ(t.read<uint32_t>(madt + 36), 0xfee00000u);
        uint32_t lapics = 0, ioapics = 0, overrides = 0;
        for (uint64_t entry = madt + 44; entry < madt + t.length(madt); entry += t.read<uint8_t>(entry + 1)) {
            uint8_t type = t.read<uint8_t>(entry);
            if (type == 0) {
                EXPECT_EQ(t.read<uint8_t>(entry + 3), lapics) << "APIC id";
                EXPECT_EQ(t.read<uint32_t>(entry + 4) & 1, 1u) << "enabled";
                ++lapics;
            }
            if (type == 1) {
                ++ioapics;
                EXPECT_EQ(t.read<uint32_t>(entry + 4), 0xfec00000u);
            }
            if (type == 2) ++overrides;
            ASSERT_GT(t.read<uint8_t>(entry + 1), 0);
        }
        EXPECT_EQ(lapics, vcpus);
        EXPECT_EQ(ioapics, 1u);
        EXPECT_EQ(overrides, 1u) << "SCI only";
    }
    EXPECT_FALSE(build_acpi_tables(kBase, 0));
    EXPECT_FALSE(build_acpi_tables(kBase, kMaxMpTableVcpus + 1));
}

TEST(AcpiPm, SleepEnableWithS5PowersOff) {
    int power_offs = 0, resets = 0;
    devices::AcpiPm pm([&] { ++power_offs; }, [&] { ++resets; }, [](bool) {});
    auto write16 = [&](uint64_t offset, uint16_t value) {
        uint8_t bytes[2] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
        pm.write(offset, bytes);
    };
    uint8_t control[2];
    pm.read(4, control);
    EXPECT_EQ(control[0] & 1, 1) << "SCI_EN: always ACPI mode";
    write16(4, 5 << 10);  // sleep type alone does nothing
    EXPECT_EQ(power_offs, 0);
    write16(4, (3 << 10) | (1 << 13));  // S3 is not offered
    EXPECT_EQ(power_offs, 0);
    write16(4, (5 << 10) | (1 << 13));
    EXPECT_EQ(power_offs, 1);
    pm.read(4, control);
    EXPECT_EQ(control[1] & 0x20, 0) << "SLP_EN reads back as zero";
    uint8_t reset_value = 2;
    pm.write(8, {&reset_value, 1});
    EXPECT_EQ(resets, 0);
    reset_value = kAcpiResetValue;
    pm.write(8, {&reset_value, 1});
    EXPECT_EQ(resets, 1);
    uint8_t status[2] = {0xff, 0xff};
    pm.read(0, status);
    EXPECT_EQ(status[0] | status[1], 0) << "no events";
}

// The fixed power button: its status bit is set by a press and cleared by
// the guest writing 1 to it; the SCI is up while status and enable are.
TEST(AcpiPm, PowerButtonRaisesTheSciUntilTheGuestClearsIt) {
    std::vector<bool> sci;
    devices::AcpiPm pm([] {}, [] {}, [&](bool level) { sci.push_back(level); });
    auto read16 = [&](uint64_t offset) {
        uint8_t bytes[2];
        pm.read(offset, bytes);
        return static_cast<uint16_t>(bytes[0] | bytes[1] << 8);
    };
    auto write16 = [&](uint64_t offset, uint16_t value) {
        uint8_t bytes[2] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
        pm.write(offset, bytes);
    };
    constexpr uint16_t kPowerButton = 1u << 8;
    pm.press_power_button();  // not enabled yet: status only
    EXPECT_EQ(read16(0), kPowerButton);
    EXPECT_TRUE(sci.empty());
    write16(2, kPowerButton);  // the guest enables it: the pending press raises the SCI
    EXPECT_EQ(sci, std::vector<bool>{true});
    write16(0, 0x0001);  // clearing another bit leaves it
    EXPECT_EQ(read16(0), kPowerButton);
    write16(0, kPowerButton);  // write 1 to clear
    EXPECT_EQ(read16(0), 0u);
    EXPECT_EQ(sci, (std::vector<bool>{true, false}));
    pm.press_power_button();
    pm.press_power_button();  // a second press while pending changes nothing
    EXPECT_EQ(sci, (std::vector<bool>{true, false, true}));
    write16(2, 0);  // disabled: the SCI drops, the status stays
    EXPECT_EQ(sci, (std::vector<bool>{true, false, true, false}));
    EXPECT_EQ(read16(0), kPowerButton);
    EXPECT_EQ(read16(2), 0u);
}

}  // namespace
}  // namespace hospes::x86
