#pragma once
// The upstream half of an exchange, shared by HTTP/1.1 connections (HttpConnection) and HTTP/2
// streams (Http2Stream): choosing and opening the upstream connection, the HTTP/2 request
// built from the routed head, and the wording of the local answers when that fails (Envoy's, so
// clients and dashboards see the same text). The owners keep their own timers and downstream
// writing; these functions only touch the exchange and the cluster.

#include <string>
#include <string_view>

#include "http/header.h"
#include "http/http2_session.h"
#include "net/event_loop.h"
#include "proxy/exchange.h"
#include "upstream/http2_upstream.h"
#include "upstream/upstream_connection.h"

namespace proxenos::proxy {

// Prefix of every 503 body for an upstream that failed before its response head.
inline constexpr std::string_view kResetBeforeHeaders =
    "upstream connect error or disconnect/reset before headers. reset reason: ";

// A local answer an upstream failure calls for.
struct UpstreamFailure {
  std::string body;
  std::string_view flags;  // UH (no healthy endpoint) or UF (connect failure)
};

enum class UpstreamConnect : uint8_t {
  kReused,      // an idle pooled connection: send at once
  kConnecting,  // a new connection: wait for on_upstream_connected (arm the connect timer)
  kFailed,      // answer `failure` with a 503
};

// HTTP/1.1 upstream: an idle connection of e.cluster (unless this is a retry), else a new one to
// a picked endpoint. Sets e.upstream (handled by `handler`), its request count, e.upstream_host
// and the upstream start times.
UpstreamConnect connect_upstream(Exchange& e, net::EventLoop& loop,
                                 upstream::UpstreamConnection::Handler* handler,
                                 UpstreamFailure& failure);

// HTTP/2 upstream: a connection of e.cluster with room for a stream (not `avoid`), or one being
// opened; the caller then waits on it. nullptr: answer `failure` with a 503.
upstream::Http2Upstream* acquire_h2_upstream(Exchange& e, net::EventLoop& loop,
                                             const upstream::Http2Upstream* avoid,
                                             UpstreamFailure& failure);

// The HTTP/2 request for the routed exchange (fields from h2_request_fields, the first
// `in_h2_form` of them known in HTTP/2 form: UpstreamHeadIndex::in_h2_form).
http::Http2Request h2_request(const Exchange& e, std::string_view authority, std::string_view path,
                              const http::HeaderList& fields, size_t in_h2_form = 0);

// Keeps the request's trailers for an HTTP/2 upstream (copied into the exchange), minus fields a
// trailer may not carry; sent by h2_send_request_end once the body before them has gone.
void keep_h2_request_trailers(Exchange& e, const http::HeaderList& trailers);
// The same from a chunked body's trailer section as the decoder validated it ("name: value"
// lines ending in CRLF, then CRLF).
void keep_h2_request_trailers(Exchange& e, std::string_view section);

// Ends the request on HTTP/2 stream `stream` after `body` (the last bytes, possibly none): with
// the kept trailers when there are some, else END_STREAM on the data.
http::SubmitResult h2_send_request_end(Exchange& e, upstream::Http2Upstream& h2, int32_t stream,
                                       std::string_view body);

// The trailers that end a gRPC call the gateway timed out after its response head went out
// (grpc-status 4, DEADLINE_EXCEEDED).
const http::HeaderList& deadline_exceeded_trailers();

// Keeps body bytes submitted to an HTTP/2 upstream before its response head (in
// e.h2_replay_body) so that a stream the upstream refuses (REFUSED_STREAM: never processed, RFC
// 9113 §8.7) can be replayed with its body on another connection. false once the body outgrows
// 64 KiB: the copy is dropped and the request is not replayed.
bool keep_for_replay(Exchange& e, std::string_view data);

// The 503 body for an upstream connection that failed (`reason` from the connection); a TLS
// failure is also kept in e.transport_failure for %UPSTREAM_TRANSPORT_FAILURE_REASON%.
std::string connect_failure_body(Exchange& e, std::string_view reason);

// Why an upstream connection that never connected failed, in Envoy's words (the same text
// without kResetBeforeHeaders); counts upstream_cx_connect_fail.
std::string unconnected_failure_reason(Exchange& e);

}  // namespace proxenos::proxy
