#include "vmm/machine.hpp"

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <latch>
#include <thread>

#include <nlohmann/json.hpp>

#include "arch/x86_64/boot.hpp"
#include "arch/x86_64/cpuid.hpp"
#include "arch/x86_64/e820.hpp"
#include "arch/x86_64/kernel_image.hpp"
#include "arch/x86_64/layout.hpp"
#include "arch/x86_64/mptable.hpp"
#include "arch/x86_64/vcpu_setup.hpp"
#include "common/log.hpp"
#include "common/size.hpp"
#include "arch/x86_64/acpi.hpp"
#include "devices/legacy/acpi_pm.hpp"
#include "devices/legacy/i8042.hpp"
#include "devices/legacy/pvpanic.hpp"
#include "devices/legacy/rtc.hpp"
#include "devices/legacy/serial.hpp"
#include "devices/virtio/console.hpp"
#include "backends/uring_block.hpp"
#include "devices/virtio/blk.hpp"
#include "devices/virtio/net.hpp"
#include "devices/virtio/balloon.hpp"
#include "devices/virtio/rng.hpp"
#include "backends/tap.hpp"
#include "arch/x86_64/aml.hpp"
#include "vhost_user/device.hpp"
#include "virtio/mmio.hpp"
#include "vmm/filters.hpp"
#include "vmm/vcpu_loop.hpp"
#include "sandbox/filter.hpp"

#include <spdlog/details/os.h>

