#include "proxy/request_context.h"

#include <unistd.h>

#include <charconv>
#include <ctime>

#include "base/time_format.h"
#include "http/header.h"

namespace proxenos::proxy {

namespace {

std::string_view strip_port(std::string_view address) {
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    return close == std::string_view::npos ? address : address.substr(1, close - 1);
  }
  size_t colon = address.rfind(':');
  return colon == std::string_view::npos ? address : address.substr(0, colon);
}

std::string_view port_of(std::string_view address) {
  size_t colon = address.rfind(':');
  return colon == std::string_view::npos ? std::string_view{} : address.substr(colon + 1);
}

const std::string& hostname() {
  static const std::string name = [] {
    char buf[256] = {0};
    gethostname(buf, sizeof buf - 1);
    return std::string(buf);
  }();
  return name;
}

// Substituted values come from the request; CR/LF in them must never split a header
// (CVE-2023-27493), so they are replaced by spaces.
void append_sanitized(std::string_view value, std::string& out) {
  for (char c : value) out.push_back((c == '\r' || c == '\n' || c == '\0') ? ' ' : c);
}

bool header_named(std::string_view name, const std::vector<std::string>& lower_names) {
  for (const auto& n : lower_names) {
    if (http::iequals(name, n)) return true;
  }
  return false;
}

bool replaced_by(std::string_view name, const router::HeaderEdits& edits) {
  for (const auto& add : edits.add) {
    if (!add.append && http::iequals(name, add.name)) return true;
  }
  return false;
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace

void expand_template(const http::ValueTemplate& value, const RequestContext& c, std::string& out) {
  for (const auto& piece : value.pieces) {
    switch (piece.var) {
      case http::TemplateVar::kLiteral:
        out.append(piece.text);
        break;
      case http::TemplateVar::kDownstreamRemoteAddress:
        out.append(c.client_address);
        if (c.client_address == strip_port(c.peer_address)) {
          out.push_back(':');
          out.append(port_of(c.peer_address));
        }
        break;
      case http::TemplateVar::kDownstreamRemoteAddressWithoutPort:
        out.append(c.client_address);
        break;
      case http::TemplateVar::kDownstreamLocalAddress:
        out.append(c.local_address);
        break;
      case http::TemplateVar::kDownstreamLocalAddressWithoutPort:
        out.append(strip_port(c.local_address));
        break;
      case http::TemplateVar::kDownstreamLocalPort:
        out.append(port_of(c.local_address));
        break;
      case http::TemplateVar::kUpstreamRemoteAddress:
        out.append(c.upstream_address);
        break;
      case http::TemplateVar::kProtocol:
        out.append(c.request->version_major == 2   ? "HTTP/2"
                   : c.request->version_minor == 0 ? "HTTP/1.0"
                                                   : "HTTP/1.1");
        break;
      case http::TemplateVar::kStartTime:
        base::append_rfc3339_ms(c.start_unix_ms, out);
        break;
      case http::TemplateVar::kHostname:
        out.append(hostname());
        break;
      case http::TemplateVar::kRequestHeader: {
        bool found = false;
        std::string_view v;
        if (piece.text == ":authority" || piece.text == "host") {
          v = c.request->authority;
          found = true;
        } else if (piece.text == ":method") {
          v = c.request->method;
          found = true;
        } else if (piece.text == ":path") {
          v = c.request->target;
          found = true;
        } else if (piece.text == "x-request-id") {
          v = c.request_id;
          found = true;
        } else if (piece.text == "x-forwarded-for") {
          std::string xff;
          if (append_forwarded_for(c.request->headers, c.module && c.module->use_remote_address,
                                   c.peer_address, xff)) {
            append_sanitized(xff, out);
          }
          break;
        } else {
          v = http::find_header(c.request->headers, piece.text, &found);
        }
        if (found) append_sanitized(v, out);
        break;
      }
      default:
        break;
    }
  }
}

bool append_forwarded_for(const http::HeaderList& request_headers, bool use_remote_address,
                          std::string_view peer_address, std::string& out) {
  // Several x-forwarded-for lines: the first is the list (as the upstream head takes it).
  bool has_xff = false;
  std::string_view xff = http::find_header(request_headers, "x-forwarded-for", &has_xff);
  if (use_remote_address) {
    if (has_xff && !xff.empty()) {
      out.append(xff);
      out.append(", ");
    }
    out.append(strip_port(peer_address));
    return true;
  }
  if (has_xff) out.append(xff);
  return has_xff;
}

bool is_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2:
      return http::iequals(name, "te");
    case 4:
      return http::iequals(name, "host");
    case 6:
      return http::iequals(name, "expect");
    case 7:
      return http::iequals(name, "upgrade") || http::iequals(name, "trailer");
    case 10:
      return http::iequals(name, "connection") || http::iequals(name, "keep-alive");
    case 12:
      return http::iequals(name, "x-request-id");
    case 14:
      return http::iequals(name, "content-length") || http::iequals(name, "http2-settings");
    case 15:
      return http::iequals(name, "x-forwarded-for");
    case 16:
      return http::iequals(name, "proxy-connection");
    case 17:
      return http::iequals(name, "transfer-encoding") || http::iequals(name, "x-forwarded-proto");
    case 21:
      return http::iequals(name, "x-envoy-original-path");
    default:
      return false;
  }
}

