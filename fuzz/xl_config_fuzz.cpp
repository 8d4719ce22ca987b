// libFuzzer target for the xl.cfg parser and the domain configuration read
// from it (every key's meaning, disk and vif specs): any bytes as a domain
// file. A crash, a sanitizer report or a hang is a bug; so is a parse error
// that is not one line starting "FILE:LINE:COLUMN: ", a parsed value whose
// place is not in the text, or a domain with no name or kernel, fewer
// maxvcpus than vcpus or less maxmem than memory.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "toolstack/domain_config.hpp"

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
    auto domain = hospes::toolstack::domain_from_xl(*config);
    if (domain) {
        CHECK(!domain->name.empty() && !domain->kernel.empty());
        CHECK(domain->maxvcpus >= domain->vcpus && domain->maxmem_mib >= domain->memory_mib);
        for (const auto& disk : domain->disks) CHECK(!disk.target.empty() && !disk.guest_device.empty());
    } else {
        CHECK(domain.error().message.find('\n') == std::string::npos);
    }
    return 0;
}
