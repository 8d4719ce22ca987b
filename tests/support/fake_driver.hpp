// A virtio driver in a fake guest, for device tests, fuzzers and benchmarks:
// it lays out split rings in real GuestMemory, activates a Device directly
// (no transport, no KVM) and reads the used ring back, the way a guest's
// driver would. Raw descriptor access lets tests write malformed chains.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "common/error.hpp"
#include "virtio/device.hpp"
#include "virtio/queue.hpp"
#include "vmm/guest_memory.hpp"

namespace hospes::test_support {

class FakeDriver {
public:
    static constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;
    static constexpr uint64_t kRingBase = 0x100000;  // 64 KiB of rings per queue
    static constexpr uint64_t kRingStride = 0x10000;
    static constexpr uint64_t kBufferBase = 0x1000000;  // buffers are allocated from here up

    struct Buffer {
        uint64_t address;
        uint32_t length;
        bool writable;  // device-writable
    };
    struct Used {
        uint32_t id, length;
    };

    explicit FakeDriver(virtio::Device& device, uint64_t ram_size = 64 << 20) : device_(device) {
        std::pair<uint64_t, uint64_t> ranges[] = {{0, ram_size}};
        memory_.emplace(std::move(*GuestMemory::create(ranges)));
        next_buffer_ = kBufferBase;
    }
    ~FakeDriver() { device_.reset(); }

    const GuestMemory& memory() const { return *memory_; }
    int interrupts() const { return interrupts_; }
    const std::vector<Error>& failures() const { return failures_; }

    // Sets up every queue with `size` entries (capped at its maximum) and
    // activates the device with `features` (default: all it offers).
    Result<void> start(std::optional<uint64_t> features = std::nullopt, uint16_t size = 256, bool event_idx = false) {
        auto maxima = device_.queue_max_sizes();
        queues_.clear();
        state_.clear();
        for (size_t i = 0; i < maxima.size(); ++i) {
            uint16_t n = std::min(size, maxima[i]);
            auto& q = queues_.emplace_back(maxima[i]);
            q.set_size(n);
            q.set_descriptor_table(ring(i));
            q.set_driver_area(ring(i) + 0x4000);
            q.set_device_area(ring(i) + 0x6000);
            q.set_event_idx(event_idx);
            if (auto r = q.activate(*memory_); !r) return r;
            QueueState s;
            s.size = n;
            for (uint16_t d = n; d > 0; --d) s.free.push_back(static_cast<uint16_t>(d - 1));
            s.chains.resize(n);
            state_.push_back(std::move(s));
        }
        uint64_t negotiated = features.value_or(device_.features() | virtio::kFeatureVersion1);
        if (event_idx) negotiated |= virtio::kFeatureEventIndex;
        virtio::ActiveQueues active{&*memory_, &queues_, [this] { ++interrupts_; },
                                    [this](const Error& e) { failures_.push_back(e); }, {}, -1};
        return device_.activate(negotiated, std::move(active));
    }

    // Guest memory for a buffer; never freed (tests are short).
    uint64_t alloc(uint64_t size, uint64_t align = 16) {
        next_buffer_ = (next_buffer_ + align - 1) / align * align;
        uint64_t at = next_buffer_;
        next_buffer_ += size;
        return at;
    }
    std::span<uint8_t> bytes(uint64_t address, uint64_t size) const { return memory_->slice(address, size); }
    void fill(uint64_t address, std::span<const uint8_t> data) {
        auto to = bytes(address, data.size());
        if (to.size() == data.size() && !data.empty()) std::memcpy(to.data(), data.data(), data.size());
    }
    template <class T>
    void put(uint64_t address, const T& value) {
        auto to = bytes(address, sizeof(T));
        if (to.size() == sizeof(T)) std::memcpy(to.data(), &value, sizeof(T));
    }
    template <class T>
    T get(uint64_t address) const {
        T value{};
        auto b = bytes(address, sizeof(T));
        if (b.size() == sizeof(T)) std::memcpy(&value, b.data(), sizeof(T));
        return value;
    }

