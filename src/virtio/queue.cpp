#include "virtio/queue.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

namespace hospes::virtio {

// The rings are little-endian (virtio 1.x); so are the hosts we run on.
static_assert(std::endian::native == std::endian::little);

namespace {

// Descriptor flags (virtio 1.2, 2.7.5).
constexpr uint16_t kDescNext = 1;
constexpr uint16_t kDescWrite = 2;
constexpr uint16_t kDescIndirect = 4;
// Available ring flag: the driver does not want interrupts (2.7.7).
constexpr uint16_t kAvailNoInterrupt = 1;

// One entry of a descriptor table, as the guest lays it out.
struct Descriptor {
    uint64_t address;
    uint32_t length;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);
constexpr uint64_t kDescriptorSize = sizeof(Descriptor);

// One entry of the used ring.
struct UsedElement {
    uint32_t id;
    uint32_t length;
};
static_assert(sizeof(UsedElement) == 8);

// Ring layouts (2.7.6, 2.7.8): flags u16, idx u16, ring[size], then the
// other side's event index.
constexpr uint64_t kRingHeader = 4;
constexpr uint64_t avail_ring_bytes(uint64_t size) { return kRingHeader + 2 * size + 2; }
constexpr uint64_t used_ring_bytes(uint64_t size) { return kRingHeader + sizeof(UsedElement) * size + 2; }

// Ring fields through the host pointers taken at activation (the rings were
// checked to lie in guest memory then, and cannot move while the queue is
// ready). A copy, like load(): the guest may change the memory at any time.
template <class T>
T read_ring(const uint8_t* at) {
    T value;
    std::memcpy(&value, at, sizeof(T));
    return value;
}
template <class T>
void write_ring(uint8_t* at, const T& value) {
    std::memcpy(at, &value, sizeof(T));
}

// Whether moving an index from `old_index` to `new_index` passed `event`,
// all modulo 2^16 (the vring_need_event rule of 2.7.10).
bool need_event(uint16_t event, uint16_t new_index, uint16_t old_index) {
    return static_cast<uint16_t>(new_index - event - 1) < static_cast<uint16_t>(new_index - old_index);
}

// Appends one descriptor's buffer to the chain; `writable_seen` carries the
// rule that the device-writable buffers come last.
Result<void> add_buffer(const GuestMemory& memory, const Descriptor& descriptor, Chain& chain, bool& writable_seen) {
    bool writable = (descriptor.flags & kDescWrite) != 0;
    if (!writable && writable_seen)
        return guest_error("chain at head {} has a readable buffer after a writable one", chain.head);
    std::span<uint8_t> buffer;
    if (descriptor.length != 0) {
        buffer = memory.slice(descriptor.address, descriptor.length);
        if (buffer.size() != descriptor.length)
            return guest_error("chain at head {} has a buffer of {} bytes at {:#x} outside guest memory", chain.head,
                               descriptor.length, descriptor.address);
    }
    (writable ? chain.writable : chain.readable).push_back(buffer);
    writable_seen = writable_seen || writable;
    return {};
}

// Appends the buffers of the indirect table that `descriptor` points to.
Result<void> add_indirect(const GuestMemory& memory, const Descriptor& descriptor, Chain& chain, bool& writable_seen) {
    if (descriptor.length == 0 || descriptor.length % kDescriptorSize != 0)
        return guest_error("chain at head {} has an indirect table of {} bytes, not a non-zero multiple of {}",
                           chain.head, descriptor.length, kDescriptorSize);
    uint32_t entries = static_cast<uint32_t>(descriptor.length / kDescriptorSize);
    if (entries > Queue::kMaxChainLength)
        return guest_error("chain at head {} has an indirect table of {} descriptors, more than {}", chain.head,
                           entries, Queue::kMaxChainLength);
    auto table = memory.slice(descriptor.address, descriptor.length);
    if (table.size() != descriptor.length)
        return guest_error("chain at head {} has an indirect table of {} bytes at {:#x} outside guest memory",
                           chain.head, descriptor.length, descriptor.address);
    // The table's own WRITE flag means nothing (2.7.5.3.1); its entries'
    // flags do. Following NEXT more times than there are entries is a loop.
    uint32_t entry = 0;
    for (uint32_t visited = 1;; ++visited) {
        if (visited > entries)
            return guest_error("chain at head {} loops in its indirect table of {} descriptors", chain.head, entries);
        Descriptor inner;
        std::memcpy(&inner, table.data() + entry * kDescriptorSize, sizeof(inner));
        if (inner.flags & kDescIndirect)
            return guest_error("chain at head {} nests an indirect table in an indirect table", chain.head);
        if (auto added = add_buffer(memory, inner, chain, writable_seen); !added) return added;
        if (!(inner.flags & kDescNext)) return {};
        if (inner.next >= entries)
            return guest_error("chain at head {} links to entry {} of an indirect table of {} descriptors", chain.head,
                               inner.next, entries);
        entry = inner.next;
    }
}

}  // namespace

size_t Chain::readable_size() const {
    size_t total = 0;
    for (auto buffer : readable) total += buffer.size();
    return total;
}

size_t Chain::writable_size() const {
    size_t total = 0;
    for (auto buffer : writable) total += buffer.size();
    return total;
}

Result<void> Queue::activate(const GuestMemory& memory) {
    if (size_ == 0 || size_ > max_size_ || !std::has_single_bit(size_))
        return guest_error("queue size {} is not a power of two from 1 to {}", size_, max_size_);
    if (descriptors_ % 16 != 0) return guest_error("descriptor table at {:#x} is not 16-byte aligned", descriptors_);
    if (avail_ % 2 != 0) return guest_error("available ring at {:#x} is not 2-byte aligned", avail_);
    if (used_ % 4 != 0) return guest_error("used ring at {:#x} is not 4-byte aligned", used_);
    struct Area {
        const char* name;
        uint64_t address, bytes;
    };
    for (auto area : {Area{"descriptor table", descriptors_, kDescriptorSize * size_},
                      Area{"available ring", avail_, avail_ring_bytes(size_)},
                      Area{"used ring", used_, used_ring_bytes(size_)}}) {
        if (memory.slice(area.address, area.bytes).size() != area.bytes)
            return guest_error("{} of {} bytes at {:#x} is outside guest memory", area.name, area.bytes, area.address);
    }
    desc_ring_ = memory.slice(descriptors_, 1).data();
    avail_ring_ = memory.slice(avail_, 1).data();
    used_ring_ = memory.slice(used_, 1).data();
    next_avail_ = 0;
    known_avail_ = 0;
    next_used_ = 0;
    signalled_used_ = 0;
    signalled_valid_ = false;
    ready_ = true;
    return {};
}

void Queue::reset() {
    resubmit_.clear();
    resubmit_next_ = 0;
    size_ = max_size_;
    descriptors_ = avail_ = used_ = 0;
    ready_ = false;
    event_idx_ = false;
    next_avail_ = 0;
    known_avail_ = 0;
    next_used_ = 0;
    signalled_used_ = 0;
    signalled_valid_ = false;
}

Result<std::optional<Chain>> Queue::pop(const GuestMemory& memory) {
    Chain chain;
    auto popped = pop(memory, chain);
    if (!popped) return std::unexpected(popped.error());
    if (!*popped) return std::nullopt;
    return chain;
}

Result<bool> Queue::pop(const GuestMemory& memory, Chain& chain) {
    chain.readable.clear();
    chain.writable.clear();
    if (!ready_) return false;
    // What a previous back-end left in flight comes first; these heads are
    // still marked in flight, with their original order.
    if (resubmit_next_ < resubmit_.size()) {
        uint16_t head = resubmit_[resubmit_next_++];
        if (auto read = read_chain(memory, head, chain); !read) return std::unexpected(read.error());
        return true;
    }
    uint8_t* const avail_event = used_ring_ + kRingHeader + sizeof(UsedElement) * size_;

    // Buffers already known to be available are taken without reading the
    // index again: one guest memory load less per request in a batch.
    if (next_avail_ == known_avail_) {
        auto avail_index = read_ring<uint16_t>(avail_ring_ + 2);
        // The ring entries and descriptors are read after the index that
        // published them.
        std::atomic_thread_fence(std::memory_order_acquire);
        if (avail_index == next_avail_ && event_idx_) {
            // Ask for a notification at the next buffer, then look again: a
            // buffer the driver published before it could see avail_event
            // would otherwise wait for one that never comes.
            write_ring(avail_event, next_avail_);
            std::atomic_thread_fence(std::memory_order_seq_cst);
            avail_index = read_ring<uint16_t>(avail_ring_ + 2);
            std::atomic_thread_fence(std::memory_order_acquire);
        }
        uint16_t pending = static_cast<uint16_t>(avail_index - next_avail_);
        if (pending > size_) return guest_error("driver made {} buffers available in a queue of {}", pending, size_);
        if (pending == 0) return false;
        known_avail_ = avail_index;
    }

    auto head = read_ring<uint16_t>(avail_ring_ + kRingHeader + 2 * (next_avail_ & (size_ - 1)));
    if (head >= size_)
        return guest_error("available ring entry {} names descriptor {} in a queue of {}", next_avail_, head, size_);
    if (auto read = read_chain(memory, head, chain); !read) return std::unexpected(read.error());
    if (inflight_ != nullptr) inflight_->popped(head);
    ++next_avail_;
    if (event_idx_) write_ring(avail_event, next_avail_);
    return true;
}

Result<void> Queue::read_chain(const GuestMemory& memory, uint16_t head, Chain& chain) {
    chain.readable.clear();
    chain.writable.clear();
    chain.head = head;
    bool writable_seen = false;
    const uint32_t limit = std::min<uint32_t>(size_, kMaxChainLength);
    uint16_t index = head;
    for (uint32_t visited = 1;; ++visited) {
        if (visited > limit)
            return guest_error("chain at head {} is longer than {} descriptors (a loop?)", chain.head, limit);
        auto descriptor = read_ring<Descriptor>(desc_ring_ + kDescriptorSize * index);
        if (descriptor.flags & kDescIndirect) {
            if (descriptor.flags & kDescNext)
                return guest_error("chain at head {} has descriptor {} with both NEXT and INDIRECT", chain.head, index);
            if (auto added = add_indirect(memory, descriptor, chain, writable_seen); !added)
                return added;
            break;
        }
        if (auto added = add_buffer(memory, descriptor, chain, writable_seen); !added)
            return added;
        if (!(descriptor.flags & kDescNext)) break;
        if (descriptor.next >= size_)
            return guest_error("chain at head {} links to descriptor {} in a queue of {}", chain.head, descriptor.next,
                               size_);
        index = descriptor.next;
    }

    return {};
}

Result<void> Queue::push(const GuestMemory&, uint16_t head, uint32_t written) {
    if (!ready_) return guest_error("buffer {} returned to a queue that is not ready", head);
    if (head >= size_) return guest_error("buffer {} returned to a queue of {}", head, size_);
    if (inflight_ != nullptr) inflight_->before_push(head);
    write_ring(used_ring_ + kRingHeader + sizeof(UsedElement) * (next_used_ & (size_ - 1)), UsedElement{head, written});
    // The element (and the data written to the buffers) before the index
    // that publishes it.
    std::atomic_thread_fence(std::memory_order_release);
    ++next_used_;
    write_ring(used_ring_ + 2, next_used_);
    if (inflight_ != nullptr) {
        std::atomic_thread_fence(std::memory_order_release);
        inflight_->after_push(head, next_used_);
    }
    return {};
}

size_t Queue::resume(uint16_t next_available) {
    resubmit_.clear();
    resubmit_next_ = 0;
    if (!ready_) return 0;
    uint16_t used_index = read_ring<uint16_t>(used_ring_ + 2);
    if (inflight_ != nullptr) {
        resubmit_ = inflight_->start(size_, used_index);
        // Every request taken from the available ring is either in the used
        // ring or still in flight.
        next_available = static_cast<uint16_t>(used_index + resubmit_.size());
    }
    next_avail_ = known_avail_ = next_available;
    next_used_ = used_index;
    signalled_valid_ = false;
    return resubmit_.size();
}

bool Queue::should_notify(const GuestMemory&) {
    if (!ready_) return false;
    // Our used index store before the driver's event index or flags load:
    // the driver does the mirror image, so one of us sees the other.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!event_idx_) return !(read_ring<uint16_t>(avail_ring_) & kAvailNoInterrupt);
    auto used_event = read_ring<uint16_t>(avail_ring_ + kRingHeader + 2 * size_);
    uint16_t old_used = signalled_used_;
    bool known = signalled_valid_;
    signalled_used_ = next_used_;
    signalled_valid_ = true;
    // Before the first decision there is nothing to compare with: an extra
    // interrupt costs little, a missing one hangs the driver.
    if (!known) return true;
    return need_event(used_event, next_used_, old_used);
}

}  // namespace hospes::virtio
