#include "http/http1_parser.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "http/header.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// Two passes over a head, both linear:
//  1. scan: memchr for each LF from where the previous call stopped, checking CRLF, the limits and
//     the blank line that ends the head. Only this pass runs on incomplete input.
//  2. parse: once complete, one memcpy into the head's storage, then one table-driven walk over the
//     storage that validates every byte and sets the views. Storage ends in CRLF CRLF and CR/LF are
//     in none of the byte classes, so the inner loops need no bounds checks.

namespace proxenos::http {
namespace {

using chars::is_digit;
using chars::kFieldValue;

constexpr int kBadRequest = 400;
constexpr int kBadGateway = 502;

// Header-name bytes: bit 0 = tchar, bit 1 = '_' (so one OR per byte tells whether the name had
// an underscore without a second pass).
constexpr std::array<uint8_t, 256> kNameClass = [] {
  std::array<uint8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = chars::kToken[c] ? 1 : 0;
  t['_'] = 3;
  return t;
}();

// request-target bytes: VCHAR except '#' (a fragment is never sent, and letting one through made
// path rules miss, CVE-2021-32779). Bytes >= 0x80 are accepted as Envoy's http-parser and nginx
// do: they cannot affect framing, and the path normaliser decides what they mean.
constexpr std::array<bool, 256> kTargetChar = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0x21; c < 256; ++c) t[c] = c != 0x7f && c != '#';
  return t;
}();

// Host / authority bytes (RFC 3986 reg-name, IP-literal and port): unreserved, pct-encoded,
// sub-delims, ':' and brackets. No '@': userinfo in an authority is a classic routing confusion.
constexpr std::array<bool, 256> kHostChar = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = chars::is_alpha(c) || is_digit(c);
  for (char c : std::string_view("-._~!$&'()*+,;=%:[]")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

constexpr std::string_view kRootPath = "/";

inline unsigned char uc(char c) {
  return static_cast<unsigned char>(c);
}

// Long runs (values such as User-Agent and Cookie, and request targets) are scanned 16 bytes at a
// time; the tables finish the last partial block and name the byte that stopped the scan. Both
// scans stop at CR at the latest, which storage guarantees before its end.
#if defined(__SSE2__)
inline size_t skip_field_value(const char* s, size_t p, size_t n) {
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  while (p + 16 <= n) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + p));
    // CTL: unsigned b < 0x20 (max(b, 0x20) != b), except HTAB; and DEL.
    const __m128i ctl =
        _mm_andnot_si128(_mm_cmpeq_epi8(_mm_max_epu8(b, space), b), _mm_cmpeq_epi8(b, b));
    const __m128i stop =
        _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(b, tab), ctl), _mm_cmpeq_epi8(b, del));
    const int mask = _mm_movemask_epi8(stop);
    if (mask != 0) return p + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    p += 16;
  }
  while (kFieldValue[uc(s[p])]) ++p;
  return p;
}

inline size_t skip_target(const char* s, size_t p, size_t n) {
  const __m128i bang = _mm_set1_epi8(0x21);
  const __m128i hash = _mm_set1_epi8('#');
  const __m128i del = _mm_set1_epi8(0x7f);
  while (p + 16 <= n) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + p));
    // Stop at unsigned b <= 0x20 (SP, CTLs), DEL and '#'.
    const __m128i low =
        _mm_andnot_si128(_mm_cmpeq_epi8(_mm_max_epu8(b, bang), b), _mm_cmpeq_epi8(b, b));
    const __m128i stop =
        _mm_or_si128(low, _mm_or_si128(_mm_cmpeq_epi8(b, hash), _mm_cmpeq_epi8(b, del)));
    const int mask = _mm_movemask_epi8(stop);
    if (mask != 0) return p + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    p += 16;
  }
  while (kTargetChar[uc(s[p])]) ++p;
  return p;
}
#else
inline size_t skip_field_value(const char* s, size_t p, size_t) {
  while (kFieldValue[uc(s[p])]) ++p;
  return p;
}

