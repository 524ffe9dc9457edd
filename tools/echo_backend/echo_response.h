#pragma once
// What the echo backend answers: the x-echo-* control headers a request carries, the JSON
// description of the request, and the response head. Pure functions over a parsed head, so the
// connection code only moves bytes.

#include <cstdint>
#include <string>
#include <string_view>

#include "http/message_head.h"

namespace proxenos::echo {

inline constexpr std::string_view kControlPrefix = "x-echo-";
inline constexpr std::string_view kResponseHeaderPrefix = "x-echo-header-";
// SHA-256 of the empty string: the digest of every bodiless request, without touching OpenSSL.
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct EchoControls {
  int status = 200;       // x-echo-status
  uint64_t delay_ms = 0;  // x-echo-delay-ms
  bool has_response_bytes = false;
  uint64_t response_bytes = 0;  // x-echo-response-bytes: body of N pattern bytes, not JSON
  bool chunked = false;         // x-echo-chunked: 1
  bool close = false;           // x-echo-close: 1
  bool reset = false;           // x-echo-reset: 1
  bool partial = false;         // x-echo-partial: 1
  std::string_view error;       // a malformed control header: answer 400 with this text
};

// Reads the x-echo-* headers. Unknown x-echo-* names are ignored (they are still echoed).
EchoControls parse_controls(const http::HeaderList& headers);

// Appends `s` as a JSON string literal. Valid UTF-8 passes through; bytes that are not part of a
// valid sequence are read as Latin-1 (obs-text) and escaped, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s, bool lowercase = false);

// What a TLS connection negotiated; empty strings for what it did not (no SNI, no ALPN, no client
// certificate).
struct TlsInfo {
  std::string version;  // "TLSv1.3"
  std::string sni;
  std::string alpn;
  std::string client_subject;  // RFC 2253 form, e.g. "CN=client,O=Test"
};

struct RequestInfo {
  std::string_view backend;
  const http::RequestHead* head = nullptr;
  uint64_t body_length = 0;
  std::string_view body_sha256;  // lower-case hex
  std::string_view remote_address;
  // HTTP/2 only: "HTTP/2" (also reported as http_version) and the :scheme pseudo-header. Empty on
  // HTTP/1, whose JSON stays byte for byte what it always was.
  std::string_view protocol;
  std::string_view scheme;
  const TlsInfo* tls = nullptr;  // adds the "tls" object
};

// Appends the JSON object describing the request (see main.cc for the field list).
void append_request_json(std::string& out, const RequestInfo& info);

enum class BodyMode : uint8_t {
  kNone,           // 204/304, or an error without body: no framing header at all
  kContentLength,  // content-length: N
  kChunked,        // transfer-encoding: chunked
};

struct ResponseHeadSpec {
  int status = 200;
  std::string_view content_type;  // omitted when empty
  BodyMode body_mode = BodyMode::kContentLength;
  uint64_t content_length = 0;
  bool close = false;          // connection: close
  bool keep_alive_10 = false;  // connection: keep-alive (an HTTP/1.0 client asked for it)
  const http::HeaderList* request_headers = nullptr;  // source of x-echo-header-<Name>
};

// Appends the status line and header block, ending with the blank line.
void append_response_head(std::string& out, const ResponseHeadSpec& spec);

// Appends "<hex size>\r\n".
void append_chunk_size(std::string& out, uint64_t size);

std::string_view reason_for(int status);

}  // namespace proxenos::echo
