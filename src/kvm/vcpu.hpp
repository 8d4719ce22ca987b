// One KVM vCPU: its register state and the shared kvm_run area.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/mapping.hpp"
#include "common/unique_fd.hpp"

namespace hospes::kvm {

class Vcpu {
public:
    Vcpu(uint32_t id, UniqueFd fd, Mapping run) : id_(id), fd_(std::move(fd)), run_(std::move(run)) {}

    uint32_t id() const { return id_; }
    // Safe: the mapping is at least sizeof(kvm_run) (KVM_GET_VCPU_MMAP_SIZE).
    kvm_run* run_area() const { return reinterpret_cast<kvm_run*>(run_.data()); }

    // KVM_RUN. Returns false (no error) when interrupted by a signal.
    Result<bool> run();

    Result<kvm_regs> regs() const;
    Result<void> set_regs(const kvm_regs& regs);
    Result<kvm_sregs> sregs() const;
    Result<void> set_sregs(const kvm_sregs& sregs);
    Result<void> set_fpu(const kvm_fpu& fpu);
    Result<void> set_cpuid(std::span<const kvm_cpuid_entry2> entries);
    // Sets each MSR; returns how many KVM accepted.
    Result<size_t> set_msrs(std::span<const std::pair<uint32_t, uint64_t>> msrs);
    Result<kvm_lapic_state> lapic() const;
    Result<void> set_lapic(const kvm_lapic_state& state);

private:
    uint32_t id_;
    UniqueFd fd_;
    Mapping run_;
};

}  // namespace hospes::kvm
