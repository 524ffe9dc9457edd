#pragma once
// One downstream HTTP/1.1 connection and the exchange (request + response) in progress on it.
//
// Requests on a connection are served one at a time in arrival order, which is what HTTP/1.1
// pipelining requires: bytes of later requests wait in the read buffer until the current
// response is complete. Bodies stream both ways through bounded buffers: when the side we write
// to falls behind (its pending bytes pass kWatermark) we stop reading from the other side.

#include <cstdint>
#include <memory>
#include <string>

#include "http/body_decoder.h"
#include "http/http1_parser.h"
#include "http/message_head.h"
#include "net/address.h"
#include "net/buffer.h"
#include "net/event_loop.h"
#include "net/stream_io.h"
#include "net/tls_stream.h"
#include "proxy/connection.h"
#include "proxy/exchange.h"
#include "proxy/grpc_web_bridge.h"
#include "proxy/response_builder.h"
#include "proxy/worker.h"
#include "router/route_table.h"
#include "upstream/http2_upstream.h"
#include "upstream/upstream_connection.h"

namespace proxenos::proxy {

// Pending output beyond which we stop reading the opposite side (edge-hardening §4: 32 KiB
// per-connection buffer limit; two of our 16 KiB buffers).
inline constexpr size_t kWatermark = 32 * 1024;
// Slowloris guard: a request head must arrive completely within this time.
inline constexpr uint64_t kRequestHeadersTimeoutMs = 10000;
// After an error response we read and discard for at most this long before closing, so the
// client sees our response instead of a reset.
inline constexpr uint64_t kLingerMs = 2000;
// The gRPC HTTP/1.1 bridge holds a whole response body: at most this much (edge-hardening §4's
// full-body buffering limit); a larger one is answered 500.
inline constexpr size_t kGrpcBridgeMaxResponseBytes = 1024 * 1024;

class HttpConnection final : public DownstreamConnection,
                             public net::IoHandler,
                             public upstream::UpstreamConnection::Handler,
                             public upstream::Http2UpstreamRequest {
 public:
  // `tls`: the connection's TLS stream, its handshake done (null for cleartext).
  HttpConnection(Worker& worker, int fd, std::string listener_key, const net::Address& peer,
                 const net::Address& local, std::unique_ptr<net::TlsStream> tls = nullptr);
  ~HttpConnection();

  void start() override;
  void on_io(uint32_t events) override;
  void on_upstream_event(uint32_t events) override;
  void on_upstream_connected() override;
  // Drain: close now if idle, else after the current response.
  void drain() override;

  // Http2UpstreamRequest: the exchange rides on an HTTP/2 upstream stream (cluster spec http2).
  void on_h2_ready() override;
  void on_h2_connect_failed(std::string_view reason) override;
  void on_h2_response_head(http::ResponseHead&& head, bool end_stream) override;
  void on_h2_data(std::string_view bytes, bool end_stream) override;
  void on_h2_trailers(const http::HeaderList& trailers) override;
  void on_h2_send_ready() override;
  void on_h2_close(uint32_t error_code) override;

 private:
  friend struct Exchange;
  enum class Phase : uint8_t { kIdle, kHead, kExchange, kLingering, kClosed };

  // Downstream side.
  void read_downstream();
  void process_input();
  bool flush_downstream();  // on writable: send, then linger or resume; false if closed
  bool send_pending();      // send what out_ holds; false if the connection closed
  void write_downstream(std::string_view bytes);
  void on_downstream_eof();
  void start_exchange(size_t head_length);
  void parse_error(const http::ParseResult& result);
  // The connection starts with the HTTP/2 preface (h2c prior knowledge): an Http2Connection
  // takes the socket, the TLS stream and the bytes read so far.
  void hand_over_http2();

  // Routing and local answers.
  void route_request();
  void send_local_reply(int status, std::string_view body, std::string_view flags,
                        std::string_view location = {});

  // Upstream side.
  void connect_upstream();
  void upstream_failed(std::string_view reason, std::string_view flags, bool before_response);
  void send_request_head();
  void forward_request_body();
  bool flush_upstream();
  void read_upstream(bool upstream_hup);
  void process_upstream_input();
  void process_upstream_bytes();
  void on_response_head();
  static ResponseHeadContext proxied_head_context(Exchange& e);
  void start_tunnel();
  void half_close_upstream();
  void forward_response_body();
  void on_upstream_eof();
  void finish_exchange();
  void on_timeout();
  void on_connect_timeout();
  void on_stream_idle_timeout();
  void end_timed_out_response();
  void send_h2_response_head(bool end_stream);
  void finish_web_hold();

  // HTTP/2 upstream.
  void h2_connect(const upstream::Http2Upstream* avoid);
  void h2_forward_request_body();
  void h2_write_body(std::string_view bytes);
  void h2_response_end(bool trailers_written);
  void release_h2();
  void bridge_data(std::string_view bytes, bool end_stream);
  void bridge_release(const http::HeaderList* trailers);  // null: the body ended without them
  void end_bridge();

  // Lifecycle.
  void arm_idle_timer();
  void on_connection_timer();
  uint64_t idle_timeout_ms() const;
  void begin_close_after_flush();
  void start_lingering();
  // We cut the exchange in progress (upstream failure or timeout mid-response, a request body
  // that turned out malformed after the answer started): closing the connection is HTTP/1.1's
  // stream reset, counted as Envoy's downstream_rq_tx_reset. Any other close_now() that cuts an
  // exchange is the client's doing (downstream_rq_rx_reset).
  void reset_exchange();
  void close_now();
  void release_buffers_if_idle();
  void log_exchange();
  std::unique_ptr<Exchange> take_exchange();
  void end_active(Exchange& e);  // the exchange no longer counts as active anywhere
  void recycle_exchange();

  net::StreamIo io() const { return {fd_, tls_.get()}; }

  Worker& worker_;
  int fd_;
  std::unique_ptr<net::TlsStream> tls_;
  // The client's certificate, read once after the handshake; only held when one was presented
  // (a cleartext or plain-TLS connection pays one pointer, not the strings).
  std::unique_ptr<const net::PeerCertificateInfo> peer_certificate_;
  std::string listener_key_;
  std::string peer_text_;
  std::string local_text_;
  std::shared_ptr<observe::ListenerStats> stats_;  // this listener's shard on this worker
  Phase phase_ = Phase::kIdle;
  bool peer_eof_ = false;
  bool peer_hup_ = false;      // epoll reported RDHUP/HUP: read to EOF, no short-read shortcut
  bool read_blocked_ = false;  // we stopped reading for back-pressure, not because drained
  bool close_after_response_ = false;
  bool closing_ = false;        // flush out_, then close
  bool corked_ = false;         // collect writes into out_; the caller sends them together
  bool http2_checked_ = false;  // the first bytes were checked for the HTTP/2 preface
  bool http1_counted_ = false;  // ... and were HTTP/1.1: in downstream_cx_http1_active
  bool resetting_ = false;      // reset_exchange() is closing the connection
  std::unique_ptr<net::Buffer> in_;
  std::unique_ptr<net::Buffer> out_;
  std::unique_ptr<Exchange> exchange_;
  uint64_t idle_since_ms_ = 0;    // when the connection last became idle
  uint64_t head_started_ms_ = 0;  // first byte of the head being received
  net::Timer idle_timer_;         // keep-alive idle, request-headers timeout, linger

  // The current exchange over an HTTP/2 upstream (cluster spec http2, not an upgrade).
  bool h2_mode_ = false;
  upstream::Http2Upstream* h2_ = nullptr;  // waited on (h2_stream_ < 0) or carrying our stream
  int32_t h2_stream_ = -1;
  http::HeaderList h2_fields_;  // request fields, views into the exchange's up_head
  std::string_view h2_authority_;
  std::string_view h2_path_;
  std::string h2_body_;              // decoded request body bytes on their way to submit_data
  bool h2_can_replay_ = true;        // e.h2_replay_body holds every body byte submitted so far
  bool h2_replaying_ = false;        // ... and goes first to the stream a refusal's retry opens
  bool h2_end_sent_ = false;         // END_STREAM submitted upstream
  bool h2_req_paused_ = false;       // submit_data said kFull: stop taking the client's body
  bool h2_send_ready_seen_ = false;  // on_h2_send_ready ran during the last submit_data
  bool h2_trailers_wanted_ = false;  // the client sent `te: trailers`
  bool h2_finishing_ = false;    // the response ended: the exchange completes on the stream's close
  size_t h2_resp_unacked_ = 0;   // response bytes held in out_, not yet consume()d upstream
  GrpcWebBridge grpc_web_;       // the exchange is gRPC-Web (Module enable_grpc_web)
  std::string h2_web_out_;       // translated response bytes
  bool bridge_ = false;          // gRPC HTTP/1.1 bridge (Module enable_grpc_http11_bridge)
  bool bridge_holding_ = false;  // the response head and body wait for the trailers
  std::string bridge_body_;      // the held response body
};

}  // namespace proxenos::proxy
