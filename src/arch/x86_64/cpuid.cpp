#include "arch/x86_64/cpuid.hpp"

#include <bit>

namespace hospes::x86 {

namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheTopology = 0x4;
constexpr uint32_t kLeafExtendedTopology = 0xb;
constexpr uint32_t kLeafExtendedTopologyV2 = 0x1f;
constexpr uint32_t kLeafAmdSizes = 0x80000008;
constexpr uint32_t kLeafAmdTopology = 0x8000001e;

constexpr uint32_t kEcxTscDeadline = 1u << 24;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEdxHtt = 1u << 28;

// Bits of the APIC id that number the cores of the package.
uint32_t core_id_bits(uint32_t vcpu_count) {
    return vcpu_count <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(vcpu_count - 1));
}

void set_extended_topology(kvm_cpuid_entry2& entry, uint32_t apic_id, uint32_t vcpu_count) {
    // Level 0: SMT, one thread per core. Level 1: cores. Then the end marker.
    entry.edx = apic_id;
    switch (entry.index) {
    case 0:
        entry.eax = 0;
        entry.ebx = 1;
        entry.ecx = 0 | (1u << 8);
        break;
    case 1:
        entry.eax = core_id_bits(vcpu_count);
        entry.ebx = vcpu_count;
        entry.ecx = 1 | (2u << 8);
        break;
    default:
        entry.eax = 0;
        entry.ebx = 0;
        entry.ecx = entry.index;
        break;
    }
}

}  // namespace

std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::vector<kvm_cpuid_entry2> entries, uint32_t vcpu_index,
                                         uint32_t vcpu_count, bool tsc_deadline_timer) {
    const uint32_t apic_id = vcpu_index;
    for (auto& entry : entries) {
        switch (entry.function) {
        case kLeafFeatures:
            // EBX: initial APIC id [31:24], logical processors [23:16], CLFLUSH line [15:8].
            entry.ebx = (apic_id << 24) | ((vcpu_count & 0xff) << 16) | (8u << 8);
            entry.ecx |= kEcxHypervisor;
            // KVM emulates the TSC-deadline timer but leaves announcing it to
            // us. Without it Linux calibrates the APIC timer against the PIT,
            // and where that check fails (timing under emulation) it ticks
            // on the PIT alone: every timer an I/O exit, one device for all
            // vCPUs.
            if (tsc_deadline_timer) entry.ecx |= kEcxTscDeadline;
            if (vcpu_count > 1)
                entry.edx |= kEdxHtt;
            else
                entry.edx &= ~kEdxHtt;
            break;
        case kLeafCacheTopology:
            // EAX[31:26]: cores per package - 1; [25:14]: threads sharing this cache - 1.
            if ((entry.eax & 0x1f) != 0) {
                uint32_t level = (entry.eax >> 5) & 0x7;
                uint32_t sharing = level >= 3 ? vcpu_count - 1 : 0;
                entry.eax = (entry.eax & 0x3fff) | ((sharing & 0xfff) << 14) | (((vcpu_count - 1) & 0x3f) << 26);
            }
            break;
        case kLeafExtendedTopology:
        case kLeafExtendedTopologyV2:
            set_extended_topology(entry, apic_id, vcpu_count);
            break;
        case kLeafAmdSizes:
            // ECX: APIC id bits for cores [15:12], cores per package - 1 [7:0].
            entry.ecx = (core_id_bits(vcpu_count) << 12) | ((vcpu_count - 1) & 0xff);
            break;
        case kLeafAmdTopology:
            entry.eax = apic_id;
            entry.ebx = apic_id & 0xff;  // core id; one thread per core
            entry.ecx = 0;               // node 0, one node per package
            break;
        default:
            break;
        }
    }
    return entries;
}

}  // namespace hospes::x86
