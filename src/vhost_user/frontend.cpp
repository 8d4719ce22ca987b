#include "vhost_user/frontend.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>

#include <cstring>

#include "common/log.hpp"

namespace hospes::vhost_user {

namespace {
// How long the monitor waits for any one reply: a back-end that takes
// longer is treated as dead (its connection is dropped and made again).
constexpr int kReplyTimeoutSeconds = 5;
constexpr uint64_t kWantedProtocolFeatures = kProtocolReplyAck | kProtocolConfig | kProtocolInflightShmfd;
// Far above what any queue layout needs (a few pages per queue).
constexpr uint64_t kMaxInflightBytes = 64 << 20;
}  // namespace

Result<void> Frontend::connect(UniqueFd socket) {
    auto channel = socket.valid() ? Result<Channel>(Channel(std::move(socket))) : connect_unix(path_);
    if (!channel) return std::unexpected(channel.error());
    timeval timeout{kReplyTimeoutSeconds, 0};
    ::setsockopt(channel->fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(channel->fd(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    channel_ = std::move(*channel);
    protocol_features_ = 0;
    auto fail = [this](const Error& error) {
        channel_.close();
        return std::unexpected(Error{error.kind, fmt::format("vhost-user '{}': {}", path_, error.message)});
    };
    auto features = call_u64(Request::GetFeatures);
    if (!features) return fail(features.error());
    if (!(*features & kFeatureProtocolFeatures)) return fail(Error{ErrorKind::BadInput, "the back-end has no protocol features"});
    auto protocol = call_u64(Request::GetProtocolFeatures);
    if (!protocol) return fail(protocol.error());
    if (!(*protocol & kProtocolConfig))
        return fail(Error{ErrorKind::BadInput, "the back-end cannot report the device configuration (CONFIG)"});
    uint64_t wanted = *protocol & kWantedProtocolFeatures;
    if (auto r = send_object(Request::SetProtocolFeatures, wanted); !r) return fail(r.error());
    protocol_features_ = wanted;
    if (auto r = send(Request::SetOwner); !r) return fail(r.error());
    features_ = *features;
    return {};
}

Result<void> Frontend::reconnect(UniqueFd socket) {
    if (auto r = connect(std::move(socket)); !r) return r;
    if (!started_) return {};
    // The old back-end could not report where its rings stood: the used
    // ring says how far requests completed, and the inflight region (when
    // there is one) tells the new back-end what to run again.
    for (size_t i = 0; i < queues_.size(); ++i) {
        auto used = memory_->slice(queues_[i].used + 2, 2);
        if (used.size() == 2) std::memcpy(&bases_[i], used.data(), 2);
    }
    if (auto r = setup_rings(); !r) {
        channel_.close();
        return r;
    }
    return {};
}

Result<Message> Frontend::call(Request request, std::span<const uint8_t> payload, std::span<const int> fds) {
    if (auto r = channel_.send(static_cast<uint32_t>(request), 0, payload, fds); !r) return std::unexpected(r.error());
    auto reply = channel_.receive();
    if (!reply) return std::unexpected(reply.error());
    if (!*reply) return host_error("no reply to {} within {} s", request_name(static_cast<uint32_t>(request)),
                                   kReplyTimeoutSeconds);
    if ((*reply)->header.request != static_cast<uint32_t>(request) || !((*reply)->header.flags & kFlagReply))
        return bad_input("reply to {} is for request {}", request_name(static_cast<uint32_t>(request)),
                         (*reply)->header.request);
    return std::move(**reply);
}

Result<uint64_t> Frontend::call_u64(Request request) {
    auto reply = call(request);
    if (!reply) return std::unexpected(reply.error());
    auto* value = reply->as<uint64_t>();
    if (value == nullptr) return bad_input("reply to {} is not one u64", request_name(static_cast<uint32_t>(request)));
    return *value;
}

Result<void> Frontend::send(Request request, std::span<const uint8_t> payload, std::span<const int> fds) {
    if (!(protocol_features_ & kProtocolReplyAck))
        return channel_.send(static_cast<uint32_t>(request), 0, payload, fds);
    if (auto r = channel_.send(static_cast<uint32_t>(request), kFlagNeedReply, payload, fds); !r) return r;
    auto reply = channel_.receive();
    if (!reply) return std::unexpected(reply.error());
    if (!*reply) return host_error("no reply to {} within {} s", request_name(static_cast<uint32_t>(request)),
                                   kReplyTimeoutSeconds);
    auto* status = (*reply)->as<uint64_t>();
    if ((*reply)->header.request != static_cast<uint32_t>(request) || status == nullptr)
        return bad_input("malformed reply to {}", request_name(static_cast<uint32_t>(request)));
    if (*status != 0) return host_error("the back-end refused {}", request_name(static_cast<uint32_t>(request)));
    return {};
}

Result<void> Frontend::read_config(uint32_t offset, std::span<uint8_t> data) {
    if (data.size() > kMaxConfigSize || offset > kMaxConfigSize - data.size())
        return bad_input("config read of {} bytes at {}", data.size(), offset);
    std::vector<uint8_t> payload(sizeof(ConfigHeader) + data.size());
    ConfigHeader header{offset, static_cast<uint32_t>(data.size()), 0};
    std::memcpy(payload.data(), &header, sizeof(header));
    auto reply = call(Request::GetConfig, payload);
    if (!reply) return std::unexpected(reply.error());
    if (reply->payload.size() != payload.size()) return bad_input("GET_CONFIG reply of {} bytes", reply->payload.size());
    std::memcpy(data.data(), reply->payload.data() + sizeof(ConfigHeader), data.size());
    return {};
}

Result<void> Frontend::start(const GuestMemory& memory, uint64_t features, std::span<const QueueSetup> queues) {
    memory_ = &memory;
    driver_features_ = features;
    queues_.assign(queues.begin(), queues.end());
    bases_.assign(queues.size(), 0);
    started_ = true;
    if (!connected()) return {};  // set up when the back-end is back
    if (auto r = setup_rings(); !r) {
        channel_.close();
        return r;
    }
    return {};
}

Result<void> Frontend::setup_rings() {
    if (auto r = send_object(Request::SetFeatures, driver_features_ | kFeatureProtocolFeatures); !r) return r;

    MemoryTable table{};
    std::vector<int> fds;
    for (const auto& region : memory_->regions()) {
        if (table.count == kMaxMemoryRegions) return host_error("more than {} memory regions", kMaxMemoryRegions);
        table.regions[table.count++] = {region.guest_address, region.host.size(),
                                        reinterpret_cast<uint64_t>(region.host.data()), region.file_offset};
        fds.push_back(region.file);
    }
    if (auto r = send(Request::SetMemTable,
                      {reinterpret_cast<const uint8_t*>(&table), 8 + sizeof(MemoryRegion) * table.count}, fds);
        !r)
        return r;

    if (protocol_features_ & kProtocolInflightShmfd) {
        if (!inflight_file_.valid()) {
            Inflight asked{0, 0, queue_count_, queue_max_size_, 0};
            auto reply = call(Request::GetInflightFd, {reinterpret_cast<const uint8_t*>(&asked), sizeof(asked)});
            if (!reply) return std::unexpected(reply.error());
            auto* given = reply->as<Inflight>();
            if (given == nullptr || reply->fds.size() != 1) return bad_input("malformed GET_INFLIGHT_FD reply");
            // A back-end is no more trusted than its guest: the region must
            // hold what it says, and stay that size (a file it could shrink
            // later would fault the monitor where it touches the mapping).
            struct stat st{};
            int seals = ::fcntl(reply->fds[0].get(), F_GET_SEALS);
            if (given->mmap_size == 0 || given->mmap_size > kMaxInflightBytes ||
                given->mmap_offset > kMaxInflightBytes || ::fstat(reply->fds[0].get(), &st) != 0 ||
                static_cast<uint64_t>(st.st_size) < given->mmap_offset + given->mmap_size)
                return bad_input("the inflight region handed over is smaller than the {} bytes it claims",
                                 given->mmap_size);
            if (seals < 0 || !(seals & F_SEAL_SHRINK))
                return bad_input("the inflight region handed over is not sealed against shrinking");
            // Mapped here so that a device reset can clear it.
            void* p = ::mmap(nullptr, given->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, reply->fds[0].get(),
                             static_cast<off_t>(given->mmap_offset));
            if (p == MAP_FAILED) return errno_error("cannot map the inflight region");
            inflight_ = Mapping(p, given->mmap_size);
            inflight_description_ = *given;
            inflight_file_ = std::move(reply->fds[0]);
        }
        int fd[] = {inflight_file_.get()};
        if (auto r = send_object(Request::SetInflightFd, inflight_description_, fd); !r) return r;
    }

    for (uint32_t i = 0; i < queues_.size(); ++i) {
        const auto& q = queues_[i];
        auto host = [this](uint64_t guest) { return reinterpret_cast<uint64_t>(memory_->slice(guest, 1).data()); };
        if (auto r = send_object(Request::SetVringNum, VringState{i, q.size}); !r) return r;
        if (auto r = send_object(Request::SetVringBase, VringState{i, bases_[i]}); !r) return r;
        VringAddress address{i, 0, host(q.descriptors), host(q.used), host(q.available), 0};
        if (auto r = send_object(Request::SetVringAddr, address); !r) return r;
        int call_fd[] = {q.call};
        if (auto r = send_object(Request::SetVringCall, uint64_t{i}, call_fd); !r) return r;
        int kick_fd[] = {q.kick};
        if (auto r = send_object(Request::SetVringKick, uint64_t{i}, kick_fd); !r) return r;
        if (auto r = send_object(Request::SetVringEnable, VringState{i, 1}); !r) return r;
    }
    return {};
}

Result<void> Frontend::stop() {
    if (!started_) return {};
    started_ = false;
    Result<void> result;
    if (connected()) {
        for (uint32_t i = 0; i < queues_.size(); ++i) {
            VringState state{i, 0};
            auto reply = call(Request::GetVringBase, {reinterpret_cast<const uint8_t*>(&state), sizeof(state)});
            if (!reply) {
                channel_.close();
                result = std::unexpected(reply.error());
                break;
            }
        }
    }
    // The driver starts again from a reset device: nothing is in flight.
    if (inflight_.data() != nullptr) std::memset(inflight_.data(), 0, inflight_.size());
    return result;
}

}  // namespace hospes::vhost_user
