// The front-end side of a vhost-user connection, as the monitor runs it:
// it learns the device's features and configuration from the back-end,
// and when the driver starts the device it shares guest memory, the
// inflight region and each queue's rings and eventfds (KVM's ioeventfd as
// kick, its irqfd as call), so requests flow between guest and back-end
// without passing through the monitor.
//
// The back-end may die at any time. The front-end keeps what it needs to
// start it again (features, queue layout, the inflight region): reconnect()
// repeats the whole set-up on a new connection, and the new back-end
// resubmits what the old one left in flight.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/mapping.hpp"
#include "common/unique_fd.hpp"
#include "vhost_user/channel.hpp"
#include "vmm/guest_memory.hpp"

namespace hospes::vhost_user {

struct QueueSetup {
    uint16_t size = 0;
    uint64_t descriptors = 0, available = 0, used = 0;  // guest addresses
    int kick = -1;  // eventfd the driver's notifications arrive on
    int call = -1;  // eventfd that raises the driver's interrupt
};

class Frontend {
public:
    // `queue_max_size`: the largest queue the driver may set up (the
    // inflight region is made for it).
    Frontend(std::string socket_path, uint16_t queue_count, uint16_t queue_max_size)
        : path_(std::move(socket_path)), queue_count_(queue_count), queue_max_size_(queue_max_size) {}

    // Connects and learns the device: features, protocol features, config.
    // With `socket`, over that connection (handed over by whoever can still
    // reach the back-end: a jailed monitor cannot) instead of the path.
    Result<void> connect(UniqueFd socket = {});
    bool connected() const { return channel_.connected(); }
    // The socket, readable when the back-end went away (it sends nothing
    // unasked); -1 when not connected.
    int socket_fd() const { return channel_.fd(); }
    // Drops the connection (the back-end died); started queues stay
    // described for reconnect().
    void disconnect() { channel_.close(); }
    // connect(), then start() again if the device was started.
    Result<void> reconnect(UniqueFd socket = {});

    const std::string& path() const { return path_; }
    // Where reconnect() looks from now on (a jail's own name for the socket).
    void set_path(std::string path) { path_ = std::move(path); }
    uint16_t queue_count() const { return queue_count_; }
    uint16_t queue_max_size() const { return queue_max_size_; }
    uint64_t device_features() const { return features_ & ~kFeatureProtocolFeatures; }
    // Reads the device's configuration space from the back-end (GET_CONFIG).
    Result<void> read_config(uint32_t offset, std::span<uint8_t> data);

    // The driver accepted `features` and set DRIVER_OK.
    Result<void> start(const GuestMemory& memory, uint64_t features, std::span<const QueueSetup> queues);
    // The driver reset the device: the back-end stops the rings (finishing
    // what is in flight) and the inflight region starts afresh.
    Result<void> stop();
    bool started() const { return started_; }

private:
    Result<Message> call(Request request, std::span<const uint8_t> payload = {}, std::span<const int> fds = {});
    Result<uint64_t> call_u64(Request request);
    // Sends a request without a reply of its own; with REPLY_ACK, waits for
    // the back-end's verdict.
    Result<void> send(Request request, std::span<const uint8_t> payload = {}, std::span<const int> fds = {});
    template <class T>
    Result<void> send_object(Request request, const T& payload, std::span<const int> fds = {}) {
        return send(request, {reinterpret_cast<const uint8_t*>(&payload), sizeof(T)}, fds);
    }
    Result<void> setup_rings();

    std::string path_;
    uint16_t queue_count_;
    uint16_t queue_max_size_;
    Channel channel_;
    uint64_t features_ = 0;
    uint64_t protocol_features_ = 0;

    // What start() was given, for reconnect().
    bool started_ = false;
    const GuestMemory* memory_ = nullptr;
    uint64_t driver_features_ = 0;
    std::vector<QueueSetup> queues_;
    std::vector<uint16_t> bases_;  // next available index per queue, after a clean stop

    // The inflight region, kept across back-ends.
    UniqueFd inflight_file_;
    Mapping inflight_;
    Inflight inflight_description_{};
};

}  // namespace hospes::vhost_user
