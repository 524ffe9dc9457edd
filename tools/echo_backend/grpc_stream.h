#pragma once
// gRPC echo service `echo.Echo` over HTTP/2. Messages are opaque bytes (no protobuf): a client
// uses identity serializers. Methods (path /echo.Echo/<Method>):
//   Unary         one request message -> the same bytes back
//   ServerStream  one request message P -> N messages "P-0", "P-1", ... (N from x-count, else P
//                 read as a decimal number, else 1; x-message-bytes: M makes each message M
//                 bytes of 'a'), each sent as it is produced, x-delay-ms apart
//   ClientStream  any number of messages -> one message, their concatenation, after half-close
//   Bidi          every message echoed as it arrives; the call ends when the client half-closes
// Request metadata:
//   x-delay-ms: N       wait N ms before the response headers (ServerStream: also between
//                       messages)
//   x-fail-status: N    end the call with grpc-status N and grpc-message from x-fail-message
//                       (percent-decoded): as a trailers-only response, or after x-fail-after: K
//                       response messages
// Response headers echo every request header as x-echo-<name> (plus x-echo-authority), except
// pseudo-headers, te and content-type (not with --grpc-echo-metadata off: a benchmark's answers
// must not grow with what the proxy under test adds to requests). Trailers always carry
// grpc-status, grpc-message and x-message-count (request messages received). Unknown methods get
// UNIMPLEMENTED; unary and server-streaming calls without exactly one request message get INTERNAL;
// compressed messages UNIMPLEMENTED; a message (or a ClientStream total) over 64 MiB
// RESOURCE_EXHAUSTED.

#include <cstdint>
#include <string>

#include "h2_connection.h"
#include "net/event_loop.h"

namespace proxenos::echo {

class GrpcStream final : public H2Stream {
 public:
  GrpcStream(H2Connection& connection, int32_t id, H2Request request);

  void start() override;
  void on_data(const uint8_t* data, size_t length) override;
  void on_end_stream() override;
  ssize_t read_body(uint8_t* buf, size_t length, uint32_t* flags) override;
  uint64_t release_credit() override;
  uint64_t held_credit() const override { return held_; }

 private:
  enum class Method : uint8_t { kUnary, kServerStream, kClientStream, kBidi, kUnknown };

  void on_message(std::string_view message);
  void maybe_respond();
  void fail_now(int status, std::string message);  // trailers-only, or finish() once started
  void enqueue(std::string_view message);
  void next_server_message();
  void finish(int status, std::string message);
  void wake();  // more output (or the end) is available
  void on_timer();
  size_t pending() const { return out_.size() - out_pos_; }
  FieldList response_headers() const;
  FieldList status_fields(int status, const std::string& message) const;

  Method method_ = Method::kUnknown;
  net::Timer timer_;

  // Controls.
  uint64_t delay_ms_ = 0;
  bool fail_ = false;
  int fail_status_ = 2;
  std::string fail_message_;
  uint64_t fail_after_ = 0;
  bool has_count_ = false;
  uint64_t count_ = 1;
  bool has_message_bytes_ = false;
  uint64_t message_bytes_ = 0;

  // Request side.
  uint8_t prefix_[5] = {};
  size_t prefix_len_ = 0;
  uint32_t message_len_ = 0;
  std::string message_;
  uint64_t messages_in_ = 0;
  std::string first_;   // Unary / ServerStream request
  std::string concat_;  // ClientStream
  bool half_closed_ = false;
  bool ignore_input_ = false;
  uint64_t held_ = 0;  // request bytes not yet handed back to flow control

  // Response side.
  bool delay_done_ = true;
  bool started_ = false;  // response headers submitted
  bool done_ = false;     // trailers submitted (or trailers-only sent)
  bool deferred_ = false;
  bool finishing_ = false;
  int status_ = 0;
  std::string status_message_;
  std::string out_;  // framed messages not yet taken by nghttp2
  size_t out_pos_ = 0;
  uint64_t messages_out_ = 0;
  uint64_t to_send_ = 0;  // ServerStream messages still to produce
  bool pacing_ = false;   // ServerStream: waiting for the timer before the next message
};

}  // namespace proxenos::echo
