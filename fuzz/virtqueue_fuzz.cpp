// libFuzzer target for the split virtqueue: the input is a driver's view of
// guest memory (rings, descriptors, indirect tables, buffers) plus the queue
// configuration; the device pops, touches and pushes whatever it is given.
// A crash, a sanitizer report, a buffer outside guest memory, or a pop()
// that disagrees with the reference model below is a bug.
//
// Input layout:
//   byte 0      bits 0-3: log2 of the queue size (sizes above 256 must be
//               refused); bit 4: EVENT_IDX; bit 5: size and ring addresses
//               come from bytes 2-15 instead of the compact layout below;
//               bit 6: the device writes into the writable buffers;
//               bit 7: reset and reactivate the queue after the first round
//   byte 1      how far the driver moves avail idx between rounds
//   bytes 2-3   raw queue size                          (bit 5 only)
//   bytes 4-15  descriptor table, available ring, used ring addresses,
//               u32 each                                 (bit 5 only)
//   the rest    guest memory from address 0 (the first 64 KiB region)
// Compact layout for a queue of n: descriptor table at 0, available ring
// right after it (16n), used ring after that, aligned to 4; whatever
// follows is free for indirect tables and buffers.
// Guest memory: [0, 64 KiB) and, adjacent, [64 KiB, 96 KiB), then nothing,
// so buffers can straddle two regions or fall in the void.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "virtio/queue.hpp"
#include "vmm/guest_memory.hpp"

