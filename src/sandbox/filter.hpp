// seccomp allowlists, one per thread: a system call not on the calling
// thread's list kills the whole process (SECCOMP_RET_KILL_PROCESS), so a
// thread taken over by a guest can do only what that thread needs. Rules
// may also pin arguments: ioctl by request, mmap and mprotect never
// executable, a signal only to the process itself.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace hospes::sandbox {

// One argument condition: (argument & mask) == value.
struct ArgCondition {
    unsigned index;
    uint64_t mask;
    uint64_t value;
};

// A system call allowed when all of `conditions` hold (none: always). A
// call may have several rules; any one that matches allows it.
struct SyscallRule {
    std::string name;
    std::vector<ArgCondition> conditions;
};

struct Allowlist {
    std::string thread;  // what the thread is, for tables and errors
    std::vector<SyscallRule> rules;

    Allowlist& allow(std::string name) {
        rules.push_back({std::move(name), {}});
        return *this;
    }
    Allowlist& allow_if(std::string name, std::vector<ArgCondition> conditions) {
        rules.push_back({std::move(name), std::move(conditions)});
        return *this;
    }
    // Each value of argument `index` as its own rule (ioctl requests).
    Allowlist& allow_values(const std::string& name, unsigned index, std::span<const uint64_t> values) {
        for (uint64_t v : values) rules.push_back({name, {{index, ~uint64_t{0}, v}}});
        return *this;
    }
    // The distinct system calls it allows, sorted.
    std::vector<std::string> syscalls() const;
};

// Loads `list` as the calling thread's filter (threads started later by it
// inherit it). Every name must be a system call of this architecture.
Result<void> load_filter(const Allowlist& list);

// Whether a filter is loaded for the calling thread, from /proc (tests).
int seccomp_mode_of_this_thread();

}  // namespace hospes::sandbox
