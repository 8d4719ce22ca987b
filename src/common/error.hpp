// Errors as values: every fallible call returns Result<T>. The kind decides
// the monitor's exit status (bad input 2, host problem 1, guest crash 3).
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>

#include <fmt/format.h>

namespace hospes {

enum class ErrorKind {
    BadInput,  // the user's command line, file or image is wrong
    Host,      // the host cannot do what was asked (no /dev/kvm, out of memory, ...)
    Guest,     // the guest did something fatal (triple fault, invalid state)
};

struct Error {
    ErrorKind kind;
    std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

template <class... Args>
std::unexpected<Error> bad_input(fmt::format_string<Args...> format, Args&&... args) {
    return std::unexpected(Error{ErrorKind::BadInput, fmt::format(format, std::forward<Args>(args)...)});
}

template <class... Args>
std::unexpected<Error> host_error(fmt::format_string<Args...> format, Args&&... args) {
    return std::unexpected(Error{ErrorKind::Host, fmt::format(format, std::forward<Args>(args)...)});
}

// The guest broke a rule it must follow (a malformed virtqueue, ...).
template <class... Args>
std::unexpected<Error> guest_error(fmt::format_string<Args...> format, Args&&... args) {
    return std::unexpected(Error{ErrorKind::Guest, fmt::format(format, std::forward<Args>(args)...)});
}

// A host error carrying the current errno's text.
template <class... Args>
std::unexpected<Error> errno_error(fmt::format_string<Args...> format, Args&&... args) {
    int saved = errno;
    return std::unexpected(Error{ErrorKind::Host, fmt::format("{}: {}", fmt::format(format, std::forward<Args>(args)...),
                                                              std::strerror(saved))});
}

// Exit statuses of the monitor (documented in docs/running.md).
enum ExitStatus : int {
    kExitGuestStopped = 0,  // guest rebooted or powered off
    kExitHostError = 1,
    kExitBadInput = 2,
    kExitGuestCrashed = 3,  // a kernel panic (pvpanic), triple fault or unrecoverable guest state
};

inline int exit_status_for(const Error& error) {
    switch (error.kind) {
    case ErrorKind::BadInput: return kExitBadInput;
    case ErrorKind::Host: return kExitHostError;
    case ErrorKind::Guest: return kExitGuestCrashed;
    }
    return kExitHostError;
}

}  // namespace hospes
