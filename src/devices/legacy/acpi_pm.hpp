// The ACPI fixed-hardware power-management block the FADT points at: PM1
// event (status/enable) and control registers, and the reset register.
// Writing SLP_EN with the _S5 sleep type powers the guest off; writing the
// reset value reboots it. The guest never gets an SCI from it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "vmm/io_bus.hpp"

namespace hospes::devices {

class AcpiPm : public BusDevice {
public:
    using Request = std::function<void()>;
    AcpiPm(Request power_off, Request reset);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    Request power_off_;
    Request reset_;
    std::mutex mutex_;
    std::array<uint8_t, 9> registers_{};
};

}  // namespace hospes::devices
