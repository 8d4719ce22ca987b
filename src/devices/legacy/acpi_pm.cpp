#include "devices/legacy/acpi_pm.hpp"

#include "arch/x86_64/acpi.hpp"

namespace hospes::devices {

namespace {

constexpr uint64_t kStatus = 0, kEnable = 2, kControl = 4, kReset = 8;
constexpr uint16_t kSciEnabled = 1u << 0;  // always in ACPI mode
constexpr uint16_t kPowerButton = 1u << 8;  // PWRBTN_STS and PWRBTN_EN
constexpr uint16_t kSleepEnable = 1u << 13;
constexpr unsigned kSleepTypeShift = 10;

}  // namespace

AcpiPm::AcpiPm(Request power_off, Request reset, IrqLine sci)
    : power_off_(std::move(power_off)), reset_(std::move(reset)), sci_(std::move(sci)) {
    registers_[kControl] = kSciEnabled;
}

void AcpiPm::press_power_button() {
    std::lock_guard lock(mutex_);
    registers_[kStatus + 1] |= kPowerButton >> 8;
    update_sci();
}

void AcpiPm::update_sci() {
    bool level = (registers_[kStatus + 1] & registers_[kEnable + 1] & (kPowerButton >> 8)) != 0;
    if (level == sci_level_) return;
    sci_level_ = level;
    sci_(level);
}

void AcpiPm::read(uint64_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        uint64_t at = offset + i;
        data[i] = at < registers_.size() ? registers_[at] : 0;
    }
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data) {
    bool power_off = false, reset = false;
    {
        std::lock_guard lock(mutex_);
        for (size_t i = 0; i < data.size(); ++i) {
            uint64_t at = offset + i;
            if (at < kEnable)
                registers_[at] &= static_cast<uint8_t>(~data[i]);  // status: write 1 to clear
            else if (at < registers_.size())
                registers_[at] = data[i];
            if (at == kReset && data[i] == x86::kAcpiResetValue) reset = true;
        }
        uint16_t control = static_cast<uint16_t>(registers_[kControl] | (registers_[kControl + 1] << 8));
        if (offset <= kControl + 1 && offset + data.size() > kControl && (control & kSleepEnable)) {
            uint16_t sleep_type = (control >> kSleepTypeShift) & 0x7;
            registers_[kControl + 1] &= static_cast<uint8_t>(~(kSleepEnable >> 8));  // SLP_EN reads as zero
            power_off = sleep_type == x86::kAcpiS5SleepType;
        }
        registers_[kControl] |= kSciEnabled;
        update_sci();
    }
    if (power_off) power_off_();
    if (reset) reset_();
}

}  // namespace hospes::devices
