#include "vhost_user/device.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstring>

#include "common/log.hpp"

namespace hospes::vhost_user {

namespace {
constexpr uint64_t kTagSocket = 0, kTagTimer = 1;
// The device feature bits a split-ring virtio-mmio transport can pass on:
// the device type's own (0-23) and the ring features the queue implements.
constexpr uint64_t kPassedFeatures =
    0xffffffull | virtio::kFeatureVersion1 | virtio::kFeatureEventIndex | virtio::kFeatureIndirectDescriptors;
}  // namespace

VhostUserDevice::VhostUserDevice(const std::string& socket_path, uint32_t device_type, uint32_t config_size,
                                 uint16_t queue_count, uint16_t queue_size)
    : frontend_(socket_path, queue_count, queue_size),
      device_type_(device_type),
      config_(config_size) {}

Result<std::unique_ptr<VhostUserDevice>> VhostUserDevice::connect(const std::string& socket_path, uint32_t device_type,
                                                                  uint32_t config_size, uint16_t queue_count,
                                                                  uint16_t queue_size) {
    std::unique_ptr<VhostUserDevice> device(
        new VhostUserDevice(socket_path, device_type, config_size, queue_count, queue_size));
    device->events_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    device->retry_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!device->events_.valid() || !device->retry_timer_.valid()) return errno_error("epoll/timerfd");
    epoll_event timer{EPOLLIN, {.u64 = kTagTimer}};
    if (::epoll_ctl(device->events_.get(), EPOLL_CTL_ADD, device->retry_timer_.get(), &timer) != 0)
        return errno_error("epoll_ctl");
    if (auto r = device->frontend_.connect(); !r) return std::unexpected(r.error());
    if (auto r = device->connected_now(); !r) return std::unexpected(r.error());
    return device;
}

Result<void> VhostUserDevice::connected_now() {
    if (auto r = frontend_.read_config(0, config_); !r) {
        frontend_.disconnect();
        return std::unexpected(Error{r.error().kind, fmt::format("vhost-user '{}': {}", frontend_.path(), r.error().message)});
    }
    // Readable only when the back-end closes (or breaks the protocol by
    // talking unasked).
    epoll_event socket{EPOLLIN | EPOLLRDHUP, {.u64 = kTagSocket}};
    if (::epoll_ctl(events_.get(), EPOLL_CTL_ADD, frontend_.socket_fd(), &socket) != 0) return errno_error("epoll_ctl");
    return {};
}

uint64_t VhostUserDevice::features() const { return frontend_.device_features() & kPassedFeatures; }

std::vector<uint16_t> VhostUserDevice::queue_max_sizes() const {
    return std::vector<uint16_t>(frontend_.queue_count(), frontend_.queue_max_size());
}

void VhostUserDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
    std::memset(data.data(), 0, data.size());
    if (offset < config_.size())
        std::memcpy(data.data(), config_.data() + offset, std::min<uint64_t>(data.size(), config_.size() - offset));
}

Result<void> VhostUserDevice::activate(uint64_t features, virtio::ActiveQueues queues) {
    kicks_ = queues.notify_fds;
    int call = queues.interrupt_fd;
    if (kicks_.size() != queues.queues->size()) {
        // No ioeventfds (a transport without KVM): notifications come through
        // queue_notify() and are passed on here.
        own_kicks_.clear();
        kicks_.clear();
        for (size_t i = 0; i < queues.queues->size(); ++i) {
            own_kicks_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
            kicks_.push_back(own_kicks_.back().get());
        }
    }
    if (call < 0) {
        own_call_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        call = own_call_.get();
    }
    std::vector<QueueSetup> setups;
    for (size_t i = 0; i < queues.queues->size(); ++i) {
        const auto& q = (*queues.queues)[i];
        setups.push_back({q.size(), q.descriptor_table(), q.driver_area(), q.device_area(), kicks_[i], call});
    }
    if (auto r = frontend_.start(*queues.memory, features, setups); !r) lost(r.error().message);
    return {};
}

void VhostUserDevice::queue_notify(uint16_t index) {
    if (index >= kicks_.size()) return;
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(kicks_[index], &one, sizeof(one));
}

void VhostUserDevice::reset() {
    if (auto r = frontend_.stop(); !r) lost(r.error().message);
    kicks_.clear();
}

void VhostUserDevice::lost(const std::string& why) {
    if (frontend_.socket_fd() >= 0) ::epoll_ctl(events_.get(), EPOLL_CTL_DEL, frontend_.socket_fd(), nullptr);
    frontend_.disconnect();
    lost_at_ = std::chrono::steady_clock::now();
    log::warn("vhost-user '{}': {}; the guest's I/O waits until the back-end is back", frontend_.path(), why);
    // The first try comes soon: a back-end whose supervisor holds the
    // socket answers as soon as its new worker runs. Then every 100 ms.
    itimerspec every{{0, 100'000'000}, {0, 5'000'000}};
    ::timerfd_settime(retry_timer_.get(), 0, &every, nullptr);
}

void VhostUserDevice::backend_ready(size_t) {
    epoll_event events[2];
    int count = ::epoll_wait(events_.get(), events, 2, 0);
    for (int i = 0; i < count; ++i) {
        if (events[i].data.u64 == kTagSocket && frontend_.connected()) {
            lost("the back-end closed the connection");
        } else if (events[i].data.u64 == kTagTimer) {
            uint64_t expirations;
            [[maybe_unused]] auto n = ::read(retry_timer_.get(), &expirations, sizeof(expirations));
            if (frontend_.connected()) continue;
            (void)reconnect({});
        }
    }
}

Result<void> VhostUserDevice::adopt_connection(UniqueFd socket) {
    if (frontend_.connected()) {
        // The old connection may not have been seen to end yet.
        lost("a new connection to the back-end was handed over");
    }
    return reconnect(std::move(socket));
}

Result<void> VhostUserDevice::reconnect(UniqueFd socket) {
    if (auto r = frontend_.reconnect(std::move(socket)); !r) {
        frontend_.disconnect();
        return r;
    }
    if (auto r = connected_now(); !r) {
        frontend_.disconnect();
        return r;
    }
    itimerspec off{};
    ::timerfd_settime(retry_timer_.get(), 0, &off, nullptr);
    ++reconnects_;
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - lost_at_);
    log::info("vhost-user '{}': reconnected after {} ms", frontend_.path(), waited.count());
    return {};
}

}  // namespace hospes::vhost_user
