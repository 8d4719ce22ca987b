// Turns KVM's supported CPUID into what one vCPU of an N-vCPU guest sees:
// its APIC id and the package topology (N cores of one thread each), the
// hypervisor bit, and KVM's paravirtual leaves (kvm-clock, PV EOI,
// PV spinlocks, ...), which KVM_GET_SUPPORTED_CPUID already lists, and the
// TSC-deadline timer when KVM has it (KVM_CAP_TSC_DEADLINE_TIMER).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace hospes::x86 {

std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::vector<kvm_cpuid_entry2> supported, uint32_t vcpu_index,
                                         uint32_t vcpu_count, bool tsc_deadline_timer);

}  // namespace hospes::x86
