#include "common/size.hpp"

#include <cctype>
#include <charconv>
#include <limits>

namespace hospes {

Result<uint64_t> parse_size(std::string_view text) {
    uint64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc() || end == text.data())
        return bad_input("invalid size '{}': expected a number with an optional K, M or G suffix", text);
    std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
    if (suffix == "iB" || suffix == "B") suffix = {};
    uint64_t unit = MiB;
    if (!suffix.empty()) {
        switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
        case 'K': unit = KiB; break;
        case 'M': unit = MiB; break;
        case 'G': unit = GiB; break;
        case 'T': unit = 1024 * GiB; break;
        default: return bad_input("invalid size '{}': unknown unit '{}'", text, suffix);
        }
        std::string_view rest = suffix.substr(1);
        if (!rest.empty() && rest != "B" && rest != "iB")
            return bad_input("invalid size '{}': unknown unit '{}'", text, suffix);
    }
    if (number > std::numeric_limits<uint64_t>::max() / unit) return bad_input("size '{}' is too large", text);
    return number * unit;
}

}  // namespace hospes
