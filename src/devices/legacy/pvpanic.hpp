// The pvpanic device (QEMU's docs/specs/pvpanic.rst): one I/O port, 0x505,
// described in the DSDT as ACPI device QEMU0001, which Linux's pvpanic-mmio
// driver binds to. Reading it gives the events the host understands; the
// guest kernel writes PANICKED from its panic notifier, before it reboots
// (panic=N) or halts, so the host can tell a crash from a reboot.
// CRASH_LOADED (a kdump kernel took over) is logged and the guest goes on.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "vmm/io_bus.hpp"

namespace hospes::devices {

class PvPanic : public BusDevice {
public:
    static constexpr uint64_t kPort = 0x505;
    static constexpr uint64_t kSize = 1;
    static constexpr uint8_t kPanicked = 1u << 0, kCrashLoaded = 1u << 1;

    using Event = std::function<void()>;
    PvPanic(Event panicked, Event crash_loaded)
        : panicked_(std::move(panicked)), crash_loaded_(std::move(crash_loaded)) {}

    void read(uint64_t, std::span<uint8_t> data) override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = i == 0 ? kPanicked | kCrashLoaded : 0;
    }
    void write(uint64_t offset, std::span<const uint8_t> data) override {
        if (offset != 0 || data.empty()) return;
        if (data[0] & kPanicked) panicked_();
        else if (data[0] & kCrashLoaded) crash_loaded_();
    }

private:
    Event panicked_, crash_loaded_;
};

}  // namespace hospes::devices
