// Test support: a vhost-user device as the monitor's transport wires it.
#pragma once

#include <sys/eventfd.h>

#include "common/unique_fd.hpp"
#include "vhost_user/device.hpp"
#include "virtio/device.hpp"

namespace hospes::test_support {

// The monitor's transport hands a vhost-user device KVM's ioeventfd (kick)
// and irqfd (call); FakeDriver has no KVM and activates with neither, so
// the device would make eventfds of its own that nobody could wait on. This
// wrapper gives it a kick and a call eventfd, as the transport would: the
// fake guest kicks through the first and sleeps on the second (its
// "interrupt") instead of polling the used ring.
class WiredDevice final : public virtio::Device {
public:
    explicit WiredDevice(vhost_user::VhostUserDevice& inner)
        : inner_(inner), kick_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), call_(::eventfd(0, EFD_CLOEXEC)) {}
    uint32_t device_type() const override { return inner_.device_type(); }
    uint64_t features() const override { return inner_.features(); }
    std::vector<uint16_t> queue_max_sizes() const override { return inner_.queue_max_sizes(); }
    void read_config(uint64_t offset, std::span<uint8_t> data) override { inner_.read_config(offset, data); }
    void write_config(uint64_t offset, std::span<const uint8_t> data) override { inner_.write_config(offset, data); }
    Result<void> activate(uint64_t features, virtio::ActiveQueues queues) override {
        queues.notify_fds = {kick_.get()};
        queues.interrupt_fd = call_.get();
        return inner_.activate(features, std::move(queues));
    }
    void queue_notify(uint16_t index) override { inner_.queue_notify(index); }  // writes kick_
    void reset() override { inner_.reset(); }
    int call() const { return call_.get(); }

private:
    vhost_user::VhostUserDevice& inner_;
    UniqueFd kick_, call_;
};

}  // namespace hospes::test_support
