#pragma once
// gRPC-Web to gRPC for one exchange (Module enable_grpc_web, on a cluster spoken to over HTTP/2):
// the request's content-type becomes application/grpc(+suffix) with `te: trailers`, a -text body
// is base64-decoded as it streams; a gRPC response gets its grpc-web(-text) content-type back,
// its messages pass through (base64 for -text) and its trailers become the body's final frame
// (flag 0x80), so browsers, which cannot read HTTP trailers, see the status
// (github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md). A trailers-only answer keeps its
// status in the head, as the protocol allows.

#include <string>
#include <string_view>

#include "http/grpc.h"
#include "http/header.h"
#include "http/message_head.h"

namespace proxenos::proxy {

class GrpcWebBridge {
 public:
  // Takes the exchange when gRPC-Web is enabled and the request is gRPC-Web; false otherwise
  // (then the bridge stays inactive and nothing is translated).
  bool start(bool enabled, const http::HeaderList& request_headers);
  bool active() const { return request_format_ != http::GrpcWebFormat::kNone; }
  void reset();

  // The upstream request fields (views; replaced values point into this bridge): gRPC
  // content-type, te: trailers, no content-length for -text (decoding changes the length).
  void rewrite_request_fields(http::HeaderList& fields) const;
  // Appends the gRPC bytes of a request body chunk; false when it is not valid base64.
  bool decode(std::string_view chunk, std::string& out) { return decoder_.decode(chunk, out); }
  // At the end of the request body: false when a partial base64 group was left.
  bool finish() const { return decoder_.finish(); }

  // A gRPC response head becomes a gRPC-Web one (content-type; content-length dropped since
  // the trailers frame is added, so the framing becomes chunked unless the head ends the
  // response). True when the body and trailers are to be translated.
  // A response that is not gRPC (an upstream's plain 503 page, say) gets the gRPC-Web
  // content-type too, and unless its head ends it, is held (holding()): its body, up to 16 KiB,
  // becomes the grpc-message of a bodiless answer with the grpc-status its HTTP status maps to,
  // as Envoy's grpc_web filter does, so a browser client sees a status it can read.
  bool rewrite_response(http::ResponseHead& head, bool end_stream);
  bool translating() const { return translating_; }
  bool holding() const { return holding_; }
  // Body bytes of a held answer (beyond 16 KiB they are dropped).
  void hold_data(std::string_view chunk);
  // The held answer is complete: `head` gets grpc-status, grpc-message and content-length: 0
  // (views into this bridge, valid until the next exchange).
  void finish_hold(http::ResponseHead& head);
  void encode_data(std::string_view chunk, std::string& out) const {
    http::GrpcWebResponseEncoder(response_format_).encode_data(chunk, out);
  }
  void encode_trailers(const http::HeaderList& trailers, std::string& out) const {
    http::GrpcWebResponseEncoder(response_format_).encode_trailers(trailers, out);
  }

 private:
  http::GrpcWebFormat request_format_ = http::GrpcWebFormat::kNone;
  http::GrpcWebFormat response_format_ = http::GrpcWebFormat::kNone;
  http::GrpcWebRequestDecoder decoder_{http::GrpcWebFormat::kNone};
  std::string request_content_type_;
  std::string response_content_type_;
  std::string held_body_;  // a held answer's body, then its percent-encoded grpc-message
  char held_status_[4] = {};
  bool translating_ = false;
  bool holding_ = false;
};

}  // namespace proxenos::proxy
