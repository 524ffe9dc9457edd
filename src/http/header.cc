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

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;

// Eight bytes with 'A'..'Z' turned into 'a'..'z' (bytes >= 0x80 untouched): the high bits are
// masked off first, so no addition carries into the next byte.
inline uint64_t lower_word(uint64_t w) {
  const uint64_t t = w & ~kHighs;
  const uint64_t upper = (t + kOnes * (0x80 - 'A')) & ~(t + kOnes * (0x7f - 'Z')) & ~w & kHighs;
  return w | (upper >> 2);  // 0x80 >> 2 is the 0x20 that lowercases
}

inline uint64_t load_word(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

std::string_view trim_ows(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

}  // namespace

// Header lookups compare names of ten to thirty bytes, mostly equal as they are (both
// lowercase): eight bytes at a time, folded only when they differ.
bool iequals_same_size(const char* a, const char* b, size_t size) {
  if (size >= 8) {
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      const uint64_t x = load_word(a + i);
      const uint64_t y = load_word(b + i);
      if (x != y && lower_word(x) != lower_word(y)) return false;
    }
    if (i == size) return true;
    const uint64_t x = load_word(a + size - 8);  // the tail, overlapping what was compared
    const uint64_t y = load_word(b + size - 8);
    return x == y || lower_word(x) == lower_word(y);
  }
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
