#include "toolstack/xl_config.hpp"

#include <optional>

namespace hospes::toolstack {

namespace {

bool is_key_start(char c) { return c >= 'a' && c <= 'z'; }
bool is_key_char(char c) { return is_key_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A recursive-descent reader over the text, tracking line and column.
class Parser {
public:
    Parser(std::string_view text, std::string file) : text_(text), file_(std::move(file)) {}

    Result<XlConfig> parse() {
        XlConfig config;
        config.file = file_;
        for (;;) {
            skip_blanks();
            if (at_end()) return config;
            char c = peek();
            if (c == '\n' || c == ';' || c == '#') {
                end_of_statement();
                continue;
            }
            if (!is_key_start(c)) return error("expected a key (lowercase letters, digits, '.' and '_')");
            int key_line = line_;
            std::string key;
            while (!at_end() && is_key_char(peek())) key += take();
            skip_blanks();
            bool append = false;
            if (peek() == '+' && peek(1) == '=') {
                append = true;
                take();
            } else if (peek() != '=') {
                return error(fmt::format("expected '=' or '+=' after '{}'", key));
            }
            take();
            skip_blanks();
            auto value = parse_value(0);
            if (!value) return std::unexpected(value.error());
            if (auto r = store(config, key, key_line, std::move(*value), append); !r) return std::unexpected(r.error());
            skip_blanks();
            if (!at_end() && peek() != '\n' && peek() != ';' && peek() != '#')
                return error(fmt::format("unexpected '{}' after the value of '{}' (one setting per line or ';')",
                                         printable(peek()), key));
        }
    }

private:
    static constexpr int kMaxDepth = 8;  // lists of lists; deeper is nobody's configuration

    bool at_end() const { return at_ >= text_.size(); }
    char peek(size_t ahead = 0) const { return at_ + ahead < text_.size() ? text_[at_ + ahead] : '\0'; }
    char take() {
        char c = text_[at_++];
        if (c == '\n') {
            ++line_;
            column_ = 1;
        } else {
            ++column_;
        }
        return c;
    }
    void skip_blanks() {
        while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\r')) take();
    }
    // A newline, ';' or a comment to its line's end.
    void end_of_statement() {
        if (peek() == '#')
            while (!at_end() && peek() != '\n') take();
        if (!at_end()) take();
    }
    // Blanks, newlines and comments: inside a list they do not matter.
    void skip_space() {
        for (;;) {
            skip_blanks();
            if (peek() == '#')
                while (!at_end() && peek() != '\n') take();
            if (at_end() || peek() != '\n') return;
            take();
        }
    }
    static std::string printable(char c) {
        if (c >= 0x20 && c < 0x7f) return std::string(1, c);
        return fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
    std::unexpected<Error> error(const std::string& message) const { return error_at(line_, column_, message); }
    std::unexpected<Error> error_at(int line, int column, const std::string& message) const {
        return bad_input("{}:{}:{}: {}", file_, line, column, message);
    }

    Result<XlValue> parse_value(int depth) {
        XlValue value;
        value.line = line_;
        value.column = column_;
        if (at_end() || peek() == '\n' || peek() == ';' || peek() == '#') return error("expected a value");
        char c = peek();
        if (c == '"' || c == '\'') {
            auto text = parse_string();
            if (!text) return std::unexpected(text.error());
            value.text = std::move(*text);
            return value;
        }
        if (is_digit(c)) {
            value.kind = XlValue::Kind::Number;
            while (!at_end() && (is_hex(peek()) || peek() == 'x' || peek() == 'X')) value.text += take();
            if (!valid_number(value.text))
                return error_at(value.line, value.column, fmt::format("'{}' is not a number", value.text));
            return value;
        }
        if (c == '[') {
            if (depth >= kMaxDepth) return error("lists nested too deeply");
            value.kind = XlValue::Kind::List;
            take();
            skip_space();
            while (peek() != ']') {
                auto item = parse_value(depth + 1);
                if (!item) return std::unexpected(item.error());
                value.items.push_back(std::move(*item));
                skip_space();
                if (peek() == ',') {
                    take();
                    skip_space();
                } else if (peek() != ']') {
                    if (at_end()) return error_at(value.line, value.column, "the list is never closed with ']'");
                    return error(fmt::format("expected ',' or ']' in the list, not '{}'", printable(peek())));
                }
            }
            take();
            return value;
        }
        if (is_key_start(c) || c == '-' || c == '(' || c == '{')
            return error("expected a value: a string in quotes, a number or a [list]");
        return error(fmt::format("unexpected '{}'", printable(c)));
    }

    static bool valid_number(const std::string& text) {
        if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
            for (size_t i = 2; i < text.size(); ++i)
                if (!is_hex(text[i])) return false;
            return true;
        }
        bool octal = text.size() > 1 && text[0] == '0';
        for (char c : text)
            if (!is_digit(c) || (octal && c > '7')) return false;
        return true;
    }

    Result<std::string> parse_string() {
        int line = line_, column = column_;
        char quote = take();
        std::string out;
        for (;;) {
            if (at_end() || peek() == '\n') return error_at(line, column, "the string is never closed");
            char c = take();
            if (c == quote) return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (at_end() || peek() == '\n') return error_at(line, column, "the string is never closed");
            int escape_column = column_ - 1;
            char e = take();
            switch (e) {
            case '"': case '\'': case '\\': out += e; break;
            case 'a': out += '\a'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'v': out += '\v'; break;
            case 'x': {
                if (!is_hex(peek()) || !is_hex(peek(1)))
                    return error_at(line_, escape_column, "'\\x' needs two hex digits in a string");
                char digits[3] = {take(), take(), 0};
                out += static_cast<char>(std::stoi(digits, nullptr, 16));
                break;
            }
            default:
                if (e >= '0' && e <= '7') {
                    int code = e - '0';
                    for (int n = 1; n < 3 && peek() >= '0' && peek() <= '7'; ++n) code = code * 8 + (take() - '0');
                    if (code > 0xff) return error_at(line_, escape_column, "octal escape above \\377 in a string");
                    out += static_cast<char>(code);
                    break;
                }
                return error_at(line_, escape_column, fmt::format("unknown escape '\\{}' in a string", printable(e)));
            }
        }
    }

    Result<void> store(XlConfig& config, const std::string& key, int line, XlValue value, bool append) {
        XlSetting* existing = nullptr;
        for (auto& s : config.settings)
            if (s.key == key) existing = &s;
        if (append && existing) {
            auto& old = existing->value;
            if (old.kind == XlValue::Kind::Number || value.kind == XlValue::Kind::Number)
                return error_at(value.line, value.column, fmt::format("'{}': += does not add numbers", key));
            if (old.kind != value.kind)
                return error_at(value.line, value.column,
                                fmt::format("'{}': += cannot add a list to a string or a string to a list", key));
            if (old.kind == XlValue::Kind::String)
                old.text += value.text;
            else
                for (auto& item : value.items) old.items.push_back(std::move(item));
            existing->line = line;
            return {};
        }
        if (existing) {
            existing->value = std::move(value);
            existing->line = line;
            return {};
        }
        config.settings.push_back({key, std::move(value), line});
        return {};
    }

    std::string_view text_;
    std::string file_;
    size_t at_ = 0;
    int line_ = 1, column_ = 1;
};

}  // namespace

const XlValue* XlConfig::find(std::string_view key) const {
    for (const auto& s : settings)
        if (s.key == key) return &s.value;
    return nullptr;
}

Result<XlConfig> parse_xl_config(std::string_view text, std::string file) {
    return Parser(text, std::move(file)).parse();
}

}  // namespace hospes::toolstack
