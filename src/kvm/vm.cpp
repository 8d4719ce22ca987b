#include "kvm/vm.hpp"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include "kvm/vcpu.hpp"

namespace hospes::kvm {

Result<void> Vm::set_memory_region(uint32_t slot, uint64_t guest_address, uint64_t size, void* host) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.guest_phys_addr = guest_address;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<uint64_t>(host);
    // Safe: the region struct is fully initialised; the caller keeps the
    // host mapping alive as long as the VM.
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return errno_error("KVM_SET_USER_MEMORY_REGION slot {} at {:#x} size {:#x}", slot, guest_address, size);
    return {};
}

Result<void> Vm::set_tss_address(uint64_t address) {
    // Safe: the address is passed by value.
    if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, address) < 0) return errno_error("KVM_SET_TSS_ADDR");
    return {};
}

Result<void> Vm::set_identity_map_address(uint64_t address) {
    // Safe: KVM reads one u64 from the pointer.
    if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &address) < 0) return errno_error("KVM_SET_IDENTITY_MAP_ADDR");
    return {};
}

Result<void> Vm::create_irqchip() {
    // Safe: no argument.
    if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) return errno_error("KVM_CREATE_IRQCHIP");
    return {};
}

Result<void> Vm::create_pit() {
    kvm_pit_config config{};
    // Safe: the config struct is fully initialised (no speaker port dummy).
    if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &config) < 0) return errno_error("KVM_CREATE_PIT2");
    return {};
}

Result<void> Vm::set_irq_line(uint32_t irq, bool level) {
    kvm_irq_level line{};
    line.irq = irq;
    line.level = level ? 1 : 0;
    // Safe: the struct is fully initialised.
    if (::ioctl(fd_.get(), KVM_IRQ_LINE, &line) < 0) return errno_error("KVM_IRQ_LINE {}", irq);
    return {};
}

Result<uint64_t> Vm::clock() const {
    kvm_clock_data data{};
    // Safe: KVM fills the struct it is given.
    if (::ioctl(fd_.get(), KVM_GET_CLOCK, &data) < 0) return errno_error("KVM_GET_CLOCK");
    return static_cast<uint64_t>(data.clock);
}

Result<void> Vm::set_clock(uint64_t nanoseconds) {
    kvm_clock_data data{};
    data.clock = nanoseconds;
    // Safe: the struct is fully initialised; flags 0 sets the clock alone.
    if (::ioctl(fd_.get(), KVM_SET_CLOCK, &data) < 0) return errno_error("KVM_SET_CLOCK");
    return {};
}

Result<void> Vm::add_ioeventfd(uint64_t address, uint32_t length, uint64_t value, int eventfd) {
    kvm_ioeventfd request{};
    request.addr = address;
    request.len = length;
    request.datamatch = value;
    request.fd = eventfd;
    request.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
    // Safe: the struct is fully initialised; KVM keeps its own reference to the eventfd.
    if (::ioctl(fd_.get(), KVM_IOEVENTFD, &request) < 0) return errno_error("KVM_IOEVENTFD at {:#x}", address);
    return {};
}

Result<void> Vm::add_irqfd(int eventfd, uint32_t gsi) {
    kvm_irqfd request{};
    request.fd = static_cast<uint32_t>(eventfd);
    request.gsi = gsi;
    // Safe: the struct is fully initialised.
    if (::ioctl(fd_.get(), KVM_IRQFD, &request) < 0) return errno_error("KVM_IRQFD for GSI {}", gsi);
    return {};
}

Result<Vcpu> Vm::create_vcpu(uint32_t id) {
    // Safe: the vCPU id is passed by value.
    int vcpu_fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
    if (vcpu_fd < 0) return errno_error("KVM_CREATE_VCPU {}", id);
    UniqueFd fd(vcpu_fd);
    // Safe: KVM defines the size of the shared kvm_run area for this fd.
    void* run = ::mmap(nullptr, vcpu_mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
    if (run == MAP_FAILED) return errno_error("mmap of vCPU {} run area", id);
    return Vcpu(id, std::move(fd), Mapping(run, vcpu_mmap_size_));
}

}  // namespace hospes::kvm
