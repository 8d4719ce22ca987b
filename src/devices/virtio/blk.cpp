#include "devices/virtio/blk.hpp"

#include <linux/virtio_blk.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "common/log.hpp"

namespace hospes::devices {

namespace {

constexpr uint64_t kSector = 512;

struct RequestHeader {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

struct RangeSegment {  // DISCARD and WRITE_ZEROES payload
    uint64_t sector;
    uint32_t sectors;
    uint32_t flags;
};
static_assert(sizeof(RangeSegment) == 16);

// Copies `out.size()` bytes of `spans`, from byte `skip` on; false if short.
bool gather(const std::vector<std::span<uint8_t>>& spans, size_t skip, std::span<uint8_t> out) {
    size_t done = 0;
    for (auto s : spans) {
        if (done == out.size()) break;
        if (skip >= s.size()) {
            skip -= s.size();
            continue;
        }
        size_t n = std::min(s.size() - skip, out.size() - done);  // > 0: skip < s.size()
        std::memcpy(out.data() + done, s.data() + skip, n);
        done += n;
        skip = 0;
    }
    return done == out.size();
}

// Copies `bytes` into the start of `spans`, as far as they reach.
void scatter(const std::vector<std::span<uint8_t>>& spans, std::span<const uint8_t> bytes) {
    for (auto s : spans) {
        if (bytes.empty()) return;
        if (s.empty()) continue;  // a zero-length buffer's data() may be null
        size_t n = std::min(s.size(), bytes.size());
        std::memcpy(s.data(), bytes.data(), n);
        bytes = bytes.subspan(n);
    }
}

// Appends spans[skip bytes .. end - drop bytes] to `iov`.
void append_iov(std::vector<iovec>& iov, const std::vector<std::span<uint8_t>>& spans, size_t skip, size_t drop) {
    size_t total = 0;
    for (auto s : spans) total += s.size();
    size_t end = total - drop, at = 0;
    for (auto s : spans) {
        size_t begin = std::max(at, skip), stop = std::min(at + s.size(), end);
        if (begin < stop) iov.push_back({s.data() + (begin - at), stop - begin});
        at += s.size();
    }
}

}  // namespace

VirtioBlk::VirtioBlk(std::unique_ptr<backends::BlockBackend> backend) : backend_(std::move(backend)) {}

VirtioBlk::~VirtioBlk() { reset(); }

uint64_t VirtioBlk::features() const {
    uint64_t f = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
    if (backend_->read_only())
        f |= 1ull << VIRTIO_BLK_F_RO;
    else
        f |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
    return f;
}

void VirtioBlk::read_config(uint64_t offset, std::span<uint8_t> data) {
    virtio_blk_config config{};
    config.capacity = backend_->size() / kSector;
    config.seg_max = kSegmentMax;
    config.blk_size = backend_->block_size();
    config.max_discard_sectors = kMaxDiscardSectors;
    config.max_discard_seg = 1;
    config.discard_sector_alignment = backend_->block_size() / kSector;
    config.max_write_zeroes_sectors = kMaxDiscardSectors;
    config.max_write_zeroes_seg = 1;
    config.write_zeroes_may_unmap = 1;
    std::memset(data.data(), 0, data.size());
    if (offset < sizeof(config))
        std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config) + offset,
                    std::min<uint64_t>(data.size(), sizeof(config) - offset));
}

Result<void> VirtioBlk::activate(uint64_t, virtio::ActiveQueues queues) {
    active_ = std::move(queues);
    uint16_t size = (*active_.queues)[0].size();
    slots_.assign(size, {});
    free_slots_.clear();
    for (uint32_t i = size; i > 0; --i) free_slots_.push_back(i - 1);
    bad_requests_ = 0;
    broken_ = false;
    return {};
}

void VirtioBlk::reset() {
    // Requests in flight still point into guest memory: wait for them
    // before the driver may reuse their buffers.
    backend_->drain();
    active_ = {};
    slots_.clear();
    free_slots_.clear();
}

void VirtioBlk::quiesce() {
    while (active_.queues != nullptr && free_slots_.size() < slots_.size()) {
        backend_->wait();
        complete_ready();
    }
}

void VirtioBlk::queue_notify(uint16_t index) {
    if (index != 0 || active_.queues == nullptr) return;
    if (gate_ != nullptr) return gate_->kicked();
    auto& queue = (*active_.queues)[0];
    for (;;) {
        auto popped = queue.pop(*active_.memory, chain_);
        if (!popped) {
            fail(popped.error());
            break;
        }
        if (!*popped) break;
        start(chain_);
        if (broken_) break;
    }
    complete_ready();
}

std::optional<VirtioBlk::Started> VirtioBlk::start_next() {
    if (active_.queues == nullptr || broken_) return std::nullopt;
    auto popped = (*active_.queues)[0].pop(*active_.memory, chain_);
    if (!popped) {
        fail(popped.error());
        return std::nullopt;
    }
    if (!*popped) return std::nullopt;
    start(chain_);
    return last_started_;
}

