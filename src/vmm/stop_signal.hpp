// How any thread asks the monitor to stop: the first request's exit status
// wins, and the main thread, waiting for it or a host signal (SIGINT,
// SIGTERM, SIGHUP through a signalfd), is woken by an eventfd: no thread
// needs to send a signal for it.
#pragma once

#include <atomic>
#include <csignal>

#include "common/unique_fd.hpp"

namespace hospes {

// Why the monitor ended; the toolstack acts on it (on_poweroff, on_reboot,
// on_crash), so a reboot and a power-off, both exit status 0, differ here.
enum class StopReason { PowerOff, Reboot, Crash, HostError, HostSignal };
const char* stop_reason_name(StopReason reason);

class StopSignal {
public:
    // The signals the main thread waits for. Block them in every thread
    // before any thread starts.
    static sigset_t wait_set();
    static void block_in_this_thread();

    StopSignal();

    // The exit status follows from the reason: 0 for a power-off or
    // reboot, kExitGuestCrashed, kExitHostError.
    void request(StopReason reason);
    bool requested() const { return requested_.load(std::memory_order_acquire); }
    // Blocks until a request or a host SIGINT/SIGTERM/SIGHUP (128 + signal).
    int wait();
    // After wait(): why.
    StopReason reason() const { return reason_.load(std::memory_order_acquire); }

private:
    void request(StopReason reason, int exit_status);

    std::atomic<bool> requested_{false};
    std::atomic<int> status_{0};
    std::atomic<StopReason> reason_{StopReason::PowerOff};
    UniqueFd requests_;  // eventfd: written by the first request
    UniqueFd signals_;   // signalfd of wait_set()
};

}  // namespace hospes