namespace hospes {

namespace {

// Where virtio device `index` lives: its MMIO window and its GSI.
struct VirtioSlot {
    uint64_t base;
    uint32_t gsi;
};
VirtioSlot virtio_slot(size_t index) {
    return {x86::kVirtioMmioBase + index * virtio::MmioTransport::kWindowSize,
            x86::kVirtioFirstGsi + static_cast<uint32_t>(index)};
}

Result<std::vector<uint8_t>> read_file(const std::string& path, const char* what) {
    struct stat info{};
    if (::stat(path.c_str(), &info) != 0) return bad_input("cannot read {} '{}': {}", what, path, std::strerror(errno));
    if (!S_ISREG(info.st_mode)) return bad_input("{} '{}' is not a regular file", what, path);
    std::ifstream file(path, std::ios::binary);
    if (!file) return bad_input("cannot read {} '{}': {}", what, path, std::strerror(errno));
    std::vector<uint8_t> bytes(static_cast<size_t>(info.st_size));
    if (!file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
        return bad_input("cannot read {} '{}': read failed", what, path);
    return bytes;
}

// A virtio-net card on its tap; errors name the --net option they come from.
Result<std::unique_ptr<virtio::Device>> create_net_device(const NetConfig& net) {
    if (!net.vhost_user_socket.empty()) {
        // The configuration space up to the features we offer: mac, status
        // (linux/virtio_net.h is not C++).
        auto device = vhost_user::VhostUserDevice::connect(net.vhost_user_socket, VIRTIO_ID_NET, 8, 2,
                                                           devices::VirtioNet::kQueueSize);
        if (!device) return std::unexpected(device.error());
        return std::unique_ptr<virtio::Device>(std::move(*device));
    }
    std::string option = "--net ";
    if (!net.tap.empty()) option += "tap=" + net.tap;
    if (!net.bridge.empty()) option += (net.tap.empty() ? "bridge=" : ",bridge=") + net.bridge;
    auto tap = backends::Tap::open(net.tap, net.bridge);
    if (!tap) return std::unexpected(Error{tap.error().kind, option + ": " + tap.error().message});
    auto device = devices::VirtioNet::create(std::make_unique<backends::Tap>(std::move(*tap)), net.mac);
    if (!device) return std::unexpected(Error{device.error().kind, option + ": " + device.error().message});
    if (net.tx_bps != 0) {
        if (auto r = (*device)->set_tx_cap(net.tx_bps, net.tx_bps_burst); !r)
            return std::unexpected(Error{r.error().kind, option + ": " + r.error().message});
    }
    return std::unique_ptr<virtio::Device>(std::move(*device));
}

}  // namespace

uint64_t host_memory_size() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    uint64_t kib = 0;
    while (meminfo >> key >> kib) {
        if (key == "MemTotal:") return kib * KiB;
        meminfo.ignore(64, '\n');
    }
    return 0;
}

Result<void> check_machine_limits(const MachineConfig& config, int kvm_max_vcpus, uint64_t host_memory) {
    uint32_t max_vcpus = std::min<uint32_t>(static_cast<uint32_t>(std::max(kvm_max_vcpus, 1)), x86::kMaxMpTableVcpus);
    if (config.vcpus == 0) return bad_input("--vcpus must be at least 1");
    if (config.vcpus > max_vcpus) return bad_input("--vcpus {} is more than the {} this host allows", config.vcpus, max_vcpus);
    if (config.memory_size < kMinimumMemory)
        return bad_input("memory too small: {} KiB; at least {} MiB", config.memory_size / KiB, kMinimumMemory / MiB);
    if (config.memory_size % (4 * KiB) != 0) return bad_input("memory size must be a multiple of 4 KiB");
    if (config.hugepages && config.memory_size % GuestMemory::kHugePageSize != 0)
        return bad_input("--hugepages: memory size must be a multiple of {} MiB", GuestMemory::kHugePageSize / MiB);
    if (host_memory != 0 && config.memory_size > host_memory)
        return bad_input("memory too large: {} MiB requested, the host has {} MiB", config.memory_size / MiB,
                         host_memory / MiB);
    return {};
}

Result<std::unique_ptr<Machine>> Machine::create(const MachineConfig& config, HostConsole& console) {
    // The user's mistakes first, before any host limitation can hide them.
    if (auto r = check_machine_limits(config, x86::kMaxMpTableVcpus, host_memory_size()); !r)
        return std::unexpected(r.error());
    auto kernel_file = read_file(config.kernel_path, "kernel");
    if (!kernel_file) return std::unexpected(kernel_file.error());
    std::vector<uint8_t> initrd;
    if (!config.initrd_path.empty()) {
        auto initrd_file = read_file(config.initrd_path, "initrd");
        if (!initrd_file) return std::unexpected(initrd_file.error());
        initrd = std::move(*initrd_file);
    }
    auto kernel = x86::parse_kernel_image(*kernel_file);
    if (!kernel) return std::unexpected(Error{kernel.error().kind, config.kernel_path + ": " + kernel.error().message});

    log::debug("{}: {} entry at {:#x}", config.kernel_path,
               kernel->mode == x86::EntryMode::Pvh32 ? "PVH 32-bit" : "64-bit Linux", kernel->entry);

    auto system = kvm::System::open();
    if (!system) return std::unexpected(system.error());
    if (auto r = check_machine_limits(config, system->max_vcpus(), host_memory_size()); !r)
        return std::unexpected(r.error());

    auto vm = system->create_vm();
    if (!vm) return std::unexpected(vm.error());
    if (auto r = vm->set_identity_map_address(x86::kIdentityMapAddress); !r) return std::unexpected(r.error());
    if (auto r = vm->set_tss_address(x86::kTssAddress); !r) return std::unexpected(r.error());
    if (auto r = vm->create_irqchip(); !r) return std::unexpected(r.error());
    if (auto r = vm->create_pit(); !r) return std::unexpected(r.error());

    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& range : x86::ram_ranges(config.memory_size)) ranges.emplace_back(range.guest_address, range.size);
    auto memory = GuestMemory::create(ranges, config.hugepages);
    if (!memory) return std::unexpected(memory.error());
    uint32_t slot = 0;
    for (const auto& region : memory->regions())
        if (auto r = vm->set_memory_region(slot++, region.guest_address, region.host.size(), region.host.data()); !r)
            return std::unexpected(r.error());

    // Counted before any disk is opened or tap created, so a refused machine
    // leaves no trace.
    size_t device_count = 1 + config.balloon + (config.console == ConsoleKind::Virtio) + config.disks.size() + config.nets.size();
    if (device_count > x86::kVirtioMaxDevices)
        return bad_input(
            "{} virtio devices (the entropy source, the balloon, disks, network cards, console); a guest has at most {}",
            device_count, x86::kVirtioMaxDevices);

