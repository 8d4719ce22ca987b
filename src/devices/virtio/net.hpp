// virtio-net (virtio 1.2, section 5.1): one receive and one transmit queue
// between the guest and a host network backend (a tap). Transmit hands the
// guest's buffers straight to the backend (no copy); receive takes one
// packet from the backend at a time, and only when the guest has buffers for
// it, so packets wait in the tap rather than being dropped here.
//
// Every ring and header comes from the guest: malformed transmit chains are
// dropped and counted, a broken ring stops the device (NEEDS_RESET), and no
// loop runs longer than a burst without going back to the I/O thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "backends/net_backend.hpp"
#include "common/unique_fd.hpp"
#include "common/token_bucket.hpp"
#include "virtio/device.hpp"

namespace hospes::devices {

// Feature bits (5.1.3).
namespace net_feature {
inline constexpr uint64_t kCsum = 1ull << 0;        // device takes packets with partial checksums
inline constexpr uint64_t kGuestCsum = 1ull << 1;   // driver takes packets with partial checksums
inline constexpr uint64_t kMac = 1ull << 5;
inline constexpr uint64_t kGuestTso4 = 1ull << 7;
inline constexpr uint64_t kGuestTso6 = 1ull << 8;
inline constexpr uint64_t kGuestEcn = 1ull << 9;
inline constexpr uint64_t kHostTso4 = 1ull << 11;
inline constexpr uint64_t kHostTso6 = 1ull << 12;
inline constexpr uint64_t kHostEcn = 1ull << 13;
inline constexpr uint64_t kMrgRxbuf = 1ull << 15;
inline constexpr uint64_t kStatus = 1ull << 16;
}  // namespace net_feature

// The header before every frame in both directions (5.1.6, struct
// virtio_net_hdr_v1): virtio 1.x always has num_buffers.
struct NetHeader {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};
static_assert(sizeof(NetHeader) == 12);

struct NetStats {
    uint64_t tx_packets = 0;
    uint64_t tx_bytes = 0;      // frames' bytes, without the virtio-net header
    uint64_t tx_malformed = 0;  // chains the guest got wrong, dropped
    uint64_t tx_errors = 0;     // the backend refused the packet
    uint64_t rx_packets = 0;
    uint64_t rx_bytes = 0;
    uint64_t rx_dropped = 0;    // did not fit the guest's buffers, or too short
    uint64_t rx_malformed = 0;  // receive chains too small for a header
    uint64_t rx_errors = 0;     // the backend failed to read
};

class VirtioNet : public virtio::Device {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint16_t kRxQueue = 0, kTxQueue = 1;
    // The largest frame either way: 64 KiB (a TSO packet) after the header.
    static constexpr size_t kMaxFrame = 64 * 1024;
    static constexpr size_t kMaxPacket = sizeof(NetHeader) + kMaxFrame;
    // Chains or packets handled before yielding the I/O thread to others.
    static constexpr unsigned kBurst = 256;

    // `mac`: none gives a random locally administered unicast address.
    static Result<std::unique_ptr<VirtioNet>> create(std::unique_ptr<backends::NetBackend> backend,
                                                     std::optional<std::array<uint8_t, 6>> mac);

    uint32_t device_type() const override { return 1; }
    uint64_t features() const override;
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize, kQueueSize}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t, std::span<const uint8_t>) override {}  // the MAC is read-only in 1.x
    Result<void> activate(uint64_t features, virtio::ActiveQueues queues) override;
    void queue_notify(uint16_t index) override;
    void reset() override;
    void release_host() override { backend_->release(); }
    std::vector<BackendEvent> backend_events() const override;
    void backend_ready(size_t index) override;

    const std::array<uint8_t, 6>& mac() const { return mac_; }
    // A cap on what the guest sends, in frame bytes per second with a
    // burst (0: a tenth of a second), as Xen's vif rate=: over it, frames
    // wait in the guest's ring (none dropped) until credit comes back.
    // Before the device is added to a machine (its events then include
    // the cap's timer).
    Result<void> set_tx_cap(uint64_t bytes_per_second, uint64_t burst_bytes);
    const NetStats& stats() const { return stats_; }
    // tx is what the guest sent, rx what it was given.
    Counters counters() const override;

private:
    VirtioNet(std::unique_ptr<backends::NetBackend> backend, std::array<uint8_t, 6> mac, UniqueFd resume);
    // backend_events(): the backend's fd, then these.
    static constexpr size_t kResumeEvent = 1, kCapEvent = 2;

    void process_tx();
    void process_rx();
    // Takes packets from the backend while receive buffers last.
    void receive_packets();
    // Delivers the packet in rx_packet_; false while more buffers are needed.
    bool deliver();
    // Makes rx_chains_ hold at least `bytes` of buffers; false when the
    // guest has not made that many available (or the ring broke).
    bool gather_rx(size_t bytes);
    bool transmit(const virtio::Chain& chain);
    void fail(const Error& error);
    void resume_later();
    void warn(const char* what, uint64_t count);

    std::unique_ptr<backends::NetBackend> backend_;
    std::array<uint8_t, 6> mac_;
    UniqueFd resume_;  // eventfd: more work left after a burst
    UniqueFd cap_timer_;  // timerfd: the transmit cap has credit again (only when capped)
    driver_domain::TokenBucket tx_cap_;
    bool cap_waiting_ = false;  // cap_timer_ is armed

    virtio::ActiveQueues active_;
    bool running_ = false;  // activated and not failed
    bool tx_held_ = false;  // the backend would not take packets; its fd says when it will
    uint64_t features_ = 0;
    std::deque<virtio::Chain> rx_chains_;  // popped receive chains not yet used
    size_t rx_chain_bytes_ = 0;            // their writable bytes
    std::vector<uint8_t> rx_packet_;       // one packet read from the backend
    size_t rx_pending_ = 0;                // its size, 0 when none waits here
    bool rx_used_ = false;                 // chains returned since the last interrupt decision
    unsigned budget_ = 0;                  // receive chains left to pop in this round
    std::vector<iovec> iov_;               // transmit scratch
    virtio::Chain tx_chain_;               // the packet being sent, its storage reused
    NetStats stats_;
    std::chrono::steady_clock::time_point last_warning_{};
};

}  // namespace hospes::devices
