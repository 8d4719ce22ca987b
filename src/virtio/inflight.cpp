#include "virtio/inflight.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace hospes::virtio {

namespace {
constexpr uint16_t kVersion = 1;

// Stores into the shared region in program order: the front-end reads them
// after we die, so none may be left in a register or moved past another.
template <class T>
void store(T& field, T value) {
    std::atomic_ref<T>(field).store(value, std::memory_order_release);
}
template <class T>
T load(T& field) {
    return std::atomic_ref<T>(field).load(std::memory_order_acquire);
}
}  // namespace

InflightQueueHeader* InflightLog::header() const {
    // Safe: start() checked the area holds the header and size_ descriptors,
    // and shared mappings are page-aligned.
    return reinterpret_cast<InflightQueueHeader*>(area_.data());
}

InflightDescriptor* InflightLog::descriptors() const {
    return reinterpret_cast<InflightDescriptor*>(area_.data() + sizeof(InflightQueueHeader));
}

void InflightLog::initialise(uint16_t queue_size) {
    // start() checked that the area holds this much.
    std::memset(area_.data(), 0, inflight_queue_bytes(queue_size));
    store(header()->descriptor_count, queue_size);
    store(header()->version, kVersion);
    counter_ = 0;
}

std::vector<uint16_t> InflightLog::start(uint16_t queue_size, uint16_t used_index) {
    size_ = 0;
    if (area_.size() < inflight_queue_bytes(queue_size)) {
        area_ = {};
        return {};
    }
    size_ = queue_size;
    auto* h = header();
    if (load(h->version) != kVersion || load(h->descriptor_count) != queue_size) {
        initialise(queue_size);
        return {};
    }
    auto* d = descriptors();
    // The back-end died between publishing a used element and clearing its
    // inflight flag: the element is in the used ring, so it is done.
    if (load(h->used_index) != used_index) {
        uint16_t last = load(h->last_batch_head);
        if (last < size_) store(d[last].inflight, uint8_t{0});
        store(h->used_index, used_index);
    }
    struct Pending {
        uint64_t counter;
        uint16_t head;
    };
    std::vector<Pending> pending;
    for (uint16_t head = 0; head < size_; ++head)
        if (load(d[head].inflight) == 1) pending.push_back({load(d[head].counter), head});
        else if (load(d[head].inflight) != 0) store(d[head].inflight, uint8_t{0});  // garbage: not in flight
    std::sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) { return a.counter < b.counter; });
    counter_ = pending.empty() ? 0 : pending.back().counter + 1;
    std::vector<uint16_t> heads;
    heads.reserve(pending.size());
    for (const auto& p : pending) heads.push_back(p.head);
    return heads;
}

void InflightLog::popped(uint16_t head) {
    if (head >= size_) return;
    store(descriptors()[head].counter, counter_++);
    store(descriptors()[head].inflight, uint8_t{1});
}

void InflightLog::before_push(uint16_t head) {
    if (head >= size_) return;
    // Batches of one: the list is just the head.
    store(descriptors()[head].next, head);
    store(header()->last_batch_head, head);
}

void InflightLog::after_push(uint16_t head, uint16_t used_index) {
    if (head >= size_) return;
    store(descriptors()[head].inflight, uint8_t{0});
    store(header()->used_index, used_index);
}

}  // namespace hospes::virtio
