// The x86 state of a vCPU before it first runs: CPUID, MSRs, FPU, local
// APIC wiring, and for the boot vCPU the registers of the kernel's entry.
#pragma once

#include <linux/kvm.h>

#include <span>

#include "arch/x86_64/boot.hpp"
#include "common/error.hpp"
#include "kvm/vcpu.hpp"

namespace hospes::x86 {

// For every vCPU. APs then wait in the in-kernel LAPIC for INIT/SIPI.
Result<void> setup_vcpu(kvm::Vcpu& vcpu, std::span<const kvm_cpuid_entry2> cpuid);

// For the boot vCPU: long mode with the identity page tables (Linux64) or
// flat 32-bit protected mode without paging (PVH).
Result<void> set_boot_registers(kvm::Vcpu& vcpu, const BootEntry& entry);

}  // namespace hospes::x86
