#include "kvm/system.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <memory>

#include "kvm/abi.hpp"
#include "kvm/vm.hpp"

namespace hospes::kvm {

namespace {

struct RequiredCapability {
    long id;
    const char* name;
};

// Everything the monitor uses unconditionally.
constexpr RequiredCapability kRequired[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_NR_MEMSLOTS, "KVM_CAP_NR_MEMSLOTS"},
};

}  // namespace

Result<System> System::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return host_error("{} does not exist: this host has no KVM (load kvm_intel or kvm_amd)", path);
        if (errno == EACCES || errno == EPERM)
            return host_error("no permission to open {}: run as root or join the group that owns it", path);
        return errno_error("cannot open {}", path);
    }
    System system{UniqueFd(fd)};
    // Safe: KVM_GET_API_VERSION takes no argument.
    int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return host_error("{} speaks KVM API version {}, hospes needs {}", path, version, KVM_API_VERSION);
    for (const auto& cap : kRequired)
        if (system.check_extension(cap.id) <= 0) return host_error("this host's KVM lacks {}", cap.name);
    return system;
}

int System::check_extension(long capability) const {
    // Safe: KVM_CHECK_EXTENSION takes the capability number by value.
    int value = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
    return value < 0 ? 0 : value;
}

Result<size_t> System::vcpu_mmap_size() const {
    // Safe: no argument.
    int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size <= 0) return errno_error("KVM_GET_VCPU_MMAP_SIZE");
    return static_cast<size_t>(size);
}

int System::max_vcpus() const {
    int max = check_extension(KVM_CAP_MAX_VCPUS);
    return max > 0 ? max : check_extension(KVM_CAP_NR_VCPUS);
}

Result<std::vector<kvm_cpuid_entry2>> System::supported_cpuid() const {
    // KVM fills a caller-sized array; grow it until it fits (E2BIG).
    for (size_t capacity = 64; capacity <= 1024; capacity *= 2) {
        size_t bytes = sizeof(abi::CpuidHeader) + capacity * sizeof(kvm_cpuid_entry2);
        auto storage = std::make_unique<uint64_t[]>((bytes + 7) / 8);
        auto* header = reinterpret_cast<abi::CpuidHeader*>(storage.get());  // Safe: sized and aligned above.
        header->nent = static_cast<uint32_t>(capacity);
        // Safe: the buffer holds `nent` entries after the header, as KVM expects.
        if (::ioctl(fd_.get(), abi::kGetSupportedCpuid, header) == 0) {
            auto* entries = reinterpret_cast<const kvm_cpuid_entry2*>(header + 1);
            return std::vector<kvm_cpuid_entry2>(entries, entries + header->nent);
        }
        if (errno != E2BIG) return errno_error("KVM_GET_SUPPORTED_CPUID");
    }
    return host_error("KVM_GET_SUPPORTED_CPUID: too many entries");
}

Result<Vm> System::create_vm() const {
    // Safe: machine type 0 is the default x86 VM.
    int vm_fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
    if (vm_fd < 0) return errno_error("KVM_CREATE_VM");
    auto mmap_size = vcpu_mmap_size();
    if (!mmap_size) return std::unexpected(mmap_size.error());
    return Vm(UniqueFd(vm_fd), *mmap_size);
}

}  // namespace hospes::kvm
