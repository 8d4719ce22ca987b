// One guest: its KVM VM, memory, vCPUs and devices, built from a
// MachineConfig, and the threads that run it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu.hpp"
#include "kvm/vm.hpp"
#include "vmm/control_server.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/escape_drill.hpp"
#include "vmm/filters.hpp"
#include "sandbox/jail.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/host_console.hpp"
#include "vmm/io_bus.hpp"
#include "vmm/stop_signal.hpp"
#include "vmm/vcpu_loop.hpp"

namespace hospes {

namespace devices {
class AcpiPm;
class Serial;
class VirtioBalloon;
class VirtioConsole;
}
namespace virtio {
class Device;
class MmioTransport;
}
namespace vhost_user {
class VhostUserDevice;
}

// A virtio-blk disk backed by an image file or a host block device, or
// served by a vhost-user back-end (hospes-blkback) at a socket.
struct DiskConfig {
    std::string path;
    std::string vhost_user_socket;  // set: the back-end serves it; path, read_only and direct are its business
    bool read_only = false;
    bool direct = false;  // O_DIRECT: bypass the host page cache
};

// A virtio-net card backed by a tap device.
struct NetConfig {
    std::string tap;     // tap name; empty: the kernel picks one
    std::string bridge;  // host bridge to attach the tap to; empty: none
    std::optional<std::array<uint8_t, 6>> mac;  // none: a random local address
    std::string vhost_user_socket;  // set: a back-end (hospes-netback) serves the card and gives its MAC
    uint64_t tx_bps = 0, tx_bps_burst = 0;  // a cap on what the guest sends (0: none; burst 0: 0.1 s of it)
};

enum class ConsoleKind { Serial, Virtio };

struct MachineConfig {
    std::string kernel_path;
    std::string initrd_path;  // empty: none
    std::string cmdline;
    uint64_t memory_size = 0;
    uint32_t vcpus = 1;
    std::vector<std::vector<unsigned>> vcpu_cpus;  // per vCPU (or one for all): host CPUs it may run on
    std::vector<DiskConfig> disks;
    std::vector<NetConfig> nets;
    ConsoleKind console = ConsoleKind::Serial;
    bool hugepages = false;  // guest RAM on the host's huge pages
    std::string control_socket;  // the monitor's control socket; empty: none
    bool start_paused = false;   // the vCPUs wait for an unpause request
    bool balloon = false;        // a virtio-balloon, so the control socket's balloon can lower the guest's RAM
};

inline constexpr uint64_t kMinimumMemory = 4 * 1024 * 1024;

class Machine {
public:
    static Result<std::unique_ptr<Machine>> create(const MachineConfig& config, HostConsole& console);
    ~Machine();

    // How run() confines the monitor's threads.
    struct RunPolicy {
        bool seccomp = true;  // each thread loads its allowlist (vmm/filters.hpp)
        MonitorFilterContext filters;
        bool escape_drill = false;  // the test hook of vmm/escape_drill.hpp
    };
    // Runs the guest until it reboots, powers off or crashes, or the host
    // signals the monitor; returns the monitor's exit status.
    int run(const RunPolicy& policy);
    // Why run() returned.
    StopReason stop_reason() const { return stop_.reason(); }

    // Stops every vCPU (the guest's clock with them) / lets them go on.
    Result<void> pause();
    Result<void> resume();
    // Asks the guest's balloon driver to leave it `bytes` of RAM.
    Result<void> set_memory_target(uint64_t bytes);
    // Lets vCPU `vcpu`'s thread run only on `cpus`.
    Result<void> pin_vcpu(size_t vcpu, const std::vector<unsigned>& cpus);
    // Before a jail (vmm/jailer.hpp): each vhost-user back-end's socket is
    // made this domain's (owned by uid:gid, 0600) and is to be bound into
    // the jail's root as vhost-user-N.sock, where its device looks for it
    // from now on to reconnect; the socket files the monitor made stay when
    // it ends (the jailer's user cannot remove them).
    Result<std::vector<sandbox::JailBind>> prepare_jail(uid_t uid, gid_t gid);
    // After run(), for a monitor that exits without tearing down (its
    // threads' filters allow none): what it changed on the host goes back
    // (the control socket's file, a persistent tap's bridge port).
    void release_host();

private:
    Machine(kvm::System system, kvm::Vm vm, GuestMemory memory, HostConsole& console)
        : system_(std::move(system)), vm_(std::move(vm)), memory_(std::move(memory)), console_(console) {}
    Result<void> add_legacy_devices();
    // Connects each device's transport: MMIO window, irqfd, ioeventfds.
    Result<void> add_virtio_devices(std::vector<std::unique_ptr<virtio::Device>> devices);
    // Host console input, to the virtio console when there is one, else the UART.
    bool deliver_console_input(std::span<const uint8_t> bytes);
    // One control request (JSON) and its answer.
    std::string control_answer(std::string_view request);
    void log_memory_use() const;
    // Every vCPU out of KVM_RUN soon (pause, stop).
    void kick_vcpus();

    kvm::System system_;
    kvm::Vm vm_;
    GuestMemory memory_;
    HostConsole& console_;
    std::vector<kvm::Vcpu> vcpus_;
    IoBus pio_;
    IoBus mmio_;
    std::shared_ptr<devices::Serial> serial_;
    std::shared_ptr<devices::AcpiPm> acpi_pm_;
    std::optional<ControlServer> control_;
    uint64_t memory_size_ = 0;
    std::vector<std::shared_ptr<virtio::MmioTransport>> virtio_;
    // With --console virtio: the device (owned by its transport) and that transport.
    devices::VirtioConsole* virtio_console_ = nullptr;
    // The balloon (owned by its transport, the last virtio device).
    devices::VirtioBalloon* balloon_ = nullptr;
    std::shared_ptr<virtio::MmioTransport> balloon_transport_;
    std::shared_ptr<virtio::MmioTransport> virtio_console_transport_;
    std::vector<UniqueFd> event_fds_;  // irqfds and ioeventfds, registered with KVM
    std::optional<EventLoop> io_loop_;
    StopSignal stop_;
    PauseGate pause_gate_;
    std::mutex pause_mutex_;           // one pause or resume at a time
    bool start_paused_ = false;
    std::vector<std::vector<unsigned>> vcpu_cpus_;  // pinned as the threads start
    bool paused_ = false;
    uint64_t paused_clock_ = 0;        // the guest's kvmclock when it was paused
    std::vector<pthread_t> vcpu_threads_;  // set before the control socket is served
    // The same threads' ids (each written by its thread), for the kicks and
    // the toolstack's vcpu-list.
    std::vector<pid_t> vcpu_tids_;
    pid_t pid_ = 0;
    UniqueFd status_file_;                 // /proc/self/status, opened before any jail
    bool escape_drill_ = false;
    std::optional<UnfilteredDrill> unfiltered_drill_;
    // The vhost-user devices (owned by their transports) by the socket
    // they were first connected to, which the control socket's
    // vhost-user-connect names.
    struct VhostUserSlot {
        std::string socket;
        vhost_user::VhostUserDevice* device;
        std::shared_ptr<virtio::MmioTransport> transport;
    };
    std::vector<VhostUserSlot> vhost_users_;
};

// Checks the memory size and vCPU count against the host before anything
// is reserved; the errors name the limit.
Result<void> check_machine_limits(const MachineConfig& config, int kvm_max_vcpus, uint64_t host_memory);

// Total RAM of the host in bytes (MemTotal).
uint64_t host_memory_size();

}  // namespace hospes
