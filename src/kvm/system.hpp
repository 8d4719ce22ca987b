// The host's KVM: /dev/kvm, its API version and capabilities.
#pragma once

#include <linux/kvm.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace hospes::kvm {

class Vm;

class System {
public:
    // Opens /dev/kvm (or `path`) and checks the API version and every
    // capability the monitor relies on; the error names what is missing.
    static Result<System> open(const std::string& path = "/dev/kvm");

    int fd() const { return fd_.get(); }
    // KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific value.
    int check_extension(long capability) const;
    Result<size_t> vcpu_mmap_size() const;
    int max_vcpus() const;
    // The CPUID leaves KVM can present to a guest on this host.
    Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
    Result<Vm> create_vm() const;

private:
    explicit System(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

}  // namespace hospes::kvm