inline size_t skip_target(const char* s, size_t p, size_t) {
  while (kTargetChar[uc(s[p])]) ++p;
  return p;
}
#endif

ParseResult fail(int status, std::string_view reason) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error_status = status;
  r.error = reason;
  return r;
}

struct ScanLimits {
  bool request;           // request: skip leading CRLFs, enforce the request-line limit
  size_t max_start_line;  // request line bytes without CRLF
  size_t max_bytes;       // whole head including leading CRLFs, start line and final CRLF
  size_t max_fields;      // header lines
  int start_line_status;  // 414 / 502
  int size_status;        // 431 / 502
  int syntax_status;      // 400 / 502
};

// True when the LF-free bytes [line_start, end) prove the request line longer than `max` bytes
// (CRLF excluded): more than max + 1 of them, or max + 1 whose last is not the CR of a CRLF.
bool request_line_too_long(std::string_view data, size_t line_start, size_t end, size_t max) {
  const size_t partial = end - line_start;
  if (partial <= max) return false;
  return partial - 1 > max || data[end - 1] != '\r';
}

// Pass 1. On kComplete sets `head_end` to the offset just past the blank line.
ParseResult scan_head(std::string_view data, HeadScan& st, const ScanLimits& lim,
                      size_t& head_end) {
  if (st.scanned > data.size()) st = {};  // a different buffer than last time: start over
  const char* const base = data.data();
  // Nothing past max_bytes can belong to an acceptable head, so never search further.
  const size_t end = std::min(data.size(), lim.max_bytes);
  while (st.scanned < end) {
    const void* hit = std::memchr(base + st.scanned, '\n', end - st.scanned);
    if (hit == nullptr) {
      st.scanned = end;
      break;
    }
    const size_t lf = static_cast<size_t>(static_cast<const char*>(hit) - base);
    st.scanned = lf + 1;
    // The length verdict comes first, judged as request_line_too_long() would have judged the
    // bytes before this LF: how the input was split must never change the answer.
    if (lim.request && !st.start_line_done &&
        request_line_too_long(data, st.line_start, lf, lim.max_start_line)) {
      return fail(lim.start_line_status, "request line too long");
    }
    if (lf == st.line_start || base[lf - 1] != '\r') {
      return fail(lim.syntax_status, "bare LF line terminator");
    }
    const size_t len = lf - 1 - st.line_start;
    if (!st.start_line_done) {
      if (len == 0 && lim.request) {
        // RFC 9112 §2.2: ignore empty lines before the request line (old clients send a CRLF
        // after a POST body). They still count toward max_bytes.
        st.line_start = st.head_start = lf + 1;
        continue;
      }
      st.start_line_done = true;
    } else if (len == 0) {
      head_end = lf + 1;
      ParseResult r;
      r.status = ParseStatus::kComplete;
      return r;
    } else if (++st.field_lines > lim.max_fields) {
      return fail(lim.size_status, "too many header fields");
    }
    st.line_start = lf + 1;
  }
  // Incomplete: partial bytes count toward the limits (CVE-2020-12605), so a head that can no
  // longer fit is refused now rather than after it has been buffered whole.
  // Only the bytes up to max_bytes + 1 are judged, so a limit check never depends on how far
  // past the head limit one read happened to reach.
  if (lim.request && !st.start_line_done &&
      request_line_too_long(data, st.line_start,
                            data.size() > lim.max_bytes ? lim.max_bytes + 1 : data.size(),
                            lim.max_start_line)) {
    return fail(lim.start_line_status, "request line too long");
  }
  if (data.size() > lim.max_bytes) return fail(lim.size_status, "header section too large");
  return {};
}

