// The KVM wrappers and the x86 boot set-up on this host's /dev/kvm, with
// guests of a few instructions: port and MMIO exits, memory slots, several
// vCPUs on their own threads, HLT and triple-fault exits.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "arch/x86_64/boot.hpp"
#include "arch/x86_64/kernel_image.hpp"
#include "arch/x86_64/vcpu_setup.hpp"
#include "common/size.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu.hpp"
#include "kvm/vm.hpp"
#include "vmm/guest_memory.hpp"
#include "../unit/test_images.hpp"

namespace hospes {
namespace {

constexpr uint64_t kCodeAddress = 0x100000;
constexpr uint64_t kMemory = 64 * MiB;

// A VM without the in-kernel irqchip, so HLT comes back to user space, with
// `code` loaded at 1 MiB through the monitor's own 64-bit boot path.
class TinyGuest : public ::testing::Test {
protected:
    void boot(const std::vector<uint8_t>& code, uint32_t vcpus = 1) {
        auto system = kvm::System::open();
        ASSERT_TRUE(system) << system.error().message;
        auto vm = system->create_vm();
        ASSERT_TRUE(vm) << vm.error().message;
        std::vector<std::pair<uint64_t, uint64_t>> ranges{{0, kMemory}};
        auto memory = GuestMemory::create(ranges);
        ASSERT_TRUE(memory);
        ASSERT_TRUE(vm->set_memory_region(0, 0, kMemory, memory->regions()[0].host.data()));
        image_ = test::make_elf(kCodeAddress, kCodeAddress, 4096, false);
        std::memcpy(image_.data() + 4096, code.data(), code.size());
        auto kernel = x86::parse_kernel_image(image_);
        ASSERT_TRUE(kernel);
        auto entry = x86::load_guest(*memory, *kernel, x86::BootConfig{kMemory, vcpus, "", {}});
        ASSERT_TRUE(entry) << entry.error().message;
        for (uint32_t i = 0; i < vcpus; ++i) {
            auto vcpu = vm->create_vcpu(i);
            ASSERT_TRUE(vcpu) << vcpu.error().message;
            auto e = *entry;
            e.rip += i * 0x100;  // each vCPU runs its own code slot
            ASSERT_TRUE(x86::set_boot_registers(*vcpu, e));
            vcpus_.push_back(std::move(*vcpu));
        }
        memory_.emplace(std::move(*memory));
        vm_.emplace(std::move(*vm));
        system_.emplace(std::move(*system));
    }

    kvm_run* run(kvm::Vcpu& vcpu) {
        for (;;) {
            auto ran = vcpu.run();
            EXPECT_TRUE(ran) << ran.error().message;
            if (!ran || *ran) return vcpu.run_area();
        }
    }

