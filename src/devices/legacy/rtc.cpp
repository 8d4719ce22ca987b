#include "devices/legacy/rtc.hpp"

namespace hospes::devices {

namespace {

constexpr uint8_t kSeconds = 0x00, kMinutes = 0x02, kHours = 0x04, kWeekday = 0x06, kDayOfMonth = 0x07,
                  kMonth = 0x08, kYear = 0x09, kRegisterA = 0x0a, kRegisterB = 0x0b, kRegisterC = 0x0c,
                  kRegisterD = 0x0d, kCentury = 0x32;
constexpr uint8_t kBBinary = 0x04, kB24Hour = 0x02;
constexpr uint8_t kDValidRam = 0x80;
constexpr uint8_t kAUpdateInProgress = 0x80;
constexpr uint8_t kHourPm = 0x80;

}  // namespace

Rtc::Rtc(Clock clock) : clock_(std::move(clock)) {
    cmos_[kRegisterA] = 0x26;  // 32.768 kHz time base, 1024 Hz rate
    cmos_[kRegisterB] = kB24Hour;
    cmos_[kRegisterD] = kDValidRam;
}

void Rtc::read(uint64_t offset, std::span<uint8_t> data) {
    if (data.empty()) return;
    std::lock_guard lock(mutex_);
    data[0] = offset == 1 ? read_register(index_) : 0xff;
    for (size_t i = 1; i < data.size(); ++i) data[i] = 0;
}

void Rtc::write(uint64_t offset, std::span<const uint8_t> data) {
    if (data.empty()) return;
    std::lock_guard lock(mutex_);
    if (offset == 0)
        index_ = data[0] & 0x7f;  // bit 7 masks NMIs; nothing to model
    else if (offset == 1)
        write_register(index_, data[0]);
}

uint8_t Rtc::encode(int value) const {
    if (cmos_[kRegisterB] & kBBinary) return static_cast<uint8_t>(value);
    return static_cast<uint8_t>(((value / 10) << 4) | (value % 10));
}

int Rtc::decode(uint8_t value) const {
    if (cmos_[kRegisterB] & kBBinary) return value;
    return (value >> 4) * 10 + (value & 0xf);
}

uint8_t Rtc::read_register(uint8_t index) {
    time_t now = clock_() + offset_;
    std::tm t{};
    gmtime_r(&now, &t);
    switch (index) {
    case kSeconds: return encode(t.tm_sec);
    case kMinutes: return encode(t.tm_min);
    case kHours: {
        if (cmos_[kRegisterB] & kB24Hour) return encode(t.tm_hour);
        int hour12 = t.tm_hour % 12 == 0 ? 12 : t.tm_hour % 12;
        return static_cast<uint8_t>(encode(hour12) | (t.tm_hour >= 12 ? kHourPm : 0));
    }
    case kWeekday: return encode(t.tm_wday + 1);
    case kDayOfMonth: return encode(t.tm_mday);
    case kMonth: return encode(t.tm_mon + 1);
    case kYear: return encode(t.tm_year % 100);
    case kCentury: return encode((t.tm_year + 1900) / 100);
    // Never report an update in progress: the time is read atomically.
    case kRegisterA: return static_cast<uint8_t>(cmos_[kRegisterA] & ~kAUpdateInProgress);
    case kRegisterC: return 0;  // no interrupt flags, ever
    default: return cmos_[index];
    }
}

void Rtc::write_register(uint8_t index, uint8_t value) {
    switch (index) {
    case kSeconds:
    case kMinutes:
    case kHours:
    case kDayOfMonth:
    case kMonth:
    case kYear:
    case kCentury: {
        // Apply the one changed field to the current guest time.
        time_t now = clock_() + offset_;
        std::tm t{};
        gmtime_r(&now, &t);
        int decoded = decode(static_cast<uint8_t>(index == kHours ? value & ~kHourPm : value));
        if (index == kSeconds) t.tm_sec = decoded;
        if (index == kMinutes) t.tm_min = decoded;
        if (index == kHours) {
            t.tm_hour = decoded;
            if (!(cmos_[kRegisterB] & kB24Hour)) t.tm_hour = decoded % 12 + ((value & kHourPm) ? 12 : 0);
        }
        if (index == kDayOfMonth) t.tm_mday = decoded;
        if (index == kMonth) t.tm_mon = decoded - 1;
        if (index == kYear) t.tm_year = (t.tm_year + 1900) / 100 * 100 + decoded - 1900;
        if (index == kCentury) t.tm_year = decoded * 100 + t.tm_year % 100 - 1900;
        offset_ = timegm(&t) - clock_();
        break;
    }
    case kRegisterC:
    case kRegisterD: break;  // read-only
    default: cmos_[index] = value; break;
    }
}

}  // namespace hospes::devices
