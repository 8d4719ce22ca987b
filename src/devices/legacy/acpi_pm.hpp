// The ACPI fixed-hardware power-management block the FADT points at: PM1
// event (status/enable) and control registers, and the reset register.
// Writing SLP_EN with the _S5 sleep type powers the guest off; writing the
// reset value reboots it. The fixed power button: press_power_button() sets
// PWRBTN_STS, and while the guest has PWRBTN_EN set the SCI is asserted
// until the guest clears the status (write 1 to clear), as on a PC.
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
    using IrqLine = std::function<void(bool level)>;
    AcpiPm(Request power_off, Request reset, IrqLine sci);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;
    // From any thread: the user pressed the power button.
    void press_power_button();

private:
    // The SCI follows status & enable; called with mutex_ held.
    void update_sci();

    Request power_off_;
    Request reset_;
    IrqLine sci_;
    bool sci_level_ = false;
    std::mutex mutex_;
    std::array<uint8_t, 9> registers_{};
};

}  // namespace hospes::devices
