// The command-line parse every hospes program does the same way: --help
// prints and exits 0, a malformed line is one error line and exit status 2.
#pragma once

#include <optional>

#include <CLI/CLI.hpp>

#include "common/error.hpp"
#include "common/log.hpp"

namespace hospes {

// Parses argv into `app`; the exit status to end with when the program
// should not go on (help shown, or an error logged as `program`).
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv, const char* program) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        log::init(false, program);
        log::error("{}", e.what());
        return kExitBadInput;
    }
    return std::nullopt;
}

}  // namespace hospes
