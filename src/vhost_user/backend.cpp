#include "vhost_user/backend.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cstring>

#include "common/log.hpp"

namespace hospes::vhost_user {

namespace {

constexpr uint64_t kTagSocket = 0;
constexpr uint64_t kTagKick = 1;        // + ring index
constexpr uint64_t kTagDevice = 1 << 16;  // + device event index

constexpr uint64_t kProtocolFeatures = kProtocolReplyAck | kProtocolConfig | kProtocolInflightShmfd | kProtocolResetDevice;
// The largest ring a front-end's driver may set up here. The device model
// offers a smaller maximum to drivers in our own monitor, but another
// front-end decides for itself: QEMU's virtio-mmio reports 1024
// (VIRTQUEUE_MAX_SIZE) whatever its device's queue size, and Linux takes it.
constexpr uint16_t kMaxRingSize = 1024;

// Requests that carry a reply of their own (REPLY_ACK does not add one).
bool has_reply(Request request) {
    switch (request) {
    case Request::GetFeatures:
    case Request::GetProtocolFeatures:
    case Request::GetVringBase:
    case Request::GetQueueNum:
    case Request::GetConfig:
    case Request::GetInflightFd:
    case Request::GetMaxMemSlots: return true;
    default: return false;
    }
}

}  // namespace

BackendConnection::BackendConnection(Channel channel, std::unique_ptr<virtio::Device> device, std::string name)
    : channel_(std::move(channel)), device_(std::move(device)), name_(std::move(name)) {}

Result<std::unique_ptr<BackendConnection>> BackendConnection::create(Channel channel,
                                                                     std::unique_ptr<virtio::Device> device,
                                                                     std::string name) {
    std::unique_ptr<BackendConnection> c(new BackendConnection(std::move(channel), std::move(device), std::move(name)));
    c->epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!c->epoll_.valid()) return errno_error("epoll_create1");
    int flags = ::fcntl(c->channel_.fd(), F_GETFL);
    if (flags < 0 || ::fcntl(c->channel_.fd(), F_SETFL, flags | O_NONBLOCK) != 0) return errno_error("fcntl");
    if (auto r = c->watch(c->channel_.fd(), kTagSocket); !r) return std::unexpected(r.error());
    for (size_t i = 0; i < c->device_->queue_max_sizes().size(); ++i) {
        c->queues_.emplace_back(kMaxRingSize);
        c->rings_.emplace_back();
    }
    c->device_events_ = c->device_->backend_events();
    for (size_t i = 0; i < c->device_events_.size(); ++i) {
        epoll_event event{};
        event.events = EPOLLIN | (c->device_events_[i].edge_triggered ? EPOLLET : 0u);
        event.data.u64 = kTagDevice + i;
        if (::epoll_ctl(c->epoll_.get(), EPOLL_CTL_ADD, c->device_events_[i].fd, &event) != 0)
            return errno_error("epoll_ctl");
    }
    return c;
}

BackendConnection::~BackendConnection() {
    stop_device();
    // Kick fds are shared with the front-end: leave its epoll registrations
    // explicitly (closing our copy would not).
    for (auto& ring : rings_)
        if (ring.kick.valid()) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, ring.kick.get(), nullptr);
}

Result<void> BackendConnection::watch(int fd, uint64_t tag) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = tag;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) return errno_error("epoll_ctl");
    return {};
}

bool BackendConnection::process() {
    epoll_event events[16];
    int count = ::epoll_wait(epoll_.get(), events, 16, 0);
    for (int i = 0; i < count; ++i) {
        uint64_t tag = events[i].data.u64;
        if (tag == kTagSocket) {
            // Every whole message the socket holds.
            for (;;) {
                auto message = channel_.receive();
                if (!message) {
                    log::info("{}: {}", name_, message.error().message);
                    return false;
                }
                if (!*message) break;
                if (auto r = handle(**message); !r) {
                    log::warn("{}: {}: {}; closing the connection", name_, request_name((*message)->header.request),
                              r.error().message);
                    return false;
                }
            }
        } else if (tag >= kTagDevice) {
            device_->backend_ready(static_cast<size_t>(tag - kTagDevice));
        } else {
            size_t index = static_cast<size_t>(tag - kTagKick);
            if (index >= rings_.size() || !rings_[index].kick.valid()) continue;
            uint64_t kicks;
            if (::read(rings_[index].kick.get(), &kicks, sizeof(kicks)) != sizeof(kicks)) continue;
            if (device_active_ && !broken_) device_->queue_notify(static_cast<uint16_t>(index));
        }
    }
    return true;
}

