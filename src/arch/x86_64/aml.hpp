// The few AML (ACPI Machine Language, ACPI 6.4 chapter 20) objects the DSDT
// needs to describe devices that cannot be probed: virtio-mmio windows and
// the pvpanic port.
#pragma once

#include <cstdint>
#include <vector>

namespace hospes::x86 {

// Device (VRxx) { _HID "LNRO0005", _UID index, _CRS { Memory32Fixed(base,
// size), Interrupt(edge, active high) { gsi } } }: Linux's virtio_mmio
// driver binds to it through ACPI.
std::vector<uint8_t> virtio_mmio_device_aml(uint8_t index, uint32_t base, uint32_t size, uint32_t gsi);

// Device (PEVT) { _HID "QEMU0001", _CRS { IO(Decode16, port, port, 1, 1) } }:
// Linux's pvpanic-mmio driver binds to it.
std::vector<uint8_t> pvpanic_device_aml(uint16_t port);

}  // namespace hospes::x86
