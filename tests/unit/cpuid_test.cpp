// CPUID as each vCPU sees it: APIC id, topology, hypervisor bit; KVM's own
// paravirtual leaves pass through untouched.
#include <gtest/gtest.h>

#include "arch/x86_64/cpuid.hpp"

namespace hospes::x86 {
namespace {

kvm_cpuid_entry2 leaf(uint32_t function, uint32_t index = 0) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = index;
    return e;
}

const kvm_cpuid_entry2& find(const std::vector<kvm_cpuid_entry2>& entries, uint32_t function, uint32_t index = 0) {
    for (const auto& e : entries)
        if (e.function == function && e.index == index) return e;
    throw std::runtime_error("leaf missing");
}

std::vector<kvm_cpuid_entry2> supported() {
    auto kvm_features = leaf(0x40000001);
    kvm_features.eax = 0x01007afb;
    return {leaf(1), leaf(0xb, 0), leaf(0xb, 1), leaf(0xb, 2), leaf(0x80000008), leaf(0x8000001e), kvm_features};
}

TEST(Cpuid, ApicIdAndTopologyPerVcpu) {
    auto cpu2 = vcpu_cpuid(supported(), 2, 4, true);
    EXPECT_EQ(find(cpu2, 1).ebx >> 24, 2u);
    EXPECT_EQ((find(cpu2, 1).ebx >> 16) & 0xff, 4u);
    EXPECT_TRUE(find(cpu2, 1).ecx & (1u << 31)) << "hypervisor present";
    EXPECT_TRUE(find(cpu2, 1).edx & (1u << 28)) << "HTT with several logical CPUs";
    EXPECT_TRUE(find(cpu2, 1).ecx & (1u << 24)) << "TSC-deadline timer, which KVM has";
    EXPECT_EQ(find(cpu2, 0xb, 0).ebx, 1u);
    EXPECT_EQ(find(cpu2, 0xb, 1).ebx, 4u);
    EXPECT_EQ(find(cpu2, 0xb, 1).eax, 2u) << "2 bits of core id for 4 cores";
    EXPECT_EQ(find(cpu2, 0xb, 1).edx, 2u);
    EXPECT_EQ(find(cpu2, 0xb, 2).ebx, 0u);
    EXPECT_EQ(find(cpu2, 0x80000008).ecx & 0xff, 3u);
    EXPECT_EQ(find(cpu2, 0x8000001e).eax, 2u);
    EXPECT_EQ(find(cpu2, 0x40000001).eax, 0x01007afbu) << "KVM PV features untouched";
}

TEST(Cpuid, SingleVcpuHasNoHtt) {
    auto cpu0 = vcpu_cpuid(supported(), 0, 1, false);
    EXPECT_FALSE(find(cpu0, 1).edx & (1u << 28));
    EXPECT_FALSE(find(cpu0, 1).ecx & (1u << 24)) << "no TSC-deadline timer where KVM lacks it";
    EXPECT_EQ(find(cpu0, 0xb, 1).eax, 0u);
    EXPECT_EQ(find(cpu0, 0xb, 1).ebx, 1u);
}

}  // namespace
}  // namespace hospes::x86