void VirtioBlk::complete_ready() {
    // Submitting may complete requests at once (page-cache hits): look right
    // away instead of waiting for the completion fd's wake-up.
    backends::BlockBackend::Completion done[64];
    for (;;) {
        backend_->submit();
        size_t count = backend_->reap(done);
        if (count == 0) break;
        for (size_t i = 0; i < count; ++i) complete(done[i].tag, done[i].result);
    }
    if (pushed_ && active_.queues != nullptr && (*active_.queues)[0].should_notify(*active_.memory))
        active_.interrupt();
    pushed_ = false;
}

void VirtioBlk::start(const virtio::Chain& chain) {
    last_started_ = {};
    // The status byte is the last device-writable byte.
    uint8_t* status = nullptr;
    for (auto it = chain.writable.rbegin(); it != chain.writable.rend(); ++it)
        if (!it->empty()) {
            status = &it->back();
            break;
        }
    if (status == nullptr) return bad_request(chain.head, nullptr, "no status byte");
    RequestHeader header;
    if (!gather(chain.readable, 0, {reinterpret_cast<uint8_t*>(&header), sizeof(header)}))
        return bad_request(chain.head, status, "header shorter than 16 bytes");

    const uint64_t readable = chain.readable_size(), writable = chain.writable_size();
    const uint64_t capacity = backend_->size() / kSector;
    auto in_range = [&](uint64_t sector, uint64_t bytes) {
        return sector <= capacity && bytes / kSector <= capacity - sector && bytes % kSector == 0;
    };

    switch (header.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool is_write = header.type == VIRTIO_BLK_T_OUT;
        uint64_t length = is_write ? readable - sizeof(header) : writable - 1;
        if ((is_write && writable != 1) || (!is_write && readable != sizeof(header)))
            return bad_request(chain.head, status, "data buffers in the wrong direction");
        if (!in_range(header.sector, length)) {
            // Past the end or not whole sectors: the guest's own mistake, an
            // I/O error like a real disk's.
            return finish_now(chain.head, status, VIRTIO_BLK_S_IOERR, 1);
        }
        if (is_write && backend_->read_only()) return finish_now(chain.head, status, VIRTIO_BLK_S_IOERR, 1);
        if (length == 0) return finish_now(chain.head, status, VIRTIO_BLK_S_OK, 1);
        if (free_slots_.empty()) {
            return fail(Error{ErrorKind::Guest, "more block requests in flight than the queue has entries"});
        }
        uint32_t tag = free_slots_.back();
        free_slots_.pop_back();
        auto& request = slots_[tag];
        request.head = chain.head;
        request.status = status;
        request.written = is_write ? 1 : static_cast<uint32_t>(length + 1);
        request.is_write = is_write;
        request.offset = header.sector * kSector;
        request.remaining = length;
        request.iov.clear();
        request.first_iov = 0;
        request.discard = false;
        if (is_write)
            append_iov(request.iov, chain.readable, sizeof(header), 0);
        else
            append_iov(request.iov, chain.writable, 0, 1);
        if (is_write) {
            ++write_requests_;
            written_bytes_ += length;
            backend_->write(request.offset, request.iov, tag);
        } else {
            ++read_requests_;
            read_bytes_ += length;
            backend_->read(request.offset, request.iov, tag);
        }
        last_started_ = {!is_write, is_write, length};
        return;
    }
    case VIRTIO_BLK_T_FLUSH:
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        bool ranged = header.type != VIRTIO_BLK_T_FLUSH;
        RangeSegment segment{};
        if (ranged) {
            if (backend_->read_only()) return finish_now(chain.head, status, VIRTIO_BLK_S_IOERR, 1);
            if (readable != sizeof(header) + sizeof(segment))
                return finish_now(chain.head, status, VIRTIO_BLK_S_UNSUPP, 1);  // one segment at most
            gather(chain.readable, sizeof(header), {reinterpret_cast<uint8_t*>(&segment), sizeof(segment)});
            uint32_t allowed = header.type == VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
            if ((segment.flags & ~allowed) != 0 || segment.sectors > kMaxDiscardSectors)
                return finish_now(chain.head, status, VIRTIO_BLK_S_UNSUPP, 1);
            if (!in_range(segment.sector, uint64_t{segment.sectors} * kSector))
                return finish_now(chain.head, status, VIRTIO_BLK_S_IOERR, 1);
            if (segment.sectors == 0) return finish_now(chain.head, status, VIRTIO_BLK_S_OK, 1);
        }
        if (free_slots_.empty()) {
            return fail(Error{ErrorKind::Guest, "more block requests in flight than the queue has entries"});
        }
        uint32_t tag = free_slots_.back();
        free_slots_.pop_back();
        auto& request = slots_[tag];
        request = InFlight{chain.head, status, 1, false, 0, 0, std::move(request.iov), 0};
        request.discard = header.type == VIRTIO_BLK_T_DISCARD;
        if (header.type == VIRTIO_BLK_T_FLUSH) {
            ++flush_requests_;
            backend_->flush(tag);
        }
        else if (header.type == VIRTIO_BLK_T_DISCARD)
            backend_->discard(segment.sector * kSector, uint64_t{segment.sectors} * kSector, tag);
        else
            backend_->write_zeroes(segment.sector * kSector, uint64_t{segment.sectors} * kSector,
                                   segment.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, tag);
        return;
    }
    case VIRTIO_BLK_T_GET_ID: {
        if (writable < VIRTIO_BLK_ID_BYTES + 1) return finish_now(chain.head, status, VIRTIO_BLK_S_IOERR, 1);
        // The status byte comes after the 20 ID bytes, which fit before it.
        uint8_t id[VIRTIO_BLK_ID_BYTES] = {};
        auto serial = backend_->serial();
        std::memcpy(id, serial.data(), std::min(serial.size(), sizeof(id)));
        scatter(chain.writable, id);
        return finish_now(chain.head, status, VIRTIO_BLK_S_OK, VIRTIO_BLK_ID_BYTES + 1);
    }
    default:
        return finish_now(chain.head, status, VIRTIO_BLK_S_UNSUPP, 1);
    }
}

