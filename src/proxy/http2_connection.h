#pragma once
// One downstream HTTP/2 connection (h2c with prior knowledge, or h2 negotiated by ALPN) and its
// streams. Each stream is routed like an HTTP/1.1 request (route_exchange) and proxied to the
// route's upstream over HTTP/1.1 on a pooled connection of its own, so streams never wait for
// each other.
//
// Flow control runs end to end: request body bytes are acknowledged to the client (consume())
// only once they were written to the upstream socket, and a response stream whose HTTP/2 send
// queue is full (submit_data() says kFull) stops reading its upstream until on_send_ready. A
// client that stops reading therefore holds back the upstreams, not the proxy's memory.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/block_pool.h"
#include "http/header.h"
#include "http/http2_session.h"
#include "http/message_head.h"
#include "net/event_loop.h"
#include "net/stream_io.h"
#include "net/tls_stream.h"
#include "proxy/connection.h"
#include "proxy/exchange.h"
#include "proxy/grpc_web_bridge.h"
#include "proxy/request_router.h"
#include "proxy/response_builder.h"
#include "proxy/worker.h"
#include "upstream/http2_upstream.h"
#include "upstream/upstream_connection.h"

namespace proxenos::proxy {

class Http2Connection;

// The upstream head route_exchange built for `e` (e.up_head) as HTTP/2 request fields: Host
// becomes :authority, HTTP/1.1 framing and connection fields go, `te: trailers` is kept from the
// client. The views point into e.up_head and e.request.
void h2_request_fields(const Exchange& e, http::HeaderList& fields, std::string_view& authority,
                       std::string_view& path);

// One HTTP/2 stream proxied to an HTTP/1.1 upstream, or over a shared HTTP/2 upstream connection
// when the cluster speaks HTTP/2 (Mapping grpc: true).
class Http2Stream final : public base::PooledObject,
                          public upstream::UpstreamConnection::Handler,
                          public upstream::Http2UpstreamRequest {
 public:
  Http2Stream(Http2Connection& connection, int32_t id);
  ~Http2Stream();
  Http2Stream(const Http2Stream&) = delete;
  Http2Stream& operator=(const Http2Stream&) = delete;

  void start(http::RequestHead&& head, bool end_stream);
  void on_request_data(std::string_view bytes, bool end_stream);
  void on_request_trailers(const http::HeaderList& trailers);
  void on_send_ready();
  // The session closed the stream (error_code NO_ERROR: both sides ended): count and log it.
  void on_closed(uint32_t error_code);
  // The client sent RST_STREAM (on_closed follows).
  void note_peer_reset() { peer_reset_ = true; }

  void on_upstream_connected() override;
  void on_upstream_event(uint32_t events) override;

  // Http2UpstreamRequest (HTTP/2 upstream).
  void on_h2_ready() override;
  void on_h2_connect_failed(std::string_view reason) override;
  void on_h2_response_head(http::ResponseHead&& head, bool end_stream) override;
  void on_h2_data(std::string_view bytes, bool end_stream) override;
  void on_h2_trailers(const http::HeaderList& trailers) override;
  void on_h2_send_ready() override;
  void on_h2_close(uint32_t error_code) override;

 private:
  void h2_connect(const upstream::Http2Upstream* avoid);
  void build_h2_request();
  void h2_send_body();
  void h2_response_finished();
  void release_h2();
  void send_h2_response_head(bool end_stream);
  void finish_web_hold();
  void end_timed_out_response();
  void route();
  void local_reply(int status, std::string_view body, std::string_view flags,
                   std::string_view location = {});
  void reset_downstream(uint32_t error_code, std::string_view flags);
  void connect_upstream();
  void upstream_failed(std::string_view reason, std::string_view flags);
  // `trailer_section`: the request's trailers as a chunked trailer section, when it had some.
  void end_request_body(std::string_view trailer_section = {});
  void discard_request();
  // Writes what the HTTP/1.1 upstream may take now; false if the connection failed.
  bool flush_upstream();
  // Queues that write for the end of the batch, after the writes to clients (net::FlushOrder).
  void flush_upstream_later();
  void on_upstream_write_turn();
  void read_upstream(bool to_eagain);
  void process_upstream_input();
  ResponseHeadContext proxied_head_context();
  void on_response_head();
  void forward_response_body();
  void on_upstream_eof();
  void response_done();
  void on_timeout();
  void detach_upstream();
  void cancel_timers();
  void watch_delivery();
  void response_complete_upstream();  // the timers that only run until the upstream is done
  void on_connect_timeout();
  void on_idle_timeout();
  void arm_route_timer();
  void log();
  // RFC 8441 extended CONNECT, proxied as an HTTP/1.1 Upgrade.
  void prepare_extended_connect();
  void start_tunnel();
  void end_client_side();

  Http2Connection& conn_;
  Worker& worker_;
  int32_t id_;
  std::unique_ptr<Exchange> e_;
  // Scratch lists kept in the pooled exchange, so a stream reuses their capacity.
  http::HeaderList& fields_;     // response fields being submitted
  http::HeaderList& h2_fields_;  // HTTP/2 upstream request fields (see UpstreamHeadIndex)
  std::string& h2_sent_;         // body bytes submitted before the response head (REFUSED retry)
  net::Timer route_timer_;
  net::Timer connect_timer_;
  net::Timer idle_timer_;  // the route's idle_timeout_ms: no bytes either way for that long
  net::FlushCallback upstream_write_{net::FlushOrder::kLast, [this] { on_upstream_write_turn(); }};
  size_t unacked_ = 0;  // request body bytes taken from the client, not yet written upstream
  bool grpc_ = false;   // content-type application/grpc: local replies the gRPC way
  bool chunked_request_ = false;  // re-chunk the request body (unknown length)
  bool discard_ = false;          // request body bytes are no longer wanted: acknowledge, drop
  bool paused_ = false;           // submit_data said kFull: wait for on_send_ready
  bool closed_ = false;           // the session closed the stream
  bool peer_reset_ = false;
  bool drain_ended_ = false;  // the request drain after our answer ran out (RST NO_ERROR sent)
  size_t delivery_mark_ = 0;  // response bytes queued for the client at the last idle check
  bool reset_sent_ = false;   // reset_downstream() reset it (counted in downstream_rq_tx_reset)

  // HTTP/2 upstream (cluster spec http2).
  bool h2_mode_ = false;
  upstream::Http2Upstream* h2_ = nullptr;  // waited on (h2_stream_ < 0) or carrying our stream
  int32_t h2_stream_ = -1;
  std::string_view h2_authority_;
  std::string_view h2_path_;
  bool h2_can_retry_ = true;         // h2_sent_ holds every body byte submitted so far
  bool h2_end_sent_ = false;         // END_STREAM submitted upstream
  bool h2_req_paused_ = false;       // upstream submit_data said kFull: hold the client's window
  bool h2_send_ready_seen_ = false;  // on_h2_send_ready ran during the last submit_data
  size_t h2_resp_unacked_ = 0;  // response bytes queued downstream, not yet consume()d upstream
  net::Timer deadline_timer_;   // grpc-timeout
  GrpcWebBridge grpc_web_;      // the stream is gRPC-Web (Module enable_grpc_web)
  std::string web_out_;         // translated request or response bytes

  // RFC 8441 extended CONNECT (:protocol websocket, or another upgrade the route allows): the
  // upstream gets an HTTP/1.1 GET with Upgrade, and after its 101 the stream is a byte tunnel.
  bool connect_ = false;
  bool key_generated_ = false;      // ws_key_ is ours: check the 101's Sec-WebSocket-Accept
  std::string ws_key_;              // Sec-WebSocket-Key for the upstream handshake
  std::string early_;               // tunnel bytes the client sent before the 101 (window-bounded)
  bool client_fin_ = false;         // the client ended its side (END_STREAM or trailers)
  bool upstream_fin_sent_ = false;  // ... and that end went upstream as a half-close
  bool upstream_eof_ = false;       // the upstream ended its side (passed on as END_STREAM)
};

class Http2Connection final : public DownstreamConnection,
                              public net::IoHandler,
                              public net::Flushable,
                              public http::Http2Session::Handler {
 public:
  // `initial`: bytes already read from the socket (the connection preface at least, for h2c
  // handed over by HttpConnection). `counted`: the connection is already counted in the
  // listener's downstream_cx_total/active (handed over by HttpConnection).
  Http2Connection(Worker& worker, int fd, std::string listener_key, std::string peer_text,
                  std::string local_text, std::unique_ptr<net::TlsStream> tls, std::string initial,
                  bool counted);
  ~Http2Connection() override;

  void start() override;
  // Drain: GOAWAY; streams in progress finish, then the connection closes.
  void drain() override;
  void on_io(uint32_t events) override;

  // Http2Session::Handler.
  void on_request_head(int32_t stream, http::RequestHead&& head, bool end_stream) override;
  // Counted and logged as Envoy does a stream its codec reset: code 0, flag DPE.
  void on_request_rejected(int32_t stream, const http::RequestHead& partial,
                           std::string_view reason) override;
  void on_data(int32_t stream, std::string_view bytes, bool end_stream) override;
  void on_trailers(int32_t stream, const http::HeaderList& trailers) override;
  void on_stream_close(int32_t stream, uint32_t error_code) override;
  void on_stream_reset(int32_t stream, uint32_t error_code) override;
  void on_send_ready(int32_t stream) override;

  // For streams.
  Worker& worker() { return worker_; }
  http::Http2Session& session() { return *session_; }
  observe::ListenerStats& stats() { return *stats_; }
  const RoutingInput& routing_input() const { return routing_; }
  std::string_view sni() const;
  uint64_t idle_timeout_ms() const;
  // The client closed the connection or it failed under us (not our close): streams it cuts
  // count as reset by the client.
  bool peer_gone() const { return peer_gone_; }
  // Asks for what the session has to send to be written at the end of the event batch, so the
  // frames of many streams and upstream reads leave in one write.
  void flush();
  // Writes it now (deferred while the session is inside feed() or this already runs), then
  // closes if the session is done.
  void flush_now() override;

 private:
  void read_downstream();
  bool feed(std::string_view bytes);
  void on_timer();
  void close_now();
  // Adds what the session counted since the last call to the listener's shard.
  void sync_stats();
  net::StreamIo io() const { return {fd_, tls_.get()}; }

  Worker& worker_;
  int fd_;
  std::unique_ptr<net::TlsStream> tls_;
  std::unique_ptr<const net::PeerCertificateInfo> peer_certificate_;  // when one was presented
  std::string listener_key_;
  std::string peer_text_;
  std::string local_text_;
  std::string initial_;
  bool counted_;
  RoutingInput routing_;
  std::shared_ptr<observe::ListenerStats> stats_;
  std::unique_ptr<http::Http2Session> session_;
  http::Http2Stats synced_;  // the session's counters already added to stats_
  std::unordered_map<int32_t, std::unique_ptr<Http2Stream>, std::hash<int32_t>, std::equal_to<>,
                     base::PoolAllocator<std::pair<const int32_t, std::unique_ptr<Http2Stream>>>>
      streams_;
  std::vector<int32_t> ready_;  // streams owed on_send_ready, run after the write pass
  net::Timer timer_;            // idle timeout, and the close deadline after GOAWAY
  uint64_t idle_since_ms_ = 0;
  bool closed_ = false;
  bool in_feed_ = false;
  bool in_flush_ = false;
  bool peer_hup_ = false;
  bool peer_gone_ = false;
  bool goaway_sent_ = false;
};

}  // namespace proxenos::proxy
