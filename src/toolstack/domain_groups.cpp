#include "toolstack/domain_groups.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hospes::toolstack {

namespace fs = std::filesystem;

namespace {

Result<void> write_value(const std::string& path, const std::string& value) {
    std::ofstream out(path);
    out << value << "\n";
    out.flush();
    if (!out) return errno_error("cannot write '{}' to '{}'", value, path);
    return {};
}

bool has_word(const std::string& text, std::string_view word, char separator) {
    std::istringstream in(text);
    for (std::string item; std::getline(in, item, separator);)
        if (item == word) return true;
    return false;
}

}  // namespace

std::optional<DomainGroups::Hierarchy> DomainGroups::find_cpu_hierarchy() {
    std::ifstream controllers("/sys/fs/cgroup/cgroup.controllers");
    std::string line;
    if (std::getline(controllers, line) && has_word(line, "cpu", ' ')) return Hierarchy{"/sys/fs/cgroup", true};
    // A v1 hierarchy whose mount options name the cpu controller.
    std::ifstream mounts("/proc/mounts");
    while (std::getline(mounts, line)) {
        std::istringstream fields(line);
        std::string device, where, type, options;
        fields >> device >> where >> type >> options;
        if (type == "cgroup" && has_word(options, "cpu", ',')) return Hierarchy{where, false};
    }
    return std::nullopt;
}

std::optional<DomainGroups> DomainGroups::detect() {
    auto hierarchy = find_cpu_hierarchy();
    if (!hierarchy) return std::nullopt;
    auto groups = at(hierarchy->path, hierarchy->v2);
    if (!groups) return std::nullopt;
    return *groups;
}

Result<DomainGroups> DomainGroups::at(const std::string& parent, bool v2) {
    std::string root = parent + "/hospes";
    std::error_code error;
    fs::create_directories(root, error);
    if (error) return host_error("cannot create the cgroup '{}': {}", root, error.message());
    if (v2) {
        // The cpu controller for the hospes group and, below it, for each
        // domain; memory, pids and io where the kernel has them.
        if (auto r = write_value(parent + "/cgroup.subtree_control", "+cpu"); !r) return std::unexpected(r.error());
        if (auto r = write_value(root + "/cgroup.subtree_control", "+cpu"); !r) return std::unexpected(r.error());
        for (const char* controller : {"+memory", "+pids", "+io"}) {
            if (write_value(parent + "/cgroup.subtree_control", controller))
                (void)write_value(root + "/cgroup.subtree_control", controller);
        }
    }
    return DomainGroups(root, v2);
}

std::string DomainGroups::dir(uint32_t id) const { return root_ + "/domain-" + std::to_string(id); }

Result<std::string> DomainGroups::create(uint32_t id) {
    std::error_code error;
    fs::create_directories(dir(id), error);
    if (error) return host_error("cannot create the cgroup '{}': {}", dir(id), error.message());
    return dir(id) + "/cgroup.procs";
}

Result<void> DomainGroups::set(uint32_t id, unsigned weight, unsigned cap) {
    weight = std::clamp(weight, 1u, 65535u);
    if (v2_) {
        unsigned v2_weight = std::clamp(weight * 100 / 256, 1u, 10000u);
        if (auto r = write_value(dir(id) + "/cpu.weight", std::to_string(v2_weight)); !r) return r;
        return write_value(dir(id) + "/cpu.max", cap == 0 ? "max 100000" : fmt::format("{} 100000", cap * 1000));
    }
    if (auto r = write_value(dir(id) + "/cpu.shares", std::to_string(std::max(weight * 4, 2u))); !r) return r;
    if (auto r = write_value(dir(id) + "/cpu.cfs_period_us", "100000"); !r) return r;
    return write_value(dir(id) + "/cpu.cfs_quota_us", cap == 0 ? "-1" : std::to_string(cap * 1000));
}

Result<bool> DomainGroups::limit(uint32_t id, uint64_t guest_memory, uint32_t vcpus, unsigned weight) {
    if (!v2_) return false;
    // What each controller offers the group (a file per limit).
    auto offered = [&](const char* file) { return fs::exists(dir(id) + "/" + file); };
    if (offered("memory.max"))
        if (auto r = write_value(dir(id) + "/memory.max", std::to_string(guest_memory + kMonitorOverhead)); !r)
            return std::unexpected(r.error());
    // The jailer, the monitor and its threads: the vCPUs, I/O, console,
    // main, and io_uring's workers for disks it serves itself.
    if (offered("pids.max"))
        if (auto r = write_value(dir(id) + "/pids.max", std::to_string(vcpus + 72)); !r) return std::unexpected(r.error());
    if (offered("io.weight")) {
        unsigned io_weight = std::clamp(std::clamp(weight, 1u, 65535u) * 100 / 256, 1u, 10000u);
        if (auto r = write_value(dir(id) + "/io.weight", fmt::format("default {}", io_weight)); !r)
            return std::unexpected(r.error());
    }
    return offered("memory.max") && offered("pids.max");
}

void DomainGroups::remove(uint32_t id) { ::rmdir(dir(id).c_str()); }

}  // namespace hospes::toolstack
