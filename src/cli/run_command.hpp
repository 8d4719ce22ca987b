// `hospes run`: boot one guest in this process, console on stdin/stdout.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "vmm/machine.hpp"

namespace hospes::cli {

// The kernel command line when --cmdline is not given.
inline constexpr const char* kDefaultCmdline = "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux";
// The same with --console virtio: the kernel's console is hvc0.
inline constexpr const char* kDefaultVirtioConsoleCmdline =
    "console=hvc0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux";

struct RunOptions {
    std::string kernel;
    std::string initrd;
    std::string cmdline;  // empty: the default for the console
    std::string memory = "512M";
    uint32_t vcpus = 1;
    std::vector<std::string> disks;
    std::vector<std::string> nets;
    std::string console = "serial";
    std::string root;  // appended to the command line as root=ROOT
    bool hugepages = false;
    std::string control;  // the control socket's path; empty: none
    std::string console_socket;  // serve the console on this socket instead of stdin
    std::string exit_file;       // written at exit: {"status":N,"reason":"..."}
    bool paused = false;         // start with the vCPUs paused
    bool balloon = false;        // a virtio-balloon device
    std::vector<std::string> cpus;  // CPULIST for all vCPUs, or one per vCPU
    bool jail = false;           // run jailed (vmm/jailer.hpp)
    int jail_netns_fd = -1;      // a network namespace made ahead for the jail (hospesd's); -1: make one
    std::string jail_user;       // UID[:GID] of the jail; empty: kJailUidBase + 2^20 + this pid
    bool no_seccomp = false;     // no seccomp filters (debugging only)
    bool escape_drill = false;   // the escape drill's test hook (vmm/escape_drill.hpp)
};

// The range of users and groups jailed monitors run as: from here up, one
// per live domain (hospesd: the base + the domain's id; by hand: the base +
// 2^20 + the jailer's pid). 0x70000000 begins the range Linux distributions
// leave unused (systemd's "UIDs and GIDs" lists 1879048192-2147483647).
inline constexpr uint32_t kJailUidBase = 0x70000000;

void add_run_command(CLI::App& app, RunOptions& options);

// Turns the options into a machine description, filling in the default
// guest when no kernel was named. `default_guest_dir` is where it lives.
Result<MachineConfig> machine_config(const RunOptions& options, const std::string& default_guest_dir);

// Where the default guest is: $HOSPES_GUEST_DIR, else the build tree's.
std::string default_guest_dir();

int run_command(const RunOptions& options);

}  // namespace hospes::cli
