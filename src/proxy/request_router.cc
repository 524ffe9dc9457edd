#include "proxy/request_router.h"

#include <algorithm>
#include <array>

#include "http/header.h"
#include "proxy/client_cert_header.h"
#include "proxy/cors.h"
#include "proxy/request_context.h"

namespace proxenos::proxy {

namespace {

std::string_view strip_port(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    return close == std::string_view::npos ? authority : authority.substr(0, close + 1);
  }
  size_t colon = authority.rfind(':');
  return colon == std::string_view::npos ? authority : authority.substr(0, colon);
}

// A request id we accept from a client: printable, short, no separators that could confuse logs.
bool acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c <= 0x20 || c >= 0x7f || c == '"') return false;
  }
  return true;
}

// "000102…ff": a byte's two hex digits with one lookup.
constexpr std::array<char, 512> kHexPairs = [] {
  constexpr char kHex[] = "0123456789abcdef";
  std::array<char, 512> t{};
  for (unsigned b = 0; b < 256; ++b) {
    t[2 * b] = kHex[b >> 4];
    t[2 * b + 1] = kHex[b & 0xf];
  }
  return t;
}();

void append_uuid4(uint64_t hi, uint64_t lo, std::string& out) {
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char buf[36];
  int pos = 0;
  auto emit = [&](uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) {
      const size_t b = (v >> (i * 8)) & 0xff;
      buf[pos++] = kHexPairs[2 * b];
      buf[pos++] = kHexPairs[2 * b + 1];
    }
  };
  emit(hi >> 32, 4);
  buf[pos++] = '-';
  emit((hi >> 16) & 0xffff, 2);
  buf[pos++] = '-';
  emit(hi & 0xffff, 2);
  buf[pos++] = '-';
  emit(lo >> 48, 2);
  buf[pos++] = '-';
  emit(lo & 0xffffffffffffULL, 6);
  out.append(buf, 36);
}

// Collapses runs of '/' (Module merge_slashes).
void merge_slashes(std::string_view path, std::string& out) {
  out.clear();
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
}

// Whether the route lets the client's Upgrade through. As Envoy, each allow_upgrade entry is
// compared with the whole Upgrade value, case-insensitively: "spdy/3.1" admits SPDY/3.1 and
// nothing else, and a list ("websocket, foo") matches no single protocol. Two Upgrade fields
// are such a list (RFC 9110 §5.3), whatever the first one says.
bool upgrade_allowed(const router::RouteTarget& target, const http::RequestHead& req) {
  int fields = 0;
  for (const http::HeaderField& f : req.headers) {
    if (f.name.size() == 7 && http::iequals(f.name, "upgrade") && ++fields > 1) return false;
  }
  for (const std::string& allowed : target.allow_upgrade) {
    if (http::iequals(allowed, req.upgrade_protocol)) return true;
  }
  return false;
}

std::optional<LocalReply> answer_probe(std::string_view path, const config::ModuleSettings& module,
                                       bool ready) {
  if (path.size() < 25 || path.substr(0, 14) != "/ambassador/v0") return std::nullopt;
  if (path == "/ambassador/v0/check_alive" && module.liveness_probe) {
    return LocalReply{200, "ambassador liveness check OK", "-"};
  }
  if (path == "/ambassador/v0/check_ready" && module.readiness_probe) {
    if (ready) {
      return LocalReply{200, "ambassador readiness check OK", "-"};
    } else {
      return LocalReply{503, "ambassador waiting for config", "-"};
    }
  }
  return std::nullopt;
}

LocalReply redirect_reply(const http::RequestHead& req, bool secure,
                          const router::RouteTarget& target, const router::Route& route) {
  const router::Redirect& r = *target.redirect;
  std::string location = r.https ? "https://" : (secure ? "https://" : "http://");
  location.append(r.host.empty() ? req.authority : std::string_view(r.host));
  std::string path;
  if (r.path) {
    path = *r.path;
  } else if (r.prefix) {
    path = *r.prefix;
    if (route.path.kind == router::PathMatchKind::kPrefix) {
      path.append(req.path.substr(std::min(req.path.size(), route.path.value.size())));
    }
  } else if (r.regex) {
    path.assign(req.path);
    RE2::GlobalReplace(&path, *r.regex->pattern, r.regex->substitution);
  } else {
    path.assign(req.path);
  }
  location.append(path);
  if (req.has_query && path.find('?') == std::string::npos) {
    location.push_back('?');
    location.append(req.query);
  }
  return LocalReply{r.status, {}, "-", std::move(location)};
}