// One header line of pass 2, starting at s[p]. Returns nullptr with the field set (p moved past
// its CRLF) or at the final CRLF with `end` set; otherwise the error reason.
const char* next_field(const char* s, size_t n, size_t& p, HeaderField& field, bool& underscore,
                       bool& end) {
  if (s[p] == '\r') {
    // Pass 1 ended the head at the first empty line, so this CR is followed by its LF.
    end = true;
    return nullptr;
  }
  const size_t name_start = p;
  uint8_t cls;
  uint8_t seen = 0;
  while ((cls = kNameClass[uc(s[p])]) & 1) {
    seen |= cls;
    ++p;
  }
  if (p == name_start) {
    if (s[p] == ' ' || s[p] == '\t') return "obs-fold line continuation";
    if (s[p] == ':') return "empty header name";
    return "invalid character in header name";
  }
  if (s[p] != ':') {
    if (s[p] == ' ' || s[p] == '\t') return "whitespace between header name and colon";
    return "invalid character in header name";
  }
  field.name = {s + name_start, p - name_start};
  underscore = (seen & 2) != 0;
  ++p;
  while (s[p] == ' ' || s[p] == '\t') ++p;
  const size_t value_start = p;
  p = skip_field_value(s, p, n);
  if (s[p] != '\r') return "invalid character in header value";
  if (s[p + 1] != '\n') return "bare CR in header value";
  size_t value_end = p;
  while (value_end > value_start && (s[value_end - 1] == ' ' || s[value_end - 1] == '\t')) {
    --value_end;
  }
  field.value = {s + value_start, value_end - value_start};
  p += 2;
  return nullptr;
}

// Content-Length: 1*DIGIT, or a list of identical values ("5, 5"), which RFC 9110 §8.6 lets a
// recipient fold into one. At most 19 digits, so the value always fits in 64 bits.
bool parse_content_length(std::string_view v, uint64_t& out) {
  const size_t n = v.size();
  size_t i = 0;
  bool have = false;
  uint64_t result = 0;
  while (true) {
    const size_t start = i;
    uint64_t x = 0;
    while (i < n && is_digit(uc(v[i]))) x = x * 10 + static_cast<uint64_t>(v[i++] - '0');
    if (i == start || i - start > 19) return false;
    if (have && x != result) return false;
    result = x;
    have = true;
    while (i < n && (v[i] == ' ' || v[i] == '\t')) ++i;
    if (i == n) break;
    if (v[i] != ',') return false;
    ++i;
    while (i < n && (v[i] == ' ' || v[i] == '\t')) ++i;
  }
  out = result;
  return true;
}

bool valid_host(std::string_view host) {
  if (host.empty()) return false;
  for (char c : host) {
    if (!kHostChar[uc(c)]) return false;
  }
  return true;
}

// Header semantics shared by requests and responses (framing and connection management).
struct FramingFields {
  bool cl_seen = false;
  bool te_seen = false;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
  uint64_t content_length = 0;

  // Returns an error reason, or nullptr. Only called for names of the matching length.
  const char* content_length_field(std::string_view value) {
    uint64_t v = 0;
    if (!parse_content_length(value, v)) return "invalid Content-Length";
    if (cl_seen && v != content_length) return "conflicting Content-Length values";
    cl_seen = true;
    content_length = v;
    return nullptr;
  }
  // Only `chunked`, once, as the sole coding: anything else is a framing two hops may disagree
  // on (RFC 9112 §6.1), so it is refused rather than guessed at.
  const char* transfer_encoding_field(std::string_view value) {
    if (te_seen) return "repeated Transfer-Encoding";
    if (!iequals(value, "chunked")) return "unsupported Transfer-Encoding";
    te_seen = true;
    return nullptr;
  }
  void connection_field(std::string_view value) {
    while (!value.empty()) {
      const size_t comma = value.find(',');
      std::string_view token = value.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
        token.remove_prefix(1);
      }
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
        token.remove_suffix(1);
      }
      if (token.size() == 5 && iequals(token, "close")) {
        conn_close = true;
      } else if (token.size() == 10 && iequals(token, "keep-alive")) {
        conn_keep_alive = true;
      } else if (token.size() == 7 && iequals(token, "upgrade")) {
        conn_upgrade = true;
      }
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  // Dispatches on the name's length first: most fields match none of these lengths.
  const char* field(const HeaderField& f) {
    switch (f.name.size()) {
      case 10:
        if (iequals(f.name, "connection")) connection_field(f.value);
        return nullptr;
      case 14:
        return iequals(f.name, "content-length") ? content_length_field(f.value) : nullptr;
      case 17:
        return iequals(f.name, "transfer-encoding") ? transfer_encoding_field(f.value) : nullptr;
      default:
        return nullptr;
    }
  }
  bool keep_alive(int version_minor) const {
    return version_minor >= 1 ? !conn_close : (conn_keep_alive && !conn_close);
  }
};

