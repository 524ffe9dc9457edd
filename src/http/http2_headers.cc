#include "http/http2_headers.h"

#include <algorithm>
#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace proxenos::http {
namespace {

inline unsigned char uc(char c) {
  return static_cast<unsigned char>(c);
}

inline char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

inline std::string_view trim_ows(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

// Copies sizeof(Word) to 2 * sizeof(Word) bytes with two (overlapping) word moves.
template <typename Word>
inline void copy_two_words(char* out, const char* in, size_t n) {
  Word head;
  Word tail;
  std::memcpy(&head, in, sizeof(Word));
  std::memcpy(&tail, in + n - sizeof(Word), sizeof(Word));
  std::memcpy(out, &head, sizeof(Word));
  std::memcpy(out + n - sizeof(Word), &tail, sizeof(Word));
}

// Header names and values are mostly a few bytes: copied inline instead of a call into the
// library memcpy for each.
inline void copy_field_bytes(char* out, const char* in, size_t n) {
  if (n >= 8 && n <= 16) {
    copy_two_words<uint64_t>(out, in, n);
  } else if (n >= 4 && n < 8) {
    copy_two_words<uint32_t>(out, in, n);
  } else if (n < 4) {
    for (size_t i = 0; i < n; ++i) out[i] = in[i];
  } else {
    std::memcpy(out, in, n);
  }
}

// Name bytes: kNameBad for bytes outside tchar, kNameUpper for 'A'..'Z'. One pass over a name
// both validates it and says whether it needs lowercasing.
constexpr uint8_t kNameBad = 1;
constexpr uint8_t kNameUpper = 2;
constexpr std::array<uint8_t, 256> kNameClass = [] {
  std::array<uint8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c) {
    t[c] = chars::kToken[c] ? (c >= 'A' && c <= 'Z' ? kNameUpper : 0) : kNameBad;
  }
  return t;
}();

uint8_t name_class_bytes(const char* p, size_t n) {
  uint8_t cls = 0;
  for (size_t i = 0; i < n; ++i) cls |= kNameClass[uc(p[i])];
  return cls;
}

inline uint32_t load4(const char* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

inline uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// Whether a name of at least four bytes is all lowercase letters, digits and '-': what almost
// every field name is made of, checked many bytes at once (overlapping loads cover the ends);
// only other names go byte by byte through the table.
#if defined(__SSE2__)
inline bool plain_name_vector(__m128i v) {
  const auto in = [v](char lo, char hi) {  // signed compares: bytes >= 0x80 are in no range
    return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(static_cast<char>(lo - 1))),
                         _mm_cmplt_epi8(v, _mm_set1_epi8(static_cast<char>(hi + 1))));
  };
  const __m128i ok =
      _mm_or_si128(_mm_or_si128(in('a', 'z'), in('0', '9')), _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
  return _mm_movemask_epi8(ok) == 0xffff;
}

[[gnu::always_inline]] inline bool plain_name(const char* p, size_t n) {
  if (n >= 16) {
    for (size_t i = 0; i + 16 <= n; i += 16) {
      if (!plain_name_vector(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)))) {
        return false;
      }
    }
    return n % 16 == 0 ||
           plain_name_vector(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16)));
  }
  if (n >= 8) {
    return plain_name_vector(
        _mm_set_epi64x(static_cast<int64_t>(load8(p + n - 8)), static_cast<int64_t>(load8(p))));
  }
  const auto head = static_cast<int>(load4(p));
  const auto tail = static_cast<int>(load4(p + n - 4));
  return plain_name_vector(_mm_set_epi32(tail, head, tail, head));
}
#else
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;

// High bit of each byte set where lo <= byte <= hi; every byte of `w` must be below 0x80 (no
// carry crosses a byte then).
constexpr uint64_t bytes_in(uint64_t w, uint8_t lo, uint8_t hi) {
  return (w + kOnes * (0x80 - lo)) & ~(w + kOnes * (0x7f - hi)) & kHighs;
}

