#include "arch/x86_64/vcpu_setup.hpp"

#include <array>
#include <cstring>
#include <utility>

#include "arch/x86_64/layout.hpp"
#include "common/log.hpp"

namespace hospes::x86 {

namespace {

constexpr uint64_t kCr0Pe = 1u << 0, kCr0Et = 1u << 4, kCr0Pg = 1u << 31;
constexpr uint64_t kCr4Pae = 1u << 5;
constexpr uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;

constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint64_t kMiscEnableFastStrings = 1;

constexpr size_t kLapicLvt0 = 0x350, kLapicLvt1 = 0x360;
constexpr uint32_t kDeliveryModeMask = 0x700, kDeliveryExtInt = 0x700, kDeliveryNmi = 0x400;

// The kvm_segment a GDT descriptor describes when loaded with `selector`.
kvm_segment segment_from_descriptor(uint64_t descriptor, uint16_t selector) {
    kvm_segment segment{};
    segment.base = ((descriptor >> 16) & 0xffffff) | (((descriptor >> 56) & 0xff) << 24);
    uint32_t limit = static_cast<uint32_t>((descriptor & 0xffff) | (((descriptor >> 48) & 0xf) << 16));
    segment.g = (descriptor >> 55) & 1;
    segment.limit = segment.g ? (limit << 12) | 0xfff : limit;
    segment.selector = selector;
    segment.type = (descriptor >> 40) & 0xf;
    segment.s = (descriptor >> 44) & 1;
    segment.dpl = (descriptor >> 45) & 3;
    segment.present = (descriptor >> 47) & 1;
    segment.avl = (descriptor >> 52) & 1;
    segment.l = (descriptor >> 53) & 1;
    segment.db = (descriptor >> 54) & 1;
    return segment;
}

uint32_t read_lapic_register(const kvm_lapic_state& state, size_t offset) {
    uint32_t value;
    std::memcpy(&value, state.regs + offset, sizeof(value));
    return value;
}

void write_lapic_register(kvm_lapic_state& state, size_t offset, uint32_t value) {
    std::memcpy(state.regs + offset, &value, sizeof(value));
}

}  // namespace

Result<void> setup_vcpu(kvm::Vcpu& vcpu, std::span<const kvm_cpuid_entry2> cpuid) {
    if (!cpuid.empty())
        if (auto r = vcpu.set_cpuid(cpuid); !r) return r;

    const std::array<std::pair<uint32_t, uint64_t>, 1> msrs{{{kMsrMiscEnable, kMiscEnableFastStrings}}};
    // Only a hint for the guest: hosts that refuse it (PVM) lose nothing.
    auto set = vcpu.set_msrs(msrs);
    if (!set || *set != msrs.size()) log::debug("vCPU {}: KVM refused the initial MSRs", vcpu.id());

    kvm_fpu fpu{};
    fpu.fcw = 0x37f;     // x87 default control word
    fpu.mxcsr = 0x1f80;  // SSE: all exceptions masked
    if (auto r = vcpu.set_fpu(fpu); !r) return r;

    // LINT0 delivers the 8259's interrupts (ExtINT), LINT1 NMIs, as the MP
    // table says.
    auto lapic = vcpu.lapic();
    if (!lapic) return std::unexpected(lapic.error());
    write_lapic_register(*lapic, kLapicLvt0,
                         (read_lapic_register(*lapic, kLapicLvt0) & ~kDeliveryModeMask) | kDeliveryExtInt);
    write_lapic_register(*lapic, kLapicLvt1,
                         (read_lapic_register(*lapic, kLapicLvt1) & ~kDeliveryModeMask) | kDeliveryNmi);
    return vcpu.set_lapic(*lapic);
}

Result<void> set_boot_registers(kvm::Vcpu& vcpu, const BootEntry& entry) {
    auto sregs = vcpu.sregs();
    if (!sregs) return std::unexpected(sregs.error());
    bool long_mode = entry.mode == EntryMode::Linux64;
    kvm_segment code = long_mode ? segment_from_descriptor(kGdtCode64, kCode64Selector)
                                 : segment_from_descriptor(kGdtCode32, kCode32Selector);
    kvm_segment data = segment_from_descriptor(kGdtData, kDataSelector);
    sregs->cs = code;
    sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
    sregs->gdt.base = kGdtAddress;
    sregs->gdt.limit = 5 * 8 - 1;
    sregs->idt.base = 0;
    sregs->idt.limit = 0;
    // VM entry wants a usable TR even though the kernel loads its own.
    sregs->tr.present = 1;
    sregs->tr.type = 11;  // busy 64-bit TSS
    sregs->tr.limit = 0x67;
    if (long_mode) {
        sregs->cr0 = kCr0Pe | kCr0Et | kCr0Pg;
        sregs->cr3 = kPml4Address;
        sregs->cr4 = kCr4Pae;
        sregs->efer = kEferLme | kEferLma;
    } else {
        sregs->cr0 = kCr0Pe | kCr0Et;
        sregs->cr3 = 0;
        sregs->cr4 = 0;
        sregs->efer = 0;
    }
    if (auto r = vcpu.set_sregs(*sregs); !r) return r;

    kvm_regs regs{};
    regs.rflags = 0x2;  // bit 1 is reserved and always set
    regs.rip = entry.rip;
    if (long_mode)
        regs.rsi = entry.boot_info;
    else
        regs.rbx = entry.boot_info;
    return vcpu.set_regs(regs);
}

}  // namespace hospes::x86
