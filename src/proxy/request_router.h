#pragma once
// Routing one request, whatever protocol it came in on: the forwarding facts (client address,
// whether it counts as secure, x-request-id), the probe paths, the route match, the Host's
// insecure action, redirects, upgrade permission, and the upstream request head. The connection
// then either answers locally or proxies.

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/grpc.h"
#include "net/tls_stream.h"
#include "observe/stats.h"
#include "proxy/exchange.h"
#include "proxy/worker.h"

namespace proxenos::proxy {

struct RoutingInput {
  const std::string* listener_key = nullptr;  // "addr:port" the connection was accepted on
  std::string_view peer;                      // ip:port of the TCP peer
  std::string_view local;                     // ip:port we accepted on
  bool tls = false;                           // the connection is TLS (terminated here)
  // For x-forwarded-client-cert: the client's certificate (null for cleartext) and the URI SANs
  // of the certificate we served (Envoy's By=).
  const net::PeerCertificateInfo* peer_certificate = nullptr;
  std::span<const std::string> local_uri_sans;
  // The listener's stats shard on this worker, for what routing itself counts (upgrades a route
  // refuses); null counts nothing.
  observe::ListenerStats* stats = nullptr;
};

// An answer given without an upstream. `body` is static text.
struct LocalReply {
  int status = 0;
  std::string_view body;
  std::string_view flags = "-";
  std::string location;
};

// The gRPC status a gRPC client gets instead of a local answer with `http_status` (Envoy's
// mapping; a route or grpc-timeout expiry, flag UT, is DEADLINE_EXCEEDED).
http::GrpcStatus local_reply_grpc_status(int http_status, std::string_view flags);

// The content-type of a local answer given the gRPC way (HTTP 200, grpc-status and grpc-message
// in the head, no body): application/grpc for a gRPC request, the grpc-web(-text) response type
// for a gRPC-Web request when the Module enables gRPC-Web (as Envoy's grpc_web filter turns the
// router's local replies into). Empty for any other request: a plain HTTP answer.
std::string grpc_local_reply_content_type(const http::HeaderList& request_headers,
                                          bool grpc_web_enabled);

// The client certificate of a TLS connection, when it presented one (else null).
std::unique_ptr<const net::PeerCertificateInfo> client_certificate(const net::TlsStream* tls);

// Routes the request in `e` (config, request and start time set). With no value, the request goes
// upstream: listener, match, cluster, context, up_head, original_path (and upgrade) are set and
// the route and cluster stats count it. Otherwise the local answer to send.
std::optional<LocalReply> route_exchange(Worker& worker, Exchange& e, const RoutingInput& in);

// Whether an upstream 101 switches to the protocol the request asked for (`requested`, its
// Upgrade value): the 101's Upgrade must name it, case-insensitively. Any other 101 (another
// protocol, or no Upgrade at all) makes no tunnel: it is an invalid response.
bool switches_to_requested_protocol(const http::ResponseHead& response, std::string_view requested);

}  // namespace proxenos::proxy
