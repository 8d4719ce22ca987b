#include "blkback/server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <cctype>
#include <csignal>
#include <cstring>

#include "backends/uring_block.hpp"
#include "cli/device_options.hpp"
#include "common/log.hpp"
#include "devices/virtio/blk.hpp"

namespace hospes::blkback {

namespace {
// epoll tags: an export's listener is 2*i, its connection 2*i+1; signals last.
constexpr uint64_t kTagSignals = ~0ull;

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
    return name[0] != '.';
}
}  // namespace

Result<DiskExport> parse_export(std::string_view spec) {
    auto at = spec.find('=');
    if (at == std::string_view::npos) return bad_input("--disk '{}': expected NAME=PATH[,ro][,direct]", spec);
    DiskExport e;
    e.name = std::string(spec.substr(0, at));
    if (!valid_name(e.name))
        return bad_input("--disk '{}': name '{}' must be 1 to 64 letters, digits, '-', '_' or '.'", spec, e.name);
    auto disk = cli::parse_disk(spec.substr(at + 1));
    if (!disk) return std::unexpected(disk.error());
    e.disk = std::move(*disk);
    return e;
}

Result<std::unique_ptr<Server>> Server::create(const std::string& socket_dir, std::vector<DiskExport> exports) {
    auto server = std::make_unique<Server>();
    for (size_t i = 0; i < exports.size(); ++i) {
        for (size_t j = 0; j < i; ++j)
            if (exports[j].name == exports[i].name) return bad_input("--disk: the name '{}' is given twice", exports[i].name);
        Export e;
        // A back-end started again at once after being killed may find its
        // predecessor's lock not yet released (the kernel frees it as the
        // dead process's io_uring goes): it waits up to 5 s.
        auto disk = backends::open_disk(exports[i].disk.path,
                                        {exports[i].disk.read_only, exports[i].disk.direct, 256, 5000});
        if (!disk) return std::unexpected(disk.error());
        e.disk = std::move(*disk);
        std::string path = socket_dir + "/" + exports[i].name + ".sock";
        auto listener = vhost_user::listen_unix(path);
        if (!listener) return std::unexpected(listener.error());
        e.listener = std::move(*listener);
        e.config = std::move(exports[i]);
        server->exports_.push_back(std::move(e));
        server->socket_paths_.push_back(std::move(path));
    }
    return server;
}

void Server::accept(Export& disk) {
    UniqueFd socket(::accept4(disk.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!socket.valid()) return;
    if (disk.connection) {
        // One front-end per disk: a second would write the same disk.
        log::warn("{}: refusing a second connection while one is served", disk.config.name);
        return;
    }
    auto backend = backends::UringBlock::serve(disk.disk, 256);
    if (!backend) {
        log::warn("{}: {}", disk.config.name, backend.error().message);
        return;
    }
    auto device = std::make_unique<devices::VirtioBlk>(std::move(*backend));
    auto connection = vhost_user::BackendConnection::create(vhost_user::Channel(std::move(socket)), std::move(device),
                                                            disk.config.name);
    if (!connection) {
        log::warn("{}: {}", disk.config.name, connection.error().message);
        return;
    }
    size_t index = static_cast<size_t>(&disk - exports_.data());
    epoll_event add{EPOLLIN, {.u64 = 2 * index + 1}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, (*connection)->fd(), &add) != 0) {
        log::warn("{}: epoll_ctl: {}", disk.config.name, std::strerror(errno));
        return;
    }
    disk.connection = std::move(*connection);
    ++disk.connections;
    log::info("{}: connected ({} so far)", disk.config.name, disk.connections);
}

void Server::close_connection(Export& disk) {
    if (!disk.connection) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, disk.connection->fd(), nullptr);
    log::info("{}: connection ended ({} requests run again from the inflight region)", disk.config.name,
              disk.connection->counters().resubmitted);
    disk.connection.reset();
}

int Server::serve(bool test_hooks) {
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
    for (size_t i = 0; i < exports_.size(); ++i) {
        epoll_event add{EPOLLIN, {.u64 = 2 * i}};
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, exports_[i].listener.get(), &add) != 0) return kExitHostError;
    }
    for (;;) {
        epoll_event events[32];
        int count = ::epoll_wait(epoll_.get(), events, 32, -1);
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
                    log::warn("test hook: opening '{}' by path", exports_[0].config.disk.path);
                    UniqueFd forbidden(::open(exports_[0].config.disk.path.c_str(), O_RDONLY | O_CLOEXEC));
                    log::error("test hook: the forbidden open returned {}", forbidden.get());
                    continue;
                }
                for (auto& disk : exports_) close_connection(disk);
                return 0;
            }
            auto& disk = exports_[tag / 2];
            if (tag % 2 == 0)
                accept(disk);
            else if (disk.connection && !disk.connection->process())
                close_connection(disk);
        }
    }
}

}  // namespace hospes::blkback