void rewrite_path(const router::Route& route, const router::RouteTarget& target,
                  std::string_view path, std::string& out) {
  out.clear();
  if (target.regex_rewrite) {
    out.assign(path);
    RE2::GlobalReplace(&out, *target.regex_rewrite->pattern, target.regex_rewrite->substitution);
    return;
  }
  if (!target.prefix_rewrite || target.prefix_rewrite->empty()) {
    out.assign(path);
    return;
  }
  switch (route.path.kind) {
    case router::PathMatchKind::kPrefix:
      out.assign(*target.prefix_rewrite);
      out.append(path.substr(std::min(path.size(), route.path.value.size())));
      break;
    case router::PathMatchKind::kExact:
    case router::PathMatchKind::kRegex:
      // Envoy swaps the whole matched path for a path or regex match.
      out.assign(*target.prefix_rewrite);
      break;
  }
}

void build_upstream_head(const RequestContext& c, const router::Route& route,
                         const router::RouteTarget& target, const upstream::ClusterSpec& cluster,
                         std::string_view path, std::string& out, std::string& original_path) {
  const http::RequestHead& req = *c.request;
  out.clear();
  out.append(req.method);
  out.push_back(' ');
  size_t path_start = out.size();
  rewrite_path(route, target, path, original_path);  // borrow as scratch
  out.append(original_path);
  bool rewritten = original_path != req.path;
  if (req.has_query) {
    out.push_back('?');
    out.append(req.query);
  }
  (void)path_start;
  if (rewritten) {
    original_path.assign(req.path);
    if (req.has_query) {
      original_path.push_back('?');
      original_path.append(req.query);
    }
  } else {
    original_path.clear();
  }
  out.append(" HTTP/1.1\r\n");

  // Host.
  out.append("host: ");
  if (target.host_rewrite) {
    out.append(*target.host_rewrite);
  } else if (target.auto_host_rewrite) {
    out.append(cluster.host);
  } else {
    out.append(req.authority);
  }
  out.append("\r\n");

  // Headers named by the client's Connection header are hop-by-hop too.
  std::string_view connection = http::find_header(req.headers, "connection");
  std::string_view xff;
  bool has_xff = false;
  for (const auto& h : req.headers) {
    if (is_hop_by_hop(h.name)) {
      if (http::iequals(h.name, "x-forwarded-for")) {
        if (has_xff) {
          // Several XFF lines form one list.
          continue;
        }
        xff = h.value;
        has_xff = true;
      }
      continue;
    }
    if (!connection.empty() && http::header_has_token(connection, h.name)) continue;
    if (c.xfcc_strip && http::iequals(h.name, "x-forwarded-client-cert")) continue;
    if (header_named(h.name, target.request_headers.remove)) continue;
    if (replaced_by(h.name, target.request_headers)) continue;
    append_header(out, h.name, h.value);
  }

  // x-forwarded-for: the client's list plus the peer we saw, when we are the edge.
  if (c.module->use_remote_address) {
    out.append("x-forwarded-for: ");
    if (has_xff && !xff.empty()) {
      out.append(xff);
      out.append(", ");
    }
    out.append(strip_port(c.peer_address));
    out.append("\r\n");
  } else if (has_xff) {
    append_header(out, "x-forwarded-for", xff);
  }
  append_header(out, "x-forwarded-proto", c.forwarded_proto);
  append_header(out, "x-request-id", c.request_id);
  if (!original_path.empty()) append_header(out, "x-envoy-original-path", original_path);
  if (target.add_linkerd_headers) {
    out.append("l5d-dst-override: ");
    out.append(cluster.host);
    out.push_back(':');
    out.append(std::to_string(cluster.port));
    out.append("\r\n");
  }
  for (const auto& add : target.request_headers.add) {
    out.append(add.name);
    out.append(": ");
    expand_template(add.value, c, out);
    out.append("\r\n");
  }
  if (!c.xfcc_value.empty()) append_header(out, "x-forwarded-client-cert", c.xfcc_value);
  if (!c.upgrade.empty()) {
    out.append("connection: upgrade\r\nupgrade: ");
    out.append(c.upgrade);
    out.append("\r\n");
  }
  switch (req.framing) {
    case http::BodyFraming::kContentLength: {
      char buf[24];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, req.content_length);
      out.append("content-length: ");
      out.append(buf, p);
      out.append("\r\n");
      break;
    }
    case http::BodyFraming::kChunked:
      out.append("transfer-encoding: chunked\r\n");
      break;
    default:
      break;
  }
  out.append("\r\n");
}

}  // namespace proxenos::proxy
