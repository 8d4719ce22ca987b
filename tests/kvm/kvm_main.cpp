// main() of the kvm tests: on a host whose /dev/kvm is missing or cannot
// make a VM they report "skipped" to ctest (exit 77) instead of failing;
// lab.kvm runs the same binary inside the nested lab, on its /dev/kvm.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace {
// Why this host's /dev/kvm cannot run the tests, or nullptr when it can.
const char* kvm_unusable() {
    int kvm = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return errno == ENOENT ? "there is no /dev/kvm" : "/dev/kvm cannot be opened";
    int vm = ::ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm >= 0) ::close(vm);
    ::close(kvm);
    return vm >= 0 ? nullptr : "/dev/kvm cannot create a VM";
}
}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (const char* why = kvm_unusable(); !::testing::GTEST_FLAG(list_tests) && why != nullptr) {
        std::printf("skipped here: %s (lab.kvm runs these tests in the nested lab)\n", why);
        return 77;
    }
    return RUN_ALL_TESTS();
}