namespace {

using hospes::GuestMemory;
using hospes::virtio::Chain;
using hospes::virtio::Queue;

constexpr size_t kHeader = 16;
constexpr uint16_t kMaxSize = 256;
constexpr int kRounds = 3;
constexpr int kMaxPopsPerRound = 2 * kMaxSize;

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

const GuestMemory& guest_memory() {
    static const GuestMemory memory = [] {
        std::pair<uint64_t, uint64_t> ranges[] = {{0, 0x10000}, {0x10000, 0x8000}};
        auto created = GuestMemory::create(ranges);
        CHECK(created);
        return std::move(*created);
    }();
    return memory;
}

// The span is empty or lies inside one region of guest memory.
void check_in_guest(const GuestMemory& memory, std::span<uint8_t> span) {
    if (span.empty()) return;
    for (const auto& region : memory.regions()) {
        const uint8_t* begin = region.host.data();
        const uint8_t* end = begin + region.host.size();
        if (span.data() >= begin && span.data() <= end && span.size() <= static_cast<size_t>(end - span.data()))
            return;
    }
    __builtin_trap();
}

template <class T>
T read(const uint8_t* p) {
    T value;
    std::memcpy(&value, p, sizeof(value));
    return value;
}

template <class T>
T read_guest(const GuestMemory& memory, uint64_t address) {
    auto bytes = memory.slice(address, sizeof(T));
    CHECK(bytes.size() == sizeof(T));
    return read<T>(bytes.data());
}

// What pop() should answer, worked out independently of queue.cpp: first
// gather the descriptors the chain consists of, then judge them.
struct Expected {
    enum { Error, Empty, Chain } outcome = Error;
    uint16_t head = 0;
    std::vector<std::span<uint8_t>> readable, writable;
};

struct Raw {
    uint64_t address;
    uint32_t length;
    uint16_t flags, next;
};

Raw raw_at(const uint8_t* p) {
    return {read<uint64_t>(p), read<uint32_t>(p + 8), read<uint16_t>(p + 12), read<uint16_t>(p + 14)};
}

// `known_avail`: the available index as the device last read it; the
// device reads it again only once it has taken every buffer it knew of.
Expected model_pop(const GuestMemory& memory, uint16_t size, uint64_t descriptors, uint64_t avail,
                   uint16_t next_avail, uint16_t& known_avail) {
    Expected expected;
    if (next_avail == known_avail) {
        uint16_t index = read_guest<uint16_t>(memory, avail + 2);
        uint16_t pending = static_cast<uint16_t>(index - next_avail);
        if (pending == 0) {
            expected.outcome = Expected::Empty;
            return expected;
        }
        if (pending > size) return expected;
        known_avail = index;
    }
    uint16_t head = read_guest<uint16_t>(memory, avail + 4 + 2 * uint64_t(next_avail % size));
    if (head >= size) return expected;
    expected.head = head;

    std::vector<Raw> gathered;
    unsigned steps = 0;
    const unsigned direct_limit = std::min<unsigned>(size, Queue::kMaxChainLength);
    for (uint16_t at = head;;) {
        if (++steps > direct_limit) return expected;
        auto bytes = memory.slice(descriptors + 16 * uint64_t{at}, 16);
        Raw d = raw_at(bytes.data());
        if (d.flags & 4) {
            if (d.flags & 1) return expected;
            if (d.length == 0 || d.length % 16 || d.length / 16 > Queue::kMaxChainLength) return expected;
            auto table = memory.slice(d.address, d.length);
            if (table.size() != d.length) return expected;
            unsigned entries = d.length / 16, inner_steps = 0;
            for (unsigned slot = 0;;) {
                if (++inner_steps > entries) return expected;
                Raw e = raw_at(table.data() + 16 * slot);
                if (e.flags & 4) return expected;
                gathered.push_back(e);
                if (!(e.flags & 1)) break;
                if (e.next >= entries) return expected;
                slot = e.next;
            }
            break;
        }
        gathered.push_back(d);
        if (!(d.flags & 1)) break;
        if (d.next >= size) return expected;
        at = d.next;
    }
    for (const Raw& d : gathered) {
        bool writable = d.flags & 2;
        if (!writable && !expected.writable.empty()) return expected;
        std::span<uint8_t> buffer;
        if (d.length > 0) {
            buffer = memory.slice(d.address, d.length);
            if (buffer.size() != d.length) return expected;
        }
        (writable ? expected.writable : expected.readable).push_back(buffer);
    }
    expected.outcome = Expected::Chain;
    return expected;
}

bool same(const std::vector<std::span<uint8_t>>& a, const std::vector<std::span<uint8_t>>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](auto x, auto y) { return x.data() == y.data() && x.size() == y.size(); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < kHeader) return 0;
    const GuestMemory& memory = guest_memory();
    for (const auto& region : memory.regions()) std::memset(region.host.data(), 0, region.host.size());
    auto image = memory.slice(0, 0x10000);
    std::memcpy(image.data(), data + kHeader, std::min(size - kHeader, image.size()));

    const uint8_t config = data[0];
    const uint8_t advance = data[1];
    const bool event_idx = config & 0x10;
    const bool explicit_layout = config & 0x20;
    const bool device_writes = config & 0x40;
    const bool reset_midway = config & 0x80;

    uint16_t queue_size = static_cast<uint16_t>(1u << (config & 0x0f));
    uint64_t descriptors = 0;
    uint64_t avail = 16 * uint64_t{queue_size};
    uint64_t used = (avail + 6 + 2 * uint64_t{queue_size} + 3) & ~uint64_t{3};
    if (explicit_layout) {
        queue_size = read<uint16_t>(data + 2);
        descriptors = read<uint32_t>(data + 4);
        avail = read<uint32_t>(data + 8);
        used = read<uint32_t>(data + 12);
    }
    // The model knows nothing of rings that overlap each other.
    const bool modelled = !explicit_layout;

    Queue queue(kMaxSize);
    auto configure = [&] {
        queue.set_size(queue_size);
        queue.set_descriptor_table(descriptors);
        queue.set_driver_area(avail);
        queue.set_device_area(used);
        queue.set_event_idx(event_idx);
        return queue.activate(memory).has_value();
    };
    if (!configure()) return 0;
    CHECK(queue.size() != 0 && queue.size() <= kMaxSize && (queue.size() & (queue.size() - 1)) == 0);

