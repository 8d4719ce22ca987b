// Logging to stderr through spdlog, one line per event, prefixed "hospes:".
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/capped_writer.hpp"

namespace hospes::log {

// Installs the stderr logger, its lines prefixed "`program`:"; `verbose`
// enables debug messages.
void init(bool verbose, const char* program = "hospes");

// From now on, when stderr is a regular file, messages go into it through
// a CappedWriter rotated into `previous` (-1: none): repeated warnings a
// guest provokes cannot fill the host's disk.
void cap_output(int previous, const CappedWriter::Limits& limits);

// Keeps the last `lines` messages in memory as well, with their time (a
// daemon's `xl dmesg`). Call after init().
void keep_recent(size_t lines);
// The kept messages, oldest first; `clear` forgets them afterwards.
std::vector<std::string> recent(bool clear = false);

// With debug messages on: notes the time of a step of a launch, for
// bench/ to see where a launch's time goes (what the jail costs). Kept in
// memory, not written at once (a line written wakes whoever reads stderr,
// on the launch's path); print_milestones() writes them, one debug line
// "milestone NAME: monotonic N ns" each, and forgets them.
void milestone(const char* name);
void print_milestones();
// Forgets them unwritten (a parent that left them to its child).
void forget_milestones();

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;

}  // namespace hospes::log
