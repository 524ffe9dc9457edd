#pragma once
// Header fields as the HTTP/1 codec hands them out: views into bytes owned by a head object.

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace proxenos::http {

// Byte classes of RFC 9110 §5.6.2 / §5.5, as 256-entry tables so the codec's hot loops cost one
// load per byte. CR and LF are in none of them, which lets scanners run to the line end unguarded.
namespace chars {
constexpr bool is_alpha(unsigned c) {
  return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
constexpr bool is_digit(unsigned c) {
  return c >= '0' && c <= '9';
}

// tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
// / DIGIT / ALPHA.
inline constexpr std::array<bool, 256> kToken = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = is_alpha(c) || is_digit(c);
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

// field-value bytes: VCHAR, obs-text, SP, HTAB (no CTLs, no DEL).
inline constexpr std::array<bool, 256> kFieldValue = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = (c >= 0x20 && c != 0x7f) || c == '\t';
  return t;
}();
}  // namespace chars

struct HeaderField {
  std::string_view name;   // as received (case preserved)
  std::string_view value;  // leading/trailing whitespace trimmed
};

using HeaderList = std::vector<HeaderField>;

// ASCII case-insensitive equality; header names are tokens, so ASCII folding is exact.
bool iequals_same_size(const char* a, const char* b, size_t size);
inline bool iequals(std::string_view a, std::string_view b) {
  // Inline: most comparisons in header scans fail on the length alone.
  return a.size() == b.size() && iequals_same_size(a.data(), b.data(), a.size());
}

// First value of `name` (case-insensitive) or empty view; `found` tells absent from empty.
std::string_view find_header(const HeaderList& headers, std::string_view name,
                             bool* found = nullptr);

// True when a comma-separated header value list contains `token` (case-insensitive).
bool header_has_token(std::string_view value, std::string_view token);

}  // namespace proxenos::http
