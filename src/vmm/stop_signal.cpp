#include "vmm/stop_signal.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/error.hpp"

namespace hospes {

sigset_t StopSignal::wait_set() {
    sigset_t set;
    sigemptyset(&set);
    for (int signal : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, signal);
    return set;
}

StopSignal::StopSignal() : requests_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    sigset_t set = wait_set();
    signals_ = UniqueFd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
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
    uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(requests_.get(), &one, sizeof(one));
}

int StopSignal::wait() {
    for (;;) {
        if (requested()) return status_.load(std::memory_order_acquire);
        pollfd fds[2] = {{requests_.get(), POLLIN, 0}, {signals_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) continue;
        signalfd_siginfo info{};
        if ((fds[1].revents & POLLIN) && ::read(signals_.get(), &info, sizeof(info)) == sizeof(info)) {
            request(StopReason::HostSignal, 128 + static_cast<int>(info.ssi_signo));
            return status_.load(std::memory_order_acquire);
        }
    }
}

}  // namespace hospes
