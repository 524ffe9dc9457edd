#pragma once
// gRPC helpers for the proxy: status codes, grpc-timeout, the trailers-only replies the gateway
// sends itself (as Envoy does for gRPC requests), and the gRPC-Web translation (binary and
// base64 "-text" variants, github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/header.h"
#include "http/message_head.h"

namespace proxenos::http {

// https://github.com/grpc/grpc/blob/master/doc/statuscodes.md
enum class GrpcStatus : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "OK", "CANCELLED", ... ("UNKNOWN" for values outside the enum).
std::string_view grpc_status_name(GrpcStatus status);

// The gRPC status for a non-gRPC HTTP answer (doc/http-grpc-status-mapping.md): 400 INTERNAL,
// 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE,
// anything else UNKNOWN.
GrpcStatus grpc_status_from_http(int http_status);

// application/grpc, application/grpc+proto, application/grpc;params (not grpc-web).
bool is_grpc_content_type(std::string_view content_type);

// grpc-timeout (1 to 8 digits and a unit: H M S m u n) in milliseconds, rounded up so a positive
// sub-millisecond deadline stays positive. nullopt when malformed (then ignore the header). A
// value of 0 is returned as 0; Envoy takes it as "no deadline".
std::optional<uint64_t> parse_grpc_timeout_ms(std::string_view value);
// The grpc-timeout value for `ms` (e.g. "1500m"; a coarser unit when 8 digits do not suffice).
std::string format_grpc_timeout(uint64_t ms);

// grpc-message encoding: bytes outside %x20-%x7E, and '%', become %XX (uppercase hex).
std::string grpc_percent_encode(std::string_view message);
// The reverse; a malformed %-sequence is kept as it is.
std::string grpc_percent_decode(std::string_view encoded);

// A trailers-only response: HTTP 200 with content-type, grpc-status and grpc-message in the
// head, no body (so it needs END_STREAM on HTTP/2, content-length: 0 on HTTP/1.1). `out` is
// cleared first; its views point into its own storage.
void make_grpc_local_reply(GrpcStatus status, std::string_view message,
                           std::string_view content_type, ResponseHead& out);

// --- gRPC-Web -------------------------------------------------------------------------------

enum class GrpcWebFormat : uint8_t {
  kNone,    // not gRPC-Web
  kBinary,  // application/grpc-web[+proto|+json|...]
  kText,    // application/grpc-web-text[+proto]: the body is base64
};

// CORS exposes these so browsers can read the status (Access-Control-Expose-Headers).
inline constexpr std::string_view kGrpcWebExposeHeaders = "grpc-status,grpc-message";

GrpcWebFormat grpc_web_format(std::string_view content_type);
// Response encoding: text when the request was text or its Accept asks for grpc-web-text.
GrpcWebFormat grpc_web_response_format(std::string_view request_content_type,
                                       std::string_view accept);
// "application/grpc-web-text+proto" -> "application/grpc+proto" (suffix kept, parameters
// dropped).
std::string grpc_web_to_grpc_content_type(std::string_view web_content_type);
// "application/grpc" / "application/grpc+proto" -> "application/grpc-web+proto" or
// "application/grpc-web-text+proto" (other suffixes kept), as Envoy answers.
std::string grpc_to_grpc_web_content_type(std::string_view grpc_content_type, GrpcWebFormat format);

// Streaming base64 (RFC 4648 §4, with padding) decoder. Chunks may split 4-character groups
// anywhere, and a padded group may be followed by more groups: gRPC-Web text streams are
// concatenations of separately padded segments.
class Base64StreamDecoder {
 public:
  // Appends the decoded bytes of `chunk` to `out`; false on a character or padding error (the
  // decoder then stays failed).
  bool decode(std::string_view chunk, std::string& out);
  // True when no partial group is pending (a clean end of stream).
  bool at_boundary() const { return pending_ == 0 && !failed_; }
  void reset() {
    pending_ = 0;
    failed_ = false;
  }

 private:
  char group_[4] = {};
  uint8_t pending_ = 0;
  bool failed_ = false;
};

void base64_encode(std::string_view bytes, std::string& out);

// Request body, gRPC-Web -> gRPC. Binary bodies are already gRPC frames (copied through);
// text bodies are base64-decoded as they stream.
class GrpcWebRequestDecoder {
 public:
  explicit GrpcWebRequestDecoder(GrpcWebFormat format) : format_(format) {}
  // Binary needs no translation: the proxy may forward the bytes as they are.
  bool needs_decoding() const { return format_ == GrpcWebFormat::kText; }
  // Appends the gRPC bytes `chunk` carries to `out`. False: not valid base64 (reset the stream /
  // answer INTERNAL).
  bool decode(std::string_view chunk, std::string& out);
  // At the end of the body: false when a partial base64 group was left over.
  bool finish() const { return format_ != GrpcWebFormat::kText || base64_.at_boundary(); }

 private:
  GrpcWebFormat format_;
  Base64StreamDecoder base64_;
};

// Response body, gRPC -> gRPC-Web. Message bytes pass through (binary) or are base64-encoded
// chunk by chunk, each chunk padded on its own so every message reaches the browser when it
// arrives (the protocol allows padding inside the stream); the trailers become a final frame
// with flag 0x80 whose payload is "name: value\r\n" lines with lowercase names.
class GrpcWebResponseEncoder {
 public:
  explicit GrpcWebResponseEncoder(GrpcWebFormat format) : format_(format) {}
  void encode_data(std::string_view chunk, std::string& out) const;
  void encode_trailers(const HeaderList& trailers, std::string& out) const;

 private:
  GrpcWebFormat format_;
};

}  // namespace proxenos::http
