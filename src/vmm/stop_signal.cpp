#include "vmm/stop_signal.hpp"

#include <pthread.h>
#include <unistd.h>

#include "common/error.hpp"

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

const char* stop_reason_name(StopReason reason) {
    switch (reason) {
    case StopReason::PowerOff: return "poweroff";
    case StopReason::Reboot: return "reboot";
    case StopReason::Crash: return "crash";
    case StopReason::HostError: return "host-error";
    case StopReason::HostSignal: return "signal";
    }
    return "unknown";
}

void StopSignal::request(StopReason reason) {
    request(reason, reason == StopReason::Crash       ? kExitGuestCrashed
                    : reason == StopReason::HostError ? kExitHostError
                                                      : kExitGuestStopped);
}

void StopSignal::request(StopReason reason, int exit_status) {
    bool expected = false;
    if (!requested_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) return;
    status_.store(exit_status, std::memory_order_release);
    reason_.store(reason, std::memory_order_release);
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
        request(StopReason::HostSignal, 128 + signal);
        return status_.load(std::memory_order_acquire);
    }
}

}  // namespace hospes
