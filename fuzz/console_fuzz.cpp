// libFuzzer target for virtio-console: the input is a script of driver and
// host actions (chains on either queue, well-formed or not, kicks, host
// input, emergency writes, configuration reads, raw descriptor writes,
// resets), run against the real device through the fake driver in real
// guest memory.
//
// Besides crashes and sanitizer reports, a bug is:
//   - output that is not, in order, the bytes of the well-formed transmit
//     chains the driver made available (until one malformed chain stops the
//     device);
//   - input lost, duplicated or reordered: what the driver finds in used
//     receive buffers, followed by what the device still holds, must be
//     exactly the bytes receive() accepted;
//   - more held input than kInputCapacity, a used length larger than the
//     chain's buffers, or a transmit chain returned with a length.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/console.hpp"
#include "input.hpp"
#include "support/fake_driver.hpp"

namespace {

using hospes::devices::VirtioConsole;
using hospes::test_support::FakeDriver;

// Says which check failed: at -O1 the compiler merges plain traps.
#define CHECK(condition)                                                    \
    do {                                                                    \
        if (!(condition)) {                                                 \
            std::fprintf(stderr, "console_fuzz: check failed: %s (line %d)\n", #condition, __LINE__); \
            std::abort();                                                   \
        }                                                                   \
    } while (0)

constexpr uint16_t kRx = VirtioConsole::kReceiveQueue, kTx = VirtioConsole::kTransmitQueue;
constexpr uint64_t kRam = 32 << 20;

using hospes::fuzz::Input;

struct Run {
    std::string output;  // what the device sent to the host
    VirtioConsole console{[this](std::span<const uint8_t> b) { output.append(b.begin(), b.end()); }};
    std::unique_ptr<FakeDriver> driver;

    // Transmit model for the current driver: the expected stream, and
    // whether a chain the model cannot predict was made available.
    std::string tx_expected;
    bool tx_stopped = false;  // a malformed chain: nothing after it may come out
    bool tx_wild = false;     // raw descriptors: output no longer predictable
    size_t output_mark = 0;   // output before the current driver

    // Receive model over the whole run (held input survives resets).
    std::string accepted, delivered;
    bool rx_wild = false;
    std::map<uint16_t, std::vector<FakeDriver::Buffer>> rx_chains;  // head -> writable buffers

    void start(Input& in) {
        if (driver) drain_rx();
        driver.reset();  // resets the device
        rx_chains.clear();
        tx_expected.clear();
        tx_stopped = tx_wild = false;
        output_mark = output.size();
        uint8_t config = in.u8();
        driver = std::make_unique<FakeDriver>(console, kRam);
        uint16_t size = static_cast<uint16_t>(1u << (config & 7));  // 1..128
        CHECK(driver->start(std::nullopt, size, config & 8));
    }

    void drain_rx() {
        while (auto used = driver->next_used(kRx)) {
            // Raw descriptors may have rewritten any chain: nothing to compare.
            if (rx_wild) continue;
            auto it = rx_chains.find(static_cast<uint16_t>(used->id));
            CHECK(it != rx_chains.end());
            uint64_t capacity = 0;
            for (auto b : it->second) capacity += b.length;
            CHECK(used->length <= capacity);
            uint32_t left = used->length;
            for (auto b : it->second) {
                uint32_t n = std::min(left, b.length);
                auto span = driver->bytes(b.address, n);
                delivered.append(span.begin(), span.end());
                left -= n;
            }
            rx_chains.erase(it);
        }
        while (auto used = driver->next_used(kTx)) CHECK(used->length == 0 || tx_wild);
    }

    void check() {
        drain_rx();
        CHECK(console.pending_input() <= VirtioConsole::kInputCapacity);
        if (!rx_wild) {
            CHECK(delivered.size() + console.pending_input() == accepted.size());
            CHECK(accepted.compare(0, delivered.size(), delivered) == 0);
        }
        if (!tx_wild) {
            std::string_view mine(output);
            mine.remove_prefix(output_mark);
            CHECK(mine.size() <= tx_expected.size() && tx_expected.compare(0, mine.size(), mine) == 0);
        }
    }

    // One buffer of a chain, as the fuzzer describes it.
    FakeDriver::Buffer buffer(Input& in, bool for_tx, bool& well_formed, std::string& data) {
        uint8_t kind = in.u8();
        uint32_t length = kind >> 2;  // 0..63
        switch (kind & 3) {
        case 0: {  // the kind the queue wants
            uint64_t at = driver->alloc(length + 1);
            if (for_tx) {
                std::string text = in.text(length);
                driver->fill(at, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
                data += text;
                return {at, static_cast<uint32_t>(text.size()), false};
            }
            return {at, length, true};
        }
        case 1:  // the wrong direction
            well_formed = false;
            return {driver->alloc(length + 1), length, for_tx};
        case 2:  // outside guest memory, or straddling its end
            well_formed = false;
            return {(kind & 0x80) ? kRam - length / 2 : uint64_t{1} << 40, length + 1, !for_tx};
        default:  // empty
            return {driver->alloc(1), 0, !for_tx};
        }
    }

    void add_chain(Input& in, uint16_t q) {
        size_t count = 1 + in.u8() % 4;
        bool well_formed = true;
        std::string data;
        std::vector<FakeDriver::Buffer> buffers;
        for (size_t i = 0; i < count; ++i) buffers.push_back(buffer(in, q == kTx, well_formed, data));
        auto head = driver->add_chain(q, buffers);
        if (!head) return;  // ring full
        if (q == kTx) {
            if (!well_formed) tx_stopped = true;
            if (!tx_stopped) tx_expected += data;
        } else {
            rx_chains[*head] = buffers;
        }
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    Run run;
    run.start(in);
    int steps = 0;
    while (!in.empty() && ++steps < 256) {
        uint8_t op = in.u8();
        switch (op % 9) {
        case 0: run.add_chain(in, kTx); break;
        case 1: run.add_chain(in, kRx); break;
        case 2: run.driver->kick(kTx); break;
        case 3: run.driver->kick(kRx); break;
        case 4: {  // host input
            std::string typed = in.text(in.u8() * 32u);
            size_t taken = run.console.receive({reinterpret_cast<const uint8_t*>(typed.data()), typed.size()});
            CHECK(taken <= typed.size());
            run.accepted += typed.substr(0, taken);
            break;
        }
        case 5: run.start(in); break;
        case 6: {  // configuration space
            uint8_t offset = in.u8() % 16;
            uint8_t width = static_cast<uint8_t>(1u << (in.u8() % 4));
            uint8_t buffer[8] = {};
            if (in.u8() & 1) {
                for (auto& b : buffer) b = in.u8();
                size_t before = run.output.size();
                run.console.write_config(offset, {buffer, width});
                // An emergency write is one byte at once; take it out of the stream.
                CHECK(run.output.size() == before + (offset == VirtioConsole::kConfigEmergWrite ? 1 : 0));
                if (run.output.size() > before) {
                    CHECK(run.output.back() == static_cast<char>(buffer[0]));
                    run.output.pop_back();
                }
            } else {
                run.console.read_config(offset, {buffer, width});
                if (offset >= VirtioConsole::kConfigSize)
                    for (uint8_t i = 0; i < width; ++i) CHECK(buffer[i] == 0);
            }
            break;
        }
        case 7: {  // a raw descriptor made available: anything goes
            uint16_t q = in.u8() & 1;
            uint16_t index = in.u8();
            uint64_t address = (in.u8() & 1) ? FakeDriver::kBufferBase + in.u16() : uint64_t{in.u32()} << 8;
            uint32_t length = in.u16();
            uint16_t flags = in.u8() & 7;
            uint16_t next = in.u8();
            run.driver->descriptor(q, index, address, length, flags, next);
            run.driver->make_available(q, static_cast<uint16_t>(in.u8()));
            // A receive descriptor may point at transmit data and overwrite it.
            run.tx_wild = true;
            if (q == kRx) run.rx_wild = true;
            break;
        }
        default: run.check(); break;
        }
        run.check();
    }
    return 0;
}
