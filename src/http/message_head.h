#pragma once
// Parsed HTTP/1 request and response heads. Each head owns a copy of its raw bytes (`storage`);
// every string_view points into it. Heads are reused per connection, so after warm-up parsing a
// head allocates nothing.

#include <cstdint>
#include <string>
#include <string_view>

#include "http/header.h"

namespace proxenos::http {

// How the message body is delimited, as derived by the parser from the head (RFC 9112 §6).
enum class BodyFraming : uint8_t {
  kNone,           // no body (GET without CL/TE, HEAD response, 1xx/204/304, ...)
  kContentLength,  // exactly `content_length` bytes
  kChunked,        // chunked transfer coding
  kUntilClose,     // response body delimited by connection close (HTTP/1.0-style upstream)
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // request-target as received (origin-form, or absolute-form)
  std::string_view path;    // path part of the target, without query; "/" for absolute "http://h"
  std::string_view query;   // text after '?', without the '?'; empty when none
  bool has_query = false;
  int version_minor = 1;  // HTTP/1.x
  int version_major = 1;  // 2 for a request that came over HTTP/2 (version_minor stays 1)
  HeaderList headers;
  std::string_view authority;  // Host header, or the authority of an absolute-form target

  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;        // after this request, per version and Connection header
  bool expect_continue = false;  // Expect: 100-continue
  bool upgrade = false;          // Connection: upgrade together with an Upgrade header
  std::string_view upgrade_protocol;

  std::string storage;  // raw head bytes; the views above point here

  void clear();
  // Becomes `from`, whose views stay valid because its heap buffer changes hands (heads reserve
  // past the short-string buffer); `from` is left with this head's old buffers, to build a later
  // head in without allocating.
  void take(RequestHead& from);
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  int version_minor = 1;
  HeaderList headers;

  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;  // the upstream connection may be reused after this response

  std::string storage;

  void clear();
  void take(ResponseHead& from);  // as RequestHead::take
};

}  // namespace proxenos::http
