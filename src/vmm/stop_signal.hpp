// How any thread asks the monitor to stop: the first request's exit status
// wins, and the main thread, waiting in sigwait(), is woken by SIGUSR2.
#pragma once

#include <atomic>
#include <csignal>

namespace hospes {

class StopSignal {
public:
    // The signals the main thread waits for. Block them in every thread
    // before any thread starts.
    static sigset_t wait_set();
    static void block_in_this_thread();

    void request(int exit_status);
    bool requested() const { return requested_.load(std::memory_order_acquire); }
    // Blocks until a request or a host SIGINT/SIGTERM/SIGHUP (128 + signal).
    int wait();

private:
    std::atomic<bool> requested_{false};
    std::atomic<int> status_{0};
};

}  // namespace hospes
