#pragma once
// Strict HTTP/1.1 head parser (RFC 9110/9112). Our own because it is the first line of defence
// against request smuggling and sits on the hot path: it validates every byte of the head once,
// copies the head into the head object's reusable storage and hands out views into it.
//
// Usage: call parse() with all bytes received so far for the current message (starting at the
// message's first byte). It returns kIncomplete until the blank line that ends the head arrives,
// remembering how far it scanned so trickled bytes are not rescanned.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/message_head.h"

namespace proxenos::http {

// Edge-safe defaults (../shared/spec/edge-hardening.md §4). Each limit has a unit test.
inline constexpr size_t kDefaultMaxHeaderBytes = 60 * 1024;  // request line + all header lines
inline constexpr size_t kDefaultMaxHeaderCount = 100;
inline constexpr size_t kDefaultMaxRequestLineBytes = 16 * 1024;  // longer target -> 414

enum class UnderscoreAction : uint8_t { kAllow, kDropHeader, kReject };
const char* to_string(UnderscoreAction a);  // the Module's spelling: "ALLOW", ...

struct ParserLimits {
  size_t max_header_bytes = kDefaultMaxHeaderBytes;
  size_t max_header_count = kDefaultMaxHeaderCount;
  size_t max_request_line_bytes = kDefaultMaxRequestLineBytes;
  bool allow_http10 = false;  // Module enable_http10
  UnderscoreAction underscores = UnderscoreAction::kReject;
};

enum class ParseStatus : uint8_t { kIncomplete, kComplete, kError };

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  size_t consumed = 0;     // head length in bytes when kComplete
  int error_status = 0;    // HTTP status to answer with when kError (400, 405, 414, 426, 431, 505;
                           // always 502 from ResponseParser)
  std::string_view error;  // short reason for logs and the plain-text error body
};

// Progress of the search for the end of a head across parse() calls, so each byte is looked at
// once however the head trickles in.
struct HeadScan {
  size_t scanned = 0;      // bytes already searched for LF
  size_t line_start = 0;   // start of the line being received
  size_t head_start = 0;   // first byte of the start line (after skipped leading CRLFs)
  size_t field_lines = 0;  // header lines seen so far (the count limit applies while incomplete)
  bool start_line_done = false;
};

class RequestParser {
 public:
  explicit RequestParser(const ParserLimits& limits = {}) : limits_(limits) {}
  void set_limits(const ParserLimits& limits) { limits_ = limits; }

  // Parses a request head from `data`. On kComplete fills `out` (framing included) and reports the
  // head's length. Validation done here: request line, version, header syntax (no obs-fold, bare
  // CR/LF, CTLs, invalid name chars), Host rules, CL/TE smuggling rules, limits.
  ParseResult parse(std::string_view data, RequestHead& out);

  // Forget scan progress; call before parsing the next message. (parse() also forgets it by
  // itself once it returns kComplete or kError.)
  void reset() { scan_ = {}; }

 private:
  ParserLimits limits_;
  HeadScan scan_;
};

class ResponseParser {
 public:
  explicit ResponseParser(const ParserLimits& limits = {}) : limits_(limits) {}

  // `request_method_head`: the request was HEAD, so the response has no body whatever it says.
  // Errors here mean a broken upstream (the proxy answers 502).
  ParseResult parse(std::string_view data, bool request_method_head, ResponseHead& out);
  void reset() { scan_ = {}; }

 private:
  ParserLimits limits_;
  HeadScan scan_;
};

}  // namespace proxenos::http