    // The virtio devices, announced in the DSDT.
    std::vector<std::unique_ptr<virtio::Device>> virtio_devices;
    virtio_devices.push_back(std::make_unique<devices::VirtioRng>());
    // --console virtio: hvc0 takes the terminal's input; the UART stays, its output still shown.
    devices::VirtioConsole* virtio_console = nullptr;
    size_t virtio_console_index = 0;
    if (config.console == ConsoleKind::Virtio) {
        std::optional<devices::VirtioConsole::WindowSize> size;
        if (auto window = console.window_size()) size = devices::VirtioConsole::WindowSize{window->first, window->second};
        auto device = std::make_unique<devices::VirtioConsole>(
            [&console](std::span<const uint8_t> bytes) { console.write(bytes); }, size);
        virtio_console = device.get();
        virtio_console_index = virtio_devices.size();
        virtio_devices.push_back(std::move(device));
    }
    for (const auto& disk : config.disks) {
        if (!disk.vhost_user_socket.empty()) {
            auto device = vhost_user::VhostUserDevice::connect(disk.vhost_user_socket, VIRTIO_ID_BLOCK,
                                                               sizeof(virtio_blk_config), 1, devices::VirtioBlk::kQueueSize);
            if (!device) return std::unexpected(device.error());
            virtio_devices.push_back(std::move(*device));
            continue;
        }
        auto backend = backends::UringBlock::open(disk.path, {disk.read_only, disk.direct});
        if (!backend) return std::unexpected(backend.error());
        virtio_devices.push_back(std::make_unique<devices::VirtioBlk>(std::move(*backend)));
    }
    for (const auto& net : config.nets) {
        auto device = create_net_device(net);
        if (!device) return std::unexpected(device.error());
        virtio_devices.push_back(std::move(*device));
    }
    // The balloon last, so the other devices keep their places.
    devices::VirtioBalloon* balloon_device = nullptr;
    if (config.balloon) {
        auto balloon = std::make_unique<devices::VirtioBalloon>();
        balloon_device = balloon.get();
        virtio_devices.push_back(std::move(balloon));
    }
    auto acpi_devices = x86::pvpanic_device_aml(static_cast<uint16_t>(devices::PvPanic::kPort));
    for (size_t i = 0; i < virtio_devices.size(); ++i) {
        auto window = virtio_slot(i);
        auto aml = x86::virtio_mmio_device_aml(static_cast<uint8_t>(i), static_cast<uint32_t>(window.base),
                                               static_cast<uint32_t>(virtio::MmioTransport::kWindowSize), window.gsi);
        acpi_devices.insert(acpi_devices.end(), aml.begin(), aml.end());
    }

    x86::BootConfig boot{config.memory_size, config.vcpus, config.cmdline, initrd, acpi_devices};
    auto entry = x86::load_guest(*memory, *kernel, boot);
    if (!entry) return std::unexpected(entry.error());

    // PVM hosts refuse KVM_GET_SUPPORTED_CPUID; their guests then see KVM's
    // own default CPUID, which is all a PVM guest can use anyway.
    auto supported_cpuid = system->supported_cpuid();
    if (!supported_cpuid) {
        log::warn("{}: the guest keeps KVM's default CPUID", supported_cpuid.error().message);
        supported_cpuid = std::vector<kvm_cpuid_entry2>{};
    }

    const bool tsc_deadline_timer = system->check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;

