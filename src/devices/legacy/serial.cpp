#include "devices/legacy/serial.hpp"

namespace hospes::devices {

namespace {

// Register offsets (with LCR.DLAB = 0 unless noted).
constexpr uint64_t kData = 0;       // RBR/THR; DLL with DLAB
constexpr uint64_t kIer = 1;        // DLM with DLAB
constexpr uint64_t kIirFcr = 2;
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScratch = 7;

constexpr uint8_t kIerRxAvailable = 0x01, kIerThrEmpty = 0x02;
constexpr uint8_t kIirNone = 0x01, kIirThrEmpty = 0x02, kIirRxAvailable = 0x04, kIirFifoEnabled = 0xc0;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoopback = 0x10;
constexpr uint8_t kLsrDataReady = 0x01, kLsrThrEmpty = 0x20, kLsrIdle = 0x40;
// Modem status with carrier, data set ready and clear to send all up.
constexpr uint8_t kMsrConnected = 0xb0;

}  // namespace

Serial::Serial(OutputSink output, InterruptLine interrupt)
    : output_(std::move(output)), interrupt_(std::move(interrupt)) {}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
    if (data.empty()) return;
    std::lock_guard lock(mutex_);
    data[0] = offset < kRegisterCount ? read_register(offset) : 0xff;
    for (size_t i = 1; i < data.size(); ++i) data[i] = 0;
    update_interrupt();
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
    if (data.empty() || offset >= kRegisterCount) return;
    std::lock_guard lock(mutex_);
    write_register(offset, data[0]);
    update_interrupt();
}

uint8_t Serial::read_register(uint64_t offset) {
    bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
    case kData: {
        if (dlab) return divisor_low_;
        if (rx_.empty()) return 0;
        uint8_t byte = rx_.front();
        rx_.pop_front();
        input_space_.notify_one();
        return byte;
    }
    case kIer: return dlab ? divisor_high_ : ier_;
    case kIirFcr: {
        uint8_t iir = interrupt_identification();
        // Reading IIR acknowledges a transmitter-empty interrupt.
        if (iir == kIirThrEmpty) thr_empty_pending_ = false;
        return static_cast<uint8_t>(iir | ((fcr_ & kFcrEnable) ? kIirFifoEnabled : 0));
    }
    case kLcr: return lcr_;
    case kMcr: return mcr_;
    case kLsr: return static_cast<uint8_t>(kLsrThrEmpty | kLsrIdle | (rx_.empty() ? 0 : kLsrDataReady));
    case kMsr:
        if (mcr_ & kMcrLoopback) {
            // Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
            uint8_t m = mcr_;
            return static_cast<uint8_t>(((m & 0x1) << 5) | ((m & 0x2) << 3) | ((m & 0x4) << 4) | ((m & 0x8) << 4));
        }
        return kMsrConnected;
    case kScratch: return scr_;
    default: return 0xff;
    }
}

void Serial::write_register(uint64_t offset, uint8_t value) {
    bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
    case kData:
        if (dlab) {
            divisor_low_ = value;
        } else if (mcr_ & kMcrLoopback) {
            if (rx_.size() < kInputCapacity) rx_.push_back(value);
            thr_empty_pending_ = true;
        } else {
            output_(value);
            thr_empty_pending_ = true;
        }
        break;
    case kIer:
        if (dlab) {
            divisor_high_ = value;
        } else {
            // Enabling the transmitter interrupt with THR empty raises it at once.
            if ((value & kIerThrEmpty) && !(ier_ & kIerThrEmpty)) thr_empty_pending_ = true;
            ier_ = value & 0x0f;
        }
        break;
    case kIirFcr:
        fcr_ = value;
        if (value & kFcrClearRx) {
            rx_.clear();
            input_space_.notify_one();
        }
        break;
    case kLcr: lcr_ = value; break;
    case kMcr: mcr_ = value & 0x1f; break;
    case kScratch: scr_ = value; break;
    default: break;  // LSR and MSR are read-only
    }
}

uint8_t Serial::interrupt_identification() const {
    if ((ier_ & kIerRxAvailable) && !rx_.empty()) return kIirRxAvailable;
    if ((ier_ & kIerThrEmpty) && thr_empty_pending_) return kIirThrEmpty;
    return kIirNone;
}

void Serial::update_interrupt() {
    bool level = interrupt_identification() != kIirNone;
    if (level == irq_level_) return;
    irq_level_ = level;
    interrupt_(level);
}

bool Serial::receive(std::span<const uint8_t> bytes) {
    std::unique_lock lock(mutex_);
    for (uint8_t byte : bytes) {
        input_space_.wait(lock, [&] { return input_stopped_ || rx_.size() < kInputCapacity; });
        if (input_stopped_) return false;
        rx_.push_back(byte);
        update_interrupt();
    }
    return true;
}

void Serial::stop_input() {
    std::lock_guard lock(mutex_);
    input_stopped_ = true;
    input_space_.notify_all();
}

}  // namespace hospes::devices
