#include "common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace hospes::log {

void init(bool verbose) {
    auto logger = spdlog::get("hospes");
    if (!logger) logger = spdlog::stderr_logger_mt("hospes");
    logger->set_pattern("hospes: %l: %v");
    logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
    spdlog::set_default_logger(logger);
}

}  // namespace hospes::log
