#include "netback/switch.hpp"

#include <algorithm>
#include <cstring>

#include "devices/virtio/net.hpp"

namespace hospes::netback {

namespace {

constexpr size_t kEthernetHeader = 14;
constexpr uint16_t kEtherIpv4 = 0x0800, kEtherArp = 0x0806, kEtherIpv6 = 0x86dd;
// virtio_net_hdr_v1's flags and gso_type (virtio 1.2, 5.1.6; linux/virtio_net.h is not C++).
constexpr uint8_t kNeedsCsum = 1;
constexpr uint8_t kGsoNone = 0, kGsoTcpv4 = 1, kGsoTcpv6 = 4, kGsoEcn = 0x80;
using Header = devices::NetHeader;

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t load32(const uint8_t* p) { return uint32_t{load16(p)} << 16 | load16(p + 2); }
void store16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void store32(uint8_t* p, uint32_t v) {
    store16(p, static_cast<uint16_t>(v >> 16));
    store16(p + 2, static_cast<uint16_t>(v));
}
// The one's complement sum of `size` bytes (RFC 1071), not yet folded.
uint64_t add_bytes(uint64_t sum, const uint8_t* p, size_t size) {
    for (size_t i = 0; i + 1 < size; i += 2) sum += load16(p + i);
    if (size % 2) sum += static_cast<uint16_t>(p[size - 1] << 8);
    return sum;
}
uint16_t fold(uint64_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

uint64_t key(const uint8_t* mac) {
    uint64_t k = 0;
    for (int i = 0; i < 6; ++i) k = k << 8 | mac[i];
    return k;
}

bool is_multicast(const uint8_t* mac) { return (mac[0] & 1) != 0; }

template <size_t N>
bool listed(const std::vector<std::array<uint8_t, N>>& list, const uint8_t* address) {
    return std::any_of(list.begin(), list.end(),
                       [&](const auto& a) { return std::memcmp(a.data(), address, N) == 0; });
}

bool all_zero(const uint8_t* p, size_t n) {
    return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

// The link-local address a Linux guest forms from its MAC (EUI-64,
// RFC 4291 appendix A).
std::array<uint8_t, 16> link_local(const Mac& mac) {
    return {0xfe, 0x80, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(mac[0] ^ 2), mac[1], mac[2], 0xff, 0xfe,
            mac[3], mac[4], mac[5]};
}

bool ipv6_allowed(const PortIdentity& identity, const uint8_t* address) {
    return listed(identity.ipv6, address) || std::memcmp(link_local(identity.mac).data(), address, 16) == 0;
}

}  // namespace

size_t Switch::add_guest_port(std::string name, PortIdentity identity, std::function<void()> wake,
                              PortCounters* counters) {
    Port port;
    port.name = std::move(name);
    port.identity = std::move(identity);
    port.wake = std::move(wake);
    port.counters = counters;
    size_t index = 0;
    while (index < ports_.size() && !ports_[index].removed) ++index;
    guests_[key(port.identity.mac.data())] = index;
    if (index == ports_.size())
        ports_.push_back(std::move(port));
    else
        ports_[index] = std::move(port);
    return index;
}

void Switch::remove_guest_port(size_t index) {
    set_down(index);
    auto& port = ports_[index];
    if (auto guest = guests_.find(key(port.identity.mac.data())); guest != guests_.end() && guest->second == index)
        guests_.erase(guest);
    port = Port{};
    port.removed = true;
}

size_t Switch::add_uplink(std::string name, std::function<Result<void>(std::span<const iovec>)> send,
                          PortCounters* counters) {
    Port port;
    port.name = std::move(name);
    port.uplink = true;
    port.up = true;
    port.send = std::move(send);
    port.counters = counters;
    ports_.push_back(std::move(port));
    uplink_port_ = ports_.size() - 1;
    return ports_.size() - 1;
}

void Switch::set_up(size_t index, backends::NetOffloads offloads) {
    ports_[index].up = true;
    ports_[index].offloads = offloads;
}

void Switch::set_down(size_t index) {
    auto& port = ports_[index];
    port.up = false;
    port.offloads = {};
    for (auto* queue : {&port.queue, &port.uplink_queue}) {
        while (!queue->empty()) {
            recycle(std::move(queue->front()));
            queue->pop_front();
        }
    }
    port.queued_bytes = port.uplink_bytes = 0;
    port.tx_ready.reset();
    port.rx_ready.reset();
    port.uplink_held = false;
}

void Switch::set_policy(size_t index, const PortPolicy& policy, Clock::time_point now) {
    auto& port = ports_[index];
    port.weight = policy.weight;
    port.tx_packets.set(policy.tx.pps, policy.tx.pps_burst, now);
    port.tx_bytes.set(policy.tx.bps, policy.tx.bps_burst, now);
    port.capped = port.tx_packets.limited() || port.tx_bytes.limited();
    port.rx_packets.set(policy.rx.pps, policy.rx.pps_burst, now);
    port.rx_bytes.set(policy.rx.bps, policy.rx.bps_burst, now);
    // Under a receive cap, a quarter of a second's worth may wait (a long
    // queue would only delay what the guest's TCP needs to hear sooner).
    port.rx_queue_bytes = policy.rx.bps == 0 ? kQueueBytes : std::clamp<size_t>(policy.rx.bps / 4, kMaxPacket, kQueueBytes);
    // A port held back goes on under its new caps at once.
    if (port.tx_ready || port.rx_ready) {
        port.tx_ready.reset();
        port.rx_ready.reset();
        if (port.wake) port.wake();
    }
}

void Switch::set_uplink_limits(const Limits& limits, Clock::time_point now) {
    uplink_packets_.set(limits.pps, limits.pps_burst, now);
    uplink_bytes_.set(limits.bps, limits.bps_burst, now);
    uplink_queue_bytes_ = limits.bps == 0 ? kUplinkQueueBytes : std::clamp<size_t>(limits.bps / 8, kMaxPacket, kUplinkQueueBytes);
    uplink_ready_.reset();
    drain_uplink(now);
}

bool Switch::may_send(size_t index, Clock::time_point now) {
    auto& port = ports_[index];
    if (port.uplink_bytes >= uplink_queue_bytes_) {
        if (!port.uplink_held) ++port.counters->held_tx;
        port.uplink_held = true;
        return false;
    }
    if (port.tx_ready) return false;
    bool packets = port.tx_packets.allows(now), bytes = port.tx_bytes.allows(now);
    if (packets && bytes) return true;
    port.tx_ready = std::max(port.tx_packets.ready_at(), port.tx_bytes.ready_at());
    ++port.counters->held_tx;
    return false;
}

void Switch::tick(Clock::time_point now) {
    for (auto& port : ports_) {
        bool wake = false;
        for (auto* ready : {&port.tx_ready, &port.rx_ready}) {
            if (*ready && now >= **ready) {
                ready->reset();
                wake = true;
            }
        }
        if (wake && port.wake) port.wake();
    }
    drain_uplink(now);
}

std::optional<Clock::time_point> Switch::next_wakeup() const {
    std::optional<Clock::time_point> next = uplink_ready_;
    for (const auto& port : ports_)
        for (const auto& ready : {port.tx_ready, port.rx_ready})
            if (ready && (!next || *ready < *next)) next = ready;
    return next;
}

void Switch::drain_uplink(Clock::time_point now) {
    if (!uplink_port_ || (uplink_ready_ && now < *uplink_ready_)) return;
    uplink_ready_.reset();
    auto& uplink = ports_[*uplink_port_];
    for (;;) {
        // The waiting guest with the smallest start tag goes next.
        Port* next = nullptr;
        double next_start = 0;
        for (auto& port : ports_) {
            if (port.uplink_queue.empty()) continue;
            // A guest whose queue ran dry may catch up a little of the
            // share it missed, half a queue's worth (a sixteenth of a
            // second at the cap), as in hospes-blkback's scheduler: a
            // sender in a busy guest leaves short gaps, and without it
            // would lose its share to one that never does, for good.
            double credit = static_cast<double>(uplink_queue_bytes_) / 2;
            double start = std::max(port.finish, uplink_time_ - credit / port.weight);
            if (next == nullptr || start < next_start) {
                next = &port;
                next_start = start;
            }
        }
        if (next == nullptr) return;
        bool packets = uplink_packets_.allows(now), bytes = uplink_bytes_.allows(now);
        if (!packets || !bytes) {
            uplink_ready_ = std::max(uplink_packets_.ready_at(), uplink_bytes_.ready_at());
            return;
        }
        auto packet = std::move(next->uplink_queue.front());
        next->uplink_queue.pop_front();
        next->uplink_bytes -= packet.size();
        double frame = static_cast<double>(packet.size() - kHeaderSize);
        uplink_time_ = std::max(uplink_time_, next_start);
        next->finish = next_start + frame / next->weight;
        uplink_packets_.take(1);
        uplink_bytes_.take(frame);
        send_uplink(uplink, packet);
        recycle(std::move(packet));
        if (next->uplink_held && next->uplink_bytes < uplink_queue_bytes_) {
            next->uplink_held = false;
            next->wake();
        }
    }
}

Result<void> Switch::check_source(const Port& port, std::span<const uint8_t> packet) const {
    const uint8_t* frame = packet.data() + kHeaderSize;
    size_t size = packet.size() - kHeaderSize;
    const auto& identity = port.identity;
    if (std::memcmp(frame + 6, identity.mac.data(), 6) != 0) {
        ++port.counters->drop_spoofed_mac;
        return bad_input("dropped a frame from a MAC address that is not the port's");
    }
    if (!identity.restrict_ip()) return {};
    auto spoofed = [&](const char* what) -> Result<void> {
        ++port.counters->drop_spoofed_ip;
        return bad_input("dropped {} not from the port's addresses", what);
    };
    const uint8_t* l3 = frame + kEthernetHeader;
    size_t l3_size = size - kEthernetHeader;
    switch (load16(frame + 12)) {
        case kEtherIpv4:
            if (l3_size < 20) return spoofed("a truncated IPv4 packet");
            // 0.0.0.0 is a DHCP client's source before it has an address.
            if (listed(identity.ipv4, l3 + 12) || (all_zero(l3 + 12, 4) && l3[9] == 17)) return {};
            return spoofed("an IPv4 packet");
        case kEtherArp:
            // Sender hardware and protocol address; 0.0.0.0 is a probe
            // (RFC 5227).
            if (l3_size < 28) return spoofed("a truncated ARP packet");
            if (std::memcmp(l3 + 8, identity.mac.data(), 6) != 0) return spoofed("an ARP packet");
            if (listed(identity.ipv4, l3 + 14) || all_zero(l3 + 14, 4)) return {};
            return spoofed("an ARP packet");
        case kEtherIpv6: {
            if (l3_size < 40) return spoofed("a truncated IPv6 packet");
            // :: is duplicate address detection's source.
            if (!ipv6_allowed(identity, l3 + 8) && !all_zero(l3 + 8, 16)) return spoofed("an IPv6 packet");
            // A neighbour advertisement must be for an address of ours:
            // find ICMPv6 behind hop-by-hop, routing and destination options.
            uint8_t next = l3[6];
            size_t offset = 40;
            for (int hops = 0; hops < 8 && (next == 0 || next == 43 || next == 60); ++hops) {
                if (offset + 2 > l3_size) return spoofed("a truncated IPv6 packet");
                uint8_t following = l3[offset];
                offset += (static_cast<size_t>(l3[offset + 1]) + 1) * 8;
                next = following;
            }
            if (next == 0 || next == 43 || next == 60) return spoofed("an IPv6 packet with too many extension headers");
            if (next == 58 && offset < l3_size && l3[offset] == 136) {
                if (offset + 24 > l3_size) return spoofed("a truncated neighbour advertisement");
                if (!ipv6_allowed(identity, l3 + offset + 8)) return spoofed("a neighbour advertisement");
            }
            return {};
        }
        default:
            return spoofed("a frame that is neither IPv4, ARP nor IPv6");
    }
}

void Switch::learn(const Mac& mac, size_t port) {
    auto now = std::chrono::steady_clock::now();
    auto [entry, added] = table_.try_emplace(key(mac.data()), Entry{port, now});
    if (!added) {
        entry->second = {port, now};
        return;
    }
    if (table_.size() <= kTableLimit) return;
    // Full: forget what aged out; if nothing did, forget the new one
    // (its frames are flooded, which is still correct).
    std::erase_if(table_, [&](const auto& e) { return now - e.second.seen > kAgeing; });
    if (table_.size() > kTableLimit) table_.erase(key(mac.data()));
}

Result<void> Switch::input(size_t index, std::span<const iovec> packet) {
    auto& port = ports_[index];
    size_t size = 0;
    for (const auto& part : packet) size += part.iov_len;
    if (size < kHeaderSize + kEthernetHeader || size > kMaxPacket) {
        ++port.counters->drop_malformed;
        return bad_input("dropped a packet of {} bytes (a header and an Ethernet frame of 14 bytes to 64 KiB)", size);
    }
    // One copy: the frame is parsed here and queued for guests anyway.
    scratch_.resize(size);
    size_t offset = 0;
    for (const auto& part : packet) {
        std::memcpy(scratch_.data() + offset, part.iov_base, part.iov_len);
        offset += part.iov_len;
    }
    Header header;
    std::memcpy(&header, scratch_.data(), sizeof(header));
    if (header.gso_type != kGsoNone && header.gso_size < kMinGsoSize) {
        ++port.counters->drop_malformed;
        return bad_input("dropped a segmentation offload frame with a gso_size of {} (at least {})", header.gso_size,
                         kMinGsoSize);
    }
    ++port.counters->in_packets;
    port.counters->in_bytes += size - kHeaderSize;
    port.tx_packets.take(1);
    port.tx_bytes.take(static_cast<double>(size - kHeaderSize));
    if (!port.uplink)
        if (auto r = check_source(port, scratch_); !r) return r;

    const uint8_t* frame = scratch_.data() + kHeaderSize;
    Mac source;
    std::memcpy(source.data(), frame + 6, 6);
    // Guests' addresses are known (and checked above); only what is behind
    // an uplink is learned, and never a guest's address.
    if (port.uplink && !is_multicast(source.data()) && !guests_.contains(key(source.data()))) learn(source, index);
    if (!is_multicast(frame)) {
        if (auto guest = guests_.find(key(frame)); guest != guests_.end()) {
            if (guest->second != index) output(index, guest->second, scratch_);
            return {};
        }
        auto found = table_.find(key(frame));
        if (found != table_.end() && std::chrono::steady_clock::now() - found->second.seen <= kAgeing) {
            if (found->second.port != index) output(index, found->second.port, scratch_);
            return {};
        }
    }
    for (size_t other = 0; other < ports_.size(); ++other)
        if (other != index) output(index, other, scratch_);
    return {};
}

void Switch::send_uplink(Port& uplink, std::span<const uint8_t> packet) {
    iovec part{const_cast<uint8_t*>(packet.data()), packet.size()};
    if (uplink.send(std::span<const iovec>(&part, 1))) {
        ++uplink.counters->out_packets;
        uplink.counters->out_bytes += packet.size() - kHeaderSize;
    } else {
        ++uplink.counters->drop_queue_full;
    }
}

std::vector<uint8_t> Switch::buffer(std::span<const uint8_t> packet) {
    std::vector<uint8_t> copy;
    if (!spare_.empty()) {
        copy = std::move(spare_.back());
        spare_.pop_back();
    }
    copy.assign(packet.begin(), packet.end());
    return copy;
}

void Switch::recycle(std::vector<uint8_t>&& buffer) {
    if (spare_.size() < kQueueLimit) spare_.push_back(std::move(buffer));
}

void Switch::output(size_t from, size_t index, std::span<const uint8_t> packet) {
    auto& port = ports_[index];
    if (port.removed) return;
    if (!port.up) {
        ++port.counters->drop_down;
        return;
    }
    if (port.uplink) {
        if (!uplink_packets_.limited() && !uplink_bytes_.limited()) return send_uplink(port, packet);
        // A capped uplink: the frame waits its turn in the sender's queue.
        // may_send() holds a guest back once its queue is full, so it grows
        // past the bound by one burst's flood at most; beyond that, drop.
        auto& source = ports_[from];
        if (source.uplink_bytes >= 2 * uplink_queue_bytes_) {
            ++port.counters->drop_queue_full;
            return;
        }
        source.uplink_bytes += packet.size();
        source.uplink_queue.push_back(buffer(packet));
        drain_uplink(Clock::now());
        return;
    }
    Header header;
    std::memcpy(&header, packet.data(), sizeof(header));
    uint8_t gso = header.gso_type & ~kGsoEcn;
    bool takes_gso = gso == kGsoNone || (gso == kGsoTcpv4 && port.offloads.tso4) ||
                     (gso == kGsoTcpv6 && port.offloads.tso6);
    if (!takes_gso || ((header.gso_type & kGsoEcn) && !port.offloads.tso_ecn)) {
        // A guest that does not take this segmentation offload gets the
        // segments, made here, of a frame addressed to it (a flooded one
        // it would discard), when they fit in its queue: one frame costs
        // at most a queue's worth of packets.
        auto layout = parse_tcp_segmentation(packet);
        bool for_port = std::memcmp(packet.data() + kHeaderSize, port.identity.mac.data(), 6) == 0;
        if (!layout || !for_port || layout->count() > kQueueLimit) {
            ++port.counters->drop_offload;
            return;
        }
        if (port.queue.size() + layout->count() > kQueueLimit ||
            port.queued_bytes + layout->bytes() > port.rx_queue_bytes) {
            ++port.counters->drop_queue_full;
            return;
        }
        segment_tcp(packet, *layout, segments_, [&](std::span<const uint8_t> one) {
            if (enqueue(port, one)) ++port.counters->segments;
        });
        return;
    }
    enqueue(port, packet);
}

bool Switch::enqueue(Port& port, std::span<const uint8_t> packet) {
    Header header;
    std::memcpy(&header, packet.data(), sizeof(header));
    if (port.queue.size() >= kQueueLimit || port.queued_bytes + packet.size() > port.rx_queue_bytes) {
        ++port.counters->drop_queue_full;
        return false;
    }
    auto copy = buffer(packet);
    if ((header.flags & kNeedsCsum) && !port.offloads.checksum) {
        if (!complete_checksum(copy)) {
            ++port.counters->drop_malformed;
            recycle(std::move(copy));
            return false;
        }
    }
    bool was_empty = port.queue.empty();
    port.queued_bytes += copy.size();
    port.queue.push_back(std::move(copy));
    ++port.counters->out_packets;
    port.counters->out_bytes += packet.size() - kHeaderSize;
    if (was_empty) port.wake();
    return true;
}

size_t Switch::take(size_t index, std::span<uint8_t> buffer) {
    auto& port = ports_[index];
    if (port.queue.empty() || port.rx_ready) return 0;
    auto& packet = port.queue.front();
    double frame = static_cast<double>(packet.size() - kHeaderSize);
    if (port.rx_packets.limited() || port.rx_bytes.limited()) {
        auto now = Clock::now();
        bool packets = port.rx_packets.allows(now), bytes = port.rx_bytes.allows(now);
        if (!packets || !bytes) {
            port.rx_ready = std::max(port.rx_packets.ready_at(), port.rx_bytes.ready_at());
            ++port.counters->held_rx;
            return 0;
        }
        port.rx_packets.take(1);
        port.rx_bytes.take(frame);
    }
    size_t size = std::min(packet.size(), buffer.size());
    std::memcpy(buffer.data(), packet.data(), size);
    port.queued_bytes -= packet.size();
    recycle(std::move(packet));
    port.queue.pop_front();
    return size;
}

bool complete_checksum(std::span<uint8_t> packet) {
    Header header;
    std::memcpy(&header, packet.data(), sizeof(header));
    auto frame = packet.subspan(Switch::kHeaderSize);
    size_t start = header.csum_start, field = size_t{header.csum_start} + header.csum_offset;
    if (start >= frame.size() || field + 2 > frame.size()) return false;
    // The field holds the pseudo-header's sum (the sender's part).
    uint64_t sum = 0;
    for (size_t i = start; i + 1 < frame.size(); i += 2) sum += load16(&frame[i]);
    if ((frame.size() - start) % 2) sum += static_cast<uint16_t>(frame.back() << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t checksum = static_cast<uint16_t>(~sum);
    frame[field] = static_cast<uint8_t>(checksum >> 8);
    frame[field + 1] = static_cast<uint8_t>(checksum);
    header.flags &= static_cast<uint8_t>(~kNeedsCsum);
    std::memcpy(packet.data(), &header, sizeof(header));
    return true;
}

std::optional<TcpSegmentation> parse_tcp_segmentation(std::span<const uint8_t> packet) {
    constexpr size_t kL3 = kEthernetHeader;
    if (packet.size() < Switch::kHeaderSize + kL3) return std::nullopt;
    Header header;
    std::memcpy(&header, packet.data(), sizeof(header));
    uint8_t gso = header.gso_type & ~kGsoEcn;
    auto frame = packet.subspan(Switch::kHeaderSize);
    uint16_t type = load16(&frame[12]);
    TcpSegmentation layout;
    layout.v4 = type == kEtherIpv4;
    if (!(layout.v4 && gso == kGsoTcpv4) && !(type == kEtherIpv6 && gso == kGsoTcpv6)) return std::nullopt;
    layout.ip_size = 40;
    if (layout.v4) {
        if (frame.size() < kL3 + 20) return std::nullopt;
        layout.ip_size = size_t{frame[kL3] & 0xfu} * 4;
        if (layout.ip_size < 20 || frame[kL3 + 9] != 6) return std::nullopt;
    } else if (frame.size() < kL3 + 40 || frame[kL3 + 6] != 6) {
        return std::nullopt;  // extension headers before TCP are not segmented
    }
    size_t l4 = kL3 + layout.ip_size;
    if (frame.size() < l4 + 20) return std::nullopt;
    layout.tcp_size = static_cast<size_t>(frame[l4 + 12] >> 4) * 4;
    layout.mss = header.gso_size;
    if (layout.tcp_size < 20 || frame.size() <= layout.headers() || layout.mss == 0) return std::nullopt;
    layout.payload = frame.size() - layout.headers();
    return layout;
}

void segment_tcp(std::span<const uint8_t> packet, const TcpSegmentation& layout, std::vector<uint8_t>& scratch,
                 const std::function<void(std::span<const uint8_t>)>& emit) {
    constexpr size_t kL3 = kEthernetHeader;
    auto frame = packet.subspan(Switch::kHeaderSize);
    const size_t ip_size = layout.ip_size, tcp_size = layout.tcp_size, headers = layout.headers();
    const size_t l4 = kL3 + ip_size, mss = layout.mss, payload = layout.payload;
    const bool v4 = layout.v4;
    uint32_t sequence = load32(&frame[l4 + 4]);
    uint16_t id = v4 ? load16(&frame[kL3 + 4]) : 0;
    for (size_t offset = 0, i = 0; offset < payload; offset += mss, ++i) {
        size_t size = std::min(mss, payload - offset);
        scratch.assign(Switch::kHeaderSize + headers + size, 0);  // header: complete checksums, no GSO
        uint8_t* out = scratch.data() + Switch::kHeaderSize;
        std::memcpy(out, frame.data(), headers);
        std::memcpy(out + headers, frame.data() + headers + offset, size);
        size_t tcp_length = tcp_size + size;
        if (v4) {
            store16(out + kL3 + 2, static_cast<uint16_t>(ip_size + tcp_length));
            store16(out + kL3 + 4, static_cast<uint16_t>(id + i));
            store16(out + kL3 + 10, 0);
            store16(out + kL3 + 10, fold(add_bytes(0, out + kL3, ip_size)));
        } else {
            store16(out + kL3 + 4, static_cast<uint16_t>(tcp_length));
        }
        store32(out + l4 + 4, static_cast<uint32_t>(sequence + offset));
        // FIN and PSH only on the last segment, CWR only on the first.
        if (offset + size < payload) out[l4 + 13] &= static_cast<uint8_t>(~0x09);
        if (i > 0) out[l4 + 13] &= static_cast<uint8_t>(~0x80);
        store16(out + l4 + 16, 0);
        uint64_t sum = v4 ? add_bytes(0, out + kL3 + 12, 8) : add_bytes(0, out + kL3 + 8, 32);
        sum += 6 + tcp_length;
        store16(out + l4 + 16, fold(add_bytes(sum, out + l4, tcp_length)));
        emit(scratch);
    }
}

}  // namespace hospes::netback
