#include "http/header.h"

#include <array>
#include <cstring>

namespace proxenos::http {
namespace {

constexpr std::array<unsigned char, 256> kLower = [] {
  std::array<unsigned char, 256> t{};
  for (unsigned c = 0; c < 256; ++c) {
    t[c] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  return t;
}();

std::string_view trim_ows(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

}  // namespace

bool iequals_same_size(const char* a, const char* b, size_t size) {
  // Bytewise on purpose: most comparisons are of equal-length names that differ in their first
  // bytes, where a word-at-a-time compare measured slower (its set-up outweighs the early exit).
  for (size_t i = 0; i < size; ++i) {
    if (kLower[static_cast<unsigned char>(a[i])] != kLower[static_cast<unsigned char>(b[i])]) {
      return false;
    }
  }
  return true;
}

std::string_view find_header(const HeaderList& headers, std::string_view name, bool* found) {
  for (const HeaderField& field : headers) {
    if (iequals(field.name, name)) {
      if (found != nullptr) *found = true;
      return field.value;
    }
  }
  if (found != nullptr) *found = false;
  return {};
}

bool header_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view element = trim_ows(value.substr(0, comma));
    if (iequals(element, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace proxenos::http
