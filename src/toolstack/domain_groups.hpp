// Each domain's control group, under a "hospes" group: its CPU share and
// cap (xl.cfg's cpu_weight and cap, `xl sched-credit`), and on cgroup v2
// the limits of its jail: memory.max (guest RAM and the monitor's stated
// overhead, so a monitor taken over cannot take the host's memory),
// pids.max (its threads) and io.weight (from its CPU weight). On cgroup v2
// (cpu.weight, cpu.max) or, where the cpu controller is only on a v1
// hierarchy (as on some of these machines), on that (cpu.shares,
// cpu.cfs_quota_us; no memory, pids or io limits there). Xen's weight 256
// is the kernel's default share; a cap is a percentage of one CPU over a
// 100 ms period.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/error.hpp"

namespace hospes::toolstack {

class DomainGroups {
public:
    // Where the host's cpu controller is: a cgroup v2 root that offers it,
    // else a v1 hierarchy mounted with it; none: policy cannot be applied.
    struct Hierarchy {
        std::string path;
        bool v2;
    };
    static std::optional<Hierarchy> find_cpu_hierarchy();
    // Groups under that hierarchy's root, or none.
    static std::optional<DomainGroups> detect();
    // The groups under `parent`, a directory of a cgroup hierarchy with the
    // cpu controller (for tests: a group of their own).
    static Result<DomainGroups> at(const std::string& parent, bool v2);

    bool v2() const { return v2_; }
    const std::string& root() const { return root_; }
    // Creates domain `id`'s group; the path of the file a process writes
    // "0" into to enter it (so a monitor enters before it starts).
    Result<std::string> create(uint32_t id);
    Result<void> set(uint32_t id, unsigned weight, unsigned cap);
    // The jail's limits (v2 only: false when this hierarchy cannot have them).
    static constexpr uint64_t kMonitorOverhead = 64ull << 20;  // beyond guest RAM: the monitor's own memory
    Result<bool> limit(uint32_t id, uint64_t guest_memory, uint32_t vcpus, unsigned weight);
    // Removes the group (its processes must have ended).
    void remove(uint32_t id);

private:
    DomainGroups(std::string root, bool v2) : root_(std::move(root)), v2_(v2) {}
    std::string dir(uint32_t id) const;

    std::string root_;  // the "hospes" group
    bool v2_;
};

}  // namespace hospes::toolstack
