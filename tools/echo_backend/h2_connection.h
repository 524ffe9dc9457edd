#pragma once
// HTTP/2 for the echo backend, with nghttp2 doing framing, HPACK and flow control (a server
// session driven through mem_recv/mem_send on our own loop).
//
// Each request stream becomes an EchoStream (the JSON echo of HTTP/1, plus "protocol" and
// "scheme") or, with content-type application/grpc, a GrpcStream (grpc_stream.h).
//
// Flow control is manual (no automatic WINDOW_UPDATE): an echo stream hands its request bytes back
// to nghttp2 as soon as it has hashed them, a gRPC stream only while its unsent output is small,
// so a client that sends but does not read is held back by its window, not by our memory. Output
// is produced by nghttp2 only as far as the peer's windows allow and only while less than
// kMaxQueuedOutput is waiting for the socket.

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/header.h"
#include "net/event_loop.h"
#include "switched_connection.h"

namespace proxenos::echo {

class H2Connection;

using FieldList = std::vector<std::pair<std::string, std::string>>;

// A request as its header block announced it. `headers` (regular fields only) views `fields`.
struct H2Request {
  std::string method;
  std::string path;
  std::string authority;
  std::string scheme;
  FieldList fields;
  http::HeaderList headers;

  void finish();  // builds `headers`; call once, after the last field
  std::string_view header(std::string_view name, bool* found = nullptr) const {
    return http::find_header(headers, name, found);
  }
};

class H2Stream {
 public:
  H2Stream(H2Connection& connection, int32_t id, H2Request request)
      : connection_(connection), id_(id), request_(std::move(request)) {}
  virtual ~H2Stream() = default;
  H2Stream(const H2Stream&) = delete;
  H2Stream& operator=(const H2Stream&) = delete;

  virtual void start() = 0;  // the request head is complete
  virtual void on_data(const uint8_t* data, size_t length) = 0;
  virtual void on_end_stream() = 0;  // the client half-closed
  // nghttp2 data source: copies up to `length` body bytes, sets NGHTTP2_DATA_FLAG_*; may return
  // NGHTTP2_ERR_DEFERRED (resume with H2Connection::resume) or a callback failure (RST_STREAM).
  virtual ssize_t read_body(uint8_t* buf, size_t length, uint32_t* flags) = 0;
  // Flow-control credit held back while output was queued; called after output drained.
  // Returns the bytes still held.
  virtual uint64_t release_credit() { return 0; }
  virtual uint64_t held_credit() const { return 0; }

  int32_t id() const { return id_; }

 protected:
  H2Connection& connection_;
  int32_t id_;
  H2Request request_;
};

class H2Connection final : public SwitchedConnection {
 public:
  H2Connection(EchoServer& server, Transport transport, std::string remote);
  ~H2Connection() override;

  // `initial_input` starts with the client preface.
  void start(std::string_view initial_input);

  // For streams.
  nghttp2_session* session() { return session_; }
  EchoServer& server() { return server_; }
  net::EventLoop& loop() { return loop_; }
  std::string_view remote() const { return remote_; }
  const TlsInfo* tls_info() { return io_.tls_info(); }
  // Runs the send/receive loop after the current batch of events (for timer callbacks, which
  // must not re-enter nghttp2 from inside a stream).
  void kick();
  // Submits the response head; with_body attaches the stream's read_body as data source.
  void submit_response(H2Stream& stream, const FieldList& headers, bool with_body);
  void submit_trailers(int32_t id, const FieldList& trailers);
  void resume(int32_t id) { nghttp2_session_resume_data(session_, id); }
  void consume(int32_t id, size_t length) { nghttp2_session_consume(session_, id, length); }
  void hold_credit(int32_t id);  // the stream has credit to release once its output drains
  void goaway_after_current();   // graceful GOAWAY: finish open streams, then close

 private:
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t name_len, const uint8_t* value, size_t value_len, uint8_t flags,
                       void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data,
                           size_t length, void* user);
  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user);
  static ssize_t read_callback(nghttp2_session*, int32_t id, uint8_t* buf, size_t length,
                               uint32_t* flags, nghttp2_data_source* source, void* user);

  void on_ready() override;
  void on_closing() override;
  void drive();
  bool read_input();  // false when closed
  int produce();      // 1: stopped at the output cap, 0: nothing more, -1: closed
  void release_credit();
  H2Stream* find(int32_t id);
  H2Stream* open_stream(int32_t id);

  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::unique_ptr<H2Stream>> streams_;
  H2Request building_;  // header blocks cannot interleave, so one is enough
  int32_t building_id_ = -1;
  std::vector<int32_t> credit_waiters_;
  uint64_t orphan_credit_ = 0;  // held by streams that closed: connection window only
  bool kick_scheduled_ = false;
  bool in_drive_ = false;
};

}  // namespace proxenos::echo