Result<void> BackendConnection::reply(const Message& message, std::span<const uint8_t> payload,
                                      std::span<const int> fds) {
    return channel_.send(message.header.request, kFlagReply, payload, fds);
}

Result<void> BackendConnection::reply_u64(const Message& message, uint64_t value) {
    return reply(message, {reinterpret_cast<const uint8_t*>(&value), sizeof(value)});
}

Result<void> BackendConnection::handle(const Message& message) {
    const auto request = static_cast<Request>(message.header.request);
    auto result = [&]() -> Result<void> {
        switch (request) {
        case Request::GetFeatures:
            return reply_u64(message, device_->features() | virtio::kFeatureVersion1 | virtio::kFeatureEventIndex |
                                          virtio::kFeatureIndirectDescriptors | kFeatureProtocolFeatures);
        case Request::SetFeatures: {
            auto* value = message.as<uint64_t>();
            if (value == nullptr) return bad_input("payload is not one u64");
            uint64_t offered = device_->features() | virtio::kFeatureVersion1 | virtio::kFeatureEventIndex |
                               virtio::kFeatureIndirectDescriptors | kFeatureProtocolFeatures;
            if (*value & ~offered) return bad_input("features {:#x} were never offered", *value & ~offered);
            if (device_active_) return bad_input("features changed while the device runs");
            features_ = *value;
            features_set_ = true;
            return {};
        }
        case Request::GetProtocolFeatures: return reply_u64(message, kProtocolFeatures);
        case Request::SetProtocolFeatures: {
            auto* value = message.as<uint64_t>();
            if (value == nullptr) return bad_input("payload is not one u64");
            if (*value & ~kProtocolFeatures) return bad_input("protocol features {:#x} were never offered", *value);
            protocol_features_ = *value;
            return {};
        }
        case Request::SetOwner: return {};
        case Request::ResetOwner:
        case Request::ResetDevice:
            stop_device();
            broken_ = false;
            for (auto& ring : rings_) {
                if (ring.kick.valid()) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, ring.kick.get(), nullptr);
                ring = Ring{};
            }
            features_set_ = false;
            return {};
        case Request::SetMemTable: return set_mem_table(message);
        case Request::SetVringNum:
        case Request::SetVringBase:
        case Request::SetVringEnable: {
            auto* state = message.as<VringState>();
            if (state == nullptr) return bad_input("payload is not a vring state");
            if (state->index >= rings_.size()) return bad_input("no queue {}", state->index);
            auto& ring = rings_[state->index];
            if (request == Request::SetVringEnable) {
                ring.enabled = state->num != 0;
                return update_device();
            }
            if (ring.started && device_active_) return bad_input("queue {} changed while it runs", state->index);
            if (request == Request::SetVringBase) {
                if (state->num > 0xffff) return bad_input("queue base {} is not a 16-bit index", state->num);
                ring.base = static_cast<uint16_t>(state->num);
                return {};
            }
            if (state->num == 0 || state->num > queues_[state->index].max_size() || !std::has_single_bit(state->num))
                return bad_input("queue {} size {} is not a power of two up to {}", state->index, state->num,
                                 queues_[state->index].max_size());
            ring.size = static_cast<uint16_t>(state->num);
            return {};
        }
        case Request::SetVringAddr: {
            auto* address = message.as<VringAddress>();
            if (address == nullptr) return bad_input("payload is not a vring address");
            if (address->index >= rings_.size()) return bad_input("no queue {}", address->index);
            if (rings_[address->index].started && device_active_)
                return bad_input("queue {} moved while it runs", address->index);
            rings_[address->index].address = *address;
            return {};
        }
        case Request::GetVringBase: {
            auto* state = message.as<VringState>();
            if (state == nullptr) return bad_input("payload is not a vring state");
            if (state->index >= rings_.size()) return bad_input("no queue {}", state->index);
            // The ring stops: requests in flight finish first, so the
            // position reported covers all of them.
            auto& ring = rings_[state->index];
            if (device_active_) stop_device();
            broken_ = false;
            if (ring.kick.valid()) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, ring.kick.get(), nullptr);
            ring.kick.reset();
            ring.started = false;
            VringState answer{state->index, ring.base};
            return reply(message, {reinterpret_cast<const uint8_t*>(&answer), sizeof(answer)});
        }
        case Request::SetVringKick:
        case Request::SetVringCall:
        case Request::SetVringErr: return set_vring_fd(message, request);
        case Request::GetQueueNum: return reply_u64(message, rings_.size());
        case Request::GetConfig: {
            auto* header = message.as<ConfigHeader>(true);
            if (header == nullptr) return bad_input("payload shorter than a config header");
            if (header->size > kMaxConfigSize || header->offset > kMaxConfigSize - header->size ||
                message.payload.size() != sizeof(ConfigHeader) + header->size)
                return bad_input("config read of {} bytes at {} is malformed", header->size, header->offset);
            std::vector<uint8_t> answer(message.payload.begin(), message.payload.end());
            device_->read_config(header->offset, {answer.data() + sizeof(ConfigHeader), header->size});
            return reply(message, answer);
        }
        case Request::SetConfig: {
            auto* header = message.as<ConfigHeader>(true);
            if (header == nullptr || header->size > kMaxConfigSize || header->offset > kMaxConfigSize - header->size ||
                message.payload.size() != sizeof(ConfigHeader) + header->size)
                return bad_input("config write is malformed");
            device_->write_config(header->offset, {message.payload.data() + sizeof(ConfigHeader), header->size});
            return {};
        }
        case Request::GetInflightFd: return get_inflight(message);
        case Request::SetInflightFd: return set_inflight(message);
        default: return bad_input("request {} is not supported", message.header.request);
        }
    }();
    // With REPLY_ACK the front-end learns the outcome. A failure ends the
    // connection either way, since the front-end and we no longer agree.
    const bool ack = (message.header.flags & kFlagNeedReply) && (protocol_features_ & kProtocolReplyAck) &&
                     !has_reply(request);
    if (ack) {
        auto acked = reply_u64(message, result ? 0 : 1);
        if (result) return acked;
    }
    return result;
}

