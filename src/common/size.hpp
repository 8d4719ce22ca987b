// Human-friendly sizes on the command line ("512M", "4G", "4608" = MiB).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/error.hpp"

namespace hospes {

inline constexpr uint64_t KiB = 1024;
inline constexpr uint64_t MiB = 1024 * KiB;
inline constexpr uint64_t GiB = 1024 * MiB;

// Parses a memory size; a bare number is MiB, as in xl.cfg's `memory=`.
Result<uint64_t> parse_size(std::string_view text);

}  // namespace hospes
