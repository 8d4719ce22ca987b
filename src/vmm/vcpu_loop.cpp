#include "vmm/vcpu_loop.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <ctime>

#include "common/log.hpp"

namespace hospes {

namespace {

constexpr int kKickSignal = SIGUSR1;

void handle_io(kvm_run* run, const IoBus& pio) {
    // Safe: KVM places `count` items of `size` bytes at data_offset inside
    // the run area it sized.
    auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
    for (uint32_t i = 0; i < run->io.count; ++i) {
        std::span<uint8_t> item(data + i * run->io.size, run->io.size);
        if (run->io.direction == KVM_EXIT_IO_OUT)
            pio.write(run->io.port, item);
        else
            pio.read(run->io.port, item);
    }
}

void handle_mmio(kvm_run* run, const IoBus& mmio) {
    uint32_t length = std::min<uint32_t>(run->mmio.len, sizeof(run->mmio.data));
    std::span<uint8_t> data(run->mmio.data, length);
    if (run->mmio.is_write)
        mmio.write(run->mmio.phys_addr, data);
    else
        mmio.read(run->mmio.phys_addr, data);
}

}  // namespace

void PauseGate::close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
}

bool PauseGate::wait_parked(size_t count, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return parked_ >= count || released_; }) && !released_;
}

void PauseGate::open() {
    std::lock_guard lock(mutex_);
    closed_ = false;
    changed_.notify_all();
}

bool PauseGate::closed() const {
    std::lock_guard lock(mutex_);
    return closed_ && !released_;
}

void PauseGate::park() {
    std::unique_lock lock(mutex_);
    ++parked_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !closed_ || released_; });
    --parked_;
}

void PauseGate::release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    changed_.notify_all();
}

void install_vcpu_kick_handler() {
    struct sigaction action{};
    action.sa_handler = [](int) {};
    sigemptyset(&action.sa_mask);
    ::sigaction(kKickSignal, &action, nullptr);  // no SA_RESTART: KVM_RUN returns EINTR
}

void kick_vcpu(kvm::Vcpu& vcpu, pid_t pid, pid_t tid) {
    // immediate_exit covers the window before the thread re-enters KVM_RUN
    // (and a thread whose id is not known yet).
    __atomic_store_n(&vcpu.run_area()->immediate_exit, 1, __ATOMIC_SEQ_CST);
    // tgkill itself, not pthread_kill: that one asks getpid (and blocks
    // every signal around it), one more call for the filters to allow.
    if (tid != 0) ::syscall(SYS_tgkill, pid, tid, kKickSignal);
}

void run_vcpu(kvm::Vcpu& vcpu, VcpuBuses buses, StopSignal& stop, PauseGate& pause) {
    kvm_run* run = vcpu.run_area();
    if (vcpu.id() == 0) {
        // For bench/: how long the monitor took from exec to running the guest.
        timespec now{}, cpu{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
        log::debug("first KVM_RUN: monotonic {} ns, process CPU {} us", now.tv_sec * 1000000000ll + now.tv_nsec,
                   cpu.tv_sec * 1000000ll + cpu.tv_nsec / 1000);
    }
    while (!stop.requested()) {
        while (pause.closed()) pause.park();
        if (stop.requested()) break;
        auto ran = vcpu.run();
        if (!ran) {
            log::error("{}", ran.error().message);
            stop.request(StopReason::HostError);
            return;
        }
        if (!*ran) {
            // Kicked: clear the kick, then look at why (stop, pause). The
            // kicker sets its reason before immediate_exit, so a reason
            // missed here comes with a kick that ends the next KVM_RUN.
            __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
            continue;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: handle_io(run, buses.pio); break;
        case KVM_EXIT_MMIO: handle_mmio(run, buses.mmio); break;
        case KVM_EXIT_INTR: break;
        case KVM_EXIT_HLT:
            log::info("vCPU {} halted", vcpu.id());
            stop.request(StopReason::PowerOff);
            return;
        case KVM_EXIT_SHUTDOWN:
            log::error("guest triple fault on vCPU {}", vcpu.id());
            dump_vcpu_state(vcpu);
            stop.request(StopReason::Crash);
            return;
        case KVM_EXIT_SYSTEM_EVENT:
            if (run->system_event.type == KVM_SYSTEM_EVENT_CRASH) {
                log::error("guest reported a crash on vCPU {}", vcpu.id());
                stop.request(StopReason::Crash);
            } else {
                stop.request(run->system_event.type == KVM_SYSTEM_EVENT_RESET ? StopReason::Reboot
                                                                              : StopReason::PowerOff);
            }
            return;
        case KVM_EXIT_FAIL_ENTRY:
            log::error("vCPU {} cannot enter the guest (hardware reason {:#x})", vcpu.id(),
                       static_cast<uint64_t>(run->fail_entry.hardware_entry_failure_reason));
            dump_vcpu_state(vcpu);
            stop.request(StopReason::HostError);
            return;
        case KVM_EXIT_INTERNAL_ERROR:
            log::error("KVM internal error on vCPU {} (suberror {})", vcpu.id(), run->internal.suberror);
            dump_vcpu_state(vcpu);
            stop.request(StopReason::HostError);
            return;
        default:
            log::error("vCPU {}: unexpected KVM exit reason {}", vcpu.id(), run->exit_reason);
            dump_vcpu_state(vcpu);
            stop.request(StopReason::HostError);
            return;
        }
    }
}

void dump_vcpu_state(const kvm::Vcpu& vcpu) {
    auto regs = vcpu.regs();
    auto sregs = vcpu.sregs();
    if (!regs || !sregs) {
        log::error("vCPU {}: registers unavailable", vcpu.id());
        return;
    }
    const auto& r = *regs;
    const auto& s = *sregs;
    log::error("vCPU {} rip={:#018x} rsp={:#018x} rflags={:#010x}", vcpu.id(), r.rip, r.rsp, r.rflags);
    log::error("  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}", r.rax, r.rbx, r.rcx, r.rdx);
    log::error("  rsi={:#018x} rdi={:#018x} rbp={:#018x} r8={:#018x}", r.rsi, r.rdi, r.rbp, r.r8);
    log::error("  cr0={:#018x} cr2={:#018x} cr3={:#018x} cr4={:#018x} efer={:#x}", s.cr0, s.cr2, s.cr3, s.cr4,
               s.efer);
    log::error("  cs={:#06x} base={:#x} l={} db={}  ss={:#06x}  idt={:#x}/{:#x} gdt={:#x}/{:#x}", s.cs.selector,
               s.cs.base, s.cs.l, s.cs.db, s.ss.selector, s.idt.base, s.idt.limit, s.gdt.base, s.gdt.limit);
    // KVM on AMD (SVM) reinitializes a vCPU whose guest shut down, since the
    // VMCB is undefined after a shutdown: say so rather than let the reset
    // vector pass for the place of the fault.
    if (s.cs.selector == 0xf000 && s.cs.base == 0xffff0000 && r.rip == 0xfff0)
        log::error("  (these are the vCPU's reset values: KVM on AMD resets a vCPU after a triple fault, so the "
                   "state at the fault is lost)");
}

}  // namespace hospes
