// A Linux tap device as a network backend: frames with a virtio-net header
// (IFF_VNET_HDR), non-blocking. A tap this object creates disappears when it
// is closed; a persistent tap made beforehand by the operator is used and
// left in place (and taken out of any bridge this object put it in).
#pragma once

#include <string>

#include "backends/net_backend.hpp"
#include "common/unique_fd.hpp"

namespace hospes::backends {

class Tap final : public NetBackend {
public:
    // Opens tap `name`, or a new one the kernel names ("hospes%d") when
    // `name` is empty, brings its link up and, when `bridge` is not empty,
    // adds it to that host bridge. Errors are one line (the caller says
    // which --net option they belong to).
    static Result<Tap> open(const std::string& name, const std::string& bridge);

    Tap(Tap&& other) noexcept;
    Tap& operator=(Tap&&) = delete;
    ~Tap() override;

    const std::string& name() const override { return name_; }
    int fd() const override { return fd_.get(); }
    Result<void> send(std::span<const iovec> parts) override;
    Result<size_t> receive(std::span<uint8_t> buffer) override;
    Result<void> set_offloads(NetOffloads offloads) override;
    void release() override;

    bool persistent() const { return persistent_; }
    static constexpr size_t kHeaderSize = 12;  // struct virtio_net_hdr_v1

private:
    Tap() = default;

    UniqueFd fd_;
    std::string name_;
    std::string bridge_added_;  // bridge to leave on close (persistent taps)
    bool persistent_ = false;
    // For leaving that bridge: opened at once, so that leaving needs no
    // system call but the ioctl.
    UniqueFd bridge_socket_;
    int ifindex_ = 0;
};

}  // namespace hospes::backends