    std::unique_ptr<Machine> machine(new Machine(std::move(*system), std::move(*vm), std::move(*memory), console));
    for (uint32_t index = 0; index < config.vcpus; ++index) {
        auto vcpu = machine->vm_.create_vcpu(index);
        if (!vcpu) return std::unexpected(vcpu.error());
        auto cpuid = supported_cpuid->empty() ? std::vector<kvm_cpuid_entry2>{}
                                              : x86::vcpu_cpuid(*supported_cpuid, index, config.vcpus, tsc_deadline_timer);
        if (auto r = x86::setup_vcpu(*vcpu, cpuid); !r)
            return std::unexpected(r.error());
        if (index == 0)
            if (auto r = x86::set_boot_registers(*vcpu, *entry); !r) return std::unexpected(r.error());
        machine->vcpus_.push_back(std::move(*vcpu));
    }
    if (auto r = machine->add_legacy_devices(); !r) return std::unexpected(r.error());
    if (auto r = machine->add_virtio_devices(std::move(virtio_devices)); !r) return std::unexpected(r.error());
    if (!config.control_socket.empty()) {
        auto control = ControlServer::listen(config.control_socket);
        if (!control) return std::unexpected(control.error());
        machine->control_.emplace(std::move(*control));
        auto* m = machine.get();
        auto added = machine->io_loop_->add(m->control_->fd(), [m] {
            m->control_->ready([m](std::string_view request) { return m->control_answer(request); });
        });
        if (!added) return std::unexpected(added.error());
    }
    machine->memory_size_ = config.memory_size;
    machine->status_file_ = UniqueFd(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
    machine->balloon_ = balloon_device;
    if (balloon_device != nullptr) machine->balloon_transport_ = machine->virtio_.back();
    machine->start_paused_ = config.start_paused;
    for (uint32_t i = 0; i < config.vcpus && !config.vcpu_cpus.empty(); ++i)
        machine->vcpu_cpus_.push_back(config.vcpu_cpus[config.vcpu_cpus.size() == 1 ? 0 : i]);
    if (virtio_console != nullptr) {
        machine->virtio_console_ = virtio_console;
        machine->virtio_console_transport_ = machine->virtio_[virtio_console_index];
    }
    return machine;
}

Machine::~Machine() = default;

Result<void> Machine::add_legacy_devices() {
    auto irq_line = [this](uint32_t irq) {
        return [this, irq](bool level) {
            if (auto r = vm_.set_irq_line(irq, level); !r) log::warn("{}", r.error().message);
        };
    };
    serial_ = std::make_shared<devices::Serial>([this](uint8_t byte) { console_.write(byte); },
                                                irq_line(devices::Serial::kCom1Irq));
    if (auto r = pio_.add(devices::Serial::kCom1Base, devices::Serial::kRegisterCount, serial_); !r) return r;
    // A reset or power-off request from the guest ends the monitor with 0.
    auto powered_off = [this] { stop_.request(StopReason::PowerOff); };
    auto rebooted = [this] { stop_.request(StopReason::Reboot); };
    auto i8042 = std::make_shared<devices::I8042>(rebooted, irq_line(devices::I8042::kKeyboardIrq));
    if (auto r = pio_.add(devices::I8042::kBase, devices::I8042::kSize, i8042); !r) return r;
    if (auto r = pio_.add(devices::Rtc::kBase, devices::Rtc::kSize, std::make_shared<devices::Rtc>()); !r) return r;
    acpi_pm_ = std::make_shared<devices::AcpiPm>(powered_off, rebooted, irq_line(x86::kAcpiSciIrq));
    if (auto r = pio_.add(x86::kAcpiPmBase, x86::kAcpiPmSize, acpi_pm_); !r) return r;
    // A panicking guest kernel says so before it reboots: a crash, not a reboot.
    auto pvpanic = std::make_shared<devices::PvPanic>(
        [this] {
            log::error("the guest's kernel panicked (pvpanic)");
            stop_.request(StopReason::Crash);
        },
        [] { log::info("the guest's kernel handed over to its crash kernel (pvpanic)"); });
    return pio_.add(devices::PvPanic::kPort, devices::PvPanic::kSize, pvpanic);
}

Result<void> Machine::add_virtio_devices(std::vector<std::unique_ptr<virtio::Device>> devices) {
    auto loop = EventLoop::create();
    if (!loop) return std::unexpected(loop.error());
    io_loop_.emplace(std::move(*loop));
    for (size_t i = 0; i < devices.size(); ++i) {
        auto [base, gsi] = virtio_slot(i);
        UniqueFd irq(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!irq.valid()) return errno_error("eventfd");
        if (auto r = vm_.add_irqfd(irq.get(), gsi); !r) return r;
        int irq_fd = irq.get();
        auto* vhost_user = dynamic_cast<vhost_user::VhostUserDevice*>(devices[i].get());
        auto transport = std::make_shared<virtio::MmioTransport>(std::move(devices[i]), memory_, [irq_fd] {
            uint64_t one = 1;
            [[maybe_unused]] auto written = ::write(irq_fd, &one, sizeof(one));
        });
        event_fds_.push_back(std::move(irq));
        std::vector<int> kicks;
        for (uint16_t queue = 0; queue < transport->queue_count(); ++queue) {
            UniqueFd kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
            if (!kick.valid()) return errno_error("eventfd");
            if (auto r = vm_.add_ioeventfd(base + virtio::MmioTransport::kQueueNotifyOffset, 4, queue, kick.get()); !r)
                return r;
            int kick_fd = kick.get();
            kicks.push_back(kick_fd);
            // A queue served in another process: the back-end reads the
            // eventfd itself, the monitor never sees the notification.
            if (!transport->runs_queues_elsewhere()) {
                auto added = io_loop_->add(kick_fd, [kick_fd, transport, queue] {
                    uint64_t count;
                    if (::read(kick_fd, &count, sizeof(count)) == sizeof(count)) transport->notify(queue);
                });
                if (!added) return added;
            }
            event_fds_.push_back(std::move(kick));
        }
        transport->set_event_fds(std::move(kicks), irq_fd);
        auto backend_events = transport->backend_events();
        for (size_t event = 0; event < backend_events.size(); ++event) {
            auto added = io_loop_->add(
                backend_events[event].fd, [transport, event] { transport->backend_ready(event); },
                backend_events[event].edge_triggered);
            if (!added) return added;
        }
        // Activation and reset on this (the I/O) thread, not a vCPU's.
        auto work = transport->defer_work();
        if (!work) return std::unexpected(work.error());
        if (auto added = io_loop_->add(*work, [transport] { transport->run_work(); }); !added) return added;
        if (auto r = mmio_.add(base, virtio::MmioTransport::kWindowSize, transport); !r) return r;
        if (vhost_user != nullptr) vhost_users_.push_back({vhost_user->socket_path(), vhost_user, transport});
        virtio_.push_back(std::move(transport));
    }
    return {};
}

int Machine::run(const RunPolicy& policy) {
    install_vcpu_kick_handler();
    MonitorFilterContext filters = policy.filters;
    filters.pid = pid_ = ::getpid();
    escape_drill_ = policy.escape_drill;
    // The drill's thread without a filter is made before any thread loads one.
    if (escape_drill_) unfiltered_drill_.emplace();
    // Each thread loads its own filter first; no vCPU runs the guest before
    // every thread has one (`ready`), and main's is loaded (`go`: a mutex
    // and a condition, since std::latch's wait spins on sched_yield, one
    // more call for the vCPU's filter).
    std::latch ready(static_cast<std::ptrdiff_t>(vcpus_.size()) + 2);
    std::mutex go_mutex;
    std::condition_variable go_changed;
    bool go = false;
    auto confine = [&](const sandbox::Allowlist& list) {
        bool loaded = true;
        if (policy.seccomp) {
            // The log's thread id, cached before gettid is out of reach.
            (void)spdlog::details::os::thread_id();
            if (auto r = sandbox::load_filter(list); !r) {
                log::error("{}", r.error().message);
                stop_.request(StopReason::HostError);
                loaded = false;
            }
        }
        ready.count_down();
        return loaded;
    };
    console_.start([this](std::span<const uint8_t> bytes) { return deliver_console_input(bytes); },
                   [this] { stop_.request(StopReason::PowerOff); },
                   [&, list = console_allowlist(filters)] { return confine(list); });

    if (start_paused_) {
        pause_gate_.close();
        paused_ = true;
        if (auto clock = vm_.clock(); clock) paused_clock_ = *clock;
    }
    std::vector<std::thread> threads;
    threads.reserve(vcpus_.size());
    vcpu_tids_.assign(vcpus_.size(), 0);
    auto vcpu_list = vcpu_allowlist(filters);
    for (auto& vcpu : vcpus_) {
        threads.emplace_back([&, this] {
            // Named "vcpuN" for ps and top; its id known before control requests.
            ::pthread_setname_np(::pthread_self(), fmt::format("vcpu{}", vcpu.id()).c_str());
            __atomic_store_n(&vcpu_tids_[vcpu.id()], static_cast<pid_t>(::gettid()), __ATOMIC_RELEASE);
            sigset_t kick;
            sigemptyset(&kick);
            sigaddset(&kick, SIGUSR1);
            pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);
            bool confined = confine(vcpu_list);
            {
                std::unique_lock lock(go_mutex);
                go_changed.wait(lock, [&] { return go; });
            }
            if (confined) run_vcpu(vcpu, VcpuBuses{pio_, mmio_}, stop_, pause_gate_);
        });
        vcpu_threads_.push_back(threads.back().native_handle());
    }
    // The control socket (pause) is served from here on: the threads exist.
    io_loop_->start([&, list = io_allowlist(filters)] { return confine(list); });
    ready.wait();
    for (size_t i = 0; i < vcpu_cpus_.size() && i < threads.size(); ++i) {
        if (auto r = pin_vcpu(i, vcpu_cpus_[i]); !r) log::warn("{}", r.error().message);
    }
    if (policy.seccomp) {
        (void)spdlog::details::os::thread_id();
        if (auto r = sandbox::load_filter(main_allowlist(filters)); !r) {
            log::error("{}", r.error().message);
            stop_.request(StopReason::HostError);
        }
    }
    {
        std::lock_guard lock(go_mutex);
        go = true;
    }
    go_changed.notify_all();
    log::milestone("filters loaded");
    int status = stop_.wait();
    pause_gate_.release();
    kick_vcpus();
    for (auto& thread : threads) thread.join();
    io_loop_->stop();
    serial_->stop_input();
    if (virtio_console_ != nullptr) virtio_console_->stop_input();
    console_.stop();
    log_memory_use();
    return status;
}