    std::vector<uint8_t> image_;
    std::optional<kvm::System> system_;
    std::optional<kvm::Vm> vm_;
    std::optional<GuestMemory> memory_;
    std::vector<kvm::Vcpu> vcpus_;
};

TEST(KvmSystem, OpensAndReportsLimits) {
    auto system = kvm::System::open();
    ASSERT_TRUE(system) << system.error().message;
    EXPECT_GE(system->max_vcpus(), 1);
    auto size = system->vcpu_mmap_size();
    ASSERT_TRUE(size);
    EXPECT_GE(*size, sizeof(kvm_run));
}

TEST(KvmSystem, MissingDeviceIsOneClearError) {
    auto system = kvm::System::open("/dev/does-not-exist-kvm");
    ASSERT_FALSE(system);
    EXPECT_EQ(system.error().kind, ErrorKind::Host);
    EXPECT_NE(system.error().message.find("does not exist"), std::string::npos);
    auto not_kvm = kvm::System::open("/dev/null");
    ASSERT_FALSE(not_kvm);
    EXPECT_NE(not_kvm.error().message.find("API version"), std::string::npos) << not_kvm.error().message;
}

TEST_F(TinyGuest, PortWriteAndReadExits) {
    // out 0x3f8, 'K'; in al, 0x71; out 0x80, al; hlt
    boot({0xb0, 'K', 0x66, 0xba, 0xf8, 0x03, 0xee, 0xe4, 0x71, 0xe6, 0x80, 0xf4});
    auto* r = run(vcpus_[0]);
    ASSERT_EQ(r->exit_reason, KVM_EXIT_IO);
    EXPECT_EQ(r->io.direction, KVM_EXIT_IO_OUT);
    EXPECT_EQ(r->io.port, 0x3f8);
    EXPECT_EQ(r->io.size, 1);
    EXPECT_EQ(*(reinterpret_cast<uint8_t*>(r) + r->io.data_offset), 'K');
    r = run(vcpus_[0]);
    ASSERT_EQ(r->exit_reason, KVM_EXIT_IO);
    EXPECT_EQ(r->io.direction, KVM_EXIT_IO_IN);
    EXPECT_EQ(r->io.port, 0x71);
    *(reinterpret_cast<uint8_t*>(r) + r->io.data_offset) = 0x5a;  // the device's answer
    r = run(vcpus_[0]);
    ASSERT_EQ(r->exit_reason, KVM_EXIT_IO);
    EXPECT_EQ(r->io.port, 0x80);
    EXPECT_EQ(*(reinterpret_cast<uint8_t*>(r) + r->io.data_offset), 0x5a) << "IN result reached the guest";
    r = run(vcpus_[0]);
    EXPECT_EQ(r->exit_reason, KVM_EXIT_HLT);
}

TEST_F(TinyGuest, MmioReadAndWriteExits) {
    // movabs eax, [0xd0000000]; inc eax; movabs [0xd0000008], eax; hlt
    boot({0xa1, 0x00, 0x00, 0x00, 0xd0, 0, 0, 0, 0, 0xff, 0xc0, 0xa3, 0x08, 0x00, 0x00, 0xd0, 0, 0, 0, 0, 0xf4});
    auto* r = run(vcpus_[0]);
    ASSERT_EQ(r->exit_reason, KVM_EXIT_MMIO);
    EXPECT_FALSE(r->mmio.is_write);
    EXPECT_EQ(r->mmio.phys_addr, 0xd0000000u);
    EXPECT_EQ(r->mmio.len, 4u);
    uint32_t value = 41;
    std::memcpy(r->mmio.data, &value, 4);
    r = run(vcpus_[0]);
    ASSERT_EQ(r->exit_reason, KVM_EXIT_MMIO);
    EXPECT_TRUE(r->mmio.is_write);
    EXPECT_EQ(r->mmio.phys_addr, 0xd0000008u);
    std::memcpy(&value, r->mmio.data, 4);
    EXPECT_EQ(value, 42u);
}

TEST_F(TinyGuest, SecondMemorySlotIsGuestRam) {
    // mov al, [0x8000000]; out 0x80, al; mov byte [0x8000001], 0x77; hlt
    boot({0x8a, 0x04, 0x25, 0x00, 0x00, 0x00, 0x08, 0xe6, 0x80, 0xc6, 0x04, 0x25, 0x01, 0x00, 0x00, 0x08, 0x77, 0xf4});
    auto slot = Mapping::anonymous(2 * MiB);
    ASSERT_TRUE(slot);
    slot->data()[0] = 0x99;
    ASSERT_TRUE(vm_->set_memory_region(1, 128 * MiB, 2 * MiB, slot->data()));
    auto* r = run(vcpus_[0]);
    ASSERT_EQ(r->exit_reason, KVM_EXIT_IO);
    EXPECT_EQ(*(reinterpret_cast<uint8_t*>(r) + r->io.data_offset), 0x99);
    r = run(vcpus_[0]);
    EXPECT_EQ(r->exit_reason, KVM_EXIT_HLT);
    EXPECT_EQ(slot->data()[1], 0x77) << "the guest's store reached the host mapping";
}

TEST_F(TinyGuest, VcpusRunOnTheirOwnThreads) {
    // Each vCPU's slot: mov al, <index>; out 0x80, al; hlt
    std::vector<uint8_t> code(0x400, 0x90);
    for (uint8_t i = 0; i < 4; ++i) {
        const uint8_t slot[] = {0xb0, i, 0xe6, 0x80, 0xf4};
        std::memcpy(code.data() + i * 0x100, slot, sizeof(slot));
    }
    boot(code, 4);
    std::vector<int> seen(4, -1);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < vcpus_.size(); ++i)
        threads.emplace_back([&, i] {
            auto* r = run(vcpus_[i]);
            if (r->exit_reason == KVM_EXIT_IO) seen[i] = *(reinterpret_cast<uint8_t*>(r) + r->io.data_offset);
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(TinyGuest, TripleFaultIsAShutdownExit) {
    // lidt [zero-limit descriptor]; ud2
    std::vector<uint8_t> code{0x0f, 0x01, 0x1c, 0x25, 0x00, 0x02, 0x10, 0x00, 0x0f, 0x0b};
    code.resize(0x200 + 10, 0);  // the IDT descriptor at 0x100200 is all zero
    boot(code);
    auto* r = run(vcpus_[0]);
    EXPECT_EQ(r->exit_reason, KVM_EXIT_SHUTDOWN);
}

}  // namespace
}  // namespace hospes
