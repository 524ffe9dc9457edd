#include "proxy/http_connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include "http/grpc.h"
#include "http/header.h"
#include "http/http2_headers.h"
#include "http/status.h"
#include "net/socket.h"
#include "proxy/http2_connection.h"
#include "proxy/request_context.h"
#include "proxy/request_router.h"
#include "proxy/response_builder.h"
#include "proxy/shadow_request.h"
#include "proxy/upstream_exchange.h"

namespace proxenos::proxy {

namespace {

// Exchanges are reused per worker thread so their strings and vectors keep their capacity.
constexpr size_t kMaxPooledExchanges = 1024;
// A pooled exchange keeps at most this much of a buffer's capacity (replay body, heads).
constexpr size_t kKeepBufferCapacity = 16 * 1024;
thread_local std::vector<std::unique_ptr<Exchange>> g_free_exchanges;

}  // namespace

Exchange::Exchange(net::EventLoop& loop)
    : route_timer(loop, [this] { static_cast<HttpConnection*>(owner)->on_timeout(); }),
      connect_timer(loop, [this] { static_cast<HttpConnection*>(owner)->on_connect_timeout(); }),
      idle_timer(loop, [this] { static_cast<HttpConnection*>(owner)->on_stream_idle_timeout(); }),
      deadline_timer(loop, [this] { static_cast<HttpConnection*>(owner)->on_timeout(); }) {}

Exchange::~Exchange() {
  drop_shadow();
}

void Exchange::drop_shadow() {
  if (shadow == nullptr) return;
  ShadowRequest* s = shadow;
  shadow = nullptr;
  s->detach();
}

void Exchange::reset() {
  drop_shadow();
  config.reset();
  listener = nullptr;
  match = {};
  cluster = nullptr;
  request_complete = request_sent = response_head_sent = response_complete = false;
  response_chunked = response_until_close = upstream_reusable = retried = secure = false;
  head_request = upgrade = tunnel = false;
  stream_idle_ms = 0;
  grpc = grpc_web = cors_preflight = false;
  cors_fields.clear();
  h2_response_fields.clear();
  h2_request_fields.clear();
  h2_request_trailers.clear();
  h2_trailer_text.clear();
  h2_replay_body.clear();
  if (h2_replay_body.capacity() > kKeepBufferCapacity) std::string().swap(h2_replay_body);
  start_ms = upstream_start_ms = 0;
  start_us = upstream_start_us = 0;
  route_stats = nullptr;
  counted_active = cluster_active = counted_upgrade = false;
  start_unix_ms = 0;
  upstream_service_ms = -1;
  bytes_received = bytes_sent = 0;
  status = 0;
  flags = "-";
  client_address.clear();
  request_id.clear();
  original_path.clear();
  up_head.clear();
  up_head_index.clear();
  request_trailers.clear();
  upstream_host.clear();
  upstream_local.clear();
  transport_failure.clear();
  xfcc.clear();
  response_parser.reset();
  // A pooled exchange must not carry its last response's status into the next request: that
  // status reads as "the upstream already answered" (no replay of a request a reused upstream
  // connection dropped, a close instead of a 503).
  response.clear();
  // The heads' buffers stay for the HTTP/2 session to build its next heads in (it swaps them
  // out), unless one was huge.
  if (response.storage.capacity() > kKeepBufferCapacity) response = {};
  if (request.storage.capacity() > kKeepBufferCapacity) request = {};
  parser.reset();
  route_timer.cancel();
  connect_timer.cancel();
  idle_timer.cancel();
  deadline_timer.cancel();
  last_activity_ms = 0;
  context = RequestContext{};
  owner = nullptr;
}

HttpConnection::HttpConnection(Worker& worker, int fd, std::string listener_key,
                               const net::Address& peer, const net::Address& local,
                               std::unique_ptr<net::TlsStream> tls)
    : worker_(worker),
      fd_(fd),
      tls_(std::move(tls)),
      peer_certificate_(client_certificate(tls_.get())),
      listener_key_(std::move(listener_key)),
      peer_text_(peer.to_string()),
      local_text_(local.to_string()),
      stats_(worker.listener_stats(listener_key_)),
      idle_timer_(worker.loop(), [this] { on_connection_timer(); }) {}

// One timer per connection, re-armed lazily: a request neither cancels nor re-arms it (that would
// be two heap operations per request); when it fires it checks what the connection is doing and
// sleeps again for whatever is left.
void HttpConnection::on_connection_timer() {
  uint64_t now = worker_.loop().now_ms();
  switch (phase_) {
    case Phase::kIdle: {
      uint64_t idle = idle_timeout_ms();
      if (idle == 0) return;
      if (now - idle_since_ms_ >= idle) {
        close_now();
      } else {
        idle_timer_.arm(idle_since_ms_ + idle - now);
      }
      return;
    }
    case Phase::kHead:
      if (now - head_started_ms_ >= kRequestHeadersTimeoutMs) {
        // Slowloris: the head did not arrive in time.
        stats_->downstream_rq_total.inc();
        stats_->downstream_rq_http1_total.inc();
        send_local_reply(408, "request header timeout", "DC");
      } else {
        idle_timer_.arm(head_started_ms_ + kRequestHeadersTimeoutMs - now);
      }
      return;
    case Phase::kExchange: {
      // Exchanges have their own timers; look again when this one could be idle at the earliest.
      uint64_t idle = idle_timeout_ms();
      idle_timer_.arm(idle > 0 ? idle : kRequestHeadersTimeoutMs);
      return;
    }
    case Phase::kLingering:
      close_now();
      return;
    case Phase::kClosed:
      return;
  }
}

uint64_t HttpConnection::idle_timeout_ms() const {
  const auto& cfg = worker_.config();
  return cfg && cfg->snapshot ? cfg->snapshot->module.listener_idle_timeout_ms : 300000;
}

HttpConnection::~HttpConnection() {
  release_h2();
  if (exchange_) {
    upstream::UpstreamConnection::destroy(std::move(exchange_->upstream));
    recycle_exchange();
  }
  if (fd_ >= 0) close(fd_);
}

void HttpConnection::start() {
  stats_->downstream_cx_total.inc();
  stats_->downstream_cx_active.add(1);
  worker_.loop().add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
  arm_idle_timer();
  // Accepted sockets often have the request already waiting.
  read_downstream();
}

std::unique_ptr<Exchange> HttpConnection::take_exchange() {
  std::unique_ptr<Exchange> e;
  if (!g_free_exchanges.empty()) {
    e = std::move(g_free_exchanges.back());
    g_free_exchanges.pop_back();
  } else {
    e = std::make_unique<Exchange>(worker_.loop());
  }
  e->owner = this;
  return e;
}

void HttpConnection::end_active(Exchange& e) {
  if (e.counted_active) stats_->downstream_rq_active.add(-1);
  if (e.route_stats != nullptr) e.route_stats->rq_active.add(-1);
  if (e.cluster_active) e.cluster->stats().upstream_rq_active.add(-1);
  if (e.counted_upgrade) stats_->downstream_cx_upgrades_active.add(-1);
  e.counted_active = e.cluster_active = e.counted_upgrade = false;
  e.route_stats = nullptr;
}

void HttpConnection::recycle_exchange() {
  if (!exchange_) return;
  auto& e = *exchange_;
  end_active(e);
  worker_.buffers().give(std::move(e.up_in));
  worker_.buffers().give(std::move(e.up_out));
  e.reset();
  if (g_free_exchanges.size() < kMaxPooledExchanges) {
    g_free_exchanges.push_back(std::move(exchange_));
  } else {
    exchange_.reset();
  }
}

void HttpConnection::on_io(uint32_t events) {
  if (phase_ == Phase::kClosed) return;
  if (events & EPOLLERR) {
    close_now();
    return;
  }
  // TLS reads may wait for writability and writes for readability: try both on any event.
  if ((events & EPOLLOUT) || tls_) {
    if (!flush_downstream()) return;
  }
  if (events & (EPOLLRDHUP | EPOLLHUP)) peer_hup_ = true;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) || tls_) read_downstream();
}

void HttpConnection::drain() {
  close_after_response_ = true;
  if (phase_ == Phase::kIdle && (!in_ || in_->empty())) close_now();
}

// ---------------------------------------------------------------------------------------------
// Downstream reading.

