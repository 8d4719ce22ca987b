#include "devices/legacy/i8042.hpp"

namespace hospes::devices {

namespace {

constexpr uint64_t kDataPort = 0;     // 0x60
constexpr uint64_t kCommandPort = 4;  // 0x64

constexpr uint8_t kStatusOutputFull = 0x01, kStatusSystemFlag = 0x04, kStatusCommand = 0x08, kStatusUnlocked = 0x10;
constexpr uint8_t kControlKeyboardInterrupt = 0x01;

constexpr uint8_t kReadControl = 0x20, kWriteControl = 0x60, kDisableAux = 0xa7, kEnableAux = 0xa8,
                  kTestAux = 0xa9, kSelfTest = 0xaa, kTestKeyboard = 0xab, kDisableKeyboard = 0xad,
                  kEnableKeyboard = 0xae, kWriteOutputPort = 0xd1, kWriteKeyboardOutput = 0xd2,
                  kWriteAuxOutput = 0xd3, kWriteAux = 0xd4, kPulseReset = 0xfe;
constexpr uint8_t kSelfTestPassed = 0x55, kKeyboardAck = 0xfa, kKeyboardReset = 0xff, kKeyboardResetOk = 0xaa;

}  // namespace

I8042::I8042(ResetRequest reset, InterruptLine keyboard_interrupt)
    : reset_(std::move(reset)), keyboard_interrupt_(std::move(keyboard_interrupt)) {}

void I8042::read(uint64_t offset, std::span<uint8_t> bytes) {
    if (bytes.empty()) return;
    std::lock_guard lock(mutex_);
    uint8_t value = 0xff;
    if (offset == kDataPort) {
        value = 0;
        if (!output_.empty()) {
            value = output_.front();
            output_.pop_front();
        }
        update_interrupt();
    } else if (offset == kCommandPort) {
        value = static_cast<uint8_t>(kStatusSystemFlag | kStatusUnlocked | (last_write_was_command_ ? kStatusCommand : 0) |
                                     (output_.empty() ? 0 : kStatusOutputFull));
    }
    bytes[0] = value;
    for (size_t i = 1; i < bytes.size(); ++i) bytes[i] = 0;
}

void I8042::write(uint64_t offset, std::span<const uint8_t> bytes) {
    if (bytes.empty()) return;
    bool reset = false;
    {
        std::lock_guard lock(mutex_);
        if (offset == kCommandPort) {
            last_write_was_command_ = true;
            reset = command(bytes[0]);
        } else if (offset == kDataPort) {
            last_write_was_command_ = false;
            reset = data(bytes[0]);
        }
        update_interrupt();
    }
    // Outside the lock: the reset handler stops every vCPU.
    if (reset) reset_();
}

bool I8042::command(uint8_t value) {
    switch (value) {
    case kPulseReset: return true;
    case kReadControl: push_output(control_); break;
    case kWriteControl:
    case kWriteOutputPort:
    case kWriteKeyboardOutput:
    case kWriteAuxOutput:
    case kWriteAux: pending_command_ = value; break;
    case kTestAux:
    case kTestKeyboard: push_output(0x00); break;  // interface test: no error
    case kSelfTest: push_output(kSelfTestPassed); break;
    case kDisableAux: control_ |= 0x20; break;
    case kEnableAux: control_ &= static_cast<uint8_t>(~0x20); break;
    case kDisableKeyboard: control_ |= 0x10; break;
    case kEnableKeyboard: control_ &= static_cast<uint8_t>(~0x10); break;
    default: break;
    }
    return false;
}

bool I8042::data(uint8_t value) {
    if (pending_command_) {
        uint8_t command_byte = *pending_command_;
        pending_command_.reset();
        switch (command_byte) {
        case kWriteControl: control_ = value; break;
        case kWriteOutputPort:
            // Output port bit 0 low holds the CPU in reset.
            return (value & 1) == 0;
        case kWriteKeyboardOutput:
        case kWriteAuxOutput: push_output(value); break;
        default: break;  // no mouse attached: bytes for it vanish
        }
        return false;
    }
    // A byte for the (absent) keyboard: acknowledge the commands the
    // driver sends so its probe finishes quickly.
    push_output(kKeyboardAck);
    if (value == kKeyboardReset) push_output(kKeyboardResetOk);
    return false;
}

void I8042::push_output(uint8_t value) {
    if (output_.size() < 16) output_.push_back(value);
}

void I8042::update_interrupt() {
    bool level = !output_.empty() && (control_ & kControlKeyboardInterrupt);
    if (level == irq_level_) return;
    irq_level_ = level;
    keyboard_interrupt_(level);
}

}  // namespace hospes::devices
