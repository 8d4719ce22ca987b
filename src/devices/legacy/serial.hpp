// A 16550A UART (the PC's COM1 at 0x3f8, IRQ 4): transmit and receive
// interrupts, a receive FIFO fed from the host console, loopback for the
// driver's probe. Transmission completes at once; bytes go to `output`.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "vmm/io_bus.hpp"

namespace hospes::devices {

class Serial : public BusDevice {
public:
    static constexpr uint64_t kCom1Base = 0x3f8;
    static constexpr uint32_t kCom1Irq = 4;
    static constexpr uint64_t kRegisterCount = 8;
    // Host input waiting for the guest; the console blocks beyond this.
    static constexpr size_t kInputCapacity = 4096;

    using OutputSink = std::function<void(uint8_t)>;
    using InterruptLine = std::function<void(bool level)>;

    Serial(OutputSink output, InterruptLine interrupt);

    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Queues host input for the guest. Blocks while the queue is full,
    // until the guest reads or `stop_input()` is called; returns false then.
    bool receive(std::span<const uint8_t> bytes);
    void stop_input();

private:
    uint8_t read_register(uint64_t offset);
    void write_register(uint64_t offset, uint8_t value);
    uint8_t interrupt_identification() const;
    void update_interrupt();  // with mutex_ held

    OutputSink output_;
    InterruptLine interrupt_;

    std::mutex mutex_;
    std::condition_variable input_space_;
    bool input_stopped_ = false;
    std::deque<uint8_t> rx_;
    uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0;
    uint8_t divisor_low_ = 12, divisor_high_ = 0;  // 9600 baud
    bool thr_empty_pending_ = false;
    bool irq_level_ = false;
};

}  // namespace hospes::devices