void HttpConnection::read_downstream() {
  while (phase_ != Phase::kClosed && !peer_eof_) {
    if (in_ && in_->writable() == 0) in_->compact();
    if (phase_ == Phase::kExchange) {
      // Back-pressure: read more only while the upstream keeps up, and never buffer a second
      // request while one is in progress beyond one buffer.
      Exchange& e = *exchange_;
      bool held = !e.request_complete && (!e.upstream || !e.upstream->connected ||
                                          (e.up_out && e.up_out->size() >= kWatermark));
      if ((e.request_complete || held) && in_ && in_->writable() == 0) {
        read_blocked_ = true;
        return;
      }
    }
    if (!in_) in_ = worker_.buffers().take();
    if (in_->writable() == 0) {
      if (phase_ == Phase::kExchange) {
        read_blocked_ = true;
        return;
      }
      // A head larger than one buffer: grow up to the parser's limit (it reports 431 past it).
      in_->ensure_writable(4096);
    }
    size_t asked = in_->writable();
    read_blocked_ = false;
    ssize_t n = io().read(in_->write_ptr(), asked);
    if (n > 0) {
      stats_->downstream_cx_rx_bytes_total.add(static_cast<uint64_t>(n));
      in_->commit(static_cast<size_t>(n));
      if (phase_ == Phase::kLingering) {
        in_->clear();
        continue;
      }
      process_input();
      // A short read drained the socket: edge-triggered epoll reports the next bytes, so skip
      // the recv that would only say EAGAIN (unless the peer hung up: then read to EOF).
      // (TLS may hold decrypted bytes the socket no longer signals: read until it says so.)
      if (static_cast<size_t>(n) < asked && !peer_hup_ && !tls_) {
        release_buffers_if_idle();
        return;
      }
      continue;
    }
    if (n == 0) {
      peer_eof_ = true;
      on_downstream_eof();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      release_buffers_if_idle();
      return;
    }
    close_now();
    return;
  }
}

void HttpConnection::process_input() {
  while (phase_ != Phase::kClosed && phase_ != Phase::kLingering) {
    if (phase_ == Phase::kExchange) {
      forward_request_body();
      return;
    }
    if (!in_ || in_->empty()) return;
    if (closing_) return;
    if (!http2_checked_) {
      http::PrefaceMatch preface = http::match_http2_preface(in_->readable());
      if (preface == http::PrefaceMatch::kPartial) return;  // wait for the rest of the preface
      http2_checked_ = true;
      if (preface == http::PrefaceMatch::kFull) {
        hand_over_http2();
        return;
      }
      // Envoy counts a connection's protocol once its codec sees the first bytes.
      http1_counted_ = true;
      stats_->downstream_cx_http1_total.inc();
      stats_->downstream_cx_http1_active.add(1);
    }
    bool first_bytes = phase_ == Phase::kIdle;
    if (first_bytes) phase_ = Phase::kHead;
    if (!exchange_) {
      exchange_ = take_exchange();
      const auto& cfg = worker_.config();
      if (cfg) exchange_->parser.set_limits(cfg->limits);
    }
    http::ParseResult r = exchange_->parser.parse(in_->readable(), exchange_->request);
    if (r.status == http::ParseStatus::kIncomplete) {
      // Slowloris guard, from the head's first byte; a head that arrives whole needs no timer.
      if (first_bytes) {
        head_started_ms_ = worker_.loop().now_ms();
        uint64_t due = head_started_ms_ + kRequestHeadersTimeoutMs;
        if (!idle_timer_.armed() || idle_timer_.deadline_ms() > due) {
          idle_timer_.arm(kRequestHeadersTimeoutMs);
        }
      }
      return;
    }
    if (r.status == http::ParseStatus::kError) {
      parse_error(r);
      return;
    }
    start_exchange(r.consumed);
  }
}

void HttpConnection::on_downstream_eof() {
  switch (phase_) {
    case Phase::kIdle:
    case Phase::kLingering:
      close_now();
      return;
    case Phase::kHead:
      // A partial head and then EOF: nothing to answer to.
      close_now();
      return;
    case Phase::kExchange:
      if (exchange_->tunnel) {
        // The client finished sending: pass the FIN on and keep relaying the other way.
        exchange_->request_complete = true;
        flush_upstream();  // half-closes the upstream once what the client sent is out
        return;
      }
      // The response is out and the exchange only waits to be finished: that closes the
      // connection (peer_eof_) after logging it as any complete exchange.
      if (exchange_->response_complete && exchange_->request_complete) return;
      // The client went away (as Envoy and nginx take an HTTP/1.1 client's FIN): mid-body, the
      // upstream must not see a truncated request as whole; waiting for the response, the
      // upstream request is cancelled (an HTTP/2 stream reset) rather than left to run, maybe
      // for as long as a stream with no route timeout lasts.
      exchange_->flags = "DC";
      close_now();
      return;
    case Phase::kClosed:
      return;
  }
}

void HttpConnection::hand_over_http2() {
  std::string initial(in_->readable());
  phase_ = Phase::kClosed;  // callers up the stack stop touching this connection
  idle_timer_.cancel();
  worker_.loop().remove(fd_);  // the next owner registers the socket itself
  auto* next = new Http2Connection(worker_, fd_, listener_key_, peer_text_, local_text_,
                                   std::move(tls_), std::move(initial), /*counted=*/true);
  fd_ = -1;
  worker_.buffers().give(std::move(in_));
  worker_.buffers().give(std::move(out_));
  recycle_exchange();
  worker_.on_connection_close(this);
  worker_.on_connection_open(next);
  next->start();
  HttpConnection* self = this;
  worker_.loop().defer([self] { delete self; });
}

void HttpConnection::parse_error(const http::ParseResult& result) {
  stats_->downstream_cx_protocol_error.inc();
  // The malformed request is a request too (Envoy counts it), so the 4xx below has one.
  stats_->downstream_rq_total.inc();
  stats_->downstream_rq_http1_total.inc();
  close_after_response_ = true;
  auto& e = *exchange_;
  e.start_ms = worker_.loop().now_ms();
  e.start_us = worker_.loop().now_us();
  e.start_unix_ms = worker_.loop().now_unix_ms();
  send_local_reply(result.error_status, result.error, "DPE");
}

// ---------------------------------------------------------------------------------------------
// Request start and routing.

void HttpConnection::start_exchange(size_t head_length) {
  in_->consume(head_length);
  exchange_->parser.reset();
  phase_ = Phase::kExchange;
  Exchange& e = *exchange_;
  e.config = worker_.config();
  e.start_ms = worker_.loop().now_ms();
  e.start_us = worker_.loop().now_us();
  stats_->downstream_rq_active.add(1);
  e.counted_active = true;
  e.start_unix_ms = worker_.loop().now_unix_ms();
  e.head_request = e.request.method == "HEAD";
  e.grpc = http::is_grpc_content_type(http::find_header(e.request.headers, "content-type"));
  e.grpc_web = e.config && e.config->snapshot && e.config->snapshot->module.enable_grpc_web &&
               http::grpc_web_format(http::find_header(e.request.headers, "content-type")) !=
                   http::GrpcWebFormat::kNone;
  stats_->downstream_rq_total.inc();
  stats_->downstream_rq_http1_total.inc();
  if (!e.request.keep_alive || worker_.draining()) close_after_response_ = true;
  e.request_body.reset(e.request.framing, e.request.content_length);
  e.request_complete = e.request.framing == http::BodyFraming::kNone;
  route_request();
}

