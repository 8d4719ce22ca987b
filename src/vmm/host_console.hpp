// The host side of the guest console: the monitor's stdin and stdout. A
// terminal is put in raw mode (restored on exit) so keys reach the guest
// as typed; pipes are used as they are. Ctrl-A x stops the guest.
#pragma once

#include <termios.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <thread>
#include <utility>

#include "common/unique_fd.hpp"

namespace hospes {

class HostConsole {
public:
    using Deliver = std::function<bool(std::span<const uint8_t>)>;
    using Escape = std::function<void()>;

    HostConsole(int input_fd, int output_fd);
    HostConsole(const HostConsole&) = delete;
    HostConsole& operator=(const HostConsole&) = delete;
    ~HostConsole();

    void write(uint8_t byte);
    void write(std::span<const uint8_t> bytes);
    // The output terminal's size (columns, rows), when it is a terminal.
    std::optional<std::pair<uint16_t, uint16_t>> window_size() const;
    // Reads input on a thread of its own and hands it to `deliver` until
    // stop(), end of input, or `deliver` returns false.
    void start(Deliver deliver, Escape escape);
    void stop();

private:
    void input_loop(Deliver deliver, Escape escape);

    int input_fd_;
    int output_fd_;
    std::optional<termios> saved_terminal_;
    UniqueFd wakeup_;  // eventfd that ends the input loop
    std::thread input_thread_;
};

}  // namespace hospes
