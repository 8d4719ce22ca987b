#include "sandbox/filter.hpp"

#include <seccomp.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace hospes::sandbox {

std::vector<std::string> Allowlist::syscalls() const {
    std::vector<std::string> names;
    for (const auto& rule : rules) names.push_back(rule.name);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

Result<void> load_filter(const Allowlist& list) {
    // HOSPES_SECCOMP_LOG=1 (a developer's aid, never set by hospesd): calls
    // off the list are logged by the kernel (audit type 1326, in dmesg)
    // instead of killing, to find what a list lacks.
    const char* log_only = std::getenv("HOSPES_SECCOMP_LOG");
    uint32_t action = log_only != nullptr && std::strcmp(log_only, "1") == 0 ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
    std::unique_ptr<void, void (*)(scmp_filter_ctx)> filter(seccomp_init(action), seccomp_release);
    if (!filter) return host_error("seccomp_init failed");
    for (const auto& rule : list.rules) {
        int number = seccomp_syscall_resolve_name(rule.name.c_str());
        if (number == __NR_SCMP_ERROR) return host_error("seccomp ({}): unknown system call '{}'", list.thread, rule.name);
        std::vector<scmp_arg_cmp> conditions;
        for (const auto& c : rule.conditions) {
            if (c.mask == ~uint64_t{0})
                conditions.push_back(scmp_arg_cmp{c.index, SCMP_CMP_EQ, c.value, 0});
            else
                conditions.push_back(scmp_arg_cmp{c.index, SCMP_CMP_MASKED_EQ, c.mask, c.value});
        }
        int r = seccomp_rule_add_array(filter.get(), SCMP_ACT_ALLOW, number, static_cast<unsigned>(conditions.size()),
                                       conditions.empty() ? nullptr : conditions.data());
        if (r < 0)
            return host_error("seccomp ({}): cannot allow '{}': {}", list.thread, rule.name, std::strerror(-r));
    }
    // Only this thread: each of the others loads its own.
    if (int r = seccomp_load(filter.get()); r < 0)
        return host_error("seccomp ({}): cannot load the filter: {}", list.thread, std::strerror(-r));
    return {};
}

int seccomp_mode_of_this_thread() { return ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0); }

}  // namespace hospes::sandbox