void HttpConnection::route_request() {
  Exchange& e = *exchange_;
  RoutingInput in;
  in.listener_key = &listener_key_;
  in.peer = peer_text_;
  in.local = local_text_;
  in.tls = tls_ != nullptr;
  in.stats = stats_.get();
  if (tls_) {
    in.peer_certificate = peer_certificate_.get();
    if (const net::TlsServerContext* served = tls_->server_context()) {
      in.local_uri_sans = served->certificate().uri_sans;
    }
  }
  if (std::optional<LocalReply> reply = route_exchange(worker_, e, in)) {
    send_local_reply(reply->status, reply->body, reply->flags, reply->location);
    return;
  }
  const http::RequestHead& req = e.request;
  const auto& shadow = e.match.route->shadow;
  if (shadow && !e.upgrade && shadow->cluster < e.config->clusters.size() &&
      worker_.draw_percent() < shadow->cumulative_weight) {
    e.shadow = ShadowRequest::start(worker_, e.config->clusters[shadow->cluster], e.up_head,
                                    req.framing == http::BodyFraming::kChunked, e.request_complete,
                                    shadow->timeout_ms);
  }
  e.stream_idle_ms = e.match.target->idle_timeout_ms;
  if (e.stream_idle_ms > 0) {
    e.last_activity_ms = worker_.loop().now_ms();
    // A whole request gets the route timer next, which covers the exchange when it is due
    // sooner: one timer per request, not two.
    uint32_t timeout = e.match.target->timeout_ms;
    if (!e.request_complete || e.upgrade || timeout == 0 || timeout > e.stream_idle_ms) {
      e.idle_timer.arm(e.stream_idle_ms);
    }
  }
  if ((e.grpc || e.grpc_web) && !e.upgrade) {
    // grpc-timeout bounds the whole call from now on, alongside the route timeout (as on HTTP/2;
    // gRPC-Web clients send it too).
    std::optional<uint64_t> ms =
        http::parse_grpc_timeout_ms(http::find_header(req.headers, "grpc-timeout"));
    if (ms && *ms > 0) e.deadline_timer.arm(*ms);
  }
  if (req.expect_continue && !e.request_complete) {
    // We answer 100-continue ourselves (and never forward Expect), as Envoy does.
    write_downstream("HTTP/1.1 100 Continue\r\n\r\n");
  }
  h2_mode_ = e.cluster->spec().http2 && !e.upgrade;
  grpc_web_.reset();
  if (h2_mode_) {
    h2_request_fields(e, h2_fields_, h2_authority_, h2_path_);
    if (grpc_web_.start(e.config->snapshot->module.enable_grpc_web, req.headers)) {
      grpc_web_.rewrite_request_fields(h2_fields_);
    }
    std::string_view te = http::find_header(req.headers, "te");
    h2_trailers_wanted_ = !te.empty() && http::header_has_token(te, "trailers");
    bridge_ = e.grpc && e.config->snapshot->module.enable_grpc_http11_bridge;
    h2_connect(nullptr);
    return;
  }
  connect_upstream();
}

// ---------------------------------------------------------------------------------------------
// Local replies (errors, redirects).

void HttpConnection::send_local_reply(int status, std::string_view body, std::string_view flags,
                                      std::string_view location) {
  if (phase_ == Phase::kClosed) return;
  if (!exchange_) exchange_ = take_exchange();
  Exchange& e = *exchange_;
  phase_ = Phase::kExchange;
  e.status = status;
  e.flags = flags;
  // A request body we will not read would be parsed as the next request: close instead. So
  // would bytes behind an upgrade request not upgraded (refused, failed, or answered before
  // a 101): tunnel bytes, or a request smuggled past the routing of the first (Envoy closes
  // too). An h2c offer is no upgrade we act on: its request is an ordinary one.
  if (!e.request_complete ||
      (e.request.upgrade && !http::iequals(e.request.upgrade_protocol, "h2c"))) {
    close_after_response_ = true;
  }
  if (status == 408 || status == 413 || status == 414 || status == 431) {
    close_after_response_ = true;
  }
  if (e.upstream) upstream::UpstreamConnection::destroy(std::move(e.upstream));
  release_h2();
  end_bridge();
  e.route_timer.cancel();
  e.connect_timer.cancel();
  e.idle_timer.cancel();
  e.deadline_timer.cancel();
  std::string& out = e.scratch;
  out.clear();
  std::string_view server = e.config && e.config->snapshot
                                ? std::string_view(e.config->snapshot->module.server_name)
                                : std::string_view("envoy");
  bool close = close_after_response_ || peer_eof_;
  bool http10 = e.request.version_minor == 0;
  std::string grpc_type;
  // A malformed gRPC-Web body (DPE) keeps its plain 400, as Envoy's grpc_web filter answers.
  bool web = e.grpc_web && flags != "DPE";
  if ((e.grpc || web) && !e.cors_preflight) {
    grpc_type = grpc_local_reply_content_type(e.request.headers, web);
  }
  if (!grpc_type.empty()) {
    // As on HTTP/2: a gRPC (or gRPC-Web) client gets HTTP 200 and the mapped status. Without a
    // body, the status stays in the head (a trailers-only response), with content-length: 0.
    e.status = 200;
    e.response.clear();
    http::make_grpc_local_reply(local_reply_grpc_status(status, flags), body, grpc_type,
                                e.response);
    e.response.headers.push_back({"content-length", "0"});
    ResponseHeadContext ctx;
    ctx.response = &e.response;
    ctx.server_name = server;
    ctx.close = close;
    ctx.http10 = http10;
    ctx.set_fields = e.cors_fields;
    build_response_head(ctx, out);
    body = {};
  } else {
    append_local_reply_head(status, body.size() + (body.empty() ? 0 : 1), location, server, close,
                            http10, out, e.cors_fields);
  }
  if (!e.head_request && !body.empty()) {
    out.append(body);
    out.push_back('\n');
    e.bytes_sent = body.size() + 1;
  }
  write_downstream(out);
  if (phase_ == Phase::kClosed) return;
  e.response_head_sent = true;
  e.response_complete = true;
  e.request_complete = true;  // nothing more of it will be read as this request
  finish_exchange();
}

// ---------------------------------------------------------------------------------------------
// Upstream connection.

void HttpConnection::connect_upstream() {
  Exchange& e = *exchange_;
  UpstreamFailure failure;
  switch (proxy::connect_upstream(e, worker_.loop(), this, failure)) {
    case UpstreamConnect::kReused:
      on_upstream_connected();
      break;
    case UpstreamConnect::kConnecting:
      e.connect_timer.arm(e.cluster->spec().connect_timeout_ms);
      break;
    case UpstreamConnect::kFailed:
      send_local_reply(503, failure.body, failure.flags);
      break;
  }
}