void split_path_query(std::string_view rest, RequestHead& out) {
  const size_t q = rest.find('?');
  if (q == std::string_view::npos) {
    out.path = rest;
    return;
  }
  out.path = rest.substr(0, q);
  out.query = rest.substr(q + 1);
  out.has_query = true;
}

// Pass 2 for a request head already copied into out.storage.
ParseResult parse_request_head(RequestHead& out, const ParserLimits& limits) {
  const char* s = out.storage.data();
  const size_t n = out.storage.size();

  // Request line: method SP request-target SP HTTP-version CRLF, single spaces only.
  size_t p = 0;
  while (chars::kToken[uc(s[p])]) ++p;
  if (p == 0) {
    return fail(kBadRequest, s[0] == ' ' ? "missing method" : "invalid character in method");
  }
  if (s[p] != ' ') {
    if (s[p] != '\r') return fail(kBadRequest, "invalid character in method");
    if (s[p + 1] != '\n') return fail(kBadRequest, "bare CR in request line");
    return fail(kBadRequest, "missing request target");
  }
  out.method = {s, p};
  const size_t target_start = ++p;
  p = skip_target(s, p, n);
  if (p == target_start) {
    if (s[p] == ' ') return fail(kBadRequest, "extra space in request line");
    if (s[p] == '\r' && s[p + 1] == '\n') return fail(kBadRequest, "missing request target");
  }
  if (s[p] != ' ') {
    if (s[p] == '#') return fail(kBadRequest, "fragment in request target");
    if (s[p] == '\r') {
      if (s[p + 1] != '\n') return fail(kBadRequest, "bare CR in request line");
      return fail(kBadRequest, "missing HTTP version");  // HTTP/0.9 form
    }
    return fail(kBadRequest, "invalid character in request target");
  }
  out.target = {s + target_start, p - target_start};
  ++p;
  if (n - p < 10 || std::memcmp(s + p, "HTTP/", 5) != 0 || !is_digit(uc(s[p + 5])) ||
      s[p + 6] != '.' || !is_digit(uc(s[p + 7])) || s[p + 8] != '\r' || s[p + 9] != '\n') {
    return fail(kBadRequest, "malformed HTTP version");
  }
  // Versions: 1.1 always; 1.0 only when enabled, else 426 as Envoy answers. A well-formed other
  // major (HTTP/2.0 sent as text) is 505; HTTP/0.9 and unknown 1.x minors (HTTP/1.2) are plain
  // 400s, as edge-hardening §7 row 6 asks.
  const int major = s[p + 5] - '0';
  const int minor = s[p + 7] - '0';
  if (major != 1) {
    if (major == 0) return fail(kBadRequest, "HTTP/0.9 not supported");
    return fail(505, "HTTP version not supported");
  }
  if (minor > 1) return fail(kBadRequest, "unsupported HTTP/1 minor version");
  if (minor == 0 && !limits.allow_http10) return fail(426, "HTTP/1.0 not enabled");
  out.version_minor = minor;
  out.version_major = 1;
  p += 10;

  FramingFields framing;
  bool host_seen = false;
  bool upgrade_seen = false;
  bool expect_continue = false;
  std::string_view host;
  while (true) {
    HeaderField field;
    bool underscore = false;
    bool end = false;
    if (const char* err = next_field(s, n, p, field, underscore, end))
      return fail(kBadRequest, err);
    if (end) break;
    if (underscore) {
      if (limits.underscores == UnderscoreAction::kReject) {
        return fail(kBadRequest, "underscore in header name");
      }
      // No field with a meaning to the codec has an underscore, so dropping skips nothing below.
      if (limits.underscores == UnderscoreAction::kDropHeader) continue;
    }
    out.headers.push_back(field);
    if (const char* err = framing.field(field)) return fail(kBadRequest, err);
    switch (field.name.size()) {
      case 4:
        if (iequals(field.name, "host")) {
          if (host_seen) return fail(kBadRequest, "multiple Host headers");
          host_seen = true;
          host = field.value;
        }
        break;
      case 6:
        if (iequals(field.name, "expect") && iequals(field.value, "100-continue")) {
          expect_continue = true;
        }
        break;
      case 7:
        if (!upgrade_seen && iequals(field.name, "upgrade")) {
          upgrade_seen = true;
          out.upgrade_protocol = field.value;
        }
        break;
      default:
        break;
    }
  }

  if (host_seen && !valid_host(host)) return fail(kBadRequest, "invalid Host header");
  if (minor == 1 && !host_seen) return fail(kBadRequest, "missing Host header");
  out.authority = host;

  // Request-target forms (RFC 9112 §3.2). CONNECT (authority-form) is not proxied yet: 405 tells
  // the client the method, not its syntax, is the problem.
  const std::string_view target = out.target;
  if (out.method == "CONNECT") return fail(405, "CONNECT not supported");
  if (target[0] == '/') {
    split_path_query(target, out);
  } else if (target == "*") {
    if (out.method != "OPTIONS") return fail(kBadRequest, "asterisk-form target without OPTIONS");
    out.path = target;
  } else {
    size_t scheme_len = 0;
    if (target.size() >= 7 && iequals(target.substr(0, 7), "http://")) {
      scheme_len = 7;
    } else if (target.size() >= 8 && iequals(target.substr(0, 8), "https://")) {
      scheme_len = 8;
    } else {
      return fail(kBadRequest, "invalid request target");
    }
    const std::string_view rest = target.substr(scheme_len);
    const size_t authority_end = std::min(rest.find('/'), rest.find('?'));
    const std::string_view authority = rest.substr(0, authority_end);
    if (!valid_host(authority)) return fail(kBadRequest, "invalid authority in request target");
    // RFC 9112 §3.2.2 says to ignore Host here; two differing names are refused instead, so no
    // hop can route by the one while another routes by the other.
    if (host_seen && !iequals(host, authority)) {
      return fail(kBadRequest, "Host does not match request target");
    }
    out.authority = authority;
    if (authority_end == std::string_view::npos) {
      out.path = kRootPath;
    } else if (rest[authority_end] == '?') {
      out.path = kRootPath;
      out.query = rest.substr(authority_end + 1);
      out.has_query = true;
    } else {
      split_path_query(rest.substr(authority_end), out);
    }
  }

  if (framing.te_seen) {
    if (framing.cl_seen) return fail(kBadRequest, "both Content-Length and Transfer-Encoding");
    if (minor == 0) return fail(kBadRequest, "Transfer-Encoding in HTTP/1.0 request");
    out.framing = BodyFraming::kChunked;
  } else if (framing.cl_seen) {
    out.framing = BodyFraming::kContentLength;
    out.content_length = framing.content_length;
  }
  out.keep_alive = framing.keep_alive(minor);
  out.expect_continue = expect_continue && minor == 1;  // RFC 9110 §10.1.1: ignored from 1.0
  out.upgrade = framing.conn_upgrade && upgrade_seen;
  if (!out.upgrade) out.upgrade_protocol = {};
  ParseResult r;
  r.status = ParseStatus::kComplete;
  return r;
}