void Machine::kick_vcpus() {
    for (size_t i = 0; i < vcpus_.size(); ++i)
        kick_vcpu(vcpus_[i], pid_, __atomic_load_n(&vcpu_tids_[i], __ATOMIC_ACQUIRE));
}

Result<void> Machine::pin_vcpu(size_t vcpu, const std::vector<unsigned>& cpus) {
    if (vcpu >= vcpu_threads_.size()) return bad_input("there is no vCPU {}", vcpu);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned cpu : cpus)
        if (cpu < CPU_SETSIZE) CPU_SET(cpu, &set);
    if (int error = ::pthread_setaffinity_np(vcpu_threads_[vcpu], sizeof(set), &set); error != 0)
        return host_error("vCPU {}: cannot pin it: {}", vcpu, std::strerror(error));
    return {};
}

Result<std::vector<sandbox::JailBind>> Machine::prepare_jail(uid_t uid, gid_t gid) {
    namespace fs = std::filesystem;
    std::vector<sandbox::JailBind> binds;
    // A directory that holds this monitor's sockets and nothing else (as
    // hospesd makes one per domain) is bound whole, so that a back-end
    // started again, whose socket is new, is found there; any other socket
    // alone (a back-end started again by hand then needs a connection
    // handed over: vhost-user-connect).
    auto exclusive = [&](const fs::path& dir) {
        std::error_code error;
        for (const auto& entry : fs::directory_iterator(dir, error)) {
            bool ours = std::any_of(vhost_users_.begin(), vhost_users_.end(),
                                    [&](const VhostUserSlot& s) { return fs::path(s.socket) == entry.path(); });
            if (!ours) return false;
        }
        return !error;
    };
    std::vector<std::string> bound_dirs;
    for (size_t i = 0; i < vhost_users_.size(); ++i) {
        auto& slot = vhost_users_[i];
        fs::path socket(slot.socket), dir = socket.parent_path();
        std::string inside;
        if (exclusive(dir)) {
            auto at = std::find(bound_dirs.begin(), bound_dirs.end(), dir.string());
            size_t index = static_cast<size_t>(at - bound_dirs.begin());
            if (at == bound_dirs.end()) {
                bound_dirs.push_back(dir.string());
                binds.push_back({dir.string(), fmt::format("vhost-user-{}", index)});
                if (::chown(dir.c_str(), uid, gid) != 0 || ::chmod(dir.c_str(), 0700) != 0)
                    return errno_error("vhost-user: cannot give '{}' to the jail's user {}", dir.string(), uid);
            }
            inside = fmt::format("/vhost-user-{}/{}", index, socket.filename().string());
        } else {
            std::string name = fmt::format("vhost-user-{}.sock", i);
            binds.push_back({slot.socket, name});
            inside = "/" + name;
        }
        // Only this domain (and root) may connect to its back-end's socket.
        if (::chown(slot.socket.c_str(), uid, gid) != 0 || ::chmod(slot.socket.c_str(), 0600) != 0)
            return errno_error("vhost-user '{}': cannot give the socket to the jail's user {}", slot.socket, uid);
        slot.transport->with_device([&](virtio::Device&) { slot.device->set_socket_path(inside); });
    }
    if (control_) control_->keep_socket_file();
    return binds;
}

