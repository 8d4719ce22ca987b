#include "vmm/host_console.hpp"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

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
    if (saved_terminal_) ::tcsetattr(input_fd_, TCSANOW, &*saved_terminal_);
}

void HostConsole::write(uint8_t byte) {
    // A closed or full output must not stop the guest: drop what cannot go.
    while (::write(output_fd_, &byte, 1) < 0 && errno == EINTR) {
    }
}

void HostConsole::write(std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(output_fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // as above: what cannot go is dropped
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
}

std::optional<std::pair<uint16_t, uint16_t>> HostConsole::window_size() const {
    winsize size{};
    // TIOCGWINSZ fills a winsize; it fails on anything but a terminal.
    if (::ioctl(output_fd_, TIOCGWINSZ, &size) != 0 || size.ws_col == 0 || size.ws_row == 0) return std::nullopt;
    return std::pair<uint16_t, uint16_t>{size.ws_col, size.ws_row};
}

void HostConsole::start(Deliver deliver, Escape escape) {
    input_thread_ = std::thread([this, deliver = std::move(deliver), escape = std::move(escape)] {
        input_loop(deliver, escape);
    });
}

void HostConsole::stop() {
    if (!input_thread_.joinable()) return;
    uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wakeup_.get(), &one, sizeof(one));
    input_thread_.join();
}

void HostConsole::input_loop(Deliver deliver, Escape escape) {
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
