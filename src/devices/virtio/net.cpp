#include "devices/virtio/net.hpp"

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.hpp"

namespace hospes::devices {

namespace {

constexpr uint16_t kStatusLinkUp = 1;    // VIRTIO_NET_S_LINK_UP

// The configuration space we fill (5.1.4): mac, then status; the rest of
// struct virtio_net_config belongs to features we do not offer.
struct NetConfigSpace {
    uint8_t mac[6];
    uint16_t status;
};
static_assert(sizeof(NetConfigSpace) == 8);

// At most one warning per kind every so often, carrying the running count,
// so a guest cannot flood the log one packet at a time.
constexpr auto kWarningInterval = std::chrono::seconds(10);

}  // namespace

Result<std::unique_ptr<VirtioNet>> VirtioNet::create(std::unique_ptr<backends::NetBackend> backend,
                                                     std::optional<std::array<uint8_t, 6>> mac) {
    std::array<uint8_t, 6> address{};
    if (mac) {
        address = *mac;
    } else {
        if (::getrandom(address.data(), address.size(), 0) != static_cast<ssize_t>(address.size()))
            return errno_error("cannot make a random MAC address");
        address[0] = static_cast<uint8_t>((address[0] & 0xfe) | 0x02);  // unicast, locally administered
    }
    UniqueFd resume(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!resume.valid()) return errno_error("eventfd");
    return std::unique_ptr<VirtioNet>(new VirtioNet(std::move(backend), address, std::move(resume)));
}

VirtioNet::VirtioNet(std::unique_ptr<backends::NetBackend> backend, std::array<uint8_t, 6> mac, UniqueFd resume)
    : backend_(std::move(backend)), mac_(mac), resume_(std::move(resume)), rx_packet_(kMaxPacket) {}

Result<void> VirtioNet::set_tx_cap(uint64_t bytes_per_second, uint64_t burst_bytes) {
    // The timer only for a capped card (hospes-netback's confined worker
    // uses this device uncapped and may not make one).
    if (!cap_timer_.valid()) {
        cap_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
        if (!cap_timer_.valid()) return errno_error("timerfd_create");
    }
    tx_cap_.set(bytes_per_second, burst_bytes, driver_domain::Clock::now());
    return {};
}

uint64_t VirtioNet::features() const {
    using namespace net_feature;
    // Both directions offer checksum and TSO offloads, which the tap's vnet
    // header carries as they are; the guest picks any consistent subset.
    return kMac | kStatus | kCsum | kGuestCsum | kGuestTso4 | kGuestTso6 | kGuestEcn | kHostTso4 | kHostTso6 |
           kHostEcn | kMrgRxbuf;
}

void VirtioNet::read_config(uint64_t offset, std::span<uint8_t> data) {
    NetConfigSpace config{};
    std::memcpy(config.mac, mac_.data(), mac_.size());
    config.status = kStatusLinkUp;
    std::array<uint8_t, sizeof(config)> bytes;
    std::memcpy(bytes.data(), &config, sizeof(config));
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < bytes.size() ? bytes[offset + i] : 0;
}

Result<void> VirtioNet::activate(uint64_t features, virtio::ActiveQueues queues) {
    using namespace net_feature;
    // What the guest accepted decides what the tap may hand us; the
    // dependencies (TSO needs checksums, ECN needs TSO) are the spec's.
    backends::NetOffloads offloads;
    offloads.checksum = (features & kGuestCsum) != 0;
    offloads.tso4 = offloads.checksum && (features & kGuestTso4);
    offloads.tso6 = offloads.checksum && (features & kGuestTso6);
    offloads.tso_ecn = (offloads.tso4 || offloads.tso6) && (features & kGuestEcn);
    if (auto r = backend_->set_offloads(offloads); !r) return r;
    features_ = features;
    active_ = std::move(queues);
    // Packets that waited in the tap meanwhile are read at the driver's
    // first rx notification, once it has given buffers.
    running_ = true;
    return {};
}

void VirtioNet::reset() {
    running_ = false;
    tx_held_ = false;
    active_ = {};
    features_ = 0;
    rx_chains_.clear();
    rx_chain_bytes_ = 0;
    rx_pending_ = 0;
    if (auto r = backend_->set_offloads({}); !r) log::warn("virtio-net {}: {}", backend_->name(), r.error().message);
}

std::vector<virtio::Device::BackendEvent> VirtioNet::backend_events() const {
    std::vector<BackendEvent> events = {{backend_->fd(), true}, {resume_.get(), true}};
    if (cap_timer_.valid()) events.push_back({cap_timer_.get(), true});
    return events;
}

void VirtioNet::queue_notify(uint16_t index) {
    if (index == kRxQueue) process_rx();
    if (index == kTxQueue) process_tx();
}

void VirtioNet::backend_ready(size_t index) {
    if (index == kResumeEvent || index == kCapEvent) {
        uint64_t count;
        [[maybe_unused]] auto got = ::read(index == kResumeEvent ? resume_.get() : cap_timer_.get(), &count, sizeof(count));
        if (index == kCapEvent) cap_waiting_ = false;
        process_tx();
    } else if (tx_held_) {
        tx_held_ = false;
        process_tx();
    }
    process_rx();
}

void VirtioNet::resume_later() {
    uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(resume_.get(), &one, sizeof(one));
}

void VirtioNet::fail(const Error& error) {
    running_ = false;
    rx_chains_.clear();
    rx_chain_bytes_ = 0;
    active_.fail(error);
}

void VirtioNet::warn(const char* what, uint64_t count) {
    auto now = std::chrono::steady_clock::now();
    if (last_warning_ != std::chrono::steady_clock::time_point{} && now - last_warning_ < kWarningInterval) return;
    last_warning_ = now;
    log::warn("virtio-net {}: {} ({} so far; further reports at most every {} s)", backend_->name(), what, count,
              kWarningInterval.count());
}

// ---------------------------------------------------------------- transmit

void VirtioNet::process_tx() {
    if (!running_) return;
    auto& queue = (*active_.queues)[kTxQueue];
    const auto& memory = *active_.memory;
    bool used = false;
    unsigned handled = 0;
    auto now = driver_domain::Clock::now();
    for (; handled < kBurst; ++handled) {
        if (!backend_->may_send()) {
            tx_held_ = true;
            break;
        }
        if (cap_waiting_) break;
        if (!tx_cap_.allows(now)) {
            // Over the cap: the frames wait in the ring until the timer.
            auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(tx_cap_.ready_at() - now).count();
            itimerspec at{};
            at.it_value.tv_sec = std::max<int64_t>(wait, 1000) / 1000000000;
            at.it_value.tv_nsec = std::max<int64_t>(wait, 1000) % 1000000000;
            ::timerfd_settime(cap_timer_.get(), 0, &at, nullptr);
            cap_waiting_ = true;
            break;
        }
        auto popped = queue.pop(memory, tx_chain_);
        if (!popped) return fail(popped.error());
        if (!*popped) break;
        if (transmit(tx_chain_)) tx_cap_.take(static_cast<double>(tx_chain_.readable_size() - sizeof(NetHeader)));
        // Transmit buffers are only read: nothing is written back.
        if (auto r = queue.push(memory, tx_chain_.head, 0); !r) return fail(r.error());
        used = true;
    }
    if (handled == kBurst) resume_later();
    if (used && queue.should_notify(memory)) active_.interrupt();
}

bool VirtioNet::transmit(const virtio::Chain& chain) {
    size_t size = chain.readable_size();
    if (!chain.writable.empty() || size < sizeof(NetHeader) || size > kMaxPacket) {
        ++stats_.tx_malformed;
        warn("dropped a malformed transmit chain (device-writable buffers, or not 12 bytes to 64 KiB + 12)",
             stats_.tx_malformed);
        return false;
    }
    // Zero copy: the kernel gathers header and frame from guest memory.
    iov_.clear();
    for (auto buffer : chain.readable)
        if (!buffer.empty()) iov_.push_back({buffer.data(), buffer.size()});
    if (auto r = backend_->send(iov_); !r) {
        ++stats_.tx_errors;
        warn(r.error().message.c_str(), stats_.tx_errors);
        return false;
    }
    ++stats_.tx_packets;
    stats_.tx_bytes += size - sizeof(NetHeader);
    return true;
}

// ----------------------------------------------------------------- receive

void VirtioNet::process_rx() {
    if (!running_) return;
    rx_used_ = false;
    budget_ = kBurst;
    receive_packets();
    if (!running_) return;
    auto& queue = (*active_.queues)[kRxQueue];
    if (rx_used_ && queue.should_notify(*active_.memory)) active_.interrupt();
}

void VirtioNet::receive_packets() {
    for (unsigned packets = 0; packets < kBurst; ++packets) {
        if (rx_pending_ == 0) {
            // A packet is taken from the tap only when there is a buffer to
            // put it in; otherwise it waits there until the guest adds one
            // and notifies the queue.
            if (!gather_rx(1)) return;
            auto got = backend_->receive(rx_packet_);
            if (!got) {
                ++stats_.rx_errors;
                warn(got.error().message.c_str(), stats_.rx_errors);
                return;
            }
            if (*got == 0) return;  // the tap is empty: its fd wakes us on the next packet
            rx_pending_ = *got;
        }
        if (!deliver()) return;
    }
    resume_later();
}

bool VirtioNet::gather_rx(size_t bytes) {
    auto& queue = (*active_.queues)[kRxQueue];
    const auto& memory = *active_.memory;
    while (rx_chains_.empty() || rx_chain_bytes_ < bytes) {
        if (budget_ == 0) {
            resume_later();
            return false;
        }
        --budget_;
        auto chain = queue.pop(memory);
        if (!chain) {
            fail(chain.error());
            return false;
        }
        if (!*chain) return false;  // pop() armed the notification for the next buffer
        if ((*chain)->writable_size() < sizeof(NetHeader)) {
            // Every receive buffer must hold at least the header (5.1.6.3.1).
            ++stats_.rx_malformed;
            warn("returned a receive chain with room for less than the 12-byte header", stats_.rx_malformed);
            if (auto r = queue.push(memory, (*chain)->head, 0); !r) {
                fail(r.error());
                return false;
            }
            rx_used_ = true;
            continue;
        }
        rx_chain_bytes_ += (*chain)->writable_size();
        rx_chains_.push_back(std::move(**chain));
    }
    return true;
}

bool VirtioNet::deliver() {
    auto& queue = (*active_.queues)[kRxQueue];
    const auto& memory = *active_.memory;
    const size_t size = rx_pending_;
    auto drop = [&](const char* why) {
        ++stats_.rx_dropped;
        warn(why, stats_.rx_dropped);
        rx_pending_ = 0;
        return true;
    };
    if (size < sizeof(NetHeader)) return drop("dropped a received packet shorter than its header");

    size_t chains = 1;
    if (features_ & net_feature::kMrgRxbuf) {
        if (!gather_rx(size)) {
            // Holding the whole ring and still short: it can never fit.
            if (running_ && rx_chains_.size() >= queue.size())
                return drop("dropped a received packet larger than all receive buffers");
            return false;
        }
        for (size_t room = rx_chains_.front().writable_size(); room < size; ++chains)
            room += rx_chains_[chains].writable_size();
    } else {
        if (!gather_rx(1)) return false;
        // Without mergeable buffers a packet must fit one chain (5.1.6.3.2).
        if (rx_chains_.front().writable_size() < size)
            return drop("dropped a received packet larger than the receive buffer");
    }

    NetHeader header;
    std::memcpy(&header, rx_packet_.data(), sizeof(header));
    // Without GUEST_CSUM the flags must be zero (5.1.6.4.1); the tap marks
    // packets DATA_VALID regardless.
    if (!(features_ & net_feature::kGuestCsum)) header.flags = 0;
    header.num_buffers = static_cast<uint16_t>(chains);
    std::memcpy(rx_packet_.data(), &header, sizeof(header));

    size_t offset = 0;
    for (size_t i = 0; i < chains; ++i) {
        virtio::Chain chain = std::move(rx_chains_.front());
        rx_chains_.pop_front();
        rx_chain_bytes_ -= chain.writable_size();
        size_t written = 0;
        for (auto buffer : chain.writable) {
            size_t n = std::min(buffer.size(), size - offset);
            if (n == 0) continue;
            std::memcpy(buffer.data(), rx_packet_.data() + offset, n);
            offset += n;
            written += n;
            if (offset == size) break;
        }
        if (auto r = queue.push(memory, chain.head, static_cast<uint32_t>(written)); !r) {
            fail(r.error());
            return false;
        }
    }
    rx_used_ = true;
    ++stats_.rx_packets;
    stats_.rx_bytes += size - sizeof(NetHeader);
    rx_pending_ = 0;
    return true;
}

virtio::Device::Counters VirtioNet::counters() const {
    return {{"tx_packets", stats_.tx_packets}, {"tx_bytes", stats_.tx_bytes},
            {"rx_packets", stats_.rx_packets}, {"rx_bytes", stats_.rx_bytes},
            {"tx_dropped", stats_.tx_malformed + stats_.tx_errors},
            {"rx_dropped", stats_.rx_dropped + stats_.rx_malformed + stats_.rx_errors}};
}

}  // namespace hospes::devices
