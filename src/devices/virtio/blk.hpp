// virtio-blk (virtio 1.2, section 5.2): one request queue; each request is
// a 16-byte header, data buffers and a status byte. Reads and writes go to
// the backend straight from and into guest memory (no copies), many in
// flight at once; results come back on the backend's completion fd.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "backends/block_backend.hpp"
#include "virtio/device.hpp"

namespace hospes::devices {

class VirtioBlk : public virtio::Device {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint32_t kSegmentMax = 254;  // data buffers per request (queue size minus header and status)
    static constexpr uint32_t kMaxDiscardSectors = (1u << 30) / 512;  // per request: 1 GiB

    explicit VirtioBlk(std::unique_ptr<backends::BlockBackend> backend);
    ~VirtioBlk() override;

    uint32_t device_type() const override { return 2; }
    uint64_t features() const override;
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    Result<void> activate(uint64_t features, virtio::ActiveQueues queues) override;
    void queue_notify(uint16_t index) override;
    void reset() override;
    void quiesce() override;
    std::vector<BackendEvent> backend_events() const override { return {{backend_->completion_fd(), true}}; }
    void backend_ready(size_t index) override;
    // Requests and bytes as the driver asked for them (xentop's VBD_RD,
    // VBD_WR, VBD_RSECT, VBD_WSECT), flushes, and requests the host failed.
    Counters counters() const override;

    // Requests the device refused as malformed since activation (for tests).
    uint64_t bad_requests() const { return bad_requests_; }

    // Who decides when requests are taken from the ring (hospes-blkback's
    // scheduler). Without one, every request is started as soon as the
    // driver notifies; with one, a notification only calls kicked(), and
    // requests wait in the ring (back-pressure on the guest) until the gate
    // takes them with start_next().
    class Gate {
    public:
        virtual ~Gate() = default;
        virtual void kicked() = 0;
    };
    void set_gate(Gate* gate) { gate_ = gate; }
    // What start_next() took from the ring.
    struct Started {
        bool is_read = false, is_write = false;
        uint64_t bytes = 0;  // data bytes to transfer
    };
    // Takes one request from the ring and starts it (submit() hands it to
    // the host); nothing when the ring is empty or the device not running.
    std::optional<Started> start_next();
    // Hands started requests to the host and completes what has finished.
    void submit() { complete_ready(); }
    // Requests handed to the host and not yet completed.
    uint32_t in_flight() const { return static_cast<uint32_t>(slots_.size() - free_slots_.size()); }

private:
    // A request handed to the backend, by tag.
    struct InFlight {
        uint16_t head = 0;
        uint8_t* status = nullptr;
        uint32_t written = 0;      // what the used ring reports on success
        bool is_write = false;
        uint64_t offset = 0;       // of the part not yet transferred
        uint64_t remaining = 0;    // bytes of data not yet transferred
        std::vector<iovec> iov;
        size_t first_iov = 0;      // iov[first_iov..] is still to be transferred
        bool discard = false;
    };

    void start(const virtio::Chain& chain);
    // Finishes a request at once with `status` in its status byte.
    void finish_now(uint16_t head, uint8_t* status, uint8_t value, uint32_t written);
    void bad_request(uint16_t head, uint8_t* status, const char* why);
    void complete(uint64_t tag, int64_t result);
    // Submits what is queued and completes whatever has finished.
    void complete_ready();
    void push(uint16_t head, uint32_t written);
    void fail(const Error& error);  // the driver broke the queue: NEEDS_RESET
    void resubmit_rest(InFlight& request);

    std::unique_ptr<backends::BlockBackend> backend_;
    virtio::ActiveQueues active_;
    virtio::Chain chain_;  // the request being parsed, its storage reused
    std::vector<InFlight> slots_;
    std::vector<uint32_t> free_slots_;
    bool pushed_ = false;  // used ring changed since the last interrupt check
    bool broken_ = false;
    Gate* gate_ = nullptr;
    Started last_started_;  // what start() last took, for start_next()
    uint64_t bad_requests_ = 0;
    uint64_t host_errors_ = 0;
    uint64_t read_requests_ = 0, write_requests_ = 0, flush_requests_ = 0;
    uint64_t read_bytes_ = 0, written_bytes_ = 0;
};

}  // namespace hospes::devices