void Machine::release_host() {
    for (auto& transport : virtio_) transport->with_device([](virtio::Device& device) { device.release_host(); });
    if (control_) control_->remove_socket_file();  // unless a jail keeps it
}

Result<void> Machine::set_memory_target(uint64_t bytes) {
    if (balloon_ == nullptr) return bad_input("this guest has no balloon (hospes run --balloon)");
    if (bytes > memory_size_ || bytes < kMinimumMemory)
        return bad_input("the target must be from {} to {} MiB", kMinimumMemory / MiB, memory_size_ / MiB);
    auto pages = static_cast<uint32_t>((memory_size_ - bytes) / devices::VirtioBalloon::kPageSize);
    balloon_transport_->with_device([&](virtio::Device&) { balloon_->set_target_pages(pages); });
    balloon_transport_->config_changed();
    log::info("memory target {} MiB: the balloon asked for {} pages", bytes / MiB, pages);
    return {};
}

Result<void> Machine::pause() {
    std::lock_guard lock(pause_mutex_);
    if (paused_) return {};
    pause_gate_.close();
    kick_vcpus();
    if (!pause_gate_.wait_parked(vcpus_.size(), std::chrono::seconds(5))) {
        pause_gate_.open();
        return host_error("the vCPUs did not stop within 5 s");
    }
    auto clock = vm_.clock();
    if (!clock) log::warn("the guest's clock will have advanced while paused: {}", clock.error().message);
    paused_clock_ = clock ? *clock : 0;
    paused_ = true;
    log::info("paused");
    return {};
}

