// A virtio device whose queues a vhost-user back-end serves (hospes-blkback,
// qemu-storage-daemon, ...): the monitor's side of a driver domain. The
// transport stays in the monitor (registers, feature negotiation, config
// space, which the back-end reports); the rings, the notifications and the
// interrupts go straight between the guest and the back-end.
//
// When the back-end's socket closes, the guest keeps running and its I/O
// waits; the device retries the socket after 5 ms, then every 100 ms, and, once a back-end
// answers, sets everything up again (see Frontend::reconnect).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "vhost_user/frontend.hpp"
#include "virtio/device.hpp"

namespace hospes::vhost_user {

class VhostUserDevice final : public virtio::Device {
public:
    // Connects to the back-end at `socket_path` and learns the device.
    // `config_size`: the device type's configuration space (back-ends
    // refuse reads past it).
    static Result<std::unique_ptr<VhostUserDevice>> connect(const std::string& socket_path, uint32_t device_type,
                                                            uint32_t config_size, uint16_t queue_count,
                                                            uint16_t queue_size);

    uint32_t device_type() const override { return device_type_; }
    uint64_t features() const override;
    std::vector<uint16_t> queue_max_sizes() const override;
    void read_config(uint64_t offset, std::span<uint8_t> data) override;
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    Result<void> activate(uint64_t features, virtio::ActiveQueues queues) override;
    void queue_notify(uint16_t index) override;
    void reset() override;
    std::vector<BackendEvent> backend_events() const override { return {{events_.get(), false}}; }
    void backend_ready(size_t index) override;
    bool runs_queues_elsewhere() const override { return true; }

    bool connected() const { return frontend_.connected(); }
    uint64_t reconnects() const { return reconnects_; }
    const std::string& socket_path() const { return frontend_.path(); }
    // Where retries look from now on (the socket's name inside a jail).
    void set_socket_path(std::string path) { frontend_.set_path(std::move(path)); }
    // A connection to a back-end that replaced the lost one, made by whoever
    // can still reach it (hospesd, for a jailed monitor, after it started the
    // back-end again): used at once, whether or not the loss was seen yet.
    Result<void> adopt_connection(UniqueFd socket);

private:
    VhostUserDevice(const std::string& socket_path, uint32_t device_type, uint32_t config_size, uint16_t queue_count,
                    uint16_t queue_size);
    Result<void> connected_now();  // after a (re)connection: watch the socket, refresh the config
    void lost(const std::string& why);
    Result<void> reconnect(UniqueFd socket);

    Frontend frontend_;
    uint32_t device_type_;
    std::vector<uint8_t> config_;  // as last read from the back-end
    UniqueFd events_;              // epoll: the socket and the retry timer
    UniqueFd retry_timer_;
    std::vector<UniqueFd> own_kicks_;  // when the transport gives no ioeventfds (tests)
    UniqueFd own_call_;
    std::vector<int> kicks_;
    uint64_t reconnects_ = 0;
    std::chrono::steady_clock::time_point lost_at_;
};

}  // namespace hospes::vhost_user
