#pragma once
// Header fields as the HTTP/1 codec hands them out: views into bytes owned by a head object.

#include <cstdint>
#include <string_view>
#include <vector>

namespace proxenos::http {

struct HeaderField {
  std::string_view name;   // as received (case preserved)
  std::string_view value;  // leading/trailing whitespace trimmed
};

using HeaderList = std::vector<HeaderField>;

// ASCII case-insensitive equality; header names are tokens, so ASCII folding is exact.
bool iequals(std::string_view a, std::string_view b);

// First value of `name` (case-insensitive) or empty view; `found` tells absent from empty.
std::string_view find_header(const HeaderList& headers, std::string_view name,
                             bool* found = nullptr);

// True when a comma-separated header value list contains `token` (case-insensitive).
bool header_has_token(std::string_view value, std::string_view token);

}  // namespace proxenos::http