// Pass 2 for a response head already copied into out.storage.
ParseResult parse_response_head(ResponseHead& out, bool request_method_head) {
  const char* s = out.storage.data();
  const size_t n = out.storage.size();
  // "HTTP/1.x SP 3DIGIT [SP reason-phrase] CRLF"; 14 bytes is the shortest ("HTTP/1.1 200\r\n").
  if (n < 14 || std::memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
      !is_digit(uc(s[9])) || !is_digit(uc(s[10])) || !is_digit(uc(s[11]))) {
    return fail(kBadGateway, "malformed status line");
  }
  const int minor = s[7] - '0';
  const int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  if (status < 100 || status > 599) return fail(kBadGateway, "invalid status code");
  size_t p = 12;
  if (s[p] == ' ') {
    const size_t reason_start = ++p;
    p = skip_field_value(s, p, n);
    out.reason = {s + reason_start, p - reason_start};
  }
  if (s[p] != '\r' || s[p + 1] != '\n') return fail(kBadGateway, "malformed status line");
  p += 2;
  out.status = status;
  out.version_minor = minor;

  FramingFields framing;
  while (true) {
    HeaderField field;
    bool underscore = false;
    bool end = false;
    if (const char* err = next_field(s, n, p, field, underscore, end))
      return fail(kBadGateway, err);
    if (end) break;
    out.headers.push_back(field);
    if (const char* err = framing.field(field)) return fail(kBadGateway, err);
  }

  if (framing.te_seen && framing.cl_seen) {
    return fail(kBadGateway, "both Content-Length and Transfer-Encoding");
  }
  // RFC 9112 §6.1: chunked from an HTTP/1.0 peer means its framing cannot be trusted.
  if (framing.te_seen && minor == 0) {
    return fail(kBadGateway, "Transfer-Encoding in HTTP/1.0 response");
  }
  out.content_length = framing.content_length;
  out.keep_alive = framing.keep_alive(minor);
  if (request_method_head || status < 200 || status == 204 || status == 304) {
    out.framing = BodyFraming::kNone;
  } else if (framing.te_seen) {
    out.framing = BodyFraming::kChunked;
  } else if (framing.cl_seen) {
    out.framing = BodyFraming::kContentLength;
  } else {
    out.framing = BodyFraming::kUntilClose;
    out.keep_alive = false;
  }
  ParseResult r;
  r.status = ParseStatus::kComplete;
  return r;
}

}  // namespace

