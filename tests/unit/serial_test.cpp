// The 16550A register model as Linux's 8250 driver drives it.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "devices/legacy/serial.hpp"

namespace hospes::devices {
namespace {

class SerialTest : public ::testing::Test {
protected:
    uint8_t in(uint64_t offset) {
        uint8_t value = 0;
        serial_.read(offset, {&value, 1});
        return value;
    }
    void out(uint64_t offset, uint8_t value) { serial_.write(offset, {&value, 1}); }
    void send(const std::string& text) {
        ASSERT_TRUE(serial_.receive({reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
    }

    std::string output_;
    std::vector<bool> irq_edges_;
    bool irq_ = false;
    Serial serial_{[this](uint8_t b) { output_.push_back(static_cast<char>(b)); },
                   [this](bool level) {
                       irq_ = level;
                       irq_edges_.push_back(level);
                   }};
};

TEST_F(SerialTest, TransmitsToOutput) {
    for (char c : std::string("hi\n")) out(0, static_cast<uint8_t>(c));
    EXPECT_EQ(output_, "hi\n");
    EXPECT_EQ(in(5) & 0x60, 0x60) << "transmitter always empty";
}

TEST_F(SerialTest, DivisorLatchDoesNotTransmit) {
    out(3, 0x80);  // DLAB
    out(0, 0x01);
    out(1, 0x00);
    EXPECT_EQ(in(0), 0x01);
    EXPECT_EQ(in(1), 0x00);
    out(3, 0x03);  // 8N1
    EXPECT_TRUE(output_.empty());
    EXPECT_EQ(in(3), 0x03);
}

TEST_F(SerialTest, LoopbackAsTheDriverProbesIt) {
    out(4, 0x1a);  // loop, OUT2, RTS
    EXPECT_EQ(in(6) & 0xf0, 0x90);
    out(4, 0x1f);
    EXPECT_EQ(in(6) & 0xf0, 0xf0);
    out(0, 'x');
    EXPECT_TRUE(output_.empty()) << "loopback does not reach the host";
    EXPECT_EQ(in(5) & 1, 1);
    EXPECT_EQ(in(0), 'x');
    out(4, 0x0b);
    EXPECT_EQ(in(6), 0xb0);
}

TEST_F(SerialTest, FifoReportedInIir) {
    EXPECT_EQ(in(2), 0x01);
    out(2, 0x07);  // enable and clear FIFOs
    EXPECT_EQ(in(2), 0xc1);
}

TEST_F(SerialTest, TransmitInterruptRaisedOnEnableAndClearedByIirRead) {
    out(1, 0x02);  // THRE interrupt
    EXPECT_TRUE(irq_);
    EXPECT_EQ(in(2) & 0x0f, 0x02);
    EXPECT_FALSE(irq_) << "reading IIR acknowledges THRE";
    EXPECT_EQ(in(2) & 0x0f, 0x01);
    out(0, 'a');
    EXPECT_TRUE(irq_) << "each byte sent empties THR again";
    out(1, 0x00);
    EXPECT_FALSE(irq_);
}

TEST_F(SerialTest, ReceiveInterruptUntilFifoDrained) {
    out(1, 0x01);
    EXPECT_FALSE(irq_);
    send("ok");
    EXPECT_TRUE(irq_);
    EXPECT_EQ(in(2) & 0x0f, 0x04);
    EXPECT_EQ(in(5) & 1, 1);
    EXPECT_EQ(in(0), 'o');
    EXPECT_TRUE(irq_);
    EXPECT_EQ(in(0), 'k');
    EXPECT_FALSE(irq_);
    EXPECT_EQ(in(5) & 1, 0);
    EXPECT_EQ(irq_edges_, (std::vector<bool>{true, false}));
}

TEST_F(SerialTest, ReceiveBlocksWhenFullUntilGuestReads) {
    std::string full(Serial::kInputCapacity, 'z');
    send(full);
    std::thread writer([this] { send("!"); });
    for (size_t i = 0; i < 10; ++i) EXPECT_EQ(in(0), 'z');
    writer.join();
    size_t drained = 0;
    while (in(5) & 1) {
        uint8_t c = in(0);
        ++drained;
        if (drained == Serial::kInputCapacity - 10 + 1) {
            EXPECT_EQ(c, '!');
        }
    }
    EXPECT_EQ(drained, Serial::kInputCapacity - 10 + 1);
}

TEST_F(SerialTest, StopInputReleasesABlockedWriter) {
    send(std::string(Serial::kInputCapacity, 'z'));
    std::thread writer([this] { EXPECT_FALSE(serial_.receive(std::vector<uint8_t>{'a'})); });
    serial_.stop_input();
    writer.join();
}

TEST_F(SerialTest, OutOfRangeAndWideAccessesAreHarmless) {
    uint8_t wide[4] = {1, 2, 3, 4};
    serial_.read(9, wide);
    EXPECT_EQ(wide[0], 0xff);
    serial_.write(0, std::span<const uint8_t>(wide, 0));
    serial_.read(7, std::span<uint8_t>(wide, 4));
    EXPECT_EQ(wide[1], 0);
}

}  // namespace
}  // namespace hospes::devices
