// Logging to stderr through spdlog, one line per event, prefixed "hospes:".
#pragma once

#include <spdlog/spdlog.h>

namespace hospes::log {

// Installs the stderr logger, its lines prefixed "`program`:"; `verbose`
// enables debug messages.
void init(bool verbose, const char* program = "hospes");

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

}  // namespace hospes::log
