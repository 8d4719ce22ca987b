#include "cli/run_command.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/device_options.hpp"
#include "common/log.hpp"
#include "common/size.hpp"
#include "toolstack/domain_config.hpp"
#include "vmm/host_console.hpp"

namespace hospes::cli {

void add_run_command(CLI::App& app, RunOptions& options) {
    auto* run = app.add_subcommand("run", "Boot a guest; its console is this terminal (Ctrl-A x quits)");
    run->add_option("--kernel", options.kernel, "bzImage or vmlinux ELF (default: the default guest)");
    run->add_option("--initrd", options.initrd, "initramfs or initrd image");
    run->add_option("--cmdline", options.cmdline,
                    fmt::format("kernel command line (default: \"{}\", console=hvc0 with --console virtio)",
                                kDefaultCmdline));
    run->add_option("--memory", options.memory, "guest RAM, e.g. 512M or 4G (a bare number is MiB)")
        ->capture_default_str();
    run->add_option("--vcpus", options.vcpus, "number of virtual CPUs")->capture_default_str();
    run->add_option("--disk", options.disks,
                    "virtio block device: an image file or host block device, PATH[,ro][,direct], or one a vhost-user "
                    "back-end serves, vhost-user=SOCKET; repeatable, "
                    "the first is /dev/vda");
    run->add_option("--net", options.nets,
                    "virtio network card on a tap: tap=NAME, bridge=BRIDGE or both, with optional ,mac=MAC; "
                    "or served by a back-end: vhost-user=SOCKET; repeatable");
    run->add_option("--console", options.console, "the guest console: serial (ttyS0) or virtio (hvc0)")
        ->capture_default_str();
    run->add_flag("--hugepages", options.hugepages,
                  "guest RAM on the host's 2 MiB huge pages (reserved beforehand in /proc/sys/vm/nr_hugepages); "
                  "all of it is taken when the guest starts");
    run->add_option("--root", options.root, "root device, e.g. /dev/vda (adds root=DEVICE to the command line)");
    run->add_option("--control", options.control,
                    "the monitor's control socket (JSON requests: query, power-button, pause, unpause; see "
                    "`hospes control`)");
    run->add_option("--console-socket", options.console_socket,
                    "serve the guest console on this unix socket (one client at a time; `hospes console "
                    "--socket`) instead of stdin; its output also goes to stdout");
    run->add_option("--exit-file", options.exit_file,
                    "at exit, write {\"status\":N,\"reason\":\"poweroff|reboot|crash|host-error|signal\"} here");
    run->add_option("--cpus", options.cpus,
                    "host CPUs the vCPUs may run on, as xl.cfg's cpus=: one CPULIST (e.g. 0-3,^1) for all, or "
                    "repeated once per vCPU");
    run->add_flag("--paused", options.paused, "start with the vCPUs paused (the control socket's unpause starts them)");
    run->add_flag("--balloon", options.balloon,
                  "a virtio-balloon device (the last virtio device): the control socket's balloon request lowers "
                  "the guest's RAM and gives it back to the host, and free pages the guest reports go back too");
}

std::string default_guest_dir() {
    if (const char* dir = std::getenv("HOSPES_GUEST_DIR"); dir != nullptr && *dir != '\0') return dir;
    return HOSPES_DEFAULT_GUEST_DIR;
}

Result<MachineConfig> machine_config(const RunOptions& options, const std::string& default_guest_dir) {
    MachineConfig config;
    auto memory = parse_size(options.memory);
    if (!memory) return std::unexpected(Error{ErrorKind::BadInput, "--memory: " + memory.error().message});
    config.memory_size = *memory;
    config.vcpus = options.vcpus;
    config.hugepages = options.hugepages;
    config.control_socket = options.control;
    config.start_paused = options.paused;
    config.balloon = options.balloon;
    if (options.cpus.size() > 1 && options.cpus.size() != options.vcpus)
        return bad_input("--cpus: {} lists for {} vCPUs (give one for all, or one per vCPU)", options.cpus.size(),
                         options.vcpus);
    for (const auto& list : options.cpus) {
        auto cpus = toolstack::parse_cpulist(list, static_cast<unsigned>(::sysconf(_SC_NPROCESSORS_CONF)));
        if (!cpus) return bad_input("--cpus '{}': {}", list, cpus.error().message);
        config.vcpu_cpus.push_back(std::move(*cpus));
    }
    if (options.paused && options.control.empty()) return bad_input("--paused needs --control, to unpause");
    auto console = parse_console(options.console);
    if (!console) return std::unexpected(console.error());
    config.console = *console;
    config.cmdline = !options.cmdline.empty()                 ? options.cmdline
                     : config.console == ConsoleKind::Virtio ? kDefaultVirtioConsoleCmdline
                                                              : kDefaultCmdline;
    if (!options.root.empty()) {
        if (options.root.find_first_of(" \t\n") != std::string::npos)
            return bad_input("--root '{}': a device name has no spaces", options.root);
        config.cmdline += " root=" + options.root;
    }
    for (const auto& spec : options.disks) {
        auto disk = parse_disk(spec);
        if (!disk) return std::unexpected(disk.error());
        config.disks.push_back(std::move(*disk));
    }
    for (const auto& spec : options.nets) {
        auto net = parse_net(spec);
        if (!net) return std::unexpected(net.error());
        config.nets.push_back(std::move(*net));
    }
    config.kernel_path = options.kernel;
    config.initrd_path = options.initrd;
    if (config.kernel_path.empty()) {
        std::filesystem::path dir(default_guest_dir);
        config.kernel_path = dir / "vmlinuz";
        if (config.initrd_path.empty()) config.initrd_path = dir / "initramfs.cpio.gz";
        if (!std::filesystem::exists(config.kernel_path))
            return bad_input("no --kernel given and the default guest is not built in {} (run `make guest`)",
                             default_guest_dir);
    }
    return config;
}

int run_command(const RunOptions& options) {
    auto config = machine_config(options, default_guest_dir());
    if (!config) {
        log::error("{}", config.error().message);
        return exit_status_for(config.error());
    }
    HostConsole console(STDIN_FILENO, STDOUT_FILENO);
    if (!options.console_socket.empty()) {
        if (auto r = console.listen(options.console_socket); !r) {
            log::error("--console-socket: {}", r.error().message);
            return exit_status_for(r.error());
        }
    }
    auto machine = Machine::create(*config, console);
    if (!machine) {
        log::error("{}", machine.error().message);
        return exit_status_for(machine.error());
    }
    int status = (*machine)->run();
    if (!options.exit_file.empty()) {
        // Written whole under a temporary name, so a reader never sees half.
        std::string temporary = options.exit_file + ".new";
        std::ofstream out(temporary);
        out << fmt::format("{{\"status\":{},\"reason\":\"{}\"}}\n", status,
                           stop_reason_name((*machine)->stop_reason()));
        out.close();
        if (!out || std::rename(temporary.c_str(), options.exit_file.c_str()) != 0)
            log::error("--exit-file: cannot write '{}'", options.exit_file);
    }
    return status;
}

}  // namespace hospes::cli