Result<void> BackendConnection::set_mem_table(const Message& message) {
    // The table holds as many regions as it says, not kMaxMemoryRegions.
    MemoryTable whole{};
    const MemoryTable* table = &whole;
    if (message.payload.size() < 8 || message.payload.size() > sizeof(MemoryTable))
        return bad_input("payload of {} bytes is no memory table", message.payload.size());
    std::memcpy(&whole, message.payload.data(), message.payload.size());
    if (table->count == 0 || table->count > kMaxMemoryRegions)
        return bad_input("{} memory regions (1 to {})", table->count, kMaxMemoryRegions);
    if (message.payload.size() != 8 + sizeof(MemoryRegion) * table->count)
        return bad_input("payload of {} bytes for {} regions", message.payload.size(), table->count);
    if (message.fds.size() != table->count)
        return bad_input("{} file descriptors for {} memory regions", message.fds.size(), table->count);
    std::vector<GuestMemory::SharedRegion> shared;
    std::vector<UserRegion> user;
    for (uint32_t i = 0; i < table->count; ++i) {
        const auto& region = table->regions[i];
        if (region.user_address + region.size < region.user_address)
            return bad_input("memory region {} wraps around", i);
        shared.push_back({region.guest_address, region.size, message.fds[i].get(), region.mmap_offset});
        user.push_back({region.user_address, region.guest_address, region.size});
    }
    auto memory = GuestMemory::map(shared);
    if (!memory) return std::unexpected(memory.error());
    // The rings point into the old mapping: stop using it first.
    bool was_active = device_active_;
    stop_device();
    memory_.emplace(std::move(*memory));
    user_regions_ = std::move(user);
    if (was_active) return update_device();
    return {};
}