    // Writes `buffers` as one chain of free descriptors and makes it
    // available; returns the head, or nullopt when the ring is full.
    std::optional<uint16_t> add_chain(uint16_t q, std::span<const Buffer> buffers, bool publish_now = true) {
        auto& s = state_[q];
        if (buffers.empty() || s.free.size() < buffers.size()) return std::nullopt;
        std::vector<uint16_t> ids = std::move(s.spare);
        ids.clear();
        for (size_t i = 0; i < buffers.size(); ++i) {
            ids.push_back(s.free.back());
            s.free.pop_back();
        }
        for (size_t i = 0; i < buffers.size(); ++i) {
            uint16_t flags = (buffers[i].writable ? kWrite : 0) | (i + 1 < buffers.size() ? kNext : 0);
            descriptor(q, ids[i], buffers[i].address, buffers[i].length, flags,
                       i + 1 < buffers.size() ? ids[i + 1] : 0);
        }
        uint16_t head = ids[0];
        s.chains[head] = std::move(ids);
        make_available(q, head, publish_now);
        return head;
    }
    std::optional<uint16_t> add_chain(uint16_t q, std::initializer_list<Buffer> buffers, bool publish_now = true) {
        return add_chain(q, std::span<const Buffer>(buffers.begin(), buffers.size()), publish_now);
    }

    // Raw descriptor writing, for malformed chains.
    void descriptor(uint16_t q, uint16_t index, uint64_t address, uint32_t length, uint16_t flags, uint16_t next) {
        struct {
            uint64_t address;
            uint32_t length;
            uint16_t flags, next;
        } d{address, length, flags, next};
        static_assert(sizeof(d) == 16);
        put(ring(q) + 16 * uint64_t{index}, d);
    }
    // Puts `head` in the next available slot; publish_now also moves avail.idx.
    void make_available(uint16_t q, uint16_t head, bool publish_now = true) {
        auto& s = state_[q];
        put(ring(q) + 0x4000 + 4 + 2 * uint64_t(s.avail_idx % s.size), head);
        ++s.avail_idx;
        if (publish_now) publish(q);
    }
    void publish(uint16_t q) { put<uint16_t>(ring(q) + 0x4000 + 2, state_[q].avail_idx); }

    void kick(uint16_t q) { device_.queue_notify(q); }

    // The next used element of queue q, returning its descriptors to the
    // free list; nullopt when the device has returned nothing new.
    std::optional<Used> next_used(uint16_t q) {
        auto& s = state_[q];
        uint64_t used = ring(q) + 0x6000;
        if (get<uint16_t>(used + 2) == s.used_seen) return std::nullopt;
        uint64_t at = used + 4 + 8 * uint64_t(s.used_seen % s.size);
        Used element{get<uint32_t>(at), get<uint32_t>(at + 4)};
        ++s.used_seen;
        if (element.id < s.chains.size()) {
            auto& ids = s.chains[element.id];
            for (auto id : ids) s.free.push_back(id);
            if (!ids.empty()) s.spare = std::move(ids);
            ids.clear();
        }
        return element;
    }
    uint16_t used_index(uint16_t q) const { return get<uint16_t>(ring(q) + 0x6000 + 2); }

private:
    struct QueueState {
        uint16_t size = 0;
        uint16_t avail_idx = 0;
        uint16_t used_seen = 0;
        std::vector<uint16_t> free;
        std::vector<std::vector<uint16_t>> chains;  // by head: the descriptors of each chain in flight
        std::vector<uint16_t> spare;                // storage for the next chain's list
    };
    static uint64_t ring(size_t q) { return kRingBase + kRingStride * q; }

    virtio::Device& device_;
    std::optional<GuestMemory> memory_;
    std::vector<virtio::Queue> queues_;
    std::vector<QueueState> state_;
    uint64_t next_buffer_;
    int interrupts_ = 0;
    std::vector<Error> failures_;
};

}  // namespace hospes::test_support