// x-forwarded-client-cert, as the Module's forward_client_cert_details says (Envoy's default,
// SANITIZE, removes whatever the client sent).
void forwarded_client_cert(const config::ModuleSettings& module, const http::RequestHead& req,
                           const RoutingInput& in, Exchange& e, RequestContext& ctx) {
  ClientCertSettings settings;
  settings.forward = parse_forward_client_cert_details(module.forward_client_cert_details)
                         .value_or(ForwardClientCertDetails::kSanitize);
  settings.set_current = {module.xfcc_subject, module.xfcc_cert, module.xfcc_chain, module.xfcc_dns,
                          module.xfcc_uri};
  bool has = false;
  std::string_view existing = http::find_header(req.headers, "x-forwarded-client-cert", &has);
  const net::PeerCertificateInfo* peer =
      in.peer_certificate != nullptr && in.peer_certificate->presented ? in.peer_certificate
                                                                       : nullptr;
  XfccResult x = compute_forwarded_client_cert(
      settings, has ? std::optional<std::string_view>(existing) : std::nullopt, peer,
      in.local_uri_sans);
  ctx.xfcc_strip = x.action != XfccAction::kKeep;
  if (x.action == XfccAction::kReplace || x.action == XfccAction::kAppend) {
    e.xfcc = std::move(x.value);
    ctx.xfcc_value = e.xfcc;
  }
}

}  // namespace

http::GrpcStatus local_reply_grpc_status(int http_status, std::string_view flags) {
  return flags == "UT" ? http::GrpcStatus::kDeadlineExceeded
                       : http::grpc_status_from_http(http_status);
}

std::string grpc_local_reply_content_type(const http::HeaderList& request_headers,
                                          bool grpc_web_enabled) {
  std::string_view content_type = http::find_header(request_headers, "content-type");
  if (http::is_grpc_content_type(content_type)) return "application/grpc";
  if (!grpc_web_enabled) return {};
  http::GrpcWebFormat format =
      http::grpc_web_response_format(content_type, http::find_header(request_headers, "accept"));
  if (format == http::GrpcWebFormat::kNone) return {};
  return http::grpc_to_grpc_web_content_type(http::grpc_web_to_grpc_content_type(content_type),
                                             format);
}

std::unique_ptr<const net::PeerCertificateInfo> client_certificate(const net::TlsStream* tls) {
  if (tls == nullptr) return nullptr;
  net::PeerCertificateInfo info = tls->peer_certificate_info();
  if (!info.presented) return nullptr;
  return std::make_unique<const net::PeerCertificateInfo>(std::move(info));
}

bool switches_to_requested_protocol(const http::ResponseHead& response,
                                    std::string_view requested) {
  bool present = false;
  std::string_view upgrade = http::find_header(response.headers, "upgrade", &present);
  return present && http::iequals(upgrade, requested);
}