Result<uint64_t> BackendConnection::guest_address(uint64_t user_address, uint64_t size) const {
    for (const auto& region : user_regions_) {
        uint64_t offset = user_address - region.user_address;
        if (user_address >= region.user_address && offset < region.size && size <= region.size - offset)
            return region.guest_address + offset;
    }
    return bad_input("address {:#x} (+{:#x}) is not in the shared memory", user_address, size);
}

Result<void> BackendConnection::set_vring_fd(const Message& message, Request request) {
    auto* value = message.as<uint64_t>();
    if (value == nullptr) return bad_input("payload is not one u64");
    uint64_t index = *value & kVringIndexMask;
    bool no_fd = (*value & kVringNoFd) != 0;
    if ((*value & ~(kVringIndexMask | kVringNoFd)) != 0) return bad_input("unknown bits in {:#x}", *value);
    if (index >= rings_.size()) return bad_input("no queue {}", index);
    if (no_fd != message.fds.empty() || message.fds.size() > 1)
        return bad_input("{} file descriptors where {} were announced", message.fds.size(), no_fd ? 0 : 1);
    auto& ring = rings_[index];
    UniqueFd fd = no_fd ? UniqueFd() : UniqueFd(::fcntl(message.fds[0].get(), F_DUPFD_CLOEXEC, 0));
    if (!no_fd && !fd.valid()) return errno_error("fcntl");
    switch (request) {
    case Request::SetVringKick:
        // Polling a ring without kicks is not supported.
        if (no_fd) return bad_input("queue {} without a kick fd (polling) is not supported", index);
        if (ring.kick.valid()) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, ring.kick.get(), nullptr);
        ring.kick = std::move(fd);
        if (auto r = watch(ring.kick.get(), kTagKick + index); !r) return r;
        ring.started = true;
        // Without protocol features a ring is enabled as it starts.
        if (!(features_ & kFeatureProtocolFeatures)) ring.enabled = true;
        return update_device();
    case Request::SetVringCall:
        ring.call = std::move(fd);
        // An interrupt lost with a previous back-end would leave the driver
        // waiting: one extra costs nothing.
        interrupt();
        return {};
    default:
        ring.error = std::move(fd);
        return {};
    }
}

