// xl.cfg(5) domain files as Xen's xl reads them: a series of KEY=VALUE
// (or KEY+=VALUE) statements, each ended by a newline or ';'. A VALUE is a
// string in single or double quotes (C escapes: \n \t \\ \' \" \xHH \ooo
// ...), a number (decimal, 0-octal or 0x-hex, kept as written), or a list
// of values in [ ] separated by commas, over as many lines as it likes,
// with a trailing comma allowed. '#' starts a comment to the end of the
// line. Keys are lowercase: [a-z][a-z0-9._]*.
//
// This file knows the syntax only; what each key means is the domain
// configuration's business. A malformed file is one error naming
// FILE:LINE:COLUMN, and nothing of it is used.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace hospes::toolstack {

struct XlValue {
    enum class Kind { String, Number, List };
    Kind kind = Kind::String;
    std::string text;            // String: unquoted; Number: as written
    std::vector<XlValue> items;  // List
    int line = 0, column = 0;    // where it starts in the file (1-based)
};

struct XlSetting {
    std::string key;
    XlValue value;
    int line = 0;  // of the key
};

struct XlConfig {
    std::string file;                 // the name errors and warnings give
    std::vector<XlSetting> settings;  // one per key, in order of first appearance
    // The key's value (its last assignment, with any += after it), or null.
    const XlValue* find(std::string_view key) const;
};

// `file` names the text in error messages ("web1.cfg:3:9: ...").
Result<XlConfig> parse_xl_config(std::string_view text, std::string file);

}  // namespace hospes::toolstack
