// One KVM virtual machine: memory slots, the in-kernel irqchip and PIT,
// interrupt lines, and its vCPUs.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace hospes::kvm {

class Vcpu;

class Vm {
public:
    Vm(UniqueFd fd, size_t vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

    int fd() const { return fd_.get(); }

    // Maps `size` bytes of host memory at `host` into the guest at `guest_address`.
    Result<void> set_memory_region(uint32_t slot, uint64_t guest_address, uint64_t size, void* host);
    // Intel VMX needs three pages for its real-mode TSS and one for the
    // identity map; both live in the MMIO hole below 4 GiB.
    Result<void> set_tss_address(uint64_t address);
    Result<void> set_identity_map_address(uint64_t address);
    // In-kernel PIC + IOAPIC + local APICs, and the PIT (i8254).
    Result<void> create_irqchip();
    Result<void> create_pit();
    // Drives a GSI of the in-kernel irqchip to `level`.
    Result<void> set_irq_line(uint32_t irq, bool level);

    // Guest writes of `value` (`length` bytes) to MMIO `address` signal
    // `eventfd` inside KVM instead of exiting to the monitor.
    Result<void> add_ioeventfd(uint64_t address, uint32_t length, uint64_t value, int eventfd);
    // Writing to `eventfd` raises an edge on `gsi` inside KVM.
    Result<void> add_irqfd(int eventfd, uint32_t gsi);

    // The guest's kvmclock in nanoseconds: read when the guest is paused
    // and written back when it resumes, so its clock does not advance
    // while it was not running (KVM_CAP_ADJUST_CLOCK).
    Result<uint64_t> clock() const;
    Result<void> set_clock(uint64_t nanoseconds);

    Result<Vcpu> create_vcpu(uint32_t id);

private:
    UniqueFd fd_;
    size_t vcpu_mmap_size_;
};

}  // namespace hospes::kvm
