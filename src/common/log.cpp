#include "common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace hospes::log {

void init(bool verbose, const char* program) {
    auto logger = spdlog::get(program);
    if (!logger) logger = spdlog::stderr_logger_mt(program);
    logger->set_pattern(std::string(program) + ": %l: %v");
    logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
    spdlog::set_default_logger(logger);
}

}  // namespace hospes::log
