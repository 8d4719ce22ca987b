// ACPI tables (ACPI 6.4) that describe the machine to the guest: RSDP,
// XSDT, FADT (with FACS), MADT (vCPUs, IOAPIC) and a DSDT. Debian's kernels
// are built without MP-table parsing, so this is how they find their vCPUs,
// and the FADT's PM1 control block is how `poweroff` reaches the monitor.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/error.hpp"

namespace hospes::x86 {

// The legacy ACPI power-management ports (see devices/legacy/acpi_pm.hpp).
inline constexpr uint16_t kAcpiPmBase = 0x600;
inline constexpr uint16_t kAcpiPm1EventPort = kAcpiPmBase;        // status (2) + enable (2)
inline constexpr uint16_t kAcpiPm1ControlPort = kAcpiPmBase + 4;  // 2 bytes
inline constexpr uint16_t kAcpiResetPort = kAcpiPmBase + 8;       // 1 byte
inline constexpr uint16_t kAcpiPmSize = 9;
inline constexpr uint8_t kAcpiResetValue = 0x01;
inline constexpr uint16_t kAcpiSciIrq = 9;
inline constexpr uint8_t kAcpiS5SleepType = 5;

struct AcpiTables {
    uint64_t rsdp_address;
    std::vector<uint8_t> bytes;  // to be copied to rsdp_address
};

// Lays out all tables from `address` (16-byte aligned, below 1 MiB so the
// kernel's RSDP scan finds them too). `dsdt_body` is AML placed after the
// DSDT header (device descriptions); an _S5 object is always added.
Result<AcpiTables> build_acpi_tables(uint64_t address, uint32_t vcpus, std::span<const uint8_t> dsdt_body = {});

}  // namespace hospes::x86
