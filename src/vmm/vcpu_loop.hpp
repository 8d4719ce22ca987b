// The loop each vCPU thread runs: KVM_RUN, then one switch on the exit
// reason, until the guest stops or the monitor asks it to.
#pragma once

#include "kvm/vcpu.hpp"
#include "vmm/io_bus.hpp"
#include "vmm/stop_signal.hpp"

namespace hospes {

struct VcpuBuses {
    const IoBus& pio;
    const IoBus& mmio;
};

// Installs the no-op handler of the signal that kicks a vCPU out of KVM_RUN.
void install_vcpu_kick_handler();
// Makes `vcpu` return from KVM_RUN soon, from any thread.
void kick_vcpu(kvm::Vcpu& vcpu, pthread_t thread);

// Runs until stop is requested; reports guest reset/shutdown/crash to `stop`.
void run_vcpu(kvm::Vcpu& vcpu, VcpuBuses buses, StopSignal& stop);

// Logs the vCPU's registers, for a crashed guest.
void dump_vcpu_state(const kvm::Vcpu& vcpu);

}  // namespace hospes
