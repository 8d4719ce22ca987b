#include "vmm/stop_signal.hpp"

#include <pthread.h>
#include <unistd.h>

namespace hospes {

sigset_t StopSignal::wait_set() {
    sigset_t set;
    sigemptyset(&set);
    for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGUSR2}) sigaddset(&set, signal);
    return set;
}

void StopSignal::block_in_this_thread() {
    sigset_t set = wait_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void StopSignal::request(int exit_status) {
    bool expected = false;
    if (!requested_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) return;
    status_.store(exit_status, std::memory_order_release);
    ::kill(::getpid(), SIGUSR2);
}

int StopSignal::wait() {
    sigset_t set = wait_set();
    for (;;) {
        int signal = 0;
        if (sigwait(&set, &signal) != 0) continue;
        if (signal == SIGUSR2) {
            if (requested()) return status_.load(std::memory_order_acquire);
            continue;
        }
        request(128 + signal);
        return status_.load(std::memory_order_acquire);
    }
}

}  // namespace hospes
