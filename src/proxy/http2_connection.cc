#include "proxy/http2_connection.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>

#include <openssl/sha.h>

#include "http/grpc.h"
#include "proxy/response_builder.h"
#include "proxy/shadow_request.h"
#include "proxy/upstream_exchange.h"

namespace proxenos::proxy {

namespace {

// Bytes read from the socket per call; the session copies what it keeps.
constexpr size_t kReadChunk = 16 * 1024;
// After our GOAWAY, how often we look whether the connection is done.
constexpr uint64_t kGoawayCloseMs = 5000;
// How long a request answered before it ended may still arrive (drained) before we reset it.
constexpr uint64_t kRequestDrainMs = 5000;

// Exchanges are reused per worker thread so their strings and vectors keep their capacity.
constexpr size_t kMaxPooledExchanges = 1024;
thread_local std::vector<std::unique_ptr<Exchange>> g_free_exchanges;

std::unique_ptr<Exchange> take_exchange(net::EventLoop& loop) {
  if (g_free_exchanges.empty()) return std::make_unique<Exchange>(loop);
  std::unique_ptr<Exchange> e = std::move(g_free_exchanges.back());
  g_free_exchanges.pop_back();
  return e;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

// RFC 6455 §4.2.2: base64(SHA-1(key + GUID)), what a 101 must carry for our key.
std::string websocket_accept(std::string_view key) {
  std::string text(key);
  text.append("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string out;
  http::base64_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest), out);
  return out;
}

void append_chunk_header(net::Buffer& out, size_t size) {
  char line[24];
  auto [p, ec] = std::to_chars(line, line + 16, size, 16);
  *p++ = '\r';
  *p++ = '\n';
  out.append(std::string_view(line, static_cast<size_t>(p - line)));
}

// The access-log fields of an HTTP/2 request known from its head and connection alone.
void fill_request_record(observe::AccessLogRecord& r, const http::RequestHead& request,
                         const Http2Connection& conn) {
  r.method = request.method;
  r.path = request.target;
  r.protocol = "HTTP/2";
  r.authority = request.authority;
  r.request_headers = &request.headers;
  r.requested_server_name = conn.sni();
  r.downstream_remote_address = conn.routing_input().peer;
  r.downstream_local_address = conn.routing_input().local;
}

}  // namespace

// =============================================================================================
// Http2Stream

Http2Stream::Http2Stream(Http2Connection& connection, int32_t id)
    : conn_(connection),
      worker_(connection.worker()),
      id_(id),
      e_(take_exchange(worker_.loop())),
      fields_(e_->h2_response_fields),
      h2_fields_(e_->h2_request_fields),
      h2_sent_(e_->h2_replay_body),
      route_timer_(worker_.loop(), [this] { on_timeout(); }),
      connect_timer_(worker_.loop(), [this] { on_connect_timeout(); }),
      idle_timer_(worker_.loop(), [this] { on_idle_timeout(); }),
      deadline_timer_(worker_.loop(), [this] { on_timeout(); }) {}

Http2Stream::~Http2Stream() {
  release_h2();
  upstream::UpstreamConnection::destroy(std::move(e_->upstream));
  worker_.buffers().give(std::move(e_->up_in));
  worker_.buffers().give(std::move(e_->up_out));
  e_->reset();
  if (g_free_exchanges.size() < kMaxPooledExchanges) g_free_exchanges.push_back(std::move(e_));
}

void Http2Stream::start(http::RequestHead&& head, bool end_stream) {
  Exchange& e = *e_;
  e.config = worker_.config();
  e.start_ms = worker_.loop().now_ms();
  e.start_us = worker_.loop().now_us();
  e.start_unix_ms = worker_.loop().now_unix_ms();
  observe::ListenerStats& stats = conn_.stats();
  stats.downstream_rq_total.inc();
  stats.downstream_rq_http2_total.inc();
  stats.downstream_rq_active.add(1);
  e.counted_active = true;
  e.request.take(head);  // the session builds a later head in this exchange's last buffers
  e.response.clear();    // a reused exchange still holds its last response
  e.head_request = e.request.method == "HEAD";
  e.request_complete = end_stream || e.request.framing == http::BodyFraming::kNone;
  chunked_request_ = e.request.framing == http::BodyFraming::kChunked;
  if (e.request.method == "CONNECT") {
    client_fin_ = end_stream;
    if (!e.request.upgrade) {
      // Plain CONNECT (a TCP tunnel to :authority) is not offered; Envoy without CONNECT
      // support answers it as a rejected upgrade.
      connect_ = true;
      stats.downstream_rq_ws_on_non_ws_route.inc();
      local_reply(403, "CONNECT not allowed", "UPE");
      return;
    }
    prepare_extended_connect();
  }
  grpc_ =
      !connect_ && http::is_grpc_content_type(http::find_header(e.request.headers, "content-type"));
  route();
}

// The extended CONNECT becomes the HTTP/1.1 upgrade request it stands for (as Envoy's codec
// does): GET with Upgrade: <:protocol>; route_exchange then applies allow_upgrade (403 without
// it) and writes Connection: upgrade. RFC 8441 clients send no Sec-WebSocket-Key (the
// :protocol pseudo-header replaces it), but an RFC 6455 server requires one: we make one up
// and check the upstream's Sec-WebSocket-Accept against it.
void Http2Stream::prepare_extended_connect() {
  Exchange& e = *e_;
  http::RequestHead& req = e.request;
  connect_ = true;
  req.method = "GET";
  // DATA frames are tunnel bytes, not a request body: the upgrade request itself has none.
  req.framing = http::BodyFraming::kNone;
  req.content_length = 0;
  chunked_request_ = false;
  e.request_complete = true;
  req.headers.push_back({"upgrade", req.upgrade_protocol});
  if (!http::iequals(req.upgrade_protocol, "websocket")) return;
  bool has_key = false;
  http::find_header(req.headers, "sec-websocket-key", &has_key);
  if (!has_key) {
    std::string nonce(16, '\0');
    for (size_t i = 0; i < nonce.size(); i += 8) {
      uint64_t r = worker_.random64();
      for (size_t j = 0; j < 8; ++j) nonce[i + j] = static_cast<char>(r >> (8 * j));
    }
    ws_key_.clear();
    http::base64_encode(nonce, ws_key_);
    key_generated_ = true;
    req.headers.push_back({"sec-websocket-key", ws_key_});
  }
  bool has_version = false;
  http::find_header(req.headers, "sec-websocket-version", &has_version);
  if (!has_version) req.headers.push_back({"sec-websocket-version", "13"});
}

void Http2Stream::route() {
  Exchange& e = *e_;
  if (std::optional<LocalReply> reply = route_exchange(worker_, e, conn_.routing_input())) {
    local_reply(reply->status, reply->body, reply->flags, reply->location);
    return;
  }
  e.up_out = worker_.buffers().take();
  const auto& shadow = e.match.route->shadow;
  if (shadow && !connect_ && shadow->cluster < e.config->clusters.size() &&
      worker_.draw_percent() < shadow->cumulative_weight) {
    // The mirror gets the HTTP/1.1 head the route built, as for HTTP/1.1 clients, and the body
    // as it arrives from the client.
    e.shadow = ShadowRequest::start(worker_, e.config->clusters[shadow->cluster], e.up_head,
                                    e.request.framing == http::BodyFraming::kChunked,
                                    e.request_complete, shadow->timeout_ms);
  }
  // An upgrade goes to the upstream over HTTP/1.1 even when the cluster speaks HTTP/2, as for
  // HTTP/1.1 clients.
  h2_mode_ = e.cluster->spec().http2 && !connect_;
  if (h2_mode_) {
    // HTTP/2 frames the body itself: up_out holds raw body bytes until the stream exists.
    chunked_request_ = false;
  } else {
    e.up_out->append(e.up_head);
  }
  const bool grpc_call =
      grpc_ || (!connect_ && e.config->snapshot->module.enable_grpc_web &&
                http::grpc_web_format(http::find_header(e.request.headers, "content-type")) !=
                    http::GrpcWebFormat::kNone);
  if (grpc_call) {
    // grpc-timeout bounds the whole call from now on, alongside the route timeout (whichever
    // fires first answers DEADLINE_EXCEEDED; gRPC-Web clients send it too).
    std::optional<uint64_t> ms =
        http::parse_grpc_timeout_ms(http::find_header(e.request.headers, "grpc-timeout"));
    if (ms && *ms > 0) deadline_timer_.arm(*ms);
  }
  if (e.request.expect_continue && !e.request_complete) {
    // We answer 100-continue ourselves (and never forward Expect), as for HTTP/1.1.
    conn_.session().submit_response(id_, 100, {}, false);
  }
  if (e.request_complete) arm_route_timer();
  e.stream_idle_ms = e.match.target->idle_timeout_ms;
  if (e.stream_idle_ms > 0) {
    e.last_activity_ms = worker_.loop().now_ms();
    // A route timer due sooner covers the exchange until the upstream is done (and then the
    // delivery): one timer per request, not two.
    if (!route_timer_.armed() || e.match.target->timeout_ms > e.stream_idle_ms) {
      idle_timer_.arm(e.stream_idle_ms);
    }
  }
  if (h2_mode_) {
    build_h2_request();
    if (grpc_web_.start(e.config->snapshot->module.enable_grpc_web, e.request.headers)) {
      grpc_web_.rewrite_request_fields(h2_fields_);
    }
    h2_connect(nullptr);
    return;
  }
  connect_upstream();
}

void Http2Stream::arm_route_timer() {
  uint32_t timeout = e_->match.target ? e_->match.target->timeout_ms : 0;
  if (timeout > 0 && !route_timer_.armed() && !e_->response_head_sent) route_timer_.arm(timeout);
}

// ---------------------------------------------------------------------------------------------
// Answers we give ourselves.

void Http2Stream::local_reply(int status, std::string_view body, std::string_view flags,
                              std::string_view location) {
  Exchange& e = *e_;
  if (closed_) return;
  if (e.response_head_sent) {
    reset_downstream(http::kH2InternalError, flags);
    return;
  }
  detach_upstream();
  e.flags = flags;
  e.response_head_sent = true;
  e.response_complete = true;
  discard_request();
  std::string_view server = e.config && e.config->snapshot
                                ? std::string_view(e.config->snapshot->module.server_name)
                                : std::string_view("envoy");
  std::string& storage = e.scratch;
  storage.clear();
  fields_.clear();
  std::string grpc_type;
  if (!connect_ && !e.cors_preflight) {
    // A malformed gRPC-Web body (DPE) keeps its plain 400, as Envoy's grpc_web filter answers.
    grpc_type = grpc_local_reply_content_type(
        e.request.headers, e.config && e.config->snapshot &&
                               e.config->snapshot->module.enable_grpc_web && flags != "DPE");
  }
  if (!grpc_type.empty()) {
    // Envoy answers a gRPC (or gRPC-Web) request it cannot route or proxy the gRPC way: HTTP
    // 200 and a trailers-only response carrying the mapped status.
    e.status = 200;
    e.response.clear();
    http::make_grpc_local_reply(local_reply_grpc_status(status, flags), body, grpc_type,
                                e.response);
    fields_ = e.response.headers;
    fields_.insert(fields_.end(), e.cors_fields.begin(), e.cors_fields.end());
    fields_.push_back({"date", http_date()});
    fields_.push_back({"server", server});
    conn_.session().submit_response(id_, 200, fields_, true);
    watch_delivery();
    return;
  }
  e.status = status;
  size_t length = body.empty() ? 0 : body.size() + 1;
  append_uint(storage, length);
  if (!location.empty()) fields_.push_back({"location", location});
  fields_.push_back({"content-length", storage});
  if (length > 0) fields_.push_back({"content-type", "text/plain"});
  fields_.insert(fields_.end(), e.cors_fields.begin(), e.cors_fields.end());
  fields_.push_back({"date", http_date()});
  fields_.push_back({"server", server});
  bool end = length == 0 || e.head_request;
  conn_.session().submit_response(id_, status, fields_, end);
  if (!end) {
    std::string text(body);
    text.push_back('\n');
    e.bytes_sent = text.size();
    conn_.session().submit_data(id_, text, true);
  }
  end_client_side();
  watch_delivery();
}

// The exchange no longer needs its upstream (answered, cut or timed out here): the upstream
// connection or HTTP/2 stream goes, and no timer of the exchange fires any more.
void Http2Stream::detach_upstream() {
  upstream::UpstreamConnection::destroy(std::move(e_->upstream));
  release_h2();
  cancel_timers();
}

void Http2Stream::cancel_timers() {
  route_timer_.cancel();
  connect_timer_.cancel();
  idle_timer_.cancel();
  deadline_timer_.cancel();
}

// The response is whole on our side; only the client's flow-control window may still hold part
// of it. The stream idle timeout watches on until it is delivered (edge-hardening §7 row 24,
// CVE-2020-12604): a client that never opens its window gets a reset instead of keeping the
// stream and its buffered bytes until the connection goes.
void Http2Stream::watch_delivery() {
  Exchange& e = *e_;
  if (closed_ || connect_) return;
  uint32_t idle = e.match.target ? e.match.target->idle_timeout_ms : router::kDefaultStreamIdleMs;
  if (idle == 0) return;
  e.stream_idle_ms = idle;
  e.last_activity_ms = worker_.loop().now_ms();
  delivery_mark_ = conn_.session().queued_body_bytes(id_);
  if (!idle_timer_.armed()) idle_timer_.arm(idle);  // else it is due sooner: the request drain
}

// The upstream is done. The route timer, when it runs, stays armed as the lazy delivery watch
// (no timer is armed per request for that): should it fire with the stream still open, the
// idle timer takes over (on_timeout).
void Http2Stream::response_complete_upstream() {
  Exchange& e = *e_;
  connect_timer_.cancel();
  deadline_timer_.cancel();
  e.last_activity_ms = worker_.loop().now_ms();
  delivery_mark_ = conn_.session().queued_body_bytes(id_);
  if (idle_timer_.armed()) route_timer_.cancel();
}

// A CONNECT stream answered without a tunnel: its client side has no natural end (it waits to
// send tunnel bytes), so once our answer is out, RST_STREAM(NO_ERROR) closes it (RFC 9113 §8.1).
void Http2Stream::end_client_side() {
  if (connect_ && !client_fin_ && !closed_) conn_.session().reset_stream(id_, http::kH2NoError);
}

void Http2Stream::reset_downstream(uint32_t error_code, std::string_view flags) {
  Exchange& e = *e_;
  e.flags = flags;
  detach_upstream();
  discard_request();
  if (closed_) return;
  if (!reset_sent_) {
    reset_sent_ = true;
    conn_.stats().downstream_rq_tx_reset.inc();
  }
  conn_.session().reset_stream(id_, error_code);
}

// Request body bytes will not be forwarded (answered locally, or the upstream is done): give the
// client its window back for what we held and for whatever still comes.
void Http2Stream::discard_request() {
  discard_ = true;
  early_.clear();
  if (e_->up_out) e_->up_out->clear();
  if (unacked_ > 0 && !closed_) conn_.session().consume(id_, unacked_);
  unacked_ = 0;
  // The rest of the request is drained, not refused at once (curl 7.88 mishandles an early
  // RST_STREAM(NO_ERROR) while it uploads); a client that never ends it would hold its stream
  // slot and access-log line until the connection closes, so the drain has a deadline.
  if (!closed_ && !connect_ && e_->response_complete && !e_->request_complete) {
    idle_timer_.arm(kRequestDrainMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Request body from the client.

void Http2Stream::on_request_data(std::string_view bytes, bool end_stream) {
  Exchange& e = *e_;
  if (end_stream) client_fin_ = true;
  if (discard_) {
    if (!bytes.empty()) conn_.session().consume(id_, bytes.size());
    if (end_stream) e.request_complete = true;
    return;
  }
  if (connect_) {
    // Tunnel bytes. They wait (unacknowledged, so the client's window bounds them) until the
    // upstream's 101 and its socket took them; END_STREAM becomes a half-close upstream.
    if (!bytes.empty()) {
      e.bytes_received += bytes.size();
      e.last_activity_ms = worker_.loop().now_ms();
      unacked_ += bytes.size();
      if (e.tunnel) {
        e.up_out->append(bytes);
      } else {
        early_.append(bytes);
      }
    }
    if (e.tunnel && e.upstream && e.upstream->connected) flush_upstream_later();
    return;
  }
  if (!bytes.empty()) {
    e.bytes_received += bytes.size();
    e.last_activity_ms = worker_.loop().now_ms();
    if (e.shadow != nullptr) e.shadow->feed(bytes);
    if (chunked_request_) {
      append_chunk_header(*e.up_out, bytes.size());
      e.up_out->append(bytes);
      e.up_out->append("\r\n");
    } else if (grpc_web_.active()) {
      web_out_.clear();
      if (!grpc_web_.decode(bytes, web_out_)) {
        conn_.session().consume(id_, bytes.size());
        local_reply(400, "invalid gRPC-Web request body", "DPE");
        return;
      }
      e.up_out->append(web_out_);
    } else {
      e.up_out->append(bytes);
    }
    unacked_ += bytes.size();
  }
  if (end_stream && !grpc_web_.finish()) {
    local_reply(400, "invalid gRPC-Web request body", "DPE");
    return;
  }
  if (end_stream) end_request_body();
  if (h2_mode_) {
    h2_send_body();
  } else if (e.upstream && e.upstream->connected) {
    flush_upstream_later();
  }
}

void Http2Stream::on_request_trailers(const http::HeaderList& trailers) {
  client_fin_ = true;
  if (connect_) {
    if (!discard_ && e_->tunnel && e_->upstream && e_->upstream->connected) flush_upstream_later();
    return;
  }
  if (discard_) {
    e_->request_complete = true;
    return;
  }
  // An HTTP/2 upstream gets them as a trailing HEADERS frame; a chunked HTTP/1.1 upstream request
  // (and mirror) after its last chunk (RFC 9112 §7.1.2); one with a content-length cannot
  // carry them (dropped, as Envoy does: RFC 9110 §6.5.1 allows it).
  std::string& section = e_->request_trailers;
  section.clear();
  if (e_->request.framing == http::BodyFraming::kChunked) {
    http::append_trailer_section(trailers, section);
  }
  if (h2_mode_) keep_h2_request_trailers(*e_, trailers);
  end_request_body(section);
  if (h2_mode_) {
    h2_send_body();
  } else if (e_->upstream && e_->upstream->connected) {
    flush_upstream_later();
  }
}

void Http2Stream::end_request_body(std::string_view trailer_section) {
  Exchange& e = *e_;
  if (e.request_complete) return;
  e.request_complete = true;
  if (e.shadow != nullptr) e.shadow->end_body(trailer_section);
  if (chunked_request_) {
    e.up_out->append("0\r\n");
    e.up_out->append(trailer_section.empty() ? std::string_view("\r\n") : trailer_section);
  }
  arm_route_timer();
}

// ---------------------------------------------------------------------------------------------
// Upstream connection.

void Http2Stream::connect_upstream() {
  Exchange& e = *e_;
  UpstreamFailure failure;
  switch (proxy::connect_upstream(e, worker_.loop(), this, failure)) {
    case UpstreamConnect::kReused:
      on_upstream_connected();
      break;
    case UpstreamConnect::kConnecting:
      connect_timer_.arm(e.cluster->spec().connect_timeout_ms);
      break;
    case UpstreamConnect::kFailed:
      local_reply(503, failure.body, failure.flags);
      break;
  }
}

void Http2Stream::on_upstream_connected() {
  Exchange& e = *e_;
  if (closed_ || !e.upstream) return;
  connect_timer_.cancel();
  e.upstream_local.assign(e.upstream->local_address());
  flush_upstream_later();
  conn_.flush();
}

void Http2Stream::on_upstream_event(uint32_t events) {
  Exchange& e = *e_;
  if (closed_ || !e.upstream) return;
  if (!e.upstream->connected) {
    upstream_failed(unconnected_failure_reason(e), "UF");
    conn_.flush();
    return;
  }
  bool tls = e.upstream->is_tls();
  if ((events & EPOLLOUT) || tls) {
    if (!flush_upstream()) {
      conn_.flush();
      return;
    }
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || tls) {
    read_upstream((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
  }
  conn_.flush();
}

void Http2Stream::on_connect_timeout() {
  if (closed_ || !e_->upstream) return;
  e_->cluster->stats().upstream_cx_connect_fail.inc();
  upstream_failed("connection timeout", "UF");
  conn_.flush();
}

// The route timeout (which spans the whole response, as Envoy's) or grpc-timeout expired: a 504
// (DEADLINE_EXCEEDED for gRPC) before the response head, else the response still coming is cut.
void Http2Stream::on_timeout() {
  if (closed_) return;
  Exchange& e = *e_;
  if (e.response_complete) {
    // Still undelivered (see response_complete_upstream): the idle timeout judges it, counted
    // from the end of the upstream response.
    if (!idle_timer_.armed() && e.stream_idle_ms > 0) {
      uint64_t quiet = worker_.loop().now_ms() - e.last_activity_ms;
      idle_timer_.arm(quiet < e.stream_idle_ms ? e.stream_idle_ms - quiet : 1);
    }
    return;
  }
  if (e.cluster) e.cluster->stats().upstream_rq_timeout.inc();
  if (!e.response_head_sent) {
    local_reply(504, "upstream request timeout", "UT");
  } else {
    end_timed_out_response();
  }
  conn_.flush();
}

// A timeout after the response head: a gRPC call ends with DEADLINE_EXCEEDED trailers (a
// trailer frame in the body for gRPC-Web); anything else is reset.
void Http2Stream::end_timed_out_response() {
  Exchange& e = *e_;
  const bool web = grpc_web_.translating();
  const bool grpc = grpc_web_.active() ? web : grpc_;
  if (!grpc) {
    reset_downstream(http::kH2InternalError, "UT");
    return;
  }
  detach_upstream();
  e.flags = "UT";
  e.response_complete = true;
  discard_request();
  bool sent = false;
  if (web) {
    web_out_.clear();
    grpc_web_.encode_trailers(deadline_exceeded_trailers(), web_out_);
    sent = conn_.session().submit_data(id_, web_out_, true) != http::SubmitResult::kClosed;
  } else {
    sent = conn_.session().submit_trailers(id_, deadline_exceeded_trailers());
  }
  if (!sent) conn_.session().reset_stream(id_, http::kH2Cancel);
}

void Http2Stream::on_idle_timeout() {
  if (closed_) return;
  Exchange& e = *e_;
  uint64_t now = worker_.loop().now_ms();
  if (discard_ && !connect_ && e.response_complete && !drain_ended_) {
    // The drain after our answer ran out: ask the client to stop (RFC 9113 §8.1), after the
    // rest of the response when some is still queued; that rest stays watched.
    drain_ended_ = true;
    if (!e.request_complete) conn_.session().reset_stream(id_, http::kH2NoError);
    if (e.stream_idle_ms > 0) idle_timer_.arm(e.stream_idle_ms);
    conn_.flush();
    return;
  }
  if (e.response_complete) {
    // Only the delivery is left: bytes leaving our queue are the activity.
    size_t queued = conn_.session().queued_body_bytes(id_);
    if (queued != delivery_mark_) {
      delivery_mark_ = queued;
      e.last_activity_ms = now;
    }
  }
  uint64_t quiet = now - e.last_activity_ms;
  if (quiet < e.stream_idle_ms) {
    idle_timer_.arm(e.stream_idle_ms - quiet);
    return;
  }
  upstream::UpstreamConnection::destroy(std::move(e.upstream));
  // Envoy's stream idle timeout: 408 before any response header, a reset after.
  if (!e.response_head_sent) {
    local_reply(408, "stream timeout", "SI");
  } else {
    reset_downstream(http::kH2Cancel, "SI");
  }
  conn_.flush();
}

void Http2Stream::upstream_failed(std::string_view reason, std::string_view flags) {
  Exchange& e = *e_;
  bool reused = e.upstream && e.upstream->requests > 1;
  upstream::UpstreamConnection::destroy(std::move(e.upstream));
  if (e.response_head_sent) {
    // Mid-response: the client must not take a truncated body for a whole one. A tunnel's
    // connection failed: CONNECT_ERROR (RFC 9113 §8.5).
    reset_downstream(e.tunnel ? http::kH2ConnectError : http::kH2InternalError, "UC");
    return;
  }
  // A reused keep-alive connection the upstream closed before our request reached it is retried
  // once on a fresh one, as long as no body byte has been taken from the client yet.
  if (reused && !e.retried && e.bytes_received == 0 && e.response.status == 0) {
    e.retried = true;
    e.cluster->stats().upstream_rq_retry.inc();
    connect_timer_.cancel();
    e.up_out->clear();
    e.up_out->append(e.up_head);
    if (e.request_complete && chunked_request_) {
      e.up_out->append("0\r\n");
      e.up_out->append(e.request_trailers.empty() ? std::string_view("\r\n")
                                                  : std::string_view(e.request_trailers));
    }
    if (e.up_in) e.up_in->clear();
    e.response_parser.reset();
    e.request_sent = false;
    connect_upstream();
    return;
  }
  std::string body(kResetBeforeHeaders);
  body.append(reason);
  local_reply(503, body, flags);
}

void Http2Stream::flush_upstream_later() {
  worker_.loop().flush_later(&upstream_write_);
}

void Http2Stream::on_upstream_write_turn() {
  if (closed_ || !e_->upstream || !e_->upstream->connected) return;
  // Taking body bytes off the socket may reopen the client's window; a failure answers it.
  bool acks = unacked_ > 0;
  if (!flush_upstream() || acks) conn_.flush();
}

bool Http2Stream::flush_upstream() {
  Exchange& e = *e_;
  if (!e.upstream || !e.upstream->connected) return false;
  net::Buffer* out = e.up_out.get();
  while (out && !out->empty()) {
    std::string_view data = out->readable();
    ssize_t n = e.upstream->io().write(data.data(), data.size());
    if (n > 0) {
      e.cluster->stats().upstream_cx_tx_bytes_total.add(static_cast<uint64_t>(n));
      out->consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    upstream_failed("connection termination", "UC");
    return false;
  }
  // Everything taken so far reached the upstream socket: reopen the client's window for it
  // (a CONNECT's early tunnel bytes are not among them until the 101).
  if (unacked_ > 0 && !closed_ && (!connect_ || e.tunnel)) {
    conn_.session().consume(id_, unacked_);
    unacked_ = 0;
  }
  if (e.request_complete) e.request_sent = true;
  if (e.tunnel && client_fin_ && !upstream_fin_sent_) {
    upstream_fin_sent_ = true;
    e.upstream->io().shutdown_write();
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Upstream response.

void Http2Stream::read_upstream(bool to_eagain) {
  if (upstream_eof_) return;  // a tunnel whose upstream half-closed: only writes remain
  while (!closed_ && e_->upstream && !paused_) {
    Exchange& e = *e_;
    if (!e.up_in) e.up_in = worker_.buffers().take();
    if (e.up_in->writable() == 0) {
      e.up_in->compact();
      if (e.up_in->writable() == 0) {
        if (e.response_head_sent) return;  // body bytes wait for the client's window
        e.up_in->ensure_writable(4096);    // a head larger than one buffer
      }
    }
    size_t asked = e.up_in->writable();
    upstream::UpstreamConnection* reading = e.upstream.get();
    ssize_t n = reading->io().read(e.up_in->write_ptr(), asked);
    if (n > 0) {
      e.cluster->stats().upstream_cx_rx_bytes_total.add(static_cast<uint64_t>(n));
      e.up_in->commit(static_cast<size_t>(n));
      e.last_activity_ms = worker_.loop().now_ms();
      bool tls = reading->is_tls();
      process_upstream_input();
      if (static_cast<size_t>(n) < asked && !to_eagain && !tls) return;
      continue;
    }
    if (n == 0) {
      on_upstream_eof();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    upstream_failed("connection termination", "UC");
    return;
  }
}

void Http2Stream::process_upstream_input() {
  Exchange& e = *e_;
  if (!e.response_head_sent) {
    for (;;) {
      http::ParseResult r =
          e.response_parser.parse(e.up_in->readable(), e.head_request, e.response);
      if (r.status == http::ParseStatus::kIncomplete) return;
      if (r.status == http::ParseStatus::kError) {
        upstream::UpstreamConnection::destroy(std::move(e.upstream));
        local_reply(502, "upstream sent an invalid response", "UPE");
        return;
      }
      e.up_in->consume(r.consumed);
      e.response_parser.reset();
      if (e.response.status >= 100 && e.response.status < 200 &&
          !(connect_ && e.response.status == 101)) {
        if (e.response.status == 101) {
          // A 101 to a request that asked for no upgrade: the upstream switched protocols on
          // its own, and nothing it sends next is HTTP (the connection is not pooled).
          upstream::UpstreamConnection::destroy(std::move(e.upstream));
          local_reply(502, "upstream sent an invalid response", "UPE");
          return;
        }
        // Interim responses (we never forward Expect) are dropped.
        e.response.status = 0;
        if (e.up_in->empty()) return;
        continue;
      }
      break;
    }
    on_response_head();
    if (closed_ || !e.upstream) return;
  }
  forward_response_body();
}

// What every proxied response head is built from: the upstream's head, the route's header
// edits and the request's facts for their %COMMAND%s.
ResponseHeadContext Http2Stream::proxied_head_context() {
  Exchange& e = *e_;
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

void Http2Stream::on_response_head() {
  Exchange& e = *e_;
  e.upstream_service_ms = static_cast<int64_t>(worker_.loop().now_ms() - e.upstream_start_ms);
  e.status = e.response.status;
  if (connect_ && e.response.status == 101) {
    start_tunnel();
    return;
  }
  e.response_body.reset(e.response.framing, e.response.content_length);
  e.upstream_reusable = e.response.keep_alive;
  build_response_fields(proxied_head_context(), e.scratch, fields_);
  bool end = e.response.framing == http::BodyFraming::kNone;
  e.response_head_sent = true;
  if (!conn_.session().submit_response(id_, e.response.status, fields_, end)) {
    // The stream is gone (the client reset it meanwhile); on_stream_close cleans up.
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    return;
  }
  if (end) {
    e.response_complete = true;
    response_done();
  }
}

// The upstream accepted the upgrade: 200 on the stream (RFC 8441 §5), then bytes both ways
// with the flow control of bodies until both sides ended or one reset. The route timeout no
// longer applies; the route's idle_timeout_ms (else the listener idle timeout) ends a silent
// tunnel.
void Http2Stream::start_tunnel() {
  Exchange& e = *e_;
  if (!switches_to_requested_protocol(e.response, e.request.upgrade_protocol)) {
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    local_reply(502, "upstream sent an invalid response", "UPE");
    return;
  }
  if (key_generated_ &&
      http::find_header(e.response.headers, "sec-websocket-accept") != websocket_accept(ws_key_)) {
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    local_reply(502, "upstream sent an invalid WebSocket handshake", "UPE");
    return;
  }
  route_timer_.cancel();
  e.tunnel = true;
  observe::ListenerStats& stats = conn_.stats();
  stats.downstream_cx_upgrades_total.inc();
  stats.downstream_cx_upgrades_active.add(1);
  e.counted_upgrade = true;
  e.upstream_reusable = false;
  e.response_body.reset(http::BodyFraming::kUntilClose, 0);
  build_response_fields(proxied_head_context(), e.scratch, fields_);
  if (key_generated_) {
    // The accept answers our key, not anything the client sent.
    std::erase_if(fields_, [](const http::HeaderField& f) {
      return http::iequals(f.name, "sec-websocket-accept");
    });
  }
  e.response_head_sent = true;
  if (!conn_.session().submit_response(id_, 200, fields_, false)) {
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    return;
  }
  if (e.stream_idle_ms == 0) e.stream_idle_ms = static_cast<uint32_t>(conn_.idle_timeout_ms());
  e.last_activity_ms = worker_.loop().now_ms();
  if (e.stream_idle_ms > 0) idle_timer_.arm(e.stream_idle_ms);
  if (!early_.empty()) {
    e.up_out->append(early_);
    early_.clear();
  }
  flush_upstream_later();
}

void Http2Stream::forward_response_body() {
  Exchange& e = *e_;
  while (!e.response_complete && !paused_ && e.up_in && !e.up_in->empty()) {
    http::DecodeResult r = e.response_body.decode(e.up_in->readable());
    if (r.error) {
      reset_downstream(http::kH2InternalError, "UPE");
      return;
    }
    if (!r.data.empty() || r.done) {
      e.bytes_sent += r.data.size();
      http::SubmitResult s = conn_.session().submit_data(id_, r.data, r.done);
      if (s == http::SubmitResult::kClosed) {
        upstream::UpstreamConnection::destroy(std::move(e.upstream));
        return;
      }
      if (s == http::SubmitResult::kFull) paused_ = true;
    }
    e.up_in->consume(r.consumed);
    if (r.done) {
      e.response_complete = true;
      break;
    }
    if (r.consumed == 0) break;
  }
  if (e.response_complete) {
    // Bytes after a complete response mean the upstream connection is out of sync.
    if (e.up_in && !e.up_in->empty()) e.upstream_reusable = false;
    response_done();
  }
}

void Http2Stream::on_upstream_eof() {
  Exchange& e = *e_;
  e.upstream_reusable = false;
  if (e.tunnel) {
    // The upstream's FIN: END_STREAM after the bytes queued for the client. The other way stays
    // open until the client ends too (the session then closes the stream) or resets it.
    upstream_eof_ = true;
    if (conn_.session().submit_data(id_, {}, true) == http::SubmitResult::kClosed) {
      upstream::UpstreamConnection::destroy(std::move(e.upstream));
    }
    return;
  }
  if (!e.response_head_sent) {
    upstream_failed("connection termination", "UC");
    return;
  }
  if (e.response_body.framing() == http::BodyFraming::kUntilClose && !e.response_complete) {
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
    e.response_complete = true;
    conn_.session().submit_data(id_, {}, true);
    response_done();
    return;
  }
  if (!e.response_complete) reset_downstream(http::kH2InternalError, "UC");
}

// The upstream response is wholly in the session's hands: the upstream connection is free.
void Http2Stream::response_done() {
  Exchange& e = *e_;
  response_complete_upstream();
  if (!e.request_complete) {
    // The upstream answered before the whole request arrived: the rest is not wanted, and the
    // connection cannot carry another request.
    e.upstream_reusable = false;
    discard_request();
  }
  if (connect_) {
    // The upstream declined the upgrade (its answer passes as is): no tunnel bytes are wanted.
    discard_request();
    end_client_side();
  }
  if (!e.upstream) return;
  bool reusable = e.upstream_reusable && e.request_complete && e.up_out && e.up_out->empty() &&
                  !worker_.draining();
  if (reusable) {
    e.cluster->release(std::move(e.upstream));
  } else {
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
  }
}

void Http2Stream::on_send_ready() {
  if (closed_ || !paused_) return;
  paused_ = false;
  if (h2_mode_) {
    // The client took what was queued: let the upstream send more.
    if (h2_ != nullptr && h2_stream_ >= 0 && h2_resp_unacked_ > 0) {
      h2_->consume(h2_stream_, h2_resp_unacked_);
    }
    h2_resp_unacked_ = 0;
    return;
  }
  forward_response_body();
  // Edge-triggered readiness may have come and gone while we were paused: read to EAGAIN.
  if (!closed_ && !paused_ && e_->upstream) read_upstream(true);
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 upstream (cluster spec http2): the request rides on a connection shared with other
// streams of this worker.

// The upstream head route_exchange built (path rewrite, forwarding headers, the route's header
// edits) as HTTP/2 fields: Host becomes :authority, HTTP/1.1 framing and connection fields go
// (`te: trailers`, required by gRPC, is already all that build_upstream_head kept of TE).
void h2_request_fields(const Exchange& e, http::HeaderList& fields, std::string_view& authority,
                       std::string_view& path) {
  const std::string_view head = e.up_head;
  const UpstreamHeadIndex& index = e.up_head_index;
  fields.clear();
  authority = index.host.in(head);
  path = index.target.len > 0 ? index.target.in(head) : std::string_view("/");
  fields.reserve(index.fields.size() + 1);
  for (const UpstreamHeadIndex::Field& f : index.fields) {
    fields.push_back({f.name.in(head), f.value.in(head)});
  }
}

void Http2Stream::build_h2_request() {
  h2_request_fields(*e_, h2_fields_, h2_authority_, h2_path_);
}

void Http2Stream::h2_connect(const upstream::Http2Upstream* avoid) {
  UpstreamFailure failure;
  h2_ = acquire_h2_upstream(*e_, worker_.loop(), avoid, failure);
  if (h2_ == nullptr) {
    local_reply(503, failure.body, failure.flags);
    return;
  }
  h2_->wait(this);
}

void Http2Stream::on_h2_ready() {
  Exchange& e = *e_;
  if (closed_ || h2_ == nullptr || h2_stream_ >= 0) return;
  e.upstream_local.assign(h2_->local_address());
  // The client's fields were checked on arrival (unless gRPC-Web rewrote the list).
  const http::Http2Request request = h2_request(
      e, h2_authority_, h2_path_, h2_fields_, grpc_web_.active() ? 0 : e.up_head_index.in_h2_form);
  // With trailers to send, the stream ends on them, not on its head.
  bool end = e.request_complete && e.up_out->empty() && e.h2_request_trailers.empty();
  upstream::Http2Upstream* on = h2_;
  h2_stream_ = on->submit_request(request, end, this);
  if (h2_stream_ < 0) {
    // The connection turned out full (its SETTINGS came after we queued on it) or is going
    // away: nothing was sent, so take another. acquire() never hands back `on`, and only a
    // connection with room answers synchronously, so this cannot loop.
    h2_ = nullptr;
    h2_connect(on);
    conn_.flush();
    return;
  }
  h2_end_sent_ = end;
  h2_send_body();
  conn_.flush();
}

void Http2Stream::on_h2_connect_failed(std::string_view reason) {
  h2_ = nullptr;
  if (closed_) return;
  local_reply(503, connect_failure_body(*e_, reason), "UF");
  conn_.flush();
}

// Moves the body bytes received so far into the upstream stream. The client's window reopens
// (consume) once the upstream session took them, unless its queue for the stream is full.
void Http2Stream::h2_send_body() {
  Exchange& e = *e_;
  if (closed_ || discard_ || h2_ == nullptr || h2_stream_ < 0 || h2_end_sent_) return;
  std::string_view data = e.up_out->readable();
  bool end = e.request_complete;
  if (data.empty() && !end) return;
  if (!e.response_head_sent && h2_can_retry_) h2_can_retry_ = keep_for_replay(e, data);
  // on_h2_send_ready may run inside submit_data (its flush drained the queue): a kFull it
  // already answered must not pause us.
  h2_send_ready_seen_ = false;
  http::SubmitResult r = end ? h2_send_request_end(e, *h2_, h2_stream_, data)
                             : h2_->submit_data(h2_stream_, data, false);
  e.up_out->clear();
  if (end) {
    h2_end_sent_ = true;
    e.request_sent = true;
  }
  h2_req_paused_ = r == http::SubmitResult::kFull && !h2_send_ready_seen_;
  if (r == http::SubmitResult::kClosed || h2_req_paused_) return;
  if (unacked_ > 0) {
    conn_.session().consume(id_, unacked_);
    unacked_ = 0;
  }
}

void Http2Stream::on_h2_send_ready() {
  h2_send_ready_seen_ = true;
  if (closed_) return;
  h2_req_paused_ = false;
  if (unacked_ > 0) {
    conn_.session().consume(id_, unacked_);
    unacked_ = 0;
  }
  conn_.flush();
}

void Http2Stream::on_h2_response_head(http::ResponseHead&& head, bool end_stream) {
  Exchange& e = *e_;
  if (closed_ || head.status < 200) return;  // interim heads are not forwarded
  e.response.take(head);                     // the session gets the last response's buffers back
  if (grpc_web_.active()) grpc_web_.rewrite_response(e.response, end_stream);
  e.upstream_service_ms = static_cast<int64_t>(worker_.loop().now_ms() - e.upstream_start_ms);
  e.status = e.response.status;
  e.last_activity_ms = worker_.loop().now_ms();
  h2_sent_.clear();
  h2_can_retry_ = false;
  if (grpc_web_.holding()) return;  // a plain answer to gRPC-Web: its body becomes the status
  send_h2_response_head(end_stream);
}

void Http2Stream::send_h2_response_head(bool end_stream) {
  Exchange& e = *e_;
  // The upstream's own fields were checked on arrival by its HTTP/2 session (unless gRPC-Web
  // rewrote them).
  const size_t own = build_response_fields(proxied_head_context(), e.scratch, fields_);
  e.response_head_sent = true;
  if (!conn_.session().submit_response(id_, e.response.status, fields_, end_stream,
                                       grpc_web_.active() ? 0 : own)) {
    release_h2();  // the client reset the stream meanwhile; on_stream_close cleans up
    return;
  }
  if (end_stream) h2_response_finished();
  conn_.flush();
}

void Http2Stream::on_h2_data(std::string_view bytes, bool end_stream) {
  Exchange& e = *e_;
  if (closed_ || h2_ == nullptr) return;
  if (grpc_web_.holding()) {
    grpc_web_.hold_data(bytes);
    if (!bytes.empty()) h2_->consume(h2_stream_, bytes.size());
    if (end_stream) finish_web_hold();
    return;
  }
  e.bytes_sent += bytes.size();
  e.last_activity_ms = worker_.loop().now_ms();
  std::string_view out = bytes;
  if (grpc_web_.translating()) {
    web_out_.clear();
    grpc_web_.encode_data(bytes, web_out_);
    out = web_out_;
  }
  http::SubmitResult r = conn_.session().submit_data(id_, out, end_stream);
  if (r == http::SubmitResult::kClosed) {
    release_h2();
    return;
  }
  if (r == http::SubmitResult::kFull) paused_ = true;
  if (!bytes.empty()) {
    // Acknowledged upstream only once the client's queue has room: a client that stops reading
    // stalls the upstream at its stream window.
    if (paused_) {
      h2_resp_unacked_ += bytes.size();
    } else {
      h2_->consume(h2_stream_, bytes.size());
    }
  }
  if (end_stream) h2_response_finished();
  conn_.flush();
}

void Http2Stream::on_h2_trailers(const http::HeaderList& trailers) {
  if (closed_ || h2_ == nullptr) return;
  if (grpc_web_.holding()) {
    finish_web_hold();
    return;
  }
  if (grpc_web_.translating()) {
    // gRPC-Web: the trailers are the body's last frame.
    web_out_.clear();
    grpc_web_.encode_trailers(trailers, web_out_);
    if (conn_.session().submit_data(id_, web_out_, true) == http::SubmitResult::kClosed) {
      release_h2();
      return;
    }
    h2_response_finished();
    conn_.flush();
    return;
  }
  if (!conn_.session().submit_trailers(id_, trailers)) {
    release_h2();
    return;
  }
  h2_response_finished();
  conn_.flush();
}

// A plain (non-gRPC) answer to a gRPC-Web request ended: it goes out as a bodiless head with
// the status its body and HTTP status stand for.
void Http2Stream::finish_web_hold() {
  grpc_web_.finish_hold(e_->response);
  send_h2_response_head(true);
}

// The upstream response ended (END_STREAM or trailers forwarded).
void Http2Stream::h2_response_finished() {
  Exchange& e = *e_;
  e.response_complete = true;
  response_complete_upstream();
  if (!e.request_complete) {
    // Answered before the client finished sending: the rest is not wanted upstream.
    release_h2();
    discard_request();
  }
}

void Http2Stream::on_h2_close(uint32_t error_code) {
  Exchange& e = *e_;
  upstream::Http2Upstream* was = h2_;
  h2_ = nullptr;
  h2_stream_ = -1;
  if (closed_) return;
  if (error_code == http::kH2NoError && e.response_complete) return;
  if (!e.response_head_sent) {
    if (error_code == http::kH2RefusedStream && !e.retried && h2_can_retry_) {
      // Never processed upstream (RFC 9113 §8.7): replay it once on another connection.
      e.retried = true;
      e.cluster->stats().upstream_rq_retry.inc();
      std::string body = std::move(h2_sent_);
      h2_sent_.clear();
      std::string_view rest = e.up_out->readable();
      body.append(rest);
      e.up_out->clear();
      e.up_out->append(body);
      h2_end_sent_ = false;
      h2_req_paused_ = false;
      h2_connect(was);
      conn_.flush();
      return;
    }
    std::string body(kResetBeforeHeaders);
    body.append(error_code == http::kH2Cancel ? "connection termination" : "remote reset");
    local_reply(503, body, error_code == http::kH2Cancel ? "UC" : "UR");
  } else if (!e.response_complete) {
    // Mid-response: the client must not take a truncated response for a whole one.
    reset_downstream(http::kH2InternalError, "UR");
  }
  conn_.flush();
}

// Detaches from the HTTP/2 upstream: a stream still open there is reset (CANCEL).
void Http2Stream::release_h2() {
  upstream::Http2Upstream* h2 = h2_;
  if (h2 == nullptr) return;
  int32_t stream = h2_stream_;
  h2_ = nullptr;
  h2_stream_ = -1;
  if (stream >= 0) {
    h2->abandon(stream);
  } else {
    h2->cancel_wait(this);
  }
}

// ---------------------------------------------------------------------------------------------
// End of the stream.

void Http2Stream::on_closed(uint32_t error_code) {
  Exchange& e = *e_;
  closed_ = true;
  release_h2();
  cancel_timers();
  if (error_code != http::kH2NoError && !e.response_complete && e.flags == "-") {
    // We reset it for a malformed request (a content-length mismatch, ...): a downstream
    // protocol error. Otherwise the client reset it or the connection went away.
    e.flags = !peer_reset_ && error_code == http::kH2ProtocolError ? "DPE" : "DC";
  }
  observe::ListenerStats& stats = conn_.stats();
  if (!reset_sent_ && !e.response_complete && (peer_reset_ || error_code != http::kH2NoError)) {
    // Cut short without our reset_downstream(): the client's RST_STREAM or its connection going
    // away, else the session's own reset (a malformed body) or our closing the connection.
    if (peer_reset_ || conn_.peer_gone()) {
      stats.downstream_rq_rx_reset.inc();
    } else {
      stats.downstream_rq_tx_reset.inc();
    }
  }
  if (e.upstream) {
    // Still attached: the exchange did not complete cleanly.
    upstream::UpstreamConnection::destroy(std::move(e.upstream));
  }
  uint64_t now_us = worker_.loop().now_us();
  stats.count_response(e.status);
  if (e.start_us != 0) stats.downstream_rq_time.record_us(now_us - e.start_us);
  if (e.route_stats != nullptr) {
    e.route_stats->count_response(e.status);
    e.route_stats->rq_time.record_us(now_us - e.start_us);
  }
  if (e.cluster && e.upstream_start_us != 0) {
    observe::ClusterStats& cs = e.cluster->stats();
    cs.count_response(e.status);
    cs.upstream_rq_time.record_us(now_us - e.upstream_start_us);
  }
  log();
  if (e.counted_active) stats.downstream_rq_active.add(-1);
  if (e.route_stats != nullptr) e.route_stats->rq_active.add(-1);
  if (e.cluster_active) e.cluster->stats().upstream_rq_active.add(-1);
  if (e.counted_upgrade) stats.downstream_cx_upgrades_active.add(-1);
  e.counted_active = e.cluster_active = e.counted_upgrade = false;
  e.route_stats = nullptr;
}

void Http2Stream::log() {
  const Exchange& e = *e_;
  const auto& cfg = e.config ? e.config : worker_.config();
  if (!cfg || !cfg->access_log) return;
  observe::AccessLogRecord r;
  fill_request_record(r, e.request, conn_);
  r.start_unix_ms = e.start_unix_ms;
  r.original_path = e.original_path;
  // What the upstream got (or would have) as x-forwarded-for; the client's list alone when the
  // request was refused before the gateway read its configuration.
  thread_local std::string forwarded_for;
  forwarded_for.clear();
  if (e.config && e.config->snapshot) {
    append_forwarded_for(e.request.headers, e.config->snapshot->module.use_remote_address,
                         conn_.routing_input().peer, forwarded_for);
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
  if (e.match.route != nullptr && e.config &&
      e.match.route->stats_index < e.config->snapshot->route_stats_names.size()) {
    r.route_name = e.config->snapshot->route_stats_names[e.match.route->stats_index];
  }
  r.upstream_cluster = e.cluster ? std::string_view(e.cluster->spec().name) : std::string_view();
  r.request_id = e.request_id;
  cfg->access_log->append(r, worker_.access_log_buffer());
  worker_.maybe_flush_access_log();
}

// =============================================================================================
// Http2Connection

Http2Connection::Http2Connection(Worker& worker, int fd, std::string listener_key,
                                 std::string peer_text, std::string local_text,
                                 std::unique_ptr<net::TlsStream> tls, std::string initial,
                                 bool counted)
    : worker_(worker),
      fd_(fd),
      tls_(std::move(tls)),
      peer_certificate_(client_certificate(tls_.get())),
      listener_key_(std::move(listener_key)),
      peer_text_(std::move(peer_text)),
      local_text_(std::move(local_text)),
      initial_(std::move(initial)),
      counted_(counted),
      stats_(worker.listener_stats(listener_key_)),
      timer_(worker.loop(), [this] { on_timer(); }) {
  routing_.listener_key = &listener_key_;
  routing_.peer = peer_text_;
  routing_.local = local_text_;
  routing_.tls = tls_ != nullptr;
  routing_.stats = stats_.get();
  if (tls_) {
    routing_.peer_certificate = peer_certificate_.get();
    if (const net::TlsServerContext* served = tls_->server_context()) {
      routing_.local_uri_sans = served->certificate().uri_sans;
    }
  }
  http::Http2Options options;
  if (const auto& cfg = worker_.config()) {
    options.max_header_list_bytes = cfg->limits.max_header_bytes;
    options.max_header_count = cfg->limits.max_header_count;
    options.underscores = cfg->limits.underscores;
    if (const config::ListenerSnapshot* ls = cfg->listener(listener_key_)) {
      options.max_concurrent_streams = ls->http2_max_concurrent_streams;
    }
  }
  // RFC 8441: WebSockets (and other allowed upgrades) ride on extended CONNECT streams.
  options.enable_connect_protocol = true;
  // Stream ages (rapid-reset guard) from the loop's per-iteration clock, not a clock read per
  // stream. Both are CLOCK_MONOTONIC.
  options.clock = [&loop = worker_.loop()] {
    return http::Http2Options::Clock::time_point(std::chrono::microseconds(loop.now_us()));
  };
  session_ =
      std::make_unique<http::Http2Session>(http::Http2Session::Role::kServer, *this, options);
}

Http2Connection::~Http2Connection() {
  // Worker teardown deletes live connections directly.
  if (!closed_) {
    closed_ = true;
    stats_->http2_streams_active.add(-static_cast<int64_t>(streams_.size()));
    streams_.clear();
    session_.reset();
    stats_->downstream_cx_active.add(-1);
    stats_->downstream_cx_http2_active.add(-1);
    tls_.reset();
    if (fd_ >= 0) {
      worker_.loop().remove(fd_);
      close(fd_);
    }
  }
}

std::string_view Http2Connection::sni() const {
  return tls_ ? tls_->sni() : std::string_view();
}

uint64_t Http2Connection::idle_timeout_ms() const {
  const auto& cfg = worker_.config();
  return cfg && cfg->snapshot ? cfg->snapshot->module.listener_idle_timeout_ms : 300000;
}

void Http2Connection::start() {
  if (!counted_) {
    stats_->downstream_cx_total.inc();
    stats_->downstream_cx_active.add(1);
  }
  // h2c with prior knowledge (handed over after its preface) or h2 chosen by ALPN.
  stats_->downstream_cx_http2_total.inc();
  stats_->downstream_cx_http2_active.add(1);
  worker_.loop().add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
  idle_since_ms_ = worker_.loop().now_ms();
  if (uint64_t idle = idle_timeout_ms(); idle > 0) timer_.arm(idle);
  if (worker_.draining()) drain();
  if (!initial_.empty()) {
    std::string bytes = std::move(initial_);
    initial_ = std::string();
    if (!feed(bytes)) return;
  }
  read_downstream();
}

void Http2Connection::drain() {
  if (closed_ || goaway_sent_) return;
  goaway_sent_ = true;
  session_->submit_goaway(http::kH2NoError);
  timer_.arm(kGoawayCloseMs);
  flush();
}

void Http2Connection::on_io(uint32_t events) {
  if (closed_) return;
  if (events & EPOLLERR) {
    peer_gone_ = true;
    close_now();
    return;
  }
  // TLS reads may wait for writability and writes for readability: try both on any event.
  if ((events & EPOLLOUT) || tls_) flush_now();
  if (closed_) return;
  if (events & (EPOLLRDHUP | EPOLLHUP)) peer_hup_ = true;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) || tls_) read_downstream();
}

void Http2Connection::read_downstream() {
  char buf[kReadChunk];
  while (!closed_) {
    ssize_t n = io().read(buf, sizeof buf);
    if (n > 0) {
      stats_->downstream_cx_rx_bytes_total.add(static_cast<uint64_t>(n));
      if (!feed(std::string_view(buf, static_cast<size_t>(n)))) return;
      // A short read drained a plain socket (edge-triggered epoll reports the next bytes);
      // TLS may hold decrypted bytes the socket no longer signals.
      if (static_cast<size_t>(n) < sizeof buf && !peer_hup_ && !tls_) break;
      continue;
    }
    if (n == 0) {
      peer_gone_ = true;
      close_now();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    peer_gone_ = true;
    close_now();
    return;
  }
  flush();
}

bool Http2Connection::feed(std::string_view bytes) {
  in_feed_ = true;
  bool ok = session_->feed(bytes);
  in_feed_ = false;
  sync_stats();
  if (ok) return true;
  // Protocol error, flood or rapid reset (or both sides said GOAWAY): send what the session has
  // (a GOAWAY) once and close.
  if (session_->close_reason() != "goaway") stats_->downstream_cx_protocol_error.inc();
  for (;;) {
    std::string_view out = session_->pending_output();
    if (out.empty()) break;
    ssize_t n = io().write(out.data(), out.size());
    if (n <= 0) break;
    session_->consume_output(static_cast<size_t>(n));
  }
  close_now();
  return false;
}

void Http2Connection::flush() {
  if (!closed_) worker_.loop().flush_later(this);
}

void Http2Connection::flush_now() {
  if (closed_ || in_feed_ || in_flush_) return;
  in_flush_ = true;
  for (;;) {
    bool blocked = false;
    for (;;) {
      std::string_view out = session_->pending_output();
      if (out.empty()) break;
      ssize_t n = io().write(out.data(), out.size());
      if (n > 0) {
        stats_->downstream_cx_tx_bytes_total.add(static_cast<uint64_t>(n));
        session_->consume_output(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        blocked = true;
        break;
      }
      in_flush_ = false;
      peer_gone_ = true;
      close_now();
      return;
    }
    if (ready_.empty()) break;
    std::vector<int32_t> ready;
    ready.swap(ready_);
    for (int32_t id : ready) {
      auto it = streams_.find(id);
      if (it != streams_.end()) it->second->on_send_ready();
      if (closed_) {
        in_flush_ = false;
        return;
      }
    }
    (void)blocked;
  }
  in_flush_ = false;
  sync_stats();
  if (!session_->want_read() && !session_->want_write()) {
    close_now();
    return;
  }
  if (streams_.empty() && idle_since_ms_ == 0) idle_since_ms_ = worker_.loop().now_ms();
}

void Http2Connection::on_timer() {
  if (closed_) return;
  if (goaway_sent_) {
    // After our GOAWAY the session closes once the streams are done; a client that keeps the
    // idle connection open anyway is closed here.
    if (streams_.empty()) {
      close_now();
    } else {
      timer_.arm(kGoawayCloseMs);
    }
    return;
  }
  uint64_t idle = idle_timeout_ms();
  if (idle == 0) return;
  uint64_t now = worker_.loop().now_ms();
  if (!streams_.empty() || idle_since_ms_ == 0) {
    timer_.arm(idle);
    return;
  }
  if (now - idle_since_ms_ >= idle) {
    drain();  // GOAWAY; with no stream open the connection closes once it is written
    if (!closed_) timer_.arm(1000);
    return;
  }
  timer_.arm(idle_since_ms_ + idle - now);
}

void Http2Connection::close_now() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  sync_stats();
  // Every stream still open ends now (logged as cut short).
  session_->connection_closed(http::kH2Cancel);
  stats_->http2_streams_active.add(-static_cast<int64_t>(streams_.size()));
  for (auto& [id, stream] : streams_) {
    Http2Stream* s = stream.release();
    worker_.loop().defer([s] { delete s; });
  }
  streams_.clear();
  stats_->downstream_cx_active.add(-1);
  stats_->downstream_cx_http2_active.add(-1);
  if (tls_) {
    tls_->shutdown();
    tls_.reset();
  }
  worker_.loop().remove(fd_);
  close(fd_);
  fd_ = -1;
  worker_.on_connection_close(this);
  Http2Connection* self = this;
  worker_.loop().defer([self] { delete self; });
}

// ---------------------------------------------------------------------------------------------
// Session callbacks.

void Http2Connection::on_request_head(int32_t stream, http::RequestHead&& head, bool end_stream) {
  idle_since_ms_ = 0;
  auto [it, inserted] = streams_.emplace(stream, nullptr);
  if (!inserted) return;
  stats_->http2_streams_active.add(1);
  it->second = std::make_unique<Http2Stream>(*this, stream);
  it->second->start(std::move(head), end_stream);
}

// Envoy had opened a stream for it (downstream_rq_total) whose codec reset it before any
// filter ran: logged with what arrived of the head, code 0 and DPE. http2.rx_messaging_error /
// header_overflow and http2.tx_reset come from the session; the reset request is ours
// (downstream_rq_tx_reset).
void Http2Connection::on_request_rejected(int32_t, const http::RequestHead& partial,
                                          std::string_view) {
  stats_->downstream_rq_total.inc();
  stats_->downstream_rq_http2_total.inc();
  stats_->downstream_rq_tx_reset.inc();
  stats_->downstream_rq_time.record_us(0);
  const auto& cfg = worker_.config();
  if (!cfg || !cfg->access_log) return;
  observe::AccessLogRecord r;
  fill_request_record(r, partial, *this);
  r.start_unix_ms = worker_.loop().now_unix_ms();
  r.response_flags = "DPE";
  cfg->access_log->append(r, worker_.access_log_buffer());
  worker_.maybe_flush_access_log();
}

void Http2Connection::on_data(int32_t stream, std::string_view bytes, bool end_stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) {
    if (!bytes.empty()) session_->consume(stream, bytes.size());
    return;
  }
  it->second->on_request_data(bytes, end_stream);
}

void Http2Connection::on_trailers(int32_t stream, const http::HeaderList& trailers) {
  auto it = streams_.find(stream);
  if (it != streams_.end()) it->second->on_request_trailers(trailers);
}

void Http2Connection::on_stream_reset(int32_t stream, uint32_t) {
  auto it = streams_.find(stream);
  if (it != streams_.end()) it->second->note_peer_reset();
}

void Http2Connection::on_stream_close(int32_t stream, uint32_t error_code) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  Http2Stream* s = it->second.release();
  streams_.erase(it);
  stats_->http2_streams_active.add(-1);
  s->on_closed(error_code);
  // The stream may be the caller up the stack (its flush closed it): free it later.
  worker_.loop().defer([s] { delete s; });
  if (streams_.empty()) idle_since_ms_ = worker_.loop().now_ms();
}

void Http2Connection::sync_stats() {
  const http::Http2Stats& now = session_->stats();
  auto add = [](observe::Counter& counter, uint64_t value, uint64_t& synced) {
    if (value == synced) return;
    counter.add(value - synced);
    synced = value;
  };
  observe::ListenerStats& s = *stats_;
  add(s.http2_rx_reset, now.resets_received, synced_.resets_received);
  add(s.http2_tx_reset, now.resets_sent, synced_.resets_sent);
  add(s.http2_header_overflow, now.header_overflows, synced_.header_overflows);
  add(s.http2_rx_messaging_error, now.messaging_errors, synced_.messaging_errors);
  add(s.http2_goaway_sent, now.goaways_sent, synced_.goaways_sent);
  add(s.http2_streams_refused, now.streams_refused, synced_.streams_refused);
  add(s.downstream_rq_too_many_premature_resets, now.too_many_premature_resets,
      synced_.too_many_premature_resets);
  if (now.floods != synced_.floods) {
    // A flood closes the session, so its close reason names the one that tripped.
    std::string_view why = session_->close_reason();
    observe::Counter* c = &s.http2_outbound_flood;
    if (why == "flood: empty frames") {
      c = &s.http2_inbound_empty_frames_flood;
    } else if (why == "flood: PRIORITY frames") {
      c = &s.http2_inbound_priority_frames_flood;
    } else if (why == "flood: WINDOW_UPDATE frames") {
      c = &s.http2_inbound_window_update_frames_flood;
    } else if (why == "flood: control frames" || why == "flood: outbound control frames") {
      c = &s.http2_outbound_control_flood;
    }
    add(*c, now.floods, synced_.floods);
  }
}

void Http2Connection::on_send_ready(int32_t stream) {
  ready_.push_back(stream);
}

}  // namespace proxenos::proxy
