#include "blkback/server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>

#include <nlohmann/json.hpp>

#include "backends/uring_block.hpp"
#include "blkback/control.hpp"
#include "driver_domain/control_socket.hpp"
#include "cli/device_options.hpp"
#include "common/log.hpp"
#include "driver_domain/options.hpp"
#include "devices/virtio/blk.hpp"
#include "common/fd_message.hpp"

namespace hospes::blkback {

namespace {
// epoll tags: an export's listener is 2*i, its connection 2*i+1; the
// control socket's listener and clients and the signals are at the top.
constexpr uint64_t kTagSignals = ~0ull;
constexpr uint64_t kTagControl = ~0ull - 1;
constexpr uint64_t kTagManager = ~0ull - 2;
constexpr unsigned kRingDepth = 256;  // requests in flight per disk
constexpr uint64_t kTagControlClient = 1ull << 62;  // + slot

using driver_domain::parse_count;
using driver_domain::valid_name;

// Applies one KEY=VALUE of a policy; false when the key is not one.
Result<bool> parse_policy_option(std::string_view spec, std::string_view option, PolicyChange& change) {
    auto at = option.find('=');
    if (at == std::string_view::npos) return false;
    auto key = option.substr(0, at), value = option.substr(at + 1);
    bool bytes = key == "bps" || key == "bps_burst";
    std::optional<uint64_t>* target = key == "iops"         ? &change.iops
                                      : key == "bps"        ? &change.bps
                                      : key == "iops_burst" ? &change.iops_burst
                                      : key == "bps_burst"  ? &change.bps_burst
                                                            : nullptr;
    if (target == nullptr && key != "weight" && key != "depth") return false;
    auto n = parse_count(spec, key, value, bytes);
    if (!n) return std::unexpected(n.error());
    if (key == "weight") {
        if (*n < 1 || *n > Policy::kMaxWeight) return bad_input("'{}': weight must be 1 to {}", spec, Policy::kMaxWeight);
        change.weight = static_cast<uint32_t>(*n);
    } else if (key == "depth") {
        if (*n < 1 || *n > 1024) return bad_input("'{}': depth must be 1 to 1024", spec);
        change.depth = static_cast<uint32_t>(*n);
    } else {
        *target = *n;
    }
    return true;
}

void apply(const PolicyChange& change, Limits& limits) {
    if (change.iops) limits.iops = *change.iops;
    if (change.bps) limits.bps = *change.bps;
    if (change.iops_burst) limits.iops_burst = *change.iops_burst;
    if (change.bps_burst) limits.bps_burst = *change.bps_burst;
}

std::string device_id(uint64_t device) { return fmt::format("{}:{}", major(device), minor(device)); }

// The host disk a file lives on: a block device is its own.
Result<uint64_t> host_device_of(int fd, std::string_view path) {
    struct stat st{};
    if (::fstat(fd, &st) != 0) return errno_error("cannot stat '{}'", path);
    return S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
}
}  // namespace

sandbox::Allowlist worker_allowlist() {
    // It has every file it needs already open (disks, sockets, the
    // supervisor's io_urings, restricted to the disk), so openat, socket,
    // connect and execve are out.
    sandbox::Allowlist list{"blkback worker", {}};
    // The event loop, sockets and eventfds.
    for (const char* name : {"epoll_create1", "epoll_ctl", "epoll_wait", "accept4", "recvmsg", "sendmsg", "read",
                             "write", "writev", "close", "eventfd2", "newfstatat"})
        list.allow(name);
    // Guest memory and the inflight region (never executable).
    list.allow_if("mmap", {{2, PROT_EXEC, 0}}).allow_if("mprotect", {{2, PROT_EXEC, 0}});
    for (const char* name : {"munmap", "madvise", "mremap", "brk", "memfd_create", "ftruncate"}) list.allow(name);
    const uint64_t fcntls[] = {F_GETFL, F_SETFL, F_DUPFD_CLOEXEC, F_ADD_SEALS, F_GET_SEALS};
    list.allow_values("fcntl", 1, fcntls).allow("lseek");
    // The supervisor's rings, entered (never made here: io_uring's
    // operations bypass seccomp); a disk added while it runs goes into a
    // spare one, restricted already (backends::attach_disk).
    list.allow("io_uring_enter");
    const uint64_t registrations[] = {IORING_REGISTER_FILES_UPDATE, IORING_REGISTER_ENABLE_RINGS};
    list.allow_values("io_uring_register", 1, registrations);
    // Signals, threads' primitives, time, exit.
    for (const char* name : {"rt_sigprocmask", "rt_sigreturn", "signalfd4", "futex", "getpid", "gettid",
                             "clock_gettime", "restart_syscall", "exit", "exit_group"})
        list.allow(name);
    return list;
}

Result<DiskExport> parse_export(std::string_view spec) {
    auto at = spec.find('=');
    if (at == std::string_view::npos)
        return bad_input("--disk '{}': expected NAME=PATH[,ro][,direct][,weight=N][,iops=N][,bps=N]", spec);
    DiskExport e;
    e.name = std::string(spec.substr(0, at));
    if (!valid_name(e.name))
        return bad_input("--disk '{}': name '{}' must be 1 to 64 letters, digits, '-', '_' or '.'", spec, e.name);
    // The policy's options are ours; the rest are the disk's.
    std::string disk_spec;
    PolicyChange change;
    size_t begin = at + 1;
    for (bool first = true; begin <= spec.size(); first = false) {
        size_t comma = spec.find(',', begin);
        if (comma == std::string_view::npos) comma = spec.size();
        auto option = spec.substr(begin, comma - begin);
        begin = comma + 1;
        if (!first) {
            auto ours = parse_policy_option(spec, option, change);
            if (!ours) return std::unexpected(ours.error());
            if (*ours) {
                if (change.depth) return bad_input("--disk '{}': depth is set per host disk (--host-disk)", spec);
                continue;
            }
            disk_spec += ',';
        }
        disk_spec += option;
    }
    auto disk = cli::parse_disk(disk_spec);
    if (!disk) return std::unexpected(disk.error());
    if (!disk->vhost_user_socket.empty()) return bad_input("--disk '{}': a back-end serves files and devices", spec);
    e.disk = std::move(*disk);
    if (change.weight) e.policy.weight = *change.weight;
    apply(change, e.policy.limits);
    return e;
}

Result<DiskExport> export_from_json(const nlohmann::json& fields) {
    if (!fields.is_object()) return bad_input("a disk must be an object of named fields");
    DiskExport e;
    PolicyChange change;
    for (const auto& [key, value] : fields.items()) {
        if (key == "name" || key == "path") {
            if (!value.is_string()) return bad_input("disk: \"{}\" must be a string", key);
            (key == "name" ? e.name : e.disk.path) = value.get<std::string>();
        } else if (key == "socket" || key == "owner") {
            if (auto r = driver_domain::read_socket_place(key, value, e.socket); !r)
                return bad_input("disk: {}", r.error().message);
        } else if (key == "read_only" || key == "direct") {
            if (!value.is_boolean()) return bad_input("disk: \"{}\" must be true or false", key);
            (key == "read_only" ? e.disk.read_only : e.disk.direct) = value.get<bool>();
        } else {
            if (!value.is_number_unsigned()) return bad_input("disk: \"{}\" must be a number of at least 0", key);
            // The same keys and ranges as the command line's options.
            auto ours = parse_policy_option("disk", key + "=" + std::to_string(value.get<uint64_t>()), change);
            if (!ours) return std::unexpected(ours.error());
            if (!*ours || change.depth) return bad_input("disk: unknown field \"{}\"", key);
        }
    }
    if (!valid_name(e.name)) return bad_input("disk: name '{}' must be 1 to 64 letters, digits, '-', '_' or '.'", e.name);
    if (e.disk.path.empty() || std::any_of(e.disk.path.begin(), e.disk.path.end(),
                                           [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
        return bad_input("disk {}: the path is empty or holds control characters", e.name);
    if (change.weight) e.policy.weight = *change.weight;
    apply(change, e.policy.limits);
    return e;
}

nlohmann::json export_to_json(const DiskExport& e) {
    const auto& l = e.policy.limits;
    nlohmann::json fields = {{"name", e.name},          {"path", e.disk.path}, {"read_only", e.disk.read_only},
                             {"direct", e.disk.direct}, {"weight", e.policy.weight}, {"iops", l.iops},
                             {"bps", l.bps},            {"iops_burst", l.iops_burst}, {"bps_burst", l.bps_burst}};
    if (!e.socket.path.empty()) fields["socket"] = e.socket.path;
    if (e.socket.owner != 0) fields["owner"] = e.socket.owner;
    return fields;
}

Result<HostDiskConfig> parse_host_disk(std::string_view spec) {
    HostDiskConfig config;
    size_t comma = spec.find(',');
    config.path = std::string(spec.substr(0, comma));
    if (config.path.empty()) return bad_input("--host-disk '{}': no path given", spec);
    PolicyChange change;
    while (comma != std::string_view::npos) {
        size_t next = spec.find(',', comma + 1);
        auto option = spec.substr(comma + 1, next == std::string_view::npos ? std::string_view::npos : next - comma - 1);
        comma = next;
        auto ours = parse_policy_option(spec, option, change);
        if (!ours) return std::unexpected(ours.error());
        if (!*ours || change.weight)
            return bad_input("--host-disk '{}': unknown option '{}' (expected depth, iops, bps, iops_burst or bps_burst)",
                             spec, option);
    }
    if (change.depth) config.depth = *change.depth;
    apply(change, config.limits);
    return config;
}

Result<std::unique_ptr<Server>> Server::create(const std::string& socket_dir, std::vector<DiskExport> exports,
                                               std::vector<HostDiskConfig> host_disks,
                                               const std::string& control_path) {
    auto server = std::make_unique<Server>();
    server->socket_dir_ = socket_dir;
    // Policy and counters outlive a worker: they are in memory it shares
    // with the supervisor, which forks every worker. Pages are only used
    // as slots are.
    size_t size = kMaxDisks * (sizeof(SharedDisk) + sizeof(SharedHostDisk));
    void* shared = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return errno_error("cannot map {} bytes of shared memory", size);
    server->shared_ = Mapping(shared, size);
    if (exports.size() > kMaxDisks) return bad_input("at most {} disks", kMaxDisks);
    for (auto& e : exports)
        if (auto slot = server->open_export(std::move(e), 5000); !slot) return std::unexpected(slot.error());
    for (const auto& host : host_disks) {
        UniqueFd fd(::open(host.path.c_str(), O_PATH | O_CLOEXEC));
        if (!fd.valid()) return errno_error("--host-disk: cannot open '{}'", host.path);
        struct stat st{};
        if (::fstat(fd.get(), &st) != 0) return errno_error("--host-disk: cannot stat '{}'", host.path);
        uint64_t device = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
        SharedHostDisk* found = server->shared_host(device, false);
        if (found == nullptr)
            return bad_input("--host-disk '{}': no --disk is on that host disk ({})", host.path, device_id(device));
        found->depth = host.depth;
        found->limits = host.limits;
    }
    auto control = driver_domain::ControlSocket::listen(control_path);
    if (!control) return std::unexpected(control.error());
    server->control_ = std::move(*control);
    return server;
}

Server::SharedHostDisk* Server::shared_host(uint64_t device, bool make) {
    SharedHostDisk* hosts = shared_host_disks();
    SharedHostDisk* free = nullptr;
    for (size_t i = 0; i < kMaxDisks; ++i) {
        if (hosts[i].used && hosts[i].device == device) return &hosts[i];
        if (!hosts[i].used && free == nullptr) free = &hosts[i];
    }
    if (!make || free == nullptr) return nullptr;
    return new (free) SharedHostDisk{true, device, HostDisk::kDefaultDepth, {}};
}

Server::Export* Server::find(std::string_view name) {
    for (auto& e : exports_)
        if (e && e->config.name == name) return e.get();
    return nullptr;
}

std::string Server::socket_path(const DiskExport& e) const {
    return e.socket.path.empty() ? socket_dir_ + "/" + e.name + ".sock" : e.socket.path;
}

Result<size_t> Server::open_export(DiskExport config, unsigned lock_wait_ms) {
    if (find(config.name) != nullptr) return bad_input("a disk named '{}' is served already", config.name);
    size_t slot = 0;
    while (slot < exports_.size() && exports_[slot]) ++slot;
    if (slot == kMaxDisks) return bad_input("at most {} disks", kMaxDisks);
    auto e = std::make_unique<Export>();
    // A back-end started again at once after being killed may find its
    // predecessor's lock not yet released (the kernel frees it as the
    // dead process's io_uring goes): it waits up to lock_wait_ms.
    auto disk = backends::open_disk(config.disk.path, {config.disk.read_only, config.disk.direct, 256, lock_wait_ms});
    if (!disk) return std::unexpected(disk.error());
    e->disk = std::move(*disk);
    auto device = host_device_of(e->disk.file.get(), config.disk.path);
    if (!device) return std::unexpected(device.error());
    e->host_device = *device;
    if (shared_host(*device, true) == nullptr) return bad_input("at most {} host disks", kMaxDisks);
    auto listener = driver_domain::listen_device(socket_path(config), config.socket);
    if (!listener) return std::unexpected(listener.error());
    e->listener = std::move(*listener);
    e->shared = new (shared_disks() + slot) SharedDisk{true, config.policy, {}, 0, 0};
    e->config = std::move(config);
    if (slot == exports_.size()) exports_.emplace_back();
    exports_[slot] = std::move(e);
    return slot;
}

Result<std::string> Server::add(DiskExport config, int worker_channel) {
    auto fields = export_to_json(config);
    // A disk its last guest let go of a moment ago may still be locked
    // until that worker has closed it.
    auto slot = open_export(std::move(config), 1000);
    if (!slot) return std::unexpected(slot.error());
    const Export& e = *exports_[*slot];
    if (worker_channel >= 0 && spares_left_ == 0) {
        // Linux will not pass an io_uring over a unix socket (EINVAL), and
        // the worker may not make one: a new worker takes over.
        log::info("{}: the worker has no spare ring left; a new one starts with a ring for every disk",
                  e.config.name);
        worker_outgrown_ = true;
    } else if (worker_channel >= 0) {
        // The worker puts the disk into one of the spare rings it started
        // with. This process lets go of its copies: a ring holding a disk
        // must end with the worker's, or the disk stays locked by it.
        spare_rings_.clear();
        --spares_left_;
        nlohmann::json message = {{"add", fields},
                                  {"slot", *slot},
                                  {"size", e.disk.size},
                                  {"block_size", e.disk.block_size},
                                  {"read_only", e.disk.read_only},
                                  {"serial", e.disk.serial},
                                  {"host_device", e.host_device}};
        int fds[] = {e.disk.file.get(), e.listener.get()};
        // A worker that cannot take it now is dying: its successor starts with it.
        if (!send_with_fds(worker_channel, message.dump(), fds))
            log::warn("{}: the worker did not take the new disk: {}", e.config.name, std::strerror(errno));
    }
    log::info("{}: serving '{}'", e.config.name, e.config.disk.path);
    return socket_path(e.config);
}

Result<void> Server::remove(std::string_view name, int worker_channel) {
    Export* e = find(name);
    if (e == nullptr) return bad_input("no disk is named '{}'", name);
    std::string path = socket_path(e->config);
    ::unlink(path.c_str());
    if (worker_channel >= 0 && !send_with_fds(worker_channel, nlohmann::json{{"remove", name}}.dump(), {}))
        log::warn("{}: the worker did not take the removal: {}", name, std::strerror(errno));
    e->shared->used = false;
    log::info("{}: no longer served", name);
    for (auto& slot : exports_)
        if (slot.get() == e) slot.reset();
    return {};
}

void Server::manager_message() {
    auto message = receive_with_fds(channel_);
    if (!message) return;
    auto request = nlohmann::json::parse(message->text, nullptr, false);
    if (!request.is_object()) return;
    if (auto removed = request.find("remove"); removed != request.end() && removed->is_string()) {
        for (auto& e : exports_) {
            if (!e || e->config.name != removed->get<std::string>()) continue;
            close_connection(*e);
            ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, e->listener.get(), nullptr);
            scheduler_.remove_client(*e->client);
            e.reset();
        }
        return;
    }
    // An added disk: the supervisor opened it and made its socket.
    auto spec = export_from_json(request.value("add", nlohmann::json()));
    size_t slot = request.value("slot", kMaxDisks);
    if (!spec || message->fds.size() != 2 || slot >= kMaxDisks || find(spec->name) != nullptr) {
        log::error("a malformed message from the supervisor");
        return;
    }
    auto e = std::make_unique<Export>();
    e->disk.file = std::move(message->fds[0]);
    e->listener = std::move(message->fds[1]);
    e->disk.size = request.value("size", uint64_t{0});
    e->disk.block_size = request.value("block_size", 512u);
    e->disk.read_only = request.value("read_only", true);
    e->disk.serial = request.value("serial", "");
    e->host_device = request.value("host_device", uint64_t{0});
    e->shared = shared_disks() + slot;
    e->config = std::move(*spec);
    // The supervisor sends no more disks than there are spares.
    if (spare_rings_.empty()) {
        log::error("{}: no spare ring left for it", e->config.name);
        return;
    }
    if (auto r = backends::attach_disk(spare_rings_.back(), e->disk); !r) {
        log::error("{}: {}", e->config.name, r.error().message);
        return;
    }
    e->ring = std::move(spare_rings_.back());
    spare_rings_.pop_back();
    if (exports_.size() <= slot) exports_.resize(slot + 1);
    exports_[slot] = std::move(e);
    if (auto r = start_serving(slot, Clock::now()); !r) log::error("{}: {}", exports_[slot]->config.name, r.error().message);
}

Result<void> Server::prepare_worker() {
    for (auto& e : exports_) {
        if (!e) continue;
        e->ring = {};  // the dead worker's: closed, and whatever it left in flight with it
        auto ring = backends::make_disk_ring(e->disk, kRingDepth);
        if (!ring) return std::unexpected(Error{ring.error().kind, e->config.name + ": " + ring.error().message});
        e->ring = std::move(*ring);
    }
    spare_rings_.clear();
    for (size_t i = 0; i < kSpareRings; ++i) {
        auto ring = backends::make_spare_ring(kRingDepth);
        if (!ring) return std::unexpected(Error{ring.error().kind, "a spare ring: " + ring.error().message});
        spare_rings_.push_back(std::move(*ring));
    }
    spares_left_ = kSpareRings;
    worker_outgrown_ = false;
    return {};
}

std::vector<int> Server::worker_fds() const {
    std::vector<int> fds = {control_.listener()};
    for (const auto& e : exports_) {
        if (!e) continue;
        for (int fd : {e->disk.file.get(), e->listener.get(), e->ring.ring.get(), e->ring.event.get()})
            if (fd >= 0) fds.push_back(fd);
    }
    for (const auto& ring : spare_rings_) fds.insert(fds.end(), {ring.ring.get(), ring.event.get()});
    return fds;
}

Result<void> Server::start_serving(size_t slot, Clock::time_point now) {
    auto& e = *exports_[slot];
    epoll_event add{EPOLLIN, {.u64 = 2 * slot}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, e.listener.get(), &add) != 0) return errno_error("epoll_ctl");
    auto* host = shared_host(e.host_device, false);
    auto& disk = scheduler_.host_disk(e.host_device);
    if (host != nullptr) scheduler_.set_host_disk(disk, host->depth, host->limits, now);
    e.client = &scheduler_.add_client(disk, e.config.name, e.shared->counters);
    e.client->set_policy(e.shared->policy, now);
    return {};
}

void Server::accept(Export& disk) {
    UniqueFd socket(::accept4(disk.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!socket.valid()) return;
    if (disk.connection) {
        // One front-end per disk: a second would write the same disk.
        log::warn("{}: refusing a second connection while one is served", disk.config.name);
        return;
    }
    auto backend = backends::UringBlock::adopt(disk.disk, disk.ring);
    if (!backend) {
        log::warn("{}: {}", disk.config.name, backend.error().message);
        return;
    }
    auto device = std::make_unique<devices::VirtioBlk>(std::move(*backend));
    auto* blk = device.get();
    auto connection = vhost_user::BackendConnection::create(vhost_user::Channel(std::move(socket)), std::move(device),
                                                            disk.config.name);
    if (!connection) {
        log::warn("{}: {}", disk.config.name, connection.error().message);
        return;
    }
    size_t index = 0;
    while (exports_[index].get() != &disk) ++index;
    epoll_event add{EPOLLIN, {.u64 = 2 * index + 1}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, (*connection)->fd(), &add) != 0) {
        log::warn("{}: epoll_ctl: {}", disk.config.name, std::strerror(errno));
        return;
    }
    disk.connection = std::move(*connection);
    disk.client->attach(blk);
    ++disk.shared->connections;
    log::info("{}: connected ({} so far)", disk.config.name, disk.shared->connections);
}

void Server::close_connection(Export& disk) {
    if (!disk.connection) return;
    disk.client->attach(nullptr);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, disk.connection->fd(), nullptr);
    uint64_t resubmitted = disk.connection->counters().resubmitted;
    disk.shared->resubmitted += resubmitted;
    log::info("{}: connection ended ({} requests run again from the inflight region)", disk.config.name, resubmitted);
    disk.connection.reset();
}

std::vector<DiskStatus> Server::disks() const {
    std::vector<DiskStatus> result;
    for (const auto& e : exports_) {
        if (!e) continue;
        DiskStatus status{e->config.name, e->config.disk.path, device_id(e->host_device), e->connection != nullptr,
                          e->shared->policy, e->shared->counters, e->shared->connections, e->shared->resubmitted};
        if (e->connection) status.resubmitted += e->connection->counters().resubmitted;
        if (e->client != nullptr) status.counters.ring_empty_us += e->client->empty_us_now(Clock::now());
        result.push_back(std::move(status));
    }
    return result;
}

std::vector<HostDiskStatus> Server::host_disks() const {
    std::vector<HostDiskStatus> result;
    const SharedHostDisk* hosts = shared_host_disks();
    for (size_t i = 0; i < kMaxDisks; ++i) {
        const auto* host = &hosts[i];
        if (!host->used) continue;
        HostDiskStatus status{device_id(host->device), host->depth, host->limits, {}};
        for (const auto& e : exports_)
            if (e && e->host_device == host->device) status.disks.push_back(e->config.name);
        result.push_back(std::move(status));
    }
    return result;
}

Result<void> Server::set_disk(std::string_view name, const PolicyChange& change) {
    Export* e = find(name);
    if (e == nullptr) return bad_input("no disk is named '{}'", name);
    if (change.depth) return bad_input("depth is set per host disk");
    if (change.weight && (*change.weight < 1 || *change.weight > Policy::kMaxWeight))
        return bad_input("weight must be 1 to {}", Policy::kMaxWeight);
    if (change.weight) e->shared->policy.weight = *change.weight;
    apply(change, e->shared->policy.limits);
    if (e->client != nullptr) e->client->set_policy(e->shared->policy, Clock::now());
    log::info("{}: weight {}, iops {}, bps {}, bursts {} and {}", name, e->shared->policy.weight,
              e->shared->policy.limits.iops, e->shared->policy.limits.bps, e->shared->policy.limits.iops_burst,
              e->shared->policy.limits.bps_burst);
    return {};
}

Result<void> Server::set_host_disk(std::string_view id, const PolicyChange& change) {
    SharedHostDisk* hosts = shared_host_disks();
    for (size_t i = 0; i < kMaxDisks; ++i) {
        auto* host = &hosts[i];
        if (!host->used || device_id(host->device) != id) continue;
        if (change.weight) return bad_input("weight is set per disk");
        if (change.depth && (*change.depth < 1 || *change.depth > 1024)) return bad_input("depth must be 1 to 1024");
        if (change.depth) host->depth = *change.depth;
        apply(change, host->limits);
        for (auto& disk : scheduler_.host_disks())
            if (disk->device == host->device) scheduler_.set_host_disk(*disk, host->depth, host->limits, Clock::now());
        log::info("host disk {}: depth {}, iops {}, bps {}", id, host->depth, host->limits.iops, host->limits.bps);
        return {};
    }
    return bad_input("no host disk is '{}'", id);
}

int Server::serve(bool test_hooks, int channel) {
    channel_ = channel;
    epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) return kExitHostError;
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (test_hooks) sigaddset(&signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    epoll_event event{EPOLLIN, {.u64 = kTagSignals}};
    if (!signal_fd.valid() || ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, signal_fd.get(), &event) != 0) {
        log::error("signalfd: {}", std::strerror(errno));
        return kExitHostError;
    }
    epoll_event control{EPOLLIN, {.u64 = kTagControl}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, control_.listener(), &control) != 0) return kExitHostError;
    epoll_event manager{EPOLLIN, {.u64 = kTagManager}};
    if (channel_ >= 0 && ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, channel_, &manager) != 0) return kExitHostError;
    auto now = Clock::now();
    for (size_t i = 0; i < exports_.size(); ++i) {
        if (!exports_[i]) continue;
        if (auto r = start_serving(i, now); !r) {
            log::error("{}", r.error().message);
            return kExitHostError;
        }
    }
    for (;;) {
        // The scheduler runs after every batch of events: kicks and
        // completions both may let requests start.
        int timeout = -1;
        if (scheduler_.more_work()) {
            timeout = 0;
        } else if (auto wakeup = scheduler_.next_wakeup()) {
            auto wait = std::chrono::ceil<std::chrono::milliseconds>(*wakeup - Clock::now()).count();
            timeout = static_cast<int>(std::clamp<int64_t>(wait, 0, 1000));
        }
        epoll_event events[32];
        int count = ::epoll_wait(epoll_.get(), events, 32, timeout);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) {
            log::error("epoll_wait: {}", std::strerror(errno));
            return kExitHostError;
        }
        for (int i = 0; i < count; ++i) {
            uint64_t tag = events[i].data.u64;
            if (tag == kTagSignals) {
                signalfd_siginfo info{};
                if (::read(signal_fd.get(), &info, sizeof(info)) != sizeof(info)) continue;
                if (info.ssi_signo == SIGUSR1) {
                    // The test hook: a system call outside the allowlist.
                    std::string path = exports_.empty() || !exports_[0] ? "/" : exports_[0]->config.disk.path;
                    log::warn("test hook: opening '{}' by path", path);
                    UniqueFd forbidden(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
                    log::error("test hook: the forbidden open returned {}", forbidden.get());
                    continue;
                }
                for (auto& disk : exports_)
                    if (disk) close_connection(*disk);
                return 0;
            }
            if (tag == kTagControl) {
                control_.accept(epoll_.get(), kTagControlClient);
                continue;
            }
            if (tag == kTagManager) {
                if (events[i].events & (EPOLLHUP | EPOLLERR)) return kExitHostError;  // the supervisor is gone
                manager_message();
                continue;
            }
            if (tag >= kTagControlClient) {
                control_.serve(epoll_.get(), tag - kTagControlClient,
                               [this](std::string_view request) { return control_answer(*this, request); });
                continue;
            }
            if (tag / 2 >= exports_.size() || !exports_[tag / 2]) continue;  // removed in this batch
            auto& disk = *exports_[tag / 2];
            if (tag % 2 == 0)
                accept(disk);
            else if (disk.connection && !disk.connection->process())
                close_connection(disk);
        }
        scheduler_.run(Clock::now());
    }
}

}  // namespace hospes::blkback