Result<void> Machine::resume() {
    std::lock_guard lock(pause_mutex_);
    if (!paused_) return {};
    if (paused_clock_ != 0) {
        if (auto r = vm_.set_clock(paused_clock_); !r) log::warn("{}", r.error().message);
    }
    paused_ = false;
    pause_gate_.open();
    log::info("unpaused");
    return {};
}

std::string Machine::control_answer(std::string_view text) {
    using nlohmann::json;
    auto error = [](const std::string& message) { return json{{"error", message}}.dump(); };
    auto request = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (request.is_discarded() || !request.is_object()) return error("the request must be a JSON object");
    auto execute = request.find("execute");
    if (execute == request.end() || !execute->is_string()) return error("the request has no \"execute\" string");
    const auto& command = execute->get_ref<const std::string&>();
    if (command == "pin-vcpu") {
        auto vcpu = request.find("vcpu");
        auto cpus = request.find("cpus");
        if (vcpu == request.end() || !vcpu->is_number_unsigned() || cpus == request.end() || !cpus->is_array() ||
            cpus->empty() || !std::all_of(cpus->begin(), cpus->end(), [](const json& c) { return c.is_number_unsigned(); }))
            return error("pin-vcpu takes \"vcpu\" (a number) and \"cpus\" (a list of CPU numbers)");
        auto pinned = pin_vcpu(vcpu->get<size_t>(), cpus->get<std::vector<unsigned>>());
        if (!pinned) return error(pinned.error().message);
        return json{{"return", json::object()}}.dump();
    }
    if (command == "balloon") {
        auto target = request.find("target_mib");
        if (target == request.end() || !target->is_number_unsigned() || request.size() != 2)
            return error("balloon takes \"target_mib\" (a number)");
        auto set = set_memory_target(target->get<uint64_t>() * MiB);
        if (!set) return error(set.error().message);
        return json{{"return", json::object()}}.dump();
    }
    if (command == "escape-drill" && escape_drill_) {
        EscapeAttempt attempt;
        attempt.what = request.value("attempt", "");
        attempt.path = request.value("path", "");
        attempt.pid = request.value("pid", 0);
        log::warn("escape drill: {} {}{}", attempt.what, attempt.path, attempt.pid != 0 ? std::to_string(attempt.pid) : "");
        auto result = request.value("unfiltered", false) ? unfiltered_drill_->run(attempt) : run_escape_attempt(attempt);
        return json{{"return", std::move(result)}}.dump();
    }
    if (command == "vhost-user-connect") {
        // A connection to a back-end that was started again, made by whoever
        // can reach its socket (a jailed monitor cannot), as the request's
        // one descriptor.
        auto socket = request.find("socket");
        auto& fds = control_->received_fds();
        if (socket == request.end() || !socket->is_string() || request.size() != 2 || fds.size() != 1)
            return error("vhost-user-connect takes \"socket\" (the back-end's socket it was started with) and one "
                         "connected socket as its descriptor");
        for (auto& slot : vhost_users_) {
            if (slot.socket != socket->get_ref<const std::string&>()) continue;
            Result<void> adopted;
            slot.transport->with_device(
                [&](virtio::Device&) { adopted = slot.device->adopt_connection(std::move(fds[0])); });
            if (!adopted) return error(adopted.error().message);
            return json{{"return", json::object()}}.dump();
        }
        return error("no vhost-user device was started with '" + socket->get<std::string>() + "'");
    }
    if (command != "query" && command != "power-button" && command != "pause" && command != "unpause")
        return error("unknown command '" + command +
                     "' (query, power-button, pause, unpause, pin-vcpu, balloon, vhost-user-connect)");
    if (request.size() != 1) return error(command + " takes no arguments");
    if (command == "power-button") {
        acpi_pm_->press_power_button();
        return json{{"return", json::object()}}.dump();
    }
    if (command == "pause" || command == "unpause") {
        auto done = command == "pause" ? pause() : resume();
        if (!done) return error(done.error().message);
        return json{{"return", json::object()}}.dump();
    }
    bool paused = false;
    {
        std::lock_guard lock(pause_mutex_);
        paused = paused_;
    }
    json answer = {{"status", paused ? "paused" : "running"},
                   {"vcpus", vcpus_.size()},
                   {"vcpu_threads", vcpu_tids_},
                   {"memory_bytes", memory_size_}};
    // Disks and network cards, in the order they were given, with what
    // they have done; vhost-user ones count in their back-end.
    json devices = json::array();
    for (const auto& transport : virtio_) {
        transport->with_device([&](virtio::Device& device) {
            uint32_t type = device.device_type();
            if (type != 1 && type != 2) return;
            json counters = json::object();
            for (const auto& [name, value] : device.counters()) counters[name] = value;
            devices.push_back({{"type", type == 2 ? "block" : "network"}, {"counters", std::move(counters)}});
        });
    }
    answer["devices"] = std::move(devices);
    if (balloon_ != nullptr)
        answer["balloon"] = {{"target_pages", balloon_->target_pages()},
                             {"actual_pages", balloon_->actual_pages()},
                             {"released_bytes", balloon_->discarded_bytes()}};
    return json{{"return", std::move(answer)}}.dump();
}

