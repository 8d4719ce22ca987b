// A guest port of the switch as its virtio-net device's host side: what the
// guest sends goes into the switch, what the switch queued for the port is
// what the guest receives. `wake` is the eventfd the switch's wake callback
// for this port writes (the device waits on it for frames to deliver).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <span>
#include <string>

#include "backends/net_backend.hpp"
#include "netback/switch.hpp"

namespace hospes::netback {

class SwitchPort final : public backends::NetBackend {
public:
    SwitchPort(Switch& fabric, size_t port, int wake) : switch_(fabric), port_(port), wake_(wake) {}

    const std::string& name() const override { return switch_.port_name(port_); }
    int fd() const override { return wake_; }
    Result<void> send(std::span<const iovec> parts) override { return switch_.input(port_, parts); }
    bool may_send() override { return switch_.may_send(port_); }
    Result<size_t> receive(std::span<uint8_t> buffer) override {
        size_t size = switch_.take(port_, buffer);
        if (size == 0) {
            // Empty: the next frame queued writes the eventfd again.
            uint64_t count;
            [[maybe_unused]] auto drained = ::read(wake_, &count, sizeof(count));
        }
        return size;
    }
    // The guest activated the device (and takes these offloads) or reset it.
    Result<void> set_offloads(backends::NetOffloads offloads) override {
        switch_.set_up(port_, offloads);
        return {};
    }

private:
    Switch& switch_;
    size_t port_;
    int wake_;
};

}  // namespace hospes::netback