ParseResult RequestParser::parse(std::string_view data, RequestHead& out) {
  const ScanLimits lim{true,
                       limits_.max_request_line_bytes,
                       limits_.max_header_bytes,
                       limits_.max_header_count,
                       414,
                       431,
                       kBadRequest};
  size_t head_end = 0;
  ParseResult r = scan_head(data, scan_, lim, head_end);
  if (r.status == ParseStatus::kIncomplete) return r;
  const size_t head_start = scan_.head_start;
  scan_ = {};
  if (r.status == ParseStatus::kError) return r;
  out.clear();
  out.storage.assign(data.data() + head_start, head_end - head_start);
  r = parse_request_head(out, limits_);
  if (r.status == ParseStatus::kComplete) r.consumed = head_end;
  return r;
}

ParseResult ResponseParser::parse(std::string_view data, bool request_method_head,
                                  ResponseHead& out) {
  const ScanLimits lim{false,
                       limits_.max_header_bytes,
                       limits_.max_header_bytes,
                       limits_.max_header_count,
                       kBadGateway,
                       kBadGateway,
                       kBadGateway};
  size_t head_end = 0;
  ParseResult r = scan_head(data, scan_, lim, head_end);
  if (r.status == ParseStatus::kIncomplete) return r;
  scan_ = {};
  if (r.status == ParseStatus::kError) return r;
  out.clear();
  out.storage.assign(data.data(), head_end);
  r = parse_response_head(out, request_method_head);
  if (r.status == ParseStatus::kComplete) r.consumed = head_end;
  return r;
}

const char* to_string(UnderscoreAction a) {
  switch (a) {
    case UnderscoreAction::kAllow:
      return "ALLOW";
    case UnderscoreAction::kDropHeader:
      return "DROP_HEADER";
    case UnderscoreAction::kReject:
      return "REJECT_REQUEST";
  }
  return "REJECT_REQUEST";
}

}  // namespace proxenos::http