    uint16_t next_avail = 0, next_used = 0, known_avail = 0;
    bool notified_before = false;
    uint16_t signalled = 0;
    for (int round = 0; round < kRounds; ++round) {
        std::vector<std::pair<uint16_t, uint32_t>> done;
        bool broken = false;
        for (int i = 0; i < kMaxPopsPerRound; ++i) {
            std::optional<Expected> expected;
            if (modelled) expected = model_pop(memory, queue_size, descriptors, avail, next_avail, known_avail);
            auto popped = queue.pop(memory);
            if (!popped) {
                CHECK(popped.error().kind == hospes::ErrorKind::Guest && !popped.error().message.empty());
                CHECK(!expected || expected->outcome == Expected::Error);
                broken = true;
                break;
            }
            if (!*popped) {
                CHECK(!expected || expected->outcome == Expected::Empty);
                break;
            }
            const Chain& chain = **popped;
            CHECK(chain.head < queue.size());
            CHECK(!chain.readable.empty() || !chain.writable.empty());
            if (expected) {
                CHECK(expected->outcome == Expected::Chain && expected->head == chain.head);
                CHECK(same(expected->readable, chain.readable) && same(expected->writable, chain.writable));
            }
            ++next_avail;
            if (event_idx) CHECK(read_guest<uint16_t>(memory, used + 4 + 8 * uint64_t{queue_size}) == next_avail);
            // Touch every byte the device was given, as a device would.
            unsigned sum = 0;
            size_t readable = 0;
            for (auto buffer : chain.readable) {
                check_in_guest(memory, buffer);
                for (uint8_t byte : buffer) sum += byte;
                readable += buffer.size();
            }
            CHECK(readable == chain.readable_size());
            for (auto buffer : chain.writable) {
                check_in_guest(memory, buffer);
                // An empty buffer has no data() to write to (it may be null).
                if (device_writes && !buffer.empty()) std::memset(buffer.data(), static_cast<int>(sum), buffer.size());
            }
            size_t written = device_writes ? chain.writable_size() : 0;
            done.emplace_back(chain.head, static_cast<uint32_t>(std::min<size_t>(written, UINT32_MAX)));
        }
        for (auto [head, written] : done) {
            CHECK(queue.push(memory, head, written));  // heads came from pop()
            uint64_t element = used + 4 + 8 * uint64_t(next_used % queue_size);
            CHECK(read_guest<uint32_t>(memory, element) == head);
            CHECK(read_guest<uint32_t>(memory, element + 4) == written);
            CHECK(read_guest<uint16_t>(memory, used + 2) == ++next_used);
        }
        if (!done.empty()) {
            bool wanted;
            if (!event_idx) {
                wanted = !(read_guest<uint16_t>(memory, avail) & 1);
            } else {
                uint16_t event = read_guest<uint16_t>(memory, avail + 4 + 2 * uint64_t{queue_size});
                // Entry `event` became used since the last decision.
                wanted = !notified_before ||
                         static_cast<uint16_t>(event - signalled) < static_cast<uint16_t>(next_used - signalled);
                notified_before = true;
                signalled = next_used;
            }
            CHECK(queue.should_notify(memory) == wanted);
        }
        if (broken) break;

        // The driver makes more buffers available (the same ring entries).
        auto index = memory.slice(avail + 2, 2);
        uint16_t avail_idx = static_cast<uint16_t>(read<uint16_t>(index.data()) + advance);
        std::memcpy(index.data(), &avail_idx, 2);

        if (round == 0 && reset_midway) {
            queue.reset();
            CHECK(!queue.ready() && queue.size() == kMaxSize);
            CHECK(configure());  // the same layout was accepted before
            next_avail = next_used = known_avail = 0;
            notified_before = false;
            signalled = 0;
        }
    }
    return 0;
}
