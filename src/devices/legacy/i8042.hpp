// The PC keyboard controller (ports 0x60 and 0x64), modelled far enough for
// Linux's i8042 driver to probe it and for `reboot` (command 0xfe pulses
// the CPU reset line). No keyboard or mouse is attached.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "vmm/io_bus.hpp"

namespace hospes::devices {

class I8042 : public BusDevice {
public:
    // One bus range covers both ports: offset 0 is 0x60, offset 4 is 0x64.
    static constexpr uint64_t kBase = 0x60;
    static constexpr uint64_t kSize = 5;
    static constexpr uint32_t kKeyboardIrq = 1;

    using ResetRequest = std::function<void()>;
    using InterruptLine = std::function<void(bool level)>;

    I8042(ResetRequest reset, InterruptLine keyboard_interrupt);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    // Each returns true when the guest asked for a CPU reset.
    bool command(uint8_t value);
    bool data(uint8_t value);
    void push_output(uint8_t value);
    void update_interrupt();  // with mutex_ held

    ResetRequest reset_;
    InterruptLine keyboard_interrupt_;
    std::mutex mutex_;
    std::deque<uint8_t> output_;
    std::optional<uint8_t> pending_command_;  // a command waiting for its data byte
    uint8_t control_ = 0x61;  // translate, system flag, keyboard interrupt enabled
    bool last_write_was_command_ = false;
    bool irq_level_ = false;
};

}  // namespace hospes::devices
