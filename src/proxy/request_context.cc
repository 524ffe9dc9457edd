#include "proxy/request_context.h"

#include <unistd.h>

#include <charconv>
#include <cstring>
#include <ctime>

#include "base/time_format.h"
#include "http/header.h"
#include "http/http2_headers.h"

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

namespace {

// Appends the head's text and notes where its parts went, for the HTTP/2 upstream request made
// from the same head (HTTP/2 takes the fields as they are, without parsing the text again).
// Without text (an HTTP/2-only head), fields are noted as views of where they came from, and
// only values assembled here (x-forwarded-for, templates, ...) are written to `out`.
class HeadWriter {
 public:
  using Part = UpstreamHeadIndex::Part;

  HeadWriter(std::string& out, UpstreamHeadIndex* index, bool text)
      : out_(out), index_(index), text_(text) {
    if (index_ != nullptr) index_->clear();
  }

  Part mark() const { return Part::at(out_.size()); }
  void close(Part& part) const { part.len = static_cast<uint32_t>(out_.size()) - part.off; }

  // A field with its value written to `out` by the caller between begin() and end().
  void begin(std::string_view name) {
    if (text_) {
      name_ = mark();
      out_.append(name);
      close(name_);
      out_.append(": ");
    } else {
      name_ = Part::of(name);
    }
    value_ = mark();
  }
  // `for_http2`: false for HTTP/1.1 connection and framing fields HTTP/2 does without.
  void end(bool for_http2 = true) {
    close(value_);
    if (text_) out_.append("\r\n");
    if (index_ != nullptr && for_http2) index_->fields.push_back({name_, value_});
  }
  // The value written since begin(), so far.
  Part value_part() const {
    Part part = value_;
    close(part);
    return part;
  }
  // One resize and plain copies instead of four appends, each checking the capacity.
  void field(std::string_view name, std::string_view value, bool for_http2 = true) {
    if (!text_) {
      if (index_ != nullptr && for_http2)
        index_->fields.push_back({Part::of(name), Part::of(value)});
      return;
    }
    const size_t at = out_.size();
    out_.resize(at + name.size() + value.size() + 4);
    char* p = out_.data() + at;
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, value.data(), value.size());
    p[value.size()] = '\r';
    p[value.size() + 1] = '\n';
    if (index_ != nullptr && for_http2) {
      const Part name_part = Part::at(at, name.size());
      index_->fields.push_back({name_part, Part::at(at + name.size() + 2, value.size())});
    }
  }

 private:
  std::string& out_;
  UpstreamHeadIndex* index_;
  bool text_;
  Part name_, value_;
};

}  // namespace

void build_upstream_head(const RequestContext& c, const router::Route& route,
                         const router::RouteTarget& target, const upstream::ClusterSpec& cluster,
                         std::string_view path, std::string& out, std::string& original_path,
                         UpstreamHeadIndex* index, bool text) {
  const http::RequestHead& req = *c.request;
  out.clear();
  // Room for the client's head and what is added to it, so appends rarely reallocate.
  out.reserve(text ? req.storage.size() + 512 : 256);
  HeadWriter w(out, index, text);
  if (text) {
    out.append(req.method);
    out.push_back(' ');
  }
  UpstreamHeadIndex::Part target_part = w.mark();
  rewrite_path(route, target, path, original_path);  // borrow as scratch
  out.append(original_path);
  bool rewritten = original_path != req.path;
  if (req.has_query) {
    out.push_back('?');
    out.append(req.query);
  }
  w.close(target_part);
  if (rewritten) {
    original_path.assign(req.path);
    if (req.has_query) {
      original_path.push_back('?');
      original_path.append(req.query);
    }
  } else {
    original_path.clear();
  }

  // Host (:authority for HTTP/2).
  std::string_view host = req.authority;
  if (target.host_rewrite) {
    host = *target.host_rewrite;
  } else if (target.auto_host_rewrite) {
    host = cluster.host;
  }
  UpstreamHeadIndex::Part host_part = UpstreamHeadIndex::Part::of(host);
  if (text) {
    out.append(" HTTP/1.1\r\nhost: ");
    host_part = w.mark();
    out.append(host);
    w.close(host_part);
    out.append("\r\n");
  }
  if (index != nullptr) {
    index->target = target_part;
    index->host = host_part;
  }

  // Headers named by the client's Connection header are hop-by-hop too.
  std::string_view connection = http::find_header(req.headers, "connection");
  std::string_view xff;
  bool has_xff = false;
  bool te_sent = false;
  for (const auto& h : req.headers) {
    if (is_hop_by_hop(h.name)) {
      if (h.name.size() == 2 && http::header_has_token(h.value, "trailers")) {
        // TE is hop-by-hop, but `te: trailers` (all of it that is kept) still says the client
        // takes trailers; gRPC servers require it. Envoy forwards it to either protocol.
        if (!te_sent) w.field("te", "trailers");
        te_sent = true;
        continue;
      }
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
    w.field(h.name, h.value);
  }

  // x-forwarded-for: the client's list plus the peer we saw, when we are the edge.
  if (c.module->use_remote_address) {
    w.begin("x-forwarded-for");
    if (has_xff && !xff.empty()) {
      out.append(xff);
      out.append(", ");
    }
    out.append(strip_port(c.peer_address));
    w.end();
  } else if (has_xff) {
    w.field("x-forwarded-for", xff);
  }
  w.field("x-forwarded-proto", c.forwarded_proto);
  w.field("x-request-id", c.request_id);
  if (!original_path.empty()) w.field("x-envoy-original-path", original_path);
  if (index != nullptr && req.version_major == 2) index->in_h2_form = index->fields.size();
  if (target.add_linkerd_headers) {
    w.begin("l5d-dst-override");
    out.append(cluster.host);
    out.push_back(':');
    out.append(std::to_string(cluster.port));
    w.end();
  }
  for (const auto& add : target.request_headers.add) {
    w.begin(add.name);
    expand_template(add.value, c, out);
    // HTTP/2 takes a Host added here as :authority (the last one wins), and no connection
    // fields: they would nominate others for dropping.
    const bool is_host = http::iequals(add.name, "host");
    if (is_host && index != nullptr) index->host = w.value_part();
    w.end(!is_host && !http::is_connection_specific_header(add.name));
  }
  if (!c.xfcc_value.empty()) w.field("x-forwarded-client-cert", c.xfcc_value);
  if (!c.upgrade.empty()) {
    w.field("connection", "upgrade", false);
    w.field("upgrade", c.upgrade, false);
  }
  switch (req.framing) {
    case http::BodyFraming::kContentLength: {
      char buf[24];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, req.content_length);
      w.begin("content-length");  // the digits are copied: `buf` goes away
      out.append(buf, p);
      w.end();
      break;
    }
    case http::BodyFraming::kChunked:
      w.field("transfer-encoding", "chunked", false);
      break;
    default:
      // No body (an HTTP/2 request ended with its head): a method that expects one says so,
      // as Envoy's HTTP/1.1 codec does; some servers answer 411 otherwise.
      if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
        w.field("content-length", "0");
      }
      break;
  }
  if (text) out.append("\r\n");
}

}  // namespace proxenos::proxy
