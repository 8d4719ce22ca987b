#include "vmm/filters.hpp"

#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/sockios.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cstdint>
#include <fcntl.h>

namespace hospes {

namespace {

using sandbox::Allowlist;
using sandbox::ArgCondition;

constexpr uint64_t kAll = ~uint64_t{0};

// What every thread's runtime needs: its allocator (never executable
// memory), locks, time, logging, leaving.
void add_runtime(Allowlist& list) {
    list.allow_if("mmap", {{2, PROT_EXEC, 0}})
        .allow_if("mprotect", {{2, PROT_EXEC, 0}})
        .allow("munmap")
        // The allocator's main arena grows by brk (any thread may fall back to it).
        .allow("brk")
        .allow_if("madvise", {{2, kAll, MADV_DONTNEED}})
        .allow("futex")
        .allow("clock_gettime")
        .allow("write")
        // A thread's end blocks its signals, then exits.
        .allow("rt_sigprocmask")
        .allow("exit");
}

// Console output that reaches a capped log file rotates it.
void add_console_output(Allowlist& list) { list.allow("sendto").allow("ftruncate").allow("copy_file_range"); }

}  // namespace

Allowlist vcpu_allowlist(const MonitorFilterContext&) {
    Allowlist list{"vcpu", {}};
    const uint64_t kvm[] = {KVM_RUN, KVM_IRQ_LINE, KVM_GET_REGS, KVM_GET_SREGS};
    list.allow_values("ioctl", 1, kvm);
    add_runtime(list);
    add_console_output(list);
    // The kick (SIGUSR1) that stops KVM_RUN returns through rt_sigreturn;
    // a wait it interrupted may be restarted.
    list.allow("rt_sigreturn").allow("restart_syscall");
    return list;
}

Allowlist io_allowlist(const MonitorFilterContext& context) {
    Allowlist list{"io", {}};
    const uint64_t ioctls[] = {TUNSETOFFLOAD, KVM_GET_CLOCK, KVM_SET_CLOCK, KVM_IRQ_LINE};
    list.allow_values("ioctl", 1, ioctls);
    add_runtime(list);
    add_console_output(list);
    list.allow("epoll_wait").allow("epoll_ctl").allow("read").allow("writev").allow("close");
    list.allow("io_uring_enter");
    // vhost-user messages and the control socket (with descriptors handed over).
    list.allow("recvmsg").allow("sendmsg").allow("accept4");
    list.allow_if("getsockopt", {{1, kAll, SOL_SOCKET}, {2, kAll, SO_PEERCRED}});
    // A vhost-user back-end that came back: a new unix stream socket, its
    // reply timeouts, and the socket's path (in a jail, the domain's own
    // socket bound into its empty root: nothing else can be named there).
    list.allow_if("socket", {{0, kAll, AF_UNIX}, {1, kAll, SOCK_STREAM | SOCK_CLOEXEC}, {2, kAll, 0}});
    list.allow("connect");
    list.allow_if("setsockopt", {{1, kAll, SOL_SOCKET}, {2, kAll, SO_RCVTIMEO}});
    list.allow_if("setsockopt", {{1, kAll, SOL_SOCKET}, {2, kAll, SO_SNDTIMEO}});
    // The in-flight region a back-end hands over is checked before it is mapped.
    list.allow("newfstatat").allow_if("fcntl", {{1, kAll, F_GET_SEALS}});
    // The balloon gives pages back; the entropy device's bytes.
    list.allow_if("madvise", {{2, kAll, MADV_REMOVE}}).allow("getrandom");
    // Timers: a card's transmit cap, vhost-user retries.
    list.allow("timerfd_settime");
    // pause stops the vCPUs (tgkill on this process only); vcpu-pin.
    list.allow_if("tgkill", {{0, kAll, static_cast<uint64_t>(context.pid)}, {2, kAll, SIGUSR1}});
    list.allow("sched_setaffinity");
    return list;
}

Allowlist console_allowlist(const MonitorFilterContext&) {
    Allowlist list{"console", {}};
    // Input to the UART raises its interrupt line.
    const uint64_t kvm[] = {KVM_IRQ_LINE};
    list.allow_values("ioctl", 1, kvm);
    add_runtime(list);
    list.allow("poll").allow("read").allow("accept4").allow("close").allow("sendto").allow("restart_syscall");
    return list;
}

Allowlist main_allowlist(const MonitorFilterContext& context) {
    Allowlist list{"main", {}};
    add_runtime(list);
    // Waits for a stop request or a host signal, then kicks the vCPUs out
    // of KVM_RUN and reports.
    list.allow("poll").allow("read");
    list.allow_if("tgkill", {{0, kAll, static_cast<uint64_t>(context.pid)}, {2, kAll, SIGUSR1}});
    // The monitor's own memory use, from /proc/self/status opened before.
    list.allow("pread64").allow("mincore");
    list.allow("exit_group");
    if (!context.jailed) {
        // Cleaning up what a jailed monitor leaves to its jailer: the
        // terminal it put in raw mode, its sockets' files, a persistent
        // tap's bridge port; and the exit report put in place whole.
        list.allow_if("ioctl", {{0, kAll, 0}, {1, kAll, TCSETS}});
        list.allow("unlink").allow("rename");
        list.allow_if("ioctl", {{1, kAll, SIOCBRDELIF}});
    }
    return list;
}

std::vector<Allowlist> monitor_allowlists(const MonitorFilterContext& context) {
    return {main_allowlist(context), vcpu_allowlist(context), io_allowlist(context), console_allowlist(context)};
}

}  // namespace hospes