constexpr bool plain_name_word(uint64_t w) {
  if ((w & kHighs) != 0) return false;
  return (bytes_in(w, 'a', 'z') | bytes_in(w, '0', '9') | bytes_in(w, '-', '-')) == kHighs;
}

[[gnu::always_inline]] inline bool plain_name(const char* p, size_t n) {
  if (n < 8) return plain_name_word(load4(p) | static_cast<uint64_t>(load4(p + n - 4)) << 32);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    if (!plain_name_word(load8(p + i))) return false;
  }
  return n % 8 == 0 || plain_name_word(load8(p + n - 8));
}
#endif

// Inlined into its two callers (per field): a call cost as much as the check.
[[gnu::always_inline]] inline uint8_t name_class(std::string_view name) {
  const size_t n = name.size();
  const char* p = name.data();
  if (n < 4) return n == 0 ? kNameBad : name_class_bytes(p, n);
  return plain_name(p, n) ? 0 : name_class_bytes(p, n);
}

bool value_bytes_valid(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!chars::kFieldValue[uc(p[i])]) return false;
  }
  return true;
}

// field-value check, many bytes at a time: no byte below 0x20 but HTAB, no 0x7f.
#if defined(__SSE2__)
inline bool valid_value_vector(__m128i v) {
  const __m128i at_least_space = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x20)), v);
  const __m128i ok =
      _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)),
                       _mm_or_si128(at_least_space, _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))));
  return _mm_movemask_epi8(ok) == 0xffff;
}

bool valid_value(std::string_view value) {
  const char* p = value.data();
  const size_t n = value.size();
  if (n < 4) return value_bytes_valid(p, n);
  if (n < 8) {
    const auto head = static_cast<int>(load4(p));
    const auto tail = static_cast<int>(load4(p + n - 4));
    return valid_value_vector(_mm_set_epi32(tail, head, tail, head));
  }
  if (n < 16) {
    return valid_value_vector(
        _mm_set_epi64x(static_cast<int64_t>(load8(p + n - 8)), static_cast<int64_t>(load8(p))));
  }
  for (size_t i = 0; i + 16 <= n; i += 16) {
    if (!valid_value_vector(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)))) {
      return false;
    }
  }
  return n % 16 == 0 ||
         valid_value_vector(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16)));
}
#else
// Eight bytes at a time: a word with no byte below 0x20 and none equal to 0x7f is valid as is;
// only words that have one (a tab, usually none) are looked at bytewise.
bool valid_value(std::string_view value) {
  const char* p = value.data();
  size_t n = value.size();
  for (; n >= 8; p += 8, n -= 8) {
    const uint64_t w = load8(p);
    const uint64_t below_space = (w - kOnes * 0x20) & ~w & kHighs;
    const uint64_t x = w ^ (kOnes * 0x7f);
    const uint64_t del = (x - kOnes) & ~x & kHighs;
    if ((below_space | del) == 0) continue;
    if (!value_bytes_valid(p, 8)) return false;
  }
  return value_bytes_valid(p, n);
}
#endif

// Up to this many Connection header values are honoured when dropping nominated fields; a list
// longer than that is hostile, and the fixed connection-specific set is dropped regardless.
constexpr size_t kMaxConnectionHeaders = 8;

}  // namespace

PrefaceMatch match_http2_preface(std::string_view first_bytes) {
  // "PRI * HTTP/2" commits the connection to HTTP/2, as Envoy's codec detection does: a broken
  // rest of the preface is then the HTTP/2 session's to refuse (GOAWAY PROTOCOL_ERROR), not an
  // HTTP/1 request line.
  constexpr size_t kCommit = std::string_view("PRI * HTTP/2").size();
  const size_t n = std::min(first_bytes.size(), kHttp2Preface.size());
  if (first_bytes.substr(0, std::min(n, kCommit)) !=
      kHttp2Preface.substr(0, std::min(n, kCommit))) {
    return PrefaceMatch::kNo;
  }
  if (n >= kCommit) return PrefaceMatch::kFull;
  return PrefaceMatch::kPartial;
}

