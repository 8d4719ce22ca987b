// The MC146818 CMOS real-time clock (ports 0x70/0x71): the host's UTC time
// in BCD or binary, 24- or 12-hour form as register B asks; time the guest
// sets is kept as an offset from the host clock. No alarm or periodic IRQ.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <functional>
#include <mutex>
#include <span>

#include "vmm/io_bus.hpp"

namespace hospes::devices {

class Rtc : public BusDevice {
public:
    static constexpr uint64_t kBase = 0x70;
    static constexpr uint64_t kSize = 2;

    using Clock = std::function<time_t()>;
    explicit Rtc(Clock clock = [] { return std::time(nullptr); });

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

private:
    uint8_t read_register(uint8_t index);
    void write_register(uint8_t index, uint8_t value);
    uint8_t encode(int value) const;   // to the guest's format (BCD or binary)
    int decode(uint8_t value) const;

    Clock clock_;
    std::mutex mutex_;
    uint8_t index_ = 0;
    time_t offset_ = 0;  // guest time minus host time
    std::array<uint8_t, 128> cmos_{};
};

}  // namespace hospes::devices
