// libFuzzer target for hospesd's JSON API: any bytes as one request line
// to a daemon with its own state directory, whose monitor program
// (/bin/false) ends at once, so that a create takes its failure path. A
// crash, a sanitizer report or a hang is a bug; so is an answer that is
// not one line of a JSON object holding "return" or "error", or a domain
// left behind by a create that failed.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/log.hpp"
#include "toolstack/daemon.hpp"

namespace {

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

hospes::toolstack::Daemon& daemon_under_test() {
    static std::unique_ptr<hospes::toolstack::Daemon> daemon = [] {
        hospes::log::init(false, "hospesd-fuzz");
        spdlog::set_level(spdlog::level::off);
        auto dir = std::filesystem::temp_directory_path() / ("hospesd-fuzz-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir);
        hospes::toolstack::DaemonOptions options;
        options.socket = (dir / "hospesd.sock").string();
        options.state_dir = (dir / "state").string();
        options.monitor = "/bin/false";
        options.cgroups = false;  // the host's cgroups are not the fuzzer's to change
        auto created = hospes::toolstack::Daemon::create(options);
        if (!created) __builtin_trap();
        return std::move(*created);
    }();
    return *daemon;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view request(reinterpret_cast<const char*>(data), size);
    auto& daemon = daemon_under_test();
    std::string answer = daemon.answer(request);
    CHECK(answer.find('\n') == std::string::npos);
    auto json = nlohmann::json::parse(answer, nullptr, false);
    CHECK(json.is_object() && json.size() == 1 && (json.contains("return") || json.contains("error")));
    // Nothing can start (the monitor is /bin/false): no domain is ever kept.
    auto rows = nlohmann::json::parse(daemon.answer(R"({"execute":"list"})"));
    CHECK(rows["return"].size() == 1);
    return 0;
}
