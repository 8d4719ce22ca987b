// The Intel MultiProcessor Specification 1.4 table that announces the
// vCPUs, the IOAPIC and the ISA interrupt routing to a guest without ACPI.
#pragma once

#include <cstdint>
#include <vector>

#include "common/error.hpp"

namespace hospes::x86 {

// The MP-table APIC ids are 8 bits and the IOAPIC takes the id after the
// last vCPU, so at most 254 vCPUs fit.
inline constexpr uint32_t kMaxMpTableVcpus = 254;

// The bytes of the floating pointer followed by the configuration table,
// to be copied to guest-physical `address`.
Result<std::vector<uint8_t>> build_mp_table(uint64_t address, uint32_t vcpus);

// Sum of bytes modulo 256, as the MP and ACPI checksums use it.
uint8_t byte_sum(const uint8_t* bytes, size_t size);

}  // namespace hospes::x86