virtio::Device::Counters VirtioBlk::counters() const {
    return {{"read_requests", read_requests_}, {"write_requests", write_requests_},
            {"read_bytes", read_bytes_},       {"write_bytes", written_bytes_},
            {"flush_requests", flush_requests_}, {"errors", host_errors_ + bad_requests_}};
}

void VirtioBlk::finish_now(uint16_t head, uint8_t* status, uint8_t value, uint32_t written) {
    *status = value;
    push(head, written);
}

void VirtioBlk::bad_request(uint16_t head, uint8_t* status, const char* why) {
    // One line for the first, then one at each power of two: a guest that
    // floods bad requests cannot flood the log.
    ++bad_requests_;
    if ((bad_requests_ & (bad_requests_ - 1)) == 0)
        log::warn("virtio-blk: malformed request ({}); {} so far", why, bad_requests_);
    if (status != nullptr) *status = VIRTIO_BLK_S_IOERR;
    push(head, status != nullptr ? 1 : 0);
}

void VirtioBlk::fail(const Error& error) {
    broken_ = true;
    active_.fail(error);
}

void VirtioBlk::push(uint16_t head, uint32_t written) {
    if (active_.queues == nullptr) return;
    if (auto r = (*active_.queues)[0].push(*active_.memory, head, written); !r) return fail(r.error());
    pushed_ = true;
}

void VirtioBlk::resubmit_rest(InFlight& request) {
    uint32_t tag = static_cast<uint32_t>(&request - slots_.data());
    std::span<const iovec> rest(request.iov.data() + request.first_iov, request.iov.size() - request.first_iov);
    if (request.is_write)
        backend_->write(request.offset, rest, tag);
    else
        backend_->read(request.offset, rest, tag);
}

void VirtioBlk::complete(uint64_t tag, int64_t result) {
    if (tag >= slots_.size()) return;
    auto& request = slots_[tag];
    if (request.remaining > 0 && result > 0 && static_cast<uint64_t>(result) < request.remaining) {
        // A short transfer: go on with the rest of the buffers.
        uint64_t left = static_cast<uint64_t>(result);
        request.offset += left;
        request.remaining -= left;
        while (left > 0) {
            auto& v = request.iov[request.first_iov];
            size_t n = std::min<uint64_t>(left, v.iov_len);
            v.iov_base = static_cast<uint8_t*>(v.iov_base) + n;
            v.iov_len -= n;
            left -= n;
            if (v.iov_len == 0) ++request.first_iov;
        }
        resubmit_rest(request);
        return;
    }
    bool ok = request.remaining > 0 ? static_cast<uint64_t>(result) == request.remaining : result >= 0;
    uint8_t status = VIRTIO_BLK_S_OK;
    if (!ok && request.discard && result == -EOPNOTSUPP) {
        // Discard is a hint; a host file system that cannot punch holes
        // simply keeps the blocks.
    } else if (!ok && result == -EOPNOTSUPP) {
        status = VIRTIO_BLK_S_UNSUPP;
    } else if (!ok) {
        status = VIRTIO_BLK_S_IOERR;
        ++host_errors_;
        if ((host_errors_ & (host_errors_ - 1)) == 0)
            log::warn("virtio-blk: the host failed a request: {}; {} so far",
                      result < 0 ? std::strerror(static_cast<int>(-result)) : "transfer ended early", host_errors_);
    }
    *request.status = status;
    push(request.head, ok ? request.written : 1);
    free_slots_.push_back(static_cast<uint32_t>(tag));
}

void VirtioBlk::backend_ready(size_t) { complete_ready(); }

}  // namespace hospes::devices
