// The back-end side of one vhost-user connection: it answers a front-end's
// messages for one virtio device model (virtio-blk in hospes-blkback) and
// runs the device's virtqueues in guest memory the front-end shared with
// it. Kicks arrive on the front-end's eventfds, interrupts leave on its
// call eventfds: in a monitor these are KVM's ioeventfds and irqfds, so no
// request passes through the monitor.
//
// The front-end is untrusted: a message that is malformed or asks for
// something impossible (memory outside what was shared, a ring outside
// memory, a missing fd) ends this connection with one log line; nothing it
// sends can reach other connections.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/mapping.hpp"
#include "common/unique_fd.hpp"
#include "vhost_user/channel.hpp"
#include "virtio/device.hpp"
#include "virtio/inflight.hpp"
#include "virtio/queue.hpp"
#include "vmm/guest_memory.hpp"

namespace hospes::vhost_user {

struct BackendCounters {
    uint64_t resubmitted = 0;  // requests run again from the inflight region
};

class BackendConnection {
public:
    // `name` prefixes this connection's log lines.
    static Result<std::unique_ptr<BackendConnection>> create(Channel channel, std::unique_ptr<virtio::Device> device,
                                                             std::string name);
    ~BackendConnection();

    // One fd (an epoll set of its socket, kicks and device events) to wait
    // on; when readable, call process().
    int fd() const { return epoll_.get(); }
    // Handles what is ready; false once the connection is over (the reason
    // was logged), and then it must be destroyed.
    bool process();

    const BackendCounters& counters() const { return counters_; }
    const std::string& name() const { return name_; }

private:
    BackendConnection(Channel channel, std::unique_ptr<virtio::Device> device, std::string name);

    struct Ring {
        uint16_t size = 0;
        std::optional<VringAddress> address;  // front-end virtual addresses
        uint16_t base = 0;                    // next available index to take
        UniqueFd kick, call, error;
        bool enabled = false;
        bool started = false;  // a kick fd arrived (the specification's "started")
    };

    Result<void> handle(const Message& message);
    Result<void> reply(const Message& message, std::span<const uint8_t> payload, std::span<const int> fds = {});
    Result<void> reply_u64(const Message& message, uint64_t value);
    Result<void> set_mem_table(const Message& message);
    Result<void> set_vring_fd(const Message& message, Request request);
    Result<void> get_inflight(const Message& message);
    Result<void> set_inflight(const Message& message);
    // Translates a front-end virtual address range to a guest address.
    Result<uint64_t> guest_address(uint64_t user_address, uint64_t size) const;
    // Runs the device once every ring it needs is started and enabled, and
    // stops it (requests finished, positions kept) when one no longer is.
    Result<void> update_device();
    void stop_device();
    void interrupt();
    Result<void> watch(int fd, uint64_t tag);

    Channel channel_;
    std::unique_ptr<virtio::Device> device_;
    std::string name_;
    UniqueFd epoll_;
    uint64_t features_ = 0, protocol_features_ = 0;
    bool features_set_ = false;
    struct UserRegion {
        uint64_t user_address, guest_address, size;
    };
    std::vector<UserRegion> user_regions_;
    std::optional<GuestMemory> memory_;
    std::vector<Ring> rings_;
    std::vector<virtio::Queue> queues_;
    // The inflight region: the front-end keeps it; we map it.
    Mapping inflight_;
    uint16_t inflight_queue_size_ = 0;
    std::vector<virtio::InflightLog> inflight_logs_;
    bool device_active_ = false;
    bool broken_ = false;  // the driver broke a ring: no more processing
    std::vector<virtio::Device::BackendEvent> device_events_;
    BackendCounters counters_;
};

}  // namespace hospes::vhost_user
