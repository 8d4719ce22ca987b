// The variable-length KVM structures, declared with the kernel ABI's sizes.
// With Linux 6.1's UAPI headers, __DECLARE_FLEX_ARRAY adds an empty struct
// under C++, making sizeof(kvm_cpuid2) 12 instead of 8: every ioctl number
// derived from it is then wrong (the kernel answers EINVAL) and `entries`
// sits at the wrong offset. These headers and numbers are the C ABI's.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace hospes::kvm::abi {

struct CpuidHeader {  // struct kvm_cpuid2 without its entries
    uint32_t nent;
    uint32_t padding;
};
static_assert(sizeof(CpuidHeader) == 8);

struct MsrsHeader {  // struct kvm_msrs without its entries
    uint32_t nmsrs;
    uint32_t pad;
};
static_assert(sizeof(MsrsHeader) == 8);
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16);

inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
static_assert(kGetSupportedCpuid == 0xc008ae05 && kSetCpuid2 == 0x4008ae90 && kSetMsrs == 0x4008ae89);

}  // namespace hospes::kvm::abi