bool is_connection_specific_header(std::string_view name) {
  switch (name.size()) {
    case 7:
      return iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

bool is_h2_field_name(std::string_view name) {
  return name_class(name) == 0;
}

bool is_field_value(std::string_view value) {
  return valid_value(value);
}

void FieldBytes::grow(size_t need) {
  const size_t capacity = std::max<size_t>({need, capacity_ * 2, 512});
  std::unique_ptr<char[]> bigger(new char[capacity]);
  if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
  data_ = std::move(bigger);
  capacity_ = capacity;
}

inline void H2OutFields::push(std::string_view name, std::string_view value) {
  const size_t at = bytes_.size();
  char* out = bytes_.extend(name.size() + value.size());
  copy_field_bytes(out, name.data(), name.size());
  copy_field_bytes(out + name.size(), value.data(), value.size());
  fields_.push_back({static_cast<uint32_t>(at), static_cast<uint32_t>(name.size()),
                     static_cast<uint32_t>(value.size())});
}

void H2OutFields::add_pseudo(std::string_view name, std::string_view value) {
  push(name, value);
}

void H2OutFields::add_lowercased(std::string_view name, std::string_view value) {
  const size_t at = bytes_.size();
  char* out = bytes_.extend(name.size() + value.size());
  for (char c : name) *out++ = lower(c);
  copy_field_bytes(out, value.data(), value.size());
  fields_.push_back({static_cast<uint32_t>(at), static_cast<uint32_t>(name.size()),
                     static_cast<uint32_t>(value.size())});
}

void H2OutFields::add_fields(const HeaderList& fields, Kind kind, bool drop_host,
                             size_t in_h2_form) {
  // Left uninitialised (only the first connection_count are read): zeroing the array cost a
  // `rep stos` per block, more cycles than the rest of a short block's translation.
  const std::string_view* connection[kMaxConnectionHeaders];
  size_t connection_count = 0;
  for (const HeaderField& f : fields) {
    if (f.name.size() == 10 && iequals(f.name, "connection") &&
        connection_count < kMaxConnectionHeaders) {
      connection[connection_count++] = &f.value;
    }
  }

  in_h2_form = std::min(in_h2_form, fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    const HeaderField& f = fields[i];
    const bool checked = i < in_h2_form;
    uint8_t cls = 0;
    std::string_view value = f.value;
    if (!checked) {
      cls = name_class(f.name);  // ':' is no tchar: pseudo-looking names go too
      if ((cls & kNameBad) != 0) continue;
      value = trim_ows(f.value);
      if (!valid_value(value)) continue;
    }
    // Names HTTP/2 treats specially, found by length first: most fields match none.
    switch (f.name.size()) {
      case 2:
        if (iequals(f.name, "te")) {
          if (kind == Kind::kRequest && header_has_token(value, "trailers")) push("te", "trailers");
          continue;
        }
        break;
      case 4:
        if (drop_host && iequals(f.name, "host")) continue;
        break;
      case 6:
        if (kind == Kind::kRequest && iequals(f.name, "cookie")) {
          std::string_view rest = value;
          while (!rest.empty()) {
            const size_t semi = rest.find(';');
            const std::string_view crumb = trim_ows(rest.substr(0, semi));
            if (!crumb.empty()) push("cookie", crumb);
            if (semi == std::string_view::npos) break;
            rest.remove_prefix(semi + 1);
          }
          continue;
        }
        break;
      case 7:
      case 10:
      case 16:
      case 17:
        if (!checked && is_connection_specific_header(f.name)) continue;
        break;
      default:
        break;
    }
    bool nominated = false;
    for (size_t c = 0; c < connection_count && !nominated; ++c) {
      nominated = header_has_token(*connection[c], f.name);
    }
    if (nominated) continue;
    if ((cls & kNameUpper) == 0) {
      push(f.name, value);
    } else {
      add_lowercased(f.name, value);
    }
  }
}

}  // namespace proxenos::http