void HttpConnection::on_upstream_event(uint32_t events) {
  if (phase_ == Phase::kClosed || !exchange_ || !exchange_->upstream) return;
  Exchange& e = *exchange_;
  if (!e.upstream->connected) {
    // Before it is connected the connection reports only its failure (TCP or TLS).
    upstream_failed(unconnected_failure_reason(e), "UF", true);
    return;
  }
  // TLS reads may wait for writability and writes for readability: try both on any event.
  bool tls = e.upstream->is_tls();
  if ((events & EPOLLOUT) || tls) {
    if (!flush_upstream()) return;
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || tls) {
    read_upstream((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
  }
}

void HttpConnection::on_upstream_connected() {
  if (phase_ == Phase::kClosed || !exchange_ || !exchange_->upstream) return;
  Exchange& e = *exchange_;
  e.connect_timer.cancel();
  e.upstream_local.assign(e.upstream->local_address());
  send_request_head();
}

void HttpConnection::on_connect_timeout() {
  if (!exchange_ || phase_ == Phase::kClosed) return;
  exchange_->cluster->stats().upstream_cx_connect_fail.inc();
  upstream_failed("connection timeout", "UF", true);
}

void HttpConnection::upstream_failed(std::string_view reason, std::string_view flags,
                                     bool before_response) {
  Exchange& e = *exchange_;
  bool reused = e.upstream && e.upstream->requests > 1;
  upstream::UpstreamConnection::destroy(std::move(e.upstream));
  if (before_response && !e.response_head_sent) {
    // A reused keep-alive connection the upstream closed before our request reached it is
    // retried once on a fresh connection, whatever the method: the upstream never saw it
    // (Pingora's ReusedOnly). We can only replay what we still hold: no body streamed yet.
    bool body_pending = e.request.framing != http::BodyFraming::kNone && e.bytes_received > 0;
    if (reused && !e.retried && !body_pending && !e.response.status) {
      e.retried = true;
      e.cluster->stats().upstream_rq_retry.inc();
      if (e.up_out) e.up_out->clear();
      if (e.up_in) e.up_in->clear();
      e.response_parser.reset();
      e.request_sent = false;
      connect_upstream();
      return;
    }
    std::string body(kResetBeforeHeaders);
    body.append(reason);
    send_local_reply(503, body, flags);
    return;
  }
  // Mid-response failure: the client must not mistake a truncated body for a whole one.
  e.flags = "UC";
  reset_exchange();
}

void HttpConnection::send_request_head() {
  Exchange& e = *exchange_;
  if (!e.up_out) e.up_out = worker_.buffers().take();
  e.up_out->append(e.up_head);
  if (e.retried && e.request_complete && e.request.framing == http::BodyFraming::kChunked) {
    // A replay of a chunked request whose (empty) body had been read whole: its last chunk and
    // trailers went out with the failed attempt, and the decoder will not produce them again.
    e.up_out->append("0\r\n");
    e.up_out->append(e.request_trailers);
  }
  forward_request_body();
}

void HttpConnection::forward_request_body() {
  if (phase_ == Phase::kClosed) return;
  if (h2_mode_) {
    h2_forward_request_body();
    return;
  }
  Exchange& e = *exchange_;
  if (!e.upstream || !e.upstream->connected) return;
  if (!e.up_out) e.up_out = worker_.buffers().take();
  bool chunked = e.request.framing == http::BodyFraming::kChunked;
  while (!e.request_complete && in_ && !in_->empty() && e.up_out->size() < kWatermark) {
    http::DecodeResult r = e.request_body.decode(in_->readable());
    if (r.error) {
      upstream::UpstreamConnection::destroy(std::move(e.upstream));
      close_after_response_ = true;
      if (e.response_head_sent) {
        reset_exchange();
      } else {
        e.request_complete = true;
        send_local_reply(400, r.reason, "DPE");
      }
      return;
    }
    if (!r.data.empty()) {
      e.last_activity_ms = worker_.loop().now_ms();
      e.bytes_received += r.data.size();
      if (e.shadow != nullptr) e.shadow->feed(r.data);
      if (chunked) {
        char size_line[24];
        auto [p, ec] = std::to_chars(size_line, size_line + 16, r.data.size(), 16);
        *p++ = '\r';
        *p++ = '\n';
        e.up_out->append(std::string_view(size_line, static_cast<size_t>(p - size_line)));
        e.up_out->append(r.data);
        e.up_out->append("\r\n");
      } else {
        e.up_out->append(r.data);
      }
    }
    // The trailer section, bounded by the decoder, is held until it is whole: a chunked
    // upstream gets it after the last chunk (RFC 9112 §7.1.2).
    if (chunked) e.request_trailers.append(r.trailers);
    in_->consume(r.consumed);
    if (r.done) {
      e.request_complete = true;
      if (chunked) {
        e.up_out->append("0\r\n");
        e.up_out->append(e.request_trailers);
      }
      if (e.shadow != nullptr) e.shadow->end_body(e.request_trailers);
    }
    if (r.consumed == 0 && r.data.empty() && !r.done) break;
  }
  if (e.request_complete && !e.tunnel && !e.route_timer.armed() && !e.response_complete) {
    uint32_t timeout = e.match.target ? e.match.target->timeout_ms : 0;
    if (timeout > 0) e.route_timer.arm(timeout);
  }
  flush_upstream();
}

bool HttpConnection::flush_upstream() {
  if (!exchange_ || !exchange_->upstream) return false;
  Exchange& e = *exchange_;
  net::Buffer* out = e.up_out.get();
  while (out && !out->empty()) {
    std::string_view data = out->readable();
    ssize_t n = e.upstream->io().write(data.data(), data.size());
    if (n > 0) e.cluster->stats().upstream_cx_tx_bytes_total.add(static_cast<uint64_t>(n));
    if (n > 0) {
      out->consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    upstream_failed("connection termination", "UC", !e.response_head_sent);
    return false;
  }
  if (e.request_complete) {
    if (e.tunnel && !e.request_sent) half_close_upstream();
    e.request_sent = true;
  }
  // Room again upstream: pull more of the request body that waited in the kernel.
  if (!e.request_complete && phase_ == Phase::kExchange) {
    if (in_ && !in_->empty()) {
      forward_request_body();
    } else {
      read_downstream();
    }
  }
  return exchange_ != nullptr;
}

// ---------------------------------------------------------------------------------------------
// Upstream response.

void HttpConnection::read_upstream(bool upstream_hup) {
  while (exchange_ && exchange_->upstream) {
    Exchange& e = *exchange_;
    if (out_ && out_->size() >= kWatermark) return;  // downstream is slow: hold the upstream
    if (!e.up_in) e.up_in = worker_.buffers().take();
    if (e.up_in->writable() == 0) {
      if (e.response.status != 0) return;  // body bytes wait for downstream room
      e.up_in->ensure_writable(4096);
    }
    size_t asked = e.up_in->writable();
    ssize_t n = e.upstream->io().read(e.up_in->write_ptr(), asked);
    if (n > 0) e.cluster->stats().upstream_cx_rx_bytes_total.add(static_cast<uint64_t>(n));
    if (n > 0) {
      e.up_in->commit(static_cast<size_t>(n));
      e.last_activity_ms = worker_.loop().now_ms();
      upstream::UpstreamConnection* reading = e.upstream.get();
      bool tls = reading->is_tls();
      process_upstream_input();
      // Short read: the socket is drained (see read_downstream), unless that exchange ended or
      // the upstream hung up, in which case the loop re-checks what to read next.
      // (TLS may hold decrypted bytes the socket no longer signals: read until it says so.)
      if (static_cast<size_t>(n) < asked && !upstream_hup && !tls &&
          (!exchange_ || exchange_->upstream.get() == reading)) {
        return;
      }
      if (!exchange_ || exchange_->upstream.get() != reading) return;
      continue;
    }
    if (n == 0) {
      on_upstream_eof();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    upstream_failed("connection termination", "UC", !e.response_head_sent);
    return;
  }
}

void HttpConnection::process_upstream_input() {
  // Everything one upstream read produces (head and body) leaves in one send.
  corked_ = true;
  process_upstream_bytes();
  corked_ = false;
  if (send_pending()) release_buffers_if_idle();
}

void HttpConnection::process_upstream_bytes() {
  Exchange& e = *exchange_;
  if (!e.response_head_sent) {
    for (;;) {
      http::ParseResult r =
          e.response_parser.parse(e.up_in->readable(), e.head_request, e.response);
      if (r.status == http::ParseStatus::kIncomplete) return;
      if (r.status == http::ParseStatus::kError) {
        upstream::UpstreamConnection::destroy(std::move(e.upstream));
        send_local_reply(502, "upstream sent an invalid response", "UPE");
        return;
      }
      e.up_in->consume(r.consumed);
      e.response_parser.reset();
      if (e.response.status >= 100 && e.response.status < 200 &&
          !(e.upgrade && e.response.status == 101)) {
        if (e.response.status == 101) {
          // A 101 to a request that asked for no upgrade: the upstream switched protocols on
          // its own, and nothing it sends next is HTTP (the connection is not pooled).
          upstream::UpstreamConnection::destroy(std::move(e.upstream));
          send_local_reply(502, "upstream sent an invalid response", "UPE");
          return;
        }
        // Interim responses (we never forwarded Expect) are dropped.
        e.response.status = 0;
        if (e.up_in->empty()) return;
        continue;
      }
      break;
    }
    on_response_head();
    if (!exchange_ || phase_ == Phase::kClosed) return;
  }
  forward_response_body();
}

void HttpConnection::on_response_head() {
  Exchange& e = *exchange_;
  e.upstream_service_ms = static_cast<int64_t>(worker_.loop().now_ms() - e.upstream_start_ms);
  e.status = e.response.status;
  if (e.upgrade) {
    if (e.response.status == 101) {
      if (!switches_to_requested_protocol(e.response, e.request.upgrade_protocol)) {
        upstream::UpstreamConnection::destroy(std::move(e.upstream));
        send_local_reply(502, "upstream sent an invalid response", "UPE");  // and closes
        return;
      }
      start_tunnel();
      return;
    }
    // The upstream declined the upgrade: what the client sent behind its request was meant
    // for the tunnel (or smuggled), never a next request. Close after this answer, as Envoy.
    close_after_response_ = true;
  }
  e.response_body.reset(e.response.framing, e.response.content_length);
  e.upstream_reusable = e.response.keep_alive;
  if (!e.request_complete) {
    // The upstream answered before the whole request arrived: the rest cannot be forwarded on
    // this connection afterwards, and the downstream stream is ambiguous: close both after this.
    e.upstream_reusable = false;
    close_after_response_ = true;
  }
  bool http10 = e.request.version_minor == 0;
  bool body_allowed = !e.head_request && e.response.status != 204 && e.response.status != 304;
  e.response_chunked = false;
  e.response_until_close = false;
  if (body_allowed) {
    if (e.response.framing == http::BodyFraming::kChunked) {
      if (http10) {
        e.response_until_close = true;
      } else {
        e.response_chunked = true;
      }
    } else if (e.response.framing == http::BodyFraming::kUntilClose) {
      if (http10) {
        e.response_until_close = true;
      } else {
        e.response_chunked = true;
      }
    }
  }
  if (e.response_until_close) close_after_response_ = true;
  ResponseHeadContext ctx = proxied_head_context(e);
  ctx.chunked = e.response_chunked;
  ctx.close = close_after_response_ || peer_eof_ || worker_.draining();
  ctx.http10 = http10;
  ctx.keep_alive_http10 = http10 && e.request.keep_alive;
  std::string& out = e.scratch;
  build_response_head(ctx, out);
  write_downstream(out);
  if (phase_ == Phase::kClosed) return;
  e.response_head_sent = true;
  if (e.response.framing == http::BodyFraming::kNone) {
    e.response_complete = true;
  }
}

// What every proxied response head is built from: the upstream's head, the route's header
// edits and the request's facts for their %COMMAND%s.
ResponseHeadContext HttpConnection::proxied_head_context(Exchange& e) {
  ResponseHeadContext ctx;
  ctx.response = &e.response;
  ctx.target = e.match.target;
  ctx.server_name = e.config->snapshot->module.server_name;
  ctx.upstream_service_ms = e.upstream_service_ms;
  e.context.upstream_address = e.upstream_host;
  ctx.request_context = &e.context;
  ctx.set_fields = e.cors_fields;
  return ctx;
}

// The upstream accepted the upgrade: answer 101 and relay bytes both ways, with the same
// back-pressure as bodies, until one side closes. The route timeout no longer applies; the
// route's idle_timeout_ms (else the listener idle timeout) ends a silent tunnel.
void HttpConnection::start_tunnel() {
  Exchange& e = *exchange_;
  e.tunnel = true;
  stats_->downstream_cx_upgrades_total.inc();
  stats_->downstream_cx_upgrades_active.add(1);
  e.counted_upgrade = true;
  e.route_timer.cancel();
  e.upstream_reusable = false;
  close_after_response_ = true;
  e.response_chunked = false;
  e.response_until_close = true;
  e.request_complete = false;
  e.request_sent = false;  // now means: the client's FIN has been passed on
  e.request_body.reset(http::BodyFraming::kUntilClose, 0);
  e.response_body.reset(http::BodyFraming::kUntilClose, 0);
  ResponseHeadContext ctx = proxied_head_context(e);
  ctx.upgrade = http::find_header(e.response.headers, "upgrade");  // the one asked for
  std::string& out = e.scratch;
  build_response_head(ctx, out);
  write_downstream(out);
  if (phase_ == Phase::kClosed) return;
  e.response_head_sent = true;
  if (e.stream_idle_ms == 0) e.stream_idle_ms = static_cast<uint32_t>(idle_timeout_ms());
  e.last_activity_ms = worker_.loop().now_ms();
  if (e.stream_idle_ms > 0) e.idle_timer.arm(e.stream_idle_ms);
  // Bytes the client sent after its request head are the first tunnel bytes.
  forward_request_body();
}

void HttpConnection::half_close_upstream() {
  Exchange& e = *exchange_;
  if (e.upstream && e.upstream->fd() >= 0) e.upstream->io().shutdown_write();
}

void HttpConnection::forward_response_body() {
  if (phase_ == Phase::kClosed) return;
  Exchange& e = *exchange_;
  while (!e.response_complete && e.up_in && !e.up_in->empty()) {
    if (out_ && out_->size() >= kWatermark) break;
    http::DecodeResult r = e.response_body.decode(e.up_in->readable());
    if (r.error) {
      e.flags = "UPE";
      e.upstream_reusable = false;
      reset_exchange();
      return;
    }
    if (!r.data.empty()) {
      e.bytes_sent += r.data.size();
      if (!e.head_request) {
        if (e.response_chunked) {
          char size_line[24];
          auto [p, ec] = std::to_chars(size_line, size_line + 16, r.data.size(), 16);
          *p++ = '\r';
          *p++ = '\n';
          write_downstream(std::string_view(size_line, static_cast<size_t>(p - size_line)));
          write_downstream(r.data);
          write_downstream("\r\n");
        } else {
          write_downstream(r.data);
        }
      }
    }
    e.up_in->consume(r.consumed);
    if (phase_ == Phase::kClosed) return;
    if (r.done) {
      e.response_complete = true;
      break;
    }
    if (r.consumed == 0) break;
  }
  if (e.response_complete && phase_ != Phase::kClosed) {
    if (e.response_chunked) write_downstream("0\r\n\r\n");
    // Bytes after a complete response (HEAD/204/304 extras, or a pipelined surprise) mean the
    // upstream connection is out of sync: never pool it.
    if (e.up_in && !e.up_in->empty()) e.upstream_reusable = false;
    finish_exchange();
  }
}

void HttpConnection::on_upstream_eof() {
  Exchange& e = *exchange_;
  e.upstream_reusable = false;
  if (e.response.status == 0) {
    upstream_failed("connection termination", "UC", true);
    return;
  }
  if (e.response_body.framing() == http::BodyFraming::kUntilClose) {
    e.response_complete = true;
    if (e.response_chunked) write_downstream("0\r\n\r\n");
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    finish_exchange();
    return;
  }
  if (!e.response_complete) {
    // Truncated body: close without a final chunk so the client sees the failure.
    e.flags = "UC";
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    reset_exchange();
  }
}

void HttpConnection::on_stream_idle_timeout() {
  if (!exchange_ || phase_ == Phase::kClosed) return;
  Exchange& e = *exchange_;
  uint32_t idle = e.stream_idle_ms;
  uint64_t quiet = worker_.loop().now_ms() - e.last_activity_ms;
  if (idle == 0) return;
  if (quiet < idle) {
    e.idle_timer.arm(idle - quiet);
    return;
  }
  upstream::UpstreamConnection::destroy(std::move(e.upstream));
  if (!e.response_head_sent) {
    // Envoy's stream idle timeout: 408 before any response header, a reset after.
    close_after_response_ = true;
    send_local_reply(408, "stream timeout", "SI");
  } else {
    e.flags = "SI";
    reset_exchange();
  }
}

// The route timeout (which spans the whole response, as Envoy's) or grpc-timeout expired: a 504
// (DEADLINE_EXCEEDED for gRPC) before the response head, else the response still coming is cut.
void HttpConnection::on_timeout() {
  if (!exchange_ || phase_ == Phase::kClosed) return;
  Exchange& e = *exchange_;
  if (e.response_complete) return;
  if (e.cluster) e.cluster->stats().upstream_rq_timeout.inc();
  if (!e.response_head_sent) {
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    send_local_reply(504, "upstream request timeout", "UT");
    return;
  }
  end_timed_out_response();
}

// A timeout after the response head: a gRPC call ends with DEADLINE_EXCEEDED where the client
// can see it (a gRPC-Web trailer frame, or chunked trailers for a client that takes them);
// anything else can only be cut by closing the connection.
void HttpConnection::end_timed_out_response() {
  Exchange& e = *exchange_;
  e.flags = "UT";
  const bool web = grpc_web_.translating();
  const bool grpc_end =
      h2_mode_ && e.response_chunked && !e.head_request && (web || (e.grpc && h2_trailers_wanted_));
  if (!grpc_end) {
    reset_exchange();
    return;
  }
  upstream::UpstreamConnection::destroy(std::move(e.upstream));
  release_h2();
  if (!e.request_complete) close_after_response_ = true;
  e.response_complete = true;
  if (web) {
    h2_web_out_.clear();
    grpc_web_.encode_trailers(deadline_exceeded_trailers(), h2_web_out_);
    h2_write_body(h2_web_out_);
    write_downstream("0\r\n\r\n");
  } else {
    write_downstream("0\r\ngrpc-status: 4\r\ngrpc-message: upstream request timeout\r\n\r\n");
  }
  if (phase_ != Phase::kClosed) finish_exchange();
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 upstream (cluster spec http2): the exchange rides on a connection this worker shares
// among its downstream connections and streams. The request body streams into submit_data with
// the same back-pressure as the HTTP/1.1 path (in_ stays full while the stream's queue is), and
// response bytes are acknowledged upstream only once out_ is below the watermark.

void HttpConnection::h2_connect(const upstream::Http2Upstream* avoid) {
  UpstreamFailure failure;
  h2_ = acquire_h2_upstream(*exchange_, worker_.loop(), avoid, failure);
  if (h2_ == nullptr) {
    send_local_reply(503, failure.body, failure.flags);
    return;
  }
  h2_->wait(this);
}

void HttpConnection::on_h2_ready() {
  if (phase_ == Phase::kClosed || !exchange_ || h2_ == nullptr || h2_stream_ >= 0) return;
  Exchange& e = *exchange_;
  e.upstream_local.assign(h2_->local_address());
  const http::Http2Request request = h2_request(e, h2_authority_, h2_path_, h2_fields_);
  bool end = e.request_complete && !h2_replaying_;
  upstream::Http2Upstream* on = h2_;
  h2_stream_ = on->submit_request(request, end, this);
  if (h2_stream_ < 0) {
    // Full after all, or going away: nothing was sent, take another connection.
    h2_ = nullptr;
    h2_connect(on);
    return;
  }
  h2_end_sent_ = end;
  if (end) {
    e.request_sent = true;
    uint32_t timeout = e.match.target ? e.match.target->timeout_ms : 0;
    if (timeout > 0 && !e.route_timer.armed()) e.route_timer.arm(timeout);
    return;
  }
  h2_forward_request_body();
  // Reading stopped once in_ filled up while we waited for the connection.
  if (phase_ == Phase::kExchange && exchange_ && !exchange_->request_complete && read_blocked_) {
    read_downstream();
  }
}

void HttpConnection::on_h2_connect_failed(std::string_view reason) {
  h2_ = nullptr;
  if (phase_ == Phase::kClosed || !exchange_) return;
  send_local_reply(503, connect_failure_body(*exchange_, reason), "UF");
}

void HttpConnection::h2_forward_request_body() {
  if (phase_ == Phase::kClosed || !exchange_) return;
  Exchange& e = *exchange_;
  if (h2_ == nullptr || h2_stream_ < 0 || h2_end_sent_ || h2_req_paused_) return;
  h2_body_.clear();
  if (h2_replaying_) {
    // A refused stream's retry: what the first stream sent goes first.
    h2_replaying_ = false;
    h2_body_.swap(e.h2_replay_body);
  }
  while (!e.request_complete && in_ && !in_->empty() && h2_body_.size() < kWatermark) {
    http::DecodeResult r = e.request_body.decode(in_->readable());
    if (r.error) {
      release_h2();
      close_after_response_ = true;
      if (e.response_head_sent) {
        reset_exchange();
      } else {
        e.request_complete = true;
        send_local_reply(400, r.reason, "DPE");
      }
      return;
    }
    bool web_error = false;
    if (!r.data.empty()) {
      e.last_activity_ms = worker_.loop().now_ms();
      e.bytes_received += r.data.size();
      if (e.shadow != nullptr) e.shadow->feed(r.data);
      if (grpc_web_.active()) {
        web_error = !grpc_web_.decode(r.data, h2_body_);
      } else {
        h2_body_.append(r.data);
      }
    }
    // The trailer section goes to the HTTP/2 upstream as a trailing HEADERS frame (and to a
    // chunked mirror as it is).
    e.request_trailers.append(r.trailers);
    in_->consume(r.consumed);
    if (r.done) {
      e.request_complete = true;
      keep_h2_request_trailers(e, std::string_view(e.request_trailers));
      if (e.shadow != nullptr) e.shadow->end_body(e.request_trailers);
      web_error = web_error || !grpc_web_.finish();
    }
    if (web_error) {
      // Not valid base64 (gRPC-Web text): the upstream must not see a mangled call.
      release_h2();
      close_after_response_ = true;
      if (e.response_head_sent) {
        reset_exchange();
      } else {
        e.request_complete = true;
        send_local_reply(400, "invalid gRPC-Web request body", "DPE");
      }
      return;
    }
    if (r.consumed == 0 && r.data.empty() && !r.done) break;
  }
  bool end = e.request_complete;
  if (h2_body_.empty() && !end) return;
  if (!h2_body_.empty() && !e.retried && !e.response_head_sent && h2_can_replay_) {
    h2_can_replay_ = keep_for_replay(e, h2_body_);
  }
  // on_h2_send_ready may run inside submit_data (its flush drained the queue): a kFull it
  // already answered must not pause us.
  h2_send_ready_seen_ = false;
  http::SubmitResult r = end ? h2_send_request_end(e, *h2_, h2_stream_, h2_body_)
                             : h2_->submit_data(h2_stream_, h2_body_, false);
  h2_body_.clear();
  if (end) {
    h2_end_sent_ = true;
    e.request_sent = true;
    uint32_t timeout = e.match.target ? e.match.target->timeout_ms : 0;
    if (timeout > 0 && !e.route_timer.armed() && !e.response_complete) e.route_timer.arm(timeout);
  }
  h2_req_paused_ = r == http::SubmitResult::kFull && !h2_send_ready_seen_;
}

void HttpConnection::on_h2_send_ready() {
  h2_send_ready_seen_ = true;
  if (phase_ == Phase::kClosed || !exchange_ || !h2_req_paused_) return;
  h2_req_paused_ = false;
  h2_forward_request_body();
  // Reading stopped while in_ was full: bytes may wait in the kernel that epoll will not
  // report again.
  if (phase_ == Phase::kExchange && exchange_ && !exchange_->request_complete && read_blocked_) {
    read_downstream();
  }
}

void HttpConnection::on_h2_response_head(http::ResponseHead&& head, bool end_stream) {
  if (phase_ == Phase::kClosed || !exchange_ || h2_ == nullptr || head.status < 200) return;
  Exchange& e = *exchange_;
  e.response.take(head);  // the session gets the last response's buffers back
  if (grpc_web_.active()) grpc_web_.rewrite_response(e.response, end_stream);
  e.upstream_service_ms = static_cast<int64_t>(worker_.loop().now_ms() - e.upstream_start_ms);
  e.status = e.response.status;
  e.last_activity_ms = worker_.loop().now_ms();
  if (!e.request_complete) close_after_response_ = true;  // as for an HTTP/1.1 upstream
  if (bridge_ && !end_stream) {
    // gRPC HTTP/1.1 bridge: the head waits for the trailers, which decide its status.
    bridge_holding_ = true;
    return;
  }
  if (grpc_web_.holding()) return;  // a plain answer to gRPC-Web: its body becomes the status
  send_h2_response_head(end_stream);
}

void HttpConnection::send_h2_response_head(bool end_stream) {
  Exchange& e = *exchange_;
  bool http10 = e.request.version_minor == 0;
  bool body_allowed = !e.head_request && e.response.status != 204 && e.response.status != 304;
  e.response_chunked = false;
  e.response_until_close = false;
  // HTTP/2 needs no content-length; HTTP/1.1 does, or chunks (a gRPC trailers-only answer ends
  // with its head and has neither: it gets an empty chunked body).
  bool length_known = e.response.framing == http::BodyFraming::kContentLength ||
                      !http::find_header(e.response.headers, "content-length").empty();
  if (body_allowed && !length_known) {
    if (http10) {
      e.response_until_close = true;
      close_after_response_ = true;
    } else {
      e.response_chunked = true;
    }
  }
  ResponseHeadContext ctx = proxied_head_context(e);
  ctx.chunked = e.response_chunked;
  ctx.close = close_after_response_ || peer_eof_ || worker_.draining();
  ctx.http10 = http10;
  ctx.keep_alive_http10 = http10 && e.request.keep_alive;
  std::string& out = e.scratch;
  build_response_head(ctx, out);
  corked_ = true;
  write_downstream(out);
  e.response_head_sent = true;
  if (end_stream && phase_ != Phase::kClosed) h2_response_end(false);
  corked_ = false;
  send_pending();
}

void HttpConnection::on_h2_data(std::string_view bytes, bool end_stream) {
  if (phase_ == Phase::kClosed || !exchange_ || h2_ == nullptr) return;
  Exchange& e = *exchange_;
  e.last_activity_ms = worker_.loop().now_ms();
  if (bridge_holding_) {
    bridge_data(bytes, end_stream);
    return;
  }
  if (grpc_web_.holding()) {
    grpc_web_.hold_data(bytes);
    if (!bytes.empty()) h2_->consume(h2_stream_, bytes.size());
    if (end_stream) finish_web_hold();
    return;
  }
  corked_ = true;
  if (!bytes.empty()) {
    std::string_view out = bytes;
    if (grpc_web_.translating()) {
      h2_web_out_.clear();
      grpc_web_.encode_data(bytes, h2_web_out_);
      out = h2_web_out_;
    }
    h2_write_body(out);
  }
  if (end_stream && phase_ != Phase::kClosed) h2_response_end(false);
  corked_ = false;
  if (!send_pending() || bytes.empty() || h2_ == nullptr || h2_stream_ < 0) return;
  // A client that stops reading stalls the upstream at its stream window.
  if (out_ && out_->size() >= kWatermark) {
    h2_resp_unacked_ += bytes.size();
  } else {
    h2_->consume(h2_stream_, bytes.size());
  }
}

void HttpConnection::on_h2_trailers(const http::HeaderList& trailers) {
  if (phase_ == Phase::kClosed || !exchange_ || h2_ == nullptr) return;
  Exchange& e = *exchange_;
  if (bridge_holding_) {
    corked_ = true;
    bridge_release(&trailers);
    corked_ = false;
    send_pending();
    return;
  }
  if (grpc_web_.holding()) {
    finish_web_hold();
    return;
  }
  bool written = false;
  corked_ = true;
  if (grpc_web_.translating()) {
    // gRPC-Web: the trailers are the body's last frame.
    h2_web_out_.clear();
    grpc_web_.encode_trailers(trailers, h2_web_out_);
    h2_write_body(h2_web_out_);
  } else if (e.response_chunked && !e.head_request) {
    // Chunked trailers (RFC 9112 §7.1.2) only for a client that said it takes them.
    std::string& out = e.scratch;
    out.assign("0\r\n");
    if (h2_trailers_wanted_) {
      for (const auto& h : trailers) {
        out.append(h.name);
        out.append(": ");
        out.append(h.value);
        out.append("\r\n");
      }
    }
    out.append("\r\n");
    write_downstream(out);
    written = true;
  }
  if (phase_ != Phase::kClosed) h2_response_end(written);
  corked_ = false;
  send_pending();
}

// A plain (non-gRPC) answer to a gRPC-Web request ended: it goes out as a bodiless head with
// the status its body and HTTP status stand for.
void HttpConnection::finish_web_hold() {
  grpc_web_.finish_hold(exchange_->response);
  send_h2_response_head(true);
}

// gRPC HTTP/1.1 bridge (Module enable_grpc_http11_bridge, Envoy's grpc_http1_bridge): the body
// of a gRPC response to an HTTP/1.1 client is held, up to kGrpcBridgeMaxResponseBytes, until
// the upstream ends it; the head then goes out with content-length, the trailers' grpc-status
// and grpc-message, and 503 instead of the upstream's status when grpc-status is not 0.
void HttpConnection::bridge_data(std::string_view bytes, bool end_stream) {
  Exchange& e = *exchange_;
  if (bridge_body_.size() + bytes.size() > kGrpcBridgeMaxResponseBytes) {
    release_h2();
    if (!e.request_complete) close_after_response_ = true;
    send_local_reply(500, "response too large for the gRPC HTTP/1.1 bridge", "-");
    return;
  }
  bridge_body_.append(bytes);
  // Held here, not queued for the client: the upstream may send more right away.
  if (!bytes.empty() && h2_ != nullptr && h2_stream_ >= 0) h2_->consume(h2_stream_, bytes.size());
  if (!end_stream) return;
  corked_ = true;
  bridge_release(nullptr);
  corked_ = false;
  send_pending();
}

void HttpConnection::bridge_release(const http::HeaderList* trailers) {
  Exchange& e = *exchange_;
  bridge_holding_ = false;
  http::HeaderList set(e.cors_fields.begin(), e.cors_fields.end());
  if (trailers != nullptr) {
    bool has_status = false;
    std::string_view status = http::find_header(*trailers, "grpc-status", &has_status);
    if (has_status) {
      uint32_t code = 0;
      auto [end, ec] = std::from_chars(status.data(), status.data() + status.size(), code);
      if (ec != std::errc() || end != status.data() + status.size() || code != 0) {
        e.response.status = 503;
      }
      set.push_back({"grpc-status", status});
    }
    bool has_message = false;
    std::string_view message = http::find_header(*trailers, "grpc-message", &has_message);
    if (has_message) set.push_back({"grpc-message", message});
  }
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, bridge_body_.size());
  set.push_back({"content-length", std::string_view(digits, static_cast<size_t>(end - digits))});
  e.status = e.response.status;
  e.response_chunked = false;
  e.response_until_close = false;
  bool http10 = e.request.version_minor == 0;
  ResponseHeadContext ctx = proxied_head_context(e);
  ctx.set_fields = set;
  ctx.close = close_after_response_ || peer_eof_ || worker_.draining();
  ctx.http10 = http10;
  ctx.keep_alive_http10 = http10 && e.request.keep_alive;
  std::string& out = e.scratch;
  build_response_head(ctx, out);
  write_downstream(out);
  e.response_head_sent = true;
  if (phase_ == Phase::kClosed) return;
  h2_write_body(bridge_body_);
  if (phase_ != Phase::kClosed) h2_response_end(true);
}

void HttpConnection::end_bridge() {
  bridge_ = false;
  bridge_holding_ = false;
  bridge_body_.clear();
  // An idle connection keeps no large buffer (a bridged body can reach 1 MiB).
  if (bridge_body_.capacity() > 16 * 1024) std::string().swap(bridge_body_);
}

// Response body bytes to the client, in chunks when we chunk.
void HttpConnection::h2_write_body(std::string_view bytes) {
  Exchange& e = *exchange_;
  if (bytes.empty() || e.head_request) return;
  e.bytes_sent += bytes.size();
  if (e.response_chunked) {
    char size_line[24];
    auto [p, ec] = std::to_chars(size_line, size_line + 16, bytes.size(), 16);
    *p++ = '\r';
    *p++ = '\n';
    write_downstream(std::string_view(size_line, static_cast<size_t>(p - size_line)));
    write_downstream(bytes);
    write_downstream("\r\n");
  } else {
    write_downstream(bytes);
  }
}

// The upstream response ended (END_STREAM on its head or data, or trailers).
void HttpConnection::h2_response_end(bool trailers_written) {
  Exchange& e = *exchange_;
  e.response_complete = true;
  if (e.response_chunked && !trailers_written && !e.head_request) write_downstream("0\r\n\r\n");
  if (phase_ == Phase::kClosed) return;
  if (h2_end_sent_ && h2_ != nullptr) {
    // Both sides ended: the stream closes right after this callback, and on_h2_close finishes
    // the exchange (it carries no stream id, so it must not find the next exchange waiting).
    h2_finishing_ = true;
    return;
  }
  // Answered before the client finished sending: the rest is not wanted upstream, and the
  // downstream cannot be read in sync any more.
  release_h2();
  close_after_response_ = true;
  finish_exchange();
}

void HttpConnection::on_h2_close(uint32_t error_code) {
  upstream::Http2Upstream* was = h2_;
  h2_ = nullptr;
  h2_stream_ = -1;
  h2_resp_unacked_ = 0;
  if (phase_ == Phase::kClosed || !exchange_) return;
  Exchange& e = *exchange_;
  if (h2_finishing_) {
    h2_finishing_ = false;
    finish_exchange();
    return;
  }
  if (!e.response_head_sent) {
    if (error_code == http::kH2RefusedStream && !e.retried && h2_can_replay_) {
      // Never processed upstream (RFC 9113 §8.7): replay it once on another connection, with
      // the body bytes it had sent (kept up to 64 KiB) before what is still to come.
      e.retried = true;
      e.cluster->stats().upstream_rq_retry.inc();
      h2_replaying_ = !e.h2_replay_body.empty();
      h2_end_sent_ = false;
      h2_req_paused_ = false;
      h2_connect(was);
      return;
    }
    std::string body(kResetBeforeHeaders);
    body.append(error_code == http::kH2Cancel ? "connection termination" : "remote reset");
    close_after_response_ = close_after_response_ || !e.request_complete;
    send_local_reply(503, body, error_code == http::kH2Cancel ? "UC" : "UR");
    return;
  }
  if (!e.response_complete) {
    // Mid-response: the client must not take a truncated response for a whole one.
    e.flags = "UR";
    reset_exchange();
  }
}

// Detaches from the HTTP/2 upstream: a stream still open there is reset (CANCEL).
void HttpConnection::release_h2() {
  upstream::Http2Upstream* h2 = h2_;
  int32_t stream = h2_stream_;
  h2_ = nullptr;
  h2_stream_ = -1;
  h2_finishing_ = false;
  h2_end_sent_ = false;
  h2_req_paused_ = false;
  h2_can_replay_ = true;
  h2_replaying_ = false;
  h2_resp_unacked_ = 0;
  if (h2 == nullptr) return;
  if (stream >= 0) {
    h2->abandon(stream);
  } else {
    h2->cancel_wait(this);
  }
}

// ---------------------------------------------------------------------------------------------
// Completion and lifecycle.

void HttpConnection::finish_exchange() {
  if (phase_ == Phase::kClosed || !exchange_) return;
  Exchange& e = *exchange_;
  e.route_timer.cancel();
  e.connect_timer.cancel();
  e.idle_timer.cancel();
  e.deadline_timer.cancel();
  release_h2();
  h2_mode_ = false;
  end_bridge();
  if (e.upstream) {
    bool reusable = e.upstream_reusable && e.request_complete && e.response_complete &&
                    (!e.up_out || e.up_out->empty()) && !worker_.draining();
    if (reusable) {
      e.cluster->release(std::move(e.upstream));
    } else {
      upstream::UpstreamConnection::destroy(std::move(e.upstream));
    }
  }
  uint64_t now_us = worker_.loop().now_us();
  observe::ListenerStats& stats = *stats_;
  stats.count_response(e.status);
  if (e.start_us != 0) stats.downstream_rq_time.record_us(now_us - e.start_us);
  if (e.route_stats != nullptr) {
    e.route_stats->count_response(e.status);
    e.route_stats->rq_time.record_us(now_us - e.start_us);
  }
  if (e.cluster && e.upstream_start_us != 0) {
    // Like Envoy's router, a 503/504 we answer for a failed upstream attempt is charged to the
    // cluster too.
    observe::ClusterStats& cs = e.cluster->stats();
    cs.count_response(e.status);
    cs.upstream_rq_time.record_us(now_us - e.upstream_start_us);
  }
  log_exchange();
  recycle_exchange();
  phase_ = Phase::kIdle;
  if (close_after_response_ || peer_eof_) {
    // Pipelined requests after a closing response are not served (RFC 9112 §9.6).
    begin_close_after_flush();
    return;
  }
  arm_idle_timer();
  if (in_ && !in_->empty()) {
    process_input();
  } else {
    release_buffers_if_idle();
  }
  // We may have stopped reading while busy; edge-triggered epoll will not report again bytes
  // that already wait in the kernel, so read them now if we are waiting for more input.
  if ((phase_ == Phase::kIdle || phase_ == Phase::kHead) && (read_blocked_ || peer_hup_)) {
    read_downstream();
  }
}

void HttpConnection::log_exchange() {
  const Exchange& e = *exchange_;
  const auto& cfg = e.config ? e.config : worker_.config();
  if (!cfg || !cfg->access_log) return;
  observe::AccessLogRecord r;
  r.start_unix_ms = e.start_unix_ms;
  r.method = e.request.method;
  r.path = e.request.target;
  r.original_path = e.original_path;
  r.protocol = e.request.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  r.authority = e.request.authority;
  r.request_headers = &e.request.headers;
  // What the upstream got (or would have) as x-forwarded-for; the client's list alone when the
  // request was refused before the gateway read its configuration.
  thread_local std::string forwarded_for;
  forwarded_for.clear();
  if (e.config && e.config->snapshot) {
    append_forwarded_for(e.request.headers, e.config->snapshot->module.use_remote_address,
                         peer_text_, forwarded_for);
    r.forwarded_for = &forwarded_for;
  }
  r.response_headers = e.response.status ? &e.response.headers : nullptr;
  r.response_code = e.status;
  r.response_flags = e.flags;
  r.bytes_received = e.bytes_received;
  r.bytes_sent = e.bytes_sent;
  r.duration_ms = worker_.loop().now_ms() - e.start_ms;
  r.upstream_service_time_ms = e.upstream_service_ms;
  r.upstream_host = e.upstream_host;
  r.upstream_local_address = e.upstream_local;
  r.upstream_transport_failure_reason = e.transport_failure;
  if (tls_) r.requested_server_name = tls_->sni();
  if (e.match.route != nullptr && e.config &&
      e.match.route->stats_index < e.config->snapshot->route_stats_names.size()) {
    r.route_name = e.config->snapshot->route_stats_names[e.match.route->stats_index];
  }
  r.upstream_cluster = e.cluster ? std::string_view(e.cluster->spec().name) : std::string_view();
  r.downstream_remote_address = peer_text_;
  r.downstream_local_address = local_text_;
  r.request_id = e.request_id;
  cfg->access_log->append(r, worker_.access_log_buffer());
  worker_.maybe_flush_access_log();
}

void HttpConnection::write_downstream(std::string_view bytes) {
  if (bytes.empty() || phase_ == Phase::kClosed) return;
  if (!corked_ && (!out_ || out_->empty())) {
    // Fast path: straight to the socket; only what the kernel refuses is buffered.
    ssize_t n = io().write(bytes.data(), bytes.size());
    if (n > 0) stats_->downstream_cx_tx_bytes_total.add(static_cast<uint64_t>(n));
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        if (exchange_) exchange_->flags = "DC";
        close_now();
        return;
      }
      n = 0;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    if (bytes.empty()) return;
  }
  if (!out_) out_ = worker_.buffers().take();
  out_->append(bytes);
}

bool HttpConnection::send_pending() {
  while (out_ && !out_->empty()) {
    std::string_view data = out_->readable();
    ssize_t n = io().write(data.data(), data.size());
    if (n > 0) {
      stats_->downstream_cx_tx_bytes_total.add(static_cast<uint64_t>(n));
      out_->consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    close_now();
    return false;
  }
  return true;
}

bool HttpConnection::flush_downstream() {
  if (!send_pending()) return false;
  if (out_ && !out_->empty()) return true;
  if (closing_) {
    start_lingering();
    return phase_ != Phase::kClosed;
  }
  // Room again downstream: resume the upstream body we held back.
  if (h2_ != nullptr && h2_stream_ >= 0 && h2_resp_unacked_ > 0) {
    size_t n = h2_resp_unacked_;
    h2_resp_unacked_ = 0;
    h2_->consume(h2_stream_, n);
  }
  if (exchange_ && exchange_->upstream && exchange_->response_head_sent) {
    forward_response_body();
    if (exchange_ && exchange_->upstream) read_upstream(true);
  }
  return phase_ != Phase::kClosed;
}

void HttpConnection::arm_idle_timer() {
  idle_since_ms_ = worker_.loop().now_ms();
  uint64_t idle = idle_timeout_ms();
  if (idle > 0 && !idle_timer_.armed()) idle_timer_.arm(idle);
}

void HttpConnection::begin_close_after_flush() {
  closing_ = true;
  if (!send_pending()) return;
  if (!out_ || out_->empty()) start_lingering();
}

void HttpConnection::start_lingering() {
  // Half-close our side so the response is delivered, then discard what the client still sends
  // for a short while: closing with unread bytes would make the kernel send RST, and the client
  // could lose the response we just wrote.
  if (phase_ == Phase::kLingering || phase_ == Phase::kClosed) return;
  phase_ = Phase::kLingering;
  io().shutdown_write();
  if (in_) in_->clear();
  if (peer_eof_) {
    close_now();
    return;
  }
  idle_timer_.arm(kLingerMs);
  read_downstream();
}

void HttpConnection::reset_exchange() {
  resetting_ = true;
  close_now();
}

void HttpConnection::close_now() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  idle_timer_.cancel();
  if (exchange_) {
    // The exchange itself stays until the deferred delete: callers up the stack may still hold
    // a reference to it. Everything that acts on it checks phase_ first.
    Exchange& e = *exchange_;
    e.route_timer.cancel();
    e.connect_timer.cancel();
    e.idle_timer.cancel();
    e.deadline_timer.cancel();
    // Aborted exchanges are logged too, those cut before any response with code 0 (Envoy's).
    // Closing is how HTTP/1.1 resets a request: ours (reset_exchange) or the client's.
    if (!e.response_complete && (e.status != 0 || e.counted_active)) {
      if (resetting_) {
        stats_->downstream_rq_tx_reset.inc();
      } else {
        stats_->downstream_rq_rx_reset.inc();
      }
      log_exchange();
    }
    end_active(e);
    release_h2();
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    e.drop_shadow();
  }
  stats_->downstream_cx_active.add(-1);
  if (http1_counted_) stats_->downstream_cx_http1_active.add(-1);
  if (tls_) {
    tls_->shutdown();  // best effort close_notify; the socket closes right after
    tls_.reset();
  }
  worker_.loop().remove(fd_);
  close(fd_);
  fd_ = -1;
  worker_.buffers().give(std::move(in_));
  worker_.buffers().give(std::move(out_));
  worker_.on_connection_close(this);
  HttpConnection* self = this;
  worker_.loop().defer([self] { delete self; });
}

void HttpConnection::release_buffers_if_idle() {
  if (phase_ != Phase::kIdle) return;
  if (in_ && in_->empty()) worker_.buffers().give(std::move(in_));
  if (out_ && out_->empty()) worker_.buffers().give(std::move(out_));
}

}  // namespace proxenos::proxy
