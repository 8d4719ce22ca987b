// main() of the kvm tests: on a host whose /dev/kvm cannot make a VM they
// report "skipped" to ctest (exit 77) instead of failing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace {
bool kvm_usable() {
    int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return false;
    int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm >= 0) ::close(vm);
    ::close(kvm);
    return vm >= 0;
}
}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (!::testing::GTEST_FLAG(list_tests) && !kvm_usable()) {
        std::printf("skipped: /dev/kvm is missing or cannot create a VM\n");
        return 77;
    }
    return RUN_ALL_TESTS();
}
