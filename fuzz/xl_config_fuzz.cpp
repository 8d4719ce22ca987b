// libFuzzer target for the xl.cfg parser: any bytes as a domain file. A
// crash, a sanitizer report or a hang is a bug; so is an error that is not
// one line starting "FILE:LINE:COLUMN: ", or a parsed value whose place is
// not in the text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "toolstack/xl_config.hpp"

namespace {

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

void check_value(const hospes::toolstack::XlValue& value, int lines) {
    CHECK(value.line >= 1 && value.line <= lines && value.column >= 1);
    for (const auto& item : value.items) check_value(item, lines);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto config = hospes::toolstack::parse_xl_config(text, "fuzz.cfg");
    int lines = 1;
    for (char c : text) lines += c == '\n';
    if (!config) {
        const auto& message = config.error().message;
        CHECK(message.starts_with("fuzz.cfg:") && message.find('\n') == std::string::npos);
        return 0;
    }
    for (const auto& setting : config->settings) {
        CHECK(!setting.key.empty() && setting.line >= 1 && setting.line <= lines);
        CHECK(config->find(setting.key) == &setting.value);
        check_value(setting.value, lines);
    }
    return 0;
}