Result<void> BackendConnection::get_inflight(const Message& message) {
    auto* asked = message.as<Inflight>();
    if (asked == nullptr) return bad_input("payload is not an inflight description");
    if (asked->queue_count == 0 || asked->queue_count > rings_.size() || asked->queue_size == 0 ||
        asked->queue_size > kMaxRingSize)
        return bad_input("inflight region for {} queues of {} entries", asked->queue_count, asked->queue_size);
    uint64_t bytes = virtio::inflight_queue_bytes(asked->queue_size) * asked->queue_count;
    UniqueFd file(::memfd_create("hospes-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!file.valid()) return errno_error("memfd_create");
    if (::ftruncate(file.get(), static_cast<off_t>(bytes)) != 0) return errno_error("ftruncate");
    if (::fcntl(file.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) return errno_error("seal");
    // A fresh file reads as zeroes: every queue's part starts uninitialised.
    Inflight answer{bytes, 0, asked->queue_count, asked->queue_size, 0};
    int fds[] = {file.get()};
    return reply(message, {reinterpret_cast<const uint8_t*>(&answer), sizeof(answer)}, fds);
}

Result<void> BackendConnection::set_inflight(const Message& message) {
    auto* given = message.as<Inflight>();
    if (given == nullptr) return bad_input("payload is not an inflight description");
    if (message.fds.size() != 1) return bad_input("{} file descriptors, not 1", message.fds.size());
    if (given->queue_count == 0 || given->queue_count > rings_.size() || given->queue_size == 0 ||
        given->queue_size > kMaxRingSize)
        return bad_input("inflight region for {} queues of {} entries", given->queue_count, given->queue_size);
    uint64_t needed = virtio::inflight_queue_bytes(given->queue_size) * given->queue_count;
    if (given->mmap_size < needed) return bad_input("inflight region of {} bytes, {} needed", given->mmap_size, needed);
    // Mapped only when sealed against shrinking and long enough, as guest
    // memory is (see GuestMemory::map).
    int fd = message.fds[0].get();
    int seals = ::fcntl(fd, F_GET_SEALS);
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) return bad_input("inflight file is not sealed against shrinking");
    if (end < 0 || given->mmap_offset > static_cast<uint64_t>(end) ||
        static_cast<uint64_t>(end) - given->mmap_offset < needed || given->mmap_offset % 4096 != 0)
        return bad_input("inflight region of {} bytes at {} does not fit its file", needed, given->mmap_offset);
    void* p = ::mmap(nullptr, needed, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(given->mmap_offset));
    if (p == MAP_FAILED) return errno_error("cannot map the inflight region");
    stop_device();
    inflight_logs_.clear();
    inflight_ = Mapping(p, needed);
    inflight_queue_size_ = given->queue_size;
    uint64_t stride = virtio::inflight_queue_bytes(given->queue_size);
    for (uint16_t q = 0; q < given->queue_count; ++q)
        inflight_logs_.emplace_back(std::span<uint8_t>(inflight_.data() + stride * q, stride));
    return update_device();
}

Result<void> BackendConnection::update_device() {
    bool ready = memory_.has_value() && features_set_ && !rings_.empty();
    for (const auto& ring : rings_) ready = ready && ring.started && ring.enabled && ring.size != 0 && ring.address;
    if (!ready) {
        stop_device();
        return {};
    }
    if (device_active_ || broken_) return {};
    for (size_t i = 0; i < rings_.size(); ++i) {
        auto& ring = rings_[i];
        auto& queue = queues_[i];
        queue.reset();
        queue.set_size(ring.size);
        const uint64_t n = ring.size;
        auto descriptors = guest_address(ring.address->descriptor, 16 * n);
        auto available = guest_address(ring.address->available, 6 + 2 * n);
        auto used = guest_address(ring.address->used, 6 + 8 * n);
        if (!descriptors) return std::unexpected(descriptors.error());
        if (!available) return std::unexpected(available.error());
        if (!used) return std::unexpected(used.error());
        queue.set_descriptor_table(*descriptors);
        queue.set_driver_area(*available);
        queue.set_device_area(*used);
        queue.set_event_idx(features_ & virtio::kFeatureEventIndex);
        if (auto r = queue.activate(*memory_); !r) return r;
        queue.set_inflight_log(i < inflight_logs_.size() && ring.size <= inflight_queue_size_ ? &inflight_logs_[i]
                                                                                               : nullptr);
        size_t again = queue.resume(ring.base);
        if (again > 0) log::info("{}: queue {}: {} requests in flight before are run again", name_, i, again);
        counters_.resubmitted += again;
    }
    virtio::ActiveQueues active{&*memory_, &queues_, [this] { interrupt(); },
                                [this](const Error& error) {
                                    log::warn("{}: {}; the queue stops until the driver resets the device", name_,
                                              error.message);
                                    broken_ = true;
                                    for (auto& ring : rings_)
                                        if (ring.error.valid()) {
                                            uint64_t one = 1;
                                            [[maybe_unused]] auto n = ::write(ring.error.get(), &one, sizeof(one));
                                        }
                                },
                                {}, -1};
    if (auto r = device_->activate(features_ & ~kFeatureProtocolFeatures, std::move(active)); !r) return r;
    device_active_ = true;
    // Buffers made available while no back-end ran, and what is resubmitted.
    for (size_t i = 0; i < rings_.size() && !broken_; ++i) device_->queue_notify(static_cast<uint16_t>(i));
    return {};
}

void BackendConnection::stop_device() {
    if (!device_active_) return;
    device_->quiesce();
    for (size_t i = 0; i < rings_.size(); ++i) rings_[i].base = queues_[i].next_available();
    device_->reset();
    for (auto& queue : queues_) queue.reset();
    device_active_ = false;
}

void BackendConnection::interrupt() {
    // One queue per call fd; devices with one queue signal queue 0.
    for (auto& ring : rings_)
        if (ring.call.valid()) {
            uint64_t one = 1;
            [[maybe_unused]] auto n = ::write(ring.call.get(), &one, sizeof(one));
        }
}

}  // namespace hospes::vhost_user
