// The loop each vCPU thread runs: KVM_RUN, then one switch on the exit
// reason, until the guest stops or the monitor asks it to.
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "kvm/vcpu.hpp"
#include "vmm/io_bus.hpp"
#include "vmm/stop_signal.hpp"

namespace hospes {

struct VcpuBuses {
    const IoBus& pio;
    const IoBus& mmio;
};

// Parks the vCPU threads of a paused guest. A thread parks when it comes
// back from KVM_RUN (a kick ends KVM_RUN) and finds the gate closed.
class PauseGate {
public:
    // Closes the gate; the caller then kicks every vCPU and waits for them.
    void close();
    // Waits until `count` threads are parked, at most `limit`.
    bool wait_parked(size_t count, std::chrono::milliseconds limit);
    void open();
    bool closed() const;
    // In a vCPU thread: blocks while the gate is closed and not released.
    void park();
    // Lets every thread go for good (the monitor stops).
    void release();

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    bool closed_ = false;
    bool released_ = false;
    size_t parked_ = 0;
};

// Installs the no-op handler of the signal that kicks a vCPU out of KVM_RUN.
void install_vcpu_kick_handler();
// Makes `vcpu`, run by thread `tid` of process `pid`, return from KVM_RUN
// soon, from any thread.
void kick_vcpu(kvm::Vcpu& vcpu, pid_t pid, pid_t tid);

// Runs until stop is requested; reports guest reset/shutdown/crash to `stop`.
// While `pause` is closed the thread parks instead of running the guest.
void run_vcpu(kvm::Vcpu& vcpu, VcpuBuses buses, StopSignal& stop, PauseGate& pause);

// Logs the vCPU's registers, for a crashed guest.
void dump_vcpu_state(const kvm::Vcpu& vcpu);

}  // namespace hospes
