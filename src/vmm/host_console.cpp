#include "vmm/host_console.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/log.hpp"
#include "vhost_user/channel.hpp"
namespace hospes {

namespace {
constexpr uint8_t kEscapePrefix = 0x01;  // Ctrl-A
constexpr uint8_t kEscapeQuit = 'x';
}  // namespace

HostConsole::HostConsole(int input_fd, int output_fd)
    : input_fd_(input_fd), output_fd_(output_fd), wakeup_(::eventfd(0, EFD_CLOEXEC)) {
    termios terminal{};
    if (::isatty(input_fd_) && ::tcgetattr(input_fd_, &terminal) == 0) {
        saved_terminal_ = terminal;
        cfmakeraw(&terminal);
        ::tcsetattr(input_fd_, TCSANOW, &terminal);
    }
}

HostConsole::~HostConsole() {
    stop();
    release_host();
}

void HostConsole::release_host() {
    if (saved_terminal_) ::tcsetattr(input_fd_, TCSANOW, &*saved_terminal_);
    saved_terminal_.reset();
    if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
    socket_path_.clear();
}

Result<void> HostConsole::listen(const std::string& path) {
    auto listener = vhost_user::listen_unix(path);
    if (!listener) return std::unexpected(listener.error());
    if (::chmod(path.c_str(), 0600) != 0) return errno_error("cannot chmod '{}'", path);
    listener_ = std::move(*listener);
    socket_path_ = path;
    return {};
}

void HostConsole::cap_output(int previous, const CappedWriter::Limits& limits) {
    struct stat st{};
    if (::fstat(output_fd_, &st) == 0 && S_ISREG(st.st_mode)) capped_.emplace(output_fd_, previous, limits);
}

void HostConsole::write_output(std::span<const uint8_t> bytes) {
    if (capped_) return capped_->write(bytes);
    while (!bytes.empty()) {
        ssize_t n = ::write(output_fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // a closed or full output must not stop the guest: dropped
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
}

void HostConsole::write(uint8_t byte) {
    write_output({&byte, 1});
    if (listener_.valid()) write_to_client({&byte, 1});
}

void HostConsole::write_to_client(std::span<const uint8_t> bytes) {
    std::lock_guard lock(client_mutex_);
    while (client_.valid() && !bytes.empty()) {
        ssize_t n = ::send(client_.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // full or gone: dropped (the log has it)
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
}

void HostConsole::write(std::span<const uint8_t> bytes) {
    if (listener_.valid()) write_to_client(bytes);
    write_output(bytes);
}

std::optional<std::pair<uint16_t, uint16_t>> HostConsole::window_size() const {
    winsize size{};
    // TIOCGWINSZ fills a winsize; it fails on anything but a terminal.
    if (::ioctl(output_fd_, TIOCGWINSZ, &size) != 0 || size.ws_col == 0 || size.ws_row == 0) return std::nullopt;
    return std::pair<uint16_t, uint16_t>{size.ws_col, size.ws_row};
}

void HostConsole::start(Deliver deliver, Escape escape, std::function<bool()> first) {
    input_thread_ = std::thread([this, deliver = std::move(deliver), escape = std::move(escape),
                                 first = std::move(first)] {
        if (!first || first()) input_loop(deliver, escape);
    });
}

void HostConsole::stop() {
    if (!input_thread_.joinable()) return;
    uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wakeup_.get(), &one, sizeof(one));
    input_thread_.join();
}

void HostConsole::socket_loop(const Deliver& deliver) {
    std::vector<uint8_t> buffer(4096);
    for (;;) {
        int client = -1;
        {
            std::lock_guard lock(client_mutex_);
            client = client_.get();
        }
        pollfd fds[3] = {{wakeup_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}, {client, POLLIN, 0}};
        if (::poll(fds, client >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[0].revents != 0) return;
        if (fds[1].revents != 0) {
            UniqueFd accepted(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (accepted.valid()) {
                std::lock_guard lock(client_mutex_);
                if (client_.valid()) log::info("console: a new client takes the console over");
                client_ = std::move(accepted);
            }
            continue;
        }
        if (client < 0 || fds[2].revents == 0) continue;
        ssize_t n = ::read(client, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            std::lock_guard lock(client_mutex_);
            if (client_.get() == client) client_ = UniqueFd();
            continue;
        }
        if (!deliver(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n)))) return;
    }
}

void HostConsole::input_loop(Deliver deliver, Escape escape) {
    if (listener_.valid()) {
        socket_loop(deliver);
        return;
    }
    bool after_prefix = false;
    std::vector<uint8_t> buffer(256);
    pollfd fds[2] = {{input_fd_, POLLIN, 0}, {wakeup_.get(), POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents != 0) return;
        ssize_t n = ::read(input_fd_, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // end of input: the guest keeps running
        std::vector<uint8_t> out;
        out.reserve(static_cast<size_t>(n));
        for (ssize_t i = 0; i < n; ++i) {
            uint8_t byte = buffer[static_cast<size_t>(i)];
            // The escape only applies to a terminal; pipes pass every byte.
            if (saved_terminal_ && after_prefix) {
                after_prefix = false;
                if (byte == kEscapeQuit) {
                    escape();
                    return;
                }
                if (byte != kEscapePrefix) out.push_back(kEscapePrefix);
            } else if (saved_terminal_ && byte == kEscapePrefix) {
                after_prefix = true;
                continue;
            }
            out.push_back(byte);
        }
        if (!out.empty() && !deliver(out)) return;
    }
}

}  // namespace hospes