std::optional<LocalReply> route_exchange(Worker& worker, Exchange& e, const RoutingInput& in) {
  if (!e.config || !e.config->snapshot) {
    return LocalReply{503, "no configuration", "NC"};
  }
  const config::Snapshot& snap = *e.config->snapshot;
  e.listener = e.config->listener(*in.listener_key);
  if (e.listener == nullptr || !e.listener->routes) {
    return LocalReply{404, "no listener configuration", "NR"};
  }
  const http::RequestHead& req = e.request;

  // Forwarding facts: who the client is and whether the request counts as secure.
  uint32_t trusted_hops =
      e.listener->l7_depth > 0 ? e.listener->l7_depth : snap.module.xff_num_trusted_hops;
  bool has_xff = false;
  std::string_view xff = http::find_header(req.headers, "x-forwarded-for", &has_xff);
  std::string_view peer_ip = in.peer;
  peer_ip = peer_ip.substr(0, peer_ip.rfind(':'));
  if (!peer_ip.empty() && peer_ip.front() == '[') peer_ip = peer_ip.substr(1, peer_ip.size() - 2);
  e.client_address.assign(peer_ip);
  if (has_xff && (trusted_hops > 0 || !snap.module.use_remote_address)) {
    // The Nth address from the right (N = trusted hops, at least 1) is the client.
    uint32_t want = std::max<uint32_t>(trusted_hops, 1);
    std::string_view rest = xff;
    uint32_t seen = 0;
    while (!rest.empty()) {
      size_t comma = rest.rfind(',');
      std::string_view item = comma == std::string_view::npos ? rest : rest.substr(comma + 1);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (++seen == want) {
        e.client_address.assign(item);
        break;
      }
    }
  }
  bool has_xfp = false;
  std::string_view client_xfp = http::find_header(req.headers, "x-forwarded-proto", &has_xfp);
  // Envoy at the edge: the scheme of the connection, unless a trusted proxy in front says.
  std::string_view forwarded_proto = in.tls ? "https" : "http";
  if (has_xfp && trusted_hops > 0 && (client_xfp == "https" || client_xfp == "http")) {
    forwarded_proto = client_xfp;
  }
  switch (e.listener->security_model) {
    case config::SecurityModel::kSecure:
      e.secure = true;
      break;
    case config::SecurityModel::kInsecure:
      e.secure = false;
      break;
    case config::SecurityModel::kXfp:
      e.secure = forwarded_proto == "https";
      break;
  }
  bool has_id = false;
  std::string_view id = http::find_header(req.headers, "x-request-id", &has_id);
  if (has_id && acceptable_request_id(id)) {
    e.request_id.assign(id);
  } else {
    append_uuid4(worker.random64(), worker.random64(), e.request_id);
  }

  std::string_view path = req.path;
  if (snap.module.merge_slashes && path.find("//") != std::string_view::npos) {
    merge_slashes(path, e.scratch);
    path = e.scratch;
  }
  if (std::optional<LocalReply> probe = answer_probe(path, snap.module, worker.ready())) {
    return probe;
  }
  router::RequestView view;
  view.method = req.method;
  view.path = path;
  view.query = req.query;
  view.authority = req.authority;
  view.headers = &req.headers;
  e.match = e.listener->routes->match(view, worker.draw_percent());
  if (e.match.route == nullptr) {
    return LocalReply{404, "no matching route", "NR"};
  }
  if (e.match.route->stats_index < e.config->route_stats.size()) {
    e.route_stats = e.config->route_stats[e.match.route->stats_index].get();
    e.route_stats->rq_total.inc();
    e.route_stats->rq_active.add(1);
  }
  // Host requestPolicy for insecure requests; the ACME challenge path is always routed.
  if (!e.secure && e.match.host != nullptr &&
      e.match.host->insecure_action != router::InsecureAction::kRoute &&
      path.substr(0, 28) != "/.well-known/acme-challenge/") {
    if (e.match.host->insecure_action == router::InsecureAction::kReject) {
      return LocalReply{404, "no matching route", "NR"};
    }
    std::string location = "https://";
    location.append(strip_port(req.authority));
    location.append(req.target.substr(0, 1) == "/" ? req.target : std::string_view(req.path));
    return LocalReply{301, {}, "-", std::move(location)};
  }
  const router::RouteTarget& target = *e.match.target;
  if (target.redirect) return redirect_reply(e.request, e.secure, target, *e.match.route);
  if (target.direct_status != 0) {
    return LocalReply{target.direct_status, "no valid backend for this route", "-"};
  }
  // Upgrades (WebSockets) need the route's allow_upgrade; without it they are refused, as
  // Emissary does, and never reach the upstream. h2c upgrade offers are simply ignored.
  if (req.upgrade && !http::iequals(req.upgrade_protocol, "h2c")) {
    if (!upgrade_allowed(target, req)) {
      if (in.stats != nullptr) in.stats->downstream_rq_ws_on_non_ws_route.inc();
      return LocalReply{403, "upgrade not allowed on this route", "UPE"};
    }
    e.upgrade = true;
  }
  // CORS runs after the route is chosen (and before auth, Emissary's filter order); redirects and
  // refused upgrades never reach it.
  if (const router::CorsPolicy* cors = e.match.route->cors.get()) {
    if (apply_cors(*cors, req, e.cors_fields) == CorsAction::kPreflight) {
      e.cors_preflight = true;
      return LocalReply{200, {}, "-"};
    }
  }
  if (target.cluster >= e.config->clusters.size()) {
    return LocalReply{503, "no healthy upstream", "UH"};
  }
  e.cluster = e.config->clusters[target.cluster].get();
  e.cluster->stats().upstream_rq_total.inc();
  e.cluster->stats().upstream_rq_active.add(1);
  e.cluster_active = true;

  // Every field set one by one: `ctx = RequestContext{}` compiles to a `rep stos` over the
  // whole struct, which costs more cycles than all the stores below.
  RequestContext& ctx = e.context;
  ctx.upstream_address = {};
  ctx.upgrade = {};
  ctx.xfcc_strip = false;
  ctx.xfcc_value = {};
  ctx.request = &req;
  ctx.module = &snap.module;
  ctx.listener = e.listener;
  ctx.peer_address = in.peer;
  ctx.client_address = e.client_address;
  ctx.local_address = in.local;
  ctx.forwarded_proto = forwarded_proto;
  ctx.request_id = e.request_id;
  ctx.start_unix_ms = e.start_unix_ms;
  if (e.upgrade) ctx.upgrade = http::find_header(req.headers, "upgrade");
  forwarded_client_cert(snap.module, req, in, e, ctx);
  // An HTTP/2 upstream takes the head as fields; the HTTP/1.1 text is made only when something
  // sends it (an HTTP/1.1 upstream, an upgrade, which goes over HTTP/1.1, or a mirror).
  const bool http2 = e.cluster->spec().http2;
  const bool text = !http2 || e.upgrade || req.upgrade || e.match.route->shadow.has_value();
  build_upstream_head(ctx, *e.match.route, target, e.cluster->spec(), path, e.up_head,
                      e.original_path, http2 ? &e.up_head_index : nullptr, text);
  return std::nullopt;
}

}  // namespace proxenos::proxy
