// A domain's configuration as hospes uses it, read from an xl.cfg(5) file
// (toolstack/xl_config) with the meaning Xen's manuals give each key:
// xl.cfg(5) for the domain, xl-disk-configuration(5) for `disk=` entries,
// xl-network-configuration(5) for `vif=` entries.
//
// Keys that make no sense for hospes (a framebuffer, PCI passthrough, a
// bootloader) are ignored with a warning saying why; unknown keys are
// warnings naming FILE:LINE; a value that is wrong is one error naming
// FILE:LINE and the key, and then nothing of the file is used.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "toolstack/xl_config.hpp"

namespace hospes::toolstack {

// What to do when the guest powers off, reboots or crashes (xl.cfg's
// on_poweroff, on_reboot, on_crash).
enum class DomainAction { Destroy, Restart, RenameRestart, Preserve, CoredumpDestroy, CoredumpRestart };
std::string_view action_name(DomainAction action);
std::optional<DomainAction> action_from_name(std::string_view name);

struct DomainDisk {
    std::string target;          // host path: a block device or an image file
    std::string vdev;            // as written: xvda, sdb, hdc, ...
    std::string guest_device;    // what the guest calls it: vda, vdb, ... (in vdev order)
    std::string format = "raw";  // raw only; others refused
    bool read_only = false;
    bool cdrom = false;
    bool discard = true;
    std::string script;          // block-SCRIPT: refused (hospes opens the target itself)
};

struct DomainVif {
    std::optional<std::array<uint8_t, 6>> mac;  // none: one made up at create
    std::string bridge;                          // empty: the toolstack's default
    std::vector<std::string> ips;                // the only source addresses it may use
    uint64_t rate_bytes_per_second = 0;          // 0: no cap
    uint64_t rate_burst_bytes = 0;               // credit per interval (xl's default 50 ms)
    std::string vifname;                         // host-side name (a tap); empty: made up
    std::string script;                          // ignored, with a warning (no hotplug scripts)
    unsigned mtu = 0;                            // 0: default
};

struct DomainConfig {
    std::string name;
    std::string type = "pvh";                 // pv and pvh are both run as a PVH-style direct kernel boot
    std::string uuid;                         // empty: one made up at create
    uint64_t memory_mib = 128, maxmem_mib = 128;
    unsigned vcpus = 1, maxvcpus = 1;
    std::vector<std::string> cpus;            // one CPULIST for all vCPUs, or one per vCPU; empty: no pinning
    unsigned cpu_weight = 256;                // 1 to 65535
    unsigned cpu_cap = 0;                     // percent of one CPU; 0: none
    std::string kernel, ramdisk, cmdline;
    std::vector<DomainDisk> disks;
    std::vector<DomainVif> vifs;
    DomainAction on_poweroff = DomainAction::Destroy;
    DomainAction on_reboot = DomainAction::Restart;
    DomainAction on_crash = DomainAction::Destroy;
    std::vector<std::string> warnings;        // FILE:LINE: ... lines, for the user
};

// The domain `config` describes; disks in the order of their vdevs.
Result<DomainConfig> domain_from_xl(const XlConfig& config);

// What every domain must be, however it arrived (an xl.cfg file, hospesd's
// JSON API): no control character (NUL, newline) in any text, no comma in
// a path (the monitor's and back-ends' options are comma lists), valid
// disk and interface names, IP addresses and CPU lists, maxmem at least
// memory and maxvcpus at least vcpus, no drive twice. One error naming
// the first thing wrong.
Result<void> check_domain(const DomainConfig& domain);

// One `disk=` entry (xl-disk-configuration(5)); `warnings` gets what is
// accepted but ignored.
Result<DomainDisk> parse_disk_spec(std::string_view spec, std::vector<std::string>& warnings);
// One `vif=` entry (xl-network-configuration(5)).
Result<DomainVif> parse_vif_spec(std::string_view spec, std::vector<std::string>& warnings);
// A vif `rate=`: RATE/s[@INTERVAL], RATE in B, KB, MB, GB (bytes) or b,
// Kb, Mb, Gb (bits), powers of 1000; INTERVAL in s, ms or us (default
// 50 ms). Bytes per second and the credit per interval.
Result<std::pair<uint64_t, uint64_t>> parse_vif_rate(std::string_view rate);
// A CPULIST (xl.cfg: "all", "0-3,5,^1", terms in order) as the CPUs it
// names among `cpu_count`; NUMA node terms are refused.
inline constexpr unsigned kMaxCpus = 4096;
Result<std::vector<unsigned>> parse_cpulist(std::string_view list, unsigned cpu_count);
// Index of a vdev name (xvda -> 0, sdb -> 1, hdc -> 2, xvdaa -> 26), or an
// error for something that is not one.
Result<unsigned> vdev_index(std::string_view vdev);

}  // namespace hospes::toolstack
