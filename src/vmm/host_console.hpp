// The host side of the guest console: the monitor's stdin and stdout. A
// terminal is put in raw mode (restored on exit) so keys reach the guest
// as typed; pipes are used as they are. Ctrl-A x stops the guest.
//
// With a console socket (listen(), for hospesd's domains) the input comes
// from the one client attached to that unix socket (`hospes console`; a
// new client takes over), and the output goes to stdout (the domain's
// console log) and to that client; a client that does not keep up loses
// output rather than stall the guest.
//
// Output into a regular file (hospesd's console log) goes through a
// CappedWriter (cap_output()): a guest cannot fill the host's disk.
#pragma once

#include <termios.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>

#include "common/capped_writer.hpp"
#include "common/error.hpp"
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

    // Serves the console on a unix socket at `path` (0600) from start() on,
    // instead of stdin; the socket is removed with the console (unless
    // keep_socket_file(): a jailed monitor cannot name it).
    Result<void> listen(const std::string& path);
    void keep_socket_file() { socket_path_.clear(); }
    // For a monitor that exits without tearing down: the terminal as it was,
    // the socket's file removed (not kept).
    void release_host();
    // From now on output into a regular file goes through a CappedWriter,
    // rotated into `previous` (-1: none).
    void cap_output(int previous, const CappedWriter::Limits& limits);
    uint64_t dropped_output() const { return capped_ ? capped_->dropped() : 0; }

    void write(uint8_t byte);
    void write(std::span<const uint8_t> bytes);
    // The output terminal's size (columns, rows), when it is a terminal.
    std::optional<std::pair<uint16_t, uint16_t>> window_size() const;
    // Reads input on a thread of its own and hands it to `deliver` until
    // stop(), end of input, or `deliver` returns false. `first` runs on
    // that thread before anything is read (its seccomp filter); when it
    // returns false, nothing is.
    void start(Deliver deliver, Escape escape, std::function<bool()> first = {});
    void stop();

private:
    void input_loop(Deliver deliver, Escape escape);
    // Socket mode: accepts clients and delivers what the current one sends.
    void socket_loop(const Deliver& deliver);
    void write_to_client(std::span<const uint8_t> bytes);

    void write_output(std::span<const uint8_t> bytes);

    int input_fd_;
    int output_fd_;
    std::optional<CappedWriter> capped_;
    std::optional<termios> saved_terminal_;
    UniqueFd wakeup_;  // eventfd that ends the input loop
    std::thread input_thread_;
    UniqueFd listener_;        // socket mode: the console socket
    std::string socket_path_;
    std::mutex client_mutex_;  // the client is written by vCPU threads, replaced by the input thread
    UniqueFd client_;
};

}  // namespace hospes