bool Machine::deliver_console_input(std::span<const uint8_t> bytes) {
    if (virtio_console_ == nullptr) return serial_->receive(bytes);
    // The guest makes room by adding receive buffers, which needs the
    // transport's lock: wait for it outside that lock.
    while (!bytes.empty()) {
        uint64_t seen = virtio_console_->input_space_events();
        size_t taken = 0;
        virtio_console_transport_->with_device([&](virtio::Device&) { taken = virtio_console_->receive(bytes); });
        bytes = bytes.subspan(taken);
        if (!bytes.empty() && !virtio_console_->wait_input_space(seen)) return false;
    }
    return true;
}

void Machine::log_memory_use() const {
    // The monitor's own cost: resident set minus the guest pages in it.
    uint64_t guest_resident = 0;
    const long page = ::sysconf(_SC_PAGESIZE);
    for (const auto& region : memory_.regions()) {
        std::vector<unsigned char> pages(region.host.size() / static_cast<uint64_t>(page));
        if (::mincore(region.host.data(), region.host.size(), pages.data()) != 0) return;
        for (unsigned char p : pages) guest_resident += (p & 1) ? static_cast<uint64_t>(page) : 0;
    }
    // Through the descriptor opened at the start: a jailed monitor has no /proc.
    char text[4096];
    ssize_t n = status_file_.valid() ? ::pread(status_file_.get(), text, sizeof(text) - 1, 0) : -1;
    if (n <= 0) return;
    text[n] = 0;
    const char* at = std::strstr(text, "VmRSS:");
    uint64_t rss_kib = at != nullptr ? std::strtoull(at + 6, nullptr, 10) : 0;
    log::debug("memory: rss {} KiB, guest resident {} KiB, monitor overhead {} KiB", rss_kib, guest_resident / KiB,
               rss_kib - std::min(rss_kib, guest_resident / KiB));
}

}  // namespace hospes
