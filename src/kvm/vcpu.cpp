#include "kvm/vcpu.hpp"

#include <sys/ioctl.h>

#include <algorithm>
#include <memory>

#include "kvm/abi.hpp"

namespace hospes::kvm {

namespace {

// Runs a vCPU ioctl whose argument is a struct; on failure names the ioctl.
template <class T>
Result<void> vcpu_ioctl(int fd, unsigned long request, T* argument, const char* name, uint32_t id) {
    // Safe: every caller passes the struct type its request is defined with.
    if (::ioctl(fd, request, argument) < 0) return errno_error("{} on vCPU {}", name, id);
    return {};
}

}  // namespace

Result<bool> Vcpu::run() {
    // Safe: KVM_RUN takes no argument; results appear in the run area.
    if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
        if (errno == EINTR || errno == EAGAIN) return false;
        return errno_error("KVM_RUN on vCPU {}", id_);
    }
    return true;
}

Result<kvm_regs> Vcpu::regs() const {
    kvm_regs regs{};
    if (auto r = vcpu_ioctl(fd_.get(), KVM_GET_REGS, &regs, "KVM_GET_REGS", id_); !r) return std::unexpected(r.error());
    return regs;
}

Result<void> Vcpu::set_regs(const kvm_regs& regs) {
    kvm_regs copy = regs;
    return vcpu_ioctl(fd_.get(), KVM_SET_REGS, &copy, "KVM_SET_REGS", id_);
}

Result<kvm_sregs> Vcpu::sregs() const {
    kvm_sregs sregs{};
    if (auto r = vcpu_ioctl(fd_.get(), KVM_GET_SREGS, &sregs, "KVM_GET_SREGS", id_); !r)
        return std::unexpected(r.error());
    return sregs;
}

Result<void> Vcpu::set_sregs(const kvm_sregs& sregs) {
    kvm_sregs copy = sregs;
    return vcpu_ioctl(fd_.get(), KVM_SET_SREGS, &copy, "KVM_SET_SREGS", id_);
}

Result<void> Vcpu::set_fpu(const kvm_fpu& fpu) {
    kvm_fpu copy = fpu;
    return vcpu_ioctl(fd_.get(), KVM_SET_FPU, &copy, "KVM_SET_FPU", id_);
}

Result<void> Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) {
    size_t bytes = sizeof(abi::CpuidHeader) + entries.size() * sizeof(kvm_cpuid_entry2);
    auto storage = std::make_unique<uint64_t[]>((bytes + 7) / 8);
    auto* header = reinterpret_cast<abi::CpuidHeader*>(storage.get());  // Safe: sized and aligned above.
    header->nent = static_cast<uint32_t>(entries.size());
    std::copy(entries.begin(), entries.end(), reinterpret_cast<kvm_cpuid_entry2*>(header + 1));
    return vcpu_ioctl(fd_.get(), abi::kSetCpuid2, header, "KVM_SET_CPUID2", id_);
}

Result<size_t> Vcpu::set_msrs(std::span<const std::pair<uint32_t, uint64_t>> msrs) {
    size_t bytes = sizeof(abi::MsrsHeader) + msrs.size() * sizeof(kvm_msr_entry);
    auto storage = std::make_unique<uint64_t[]>((bytes + 7) / 8);
    auto* header = reinterpret_cast<abi::MsrsHeader*>(storage.get());  // Safe: sized and aligned above.
    header->nmsrs = static_cast<uint32_t>(msrs.size());
    auto* entries = reinterpret_cast<kvm_msr_entry*>(header + 1);
    for (size_t i = 0; i < msrs.size(); ++i) entries[i] = kvm_msr_entry{msrs[i].first, 0, msrs[i].second};
    // Safe: the list holds nmsrs initialised entries; KVM returns how many it set.
    int set = ::ioctl(fd_.get(), abi::kSetMsrs, header);
    if (set < 0) return errno_error("KVM_SET_MSRS on vCPU {}", id_);
    return static_cast<size_t>(set);
}

Result<kvm_lapic_state> Vcpu::lapic() const {
    kvm_lapic_state state{};
    if (auto r = vcpu_ioctl(fd_.get(), KVM_GET_LAPIC, &state, "KVM_GET_LAPIC", id_); !r)
        return std::unexpected(r.error());
    return state;
}

Result<void> Vcpu::set_lapic(const kvm_lapic_state& state) {
    kvm_lapic_state copy = state;
    return vcpu_ioctl(fd_.get(), KVM_SET_LAPIC, &copy, "KVM_SET_LAPIC", id_);
}

}  // namespace hospes::kvm
