#include "proxy/response_builder.h"

#include <charconv>
#include <ctime>
#include <vector>

#include "http/header.h"
#include "http/status.h"

namespace proxenos::proxy {

namespace {

bool is_response_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2:
      return http::iequals(name, "te");
    case 6:
      return http::iequals(name, "server");
    case 7:
      return http::iequals(name, "upgrade") || http::iequals(name, "trailer");
    case 10:
      return http::iequals(name, "connection") || http::iequals(name, "keep-alive");
    case 16:
      return http::iequals(name, "proxy-connection");
    case 17:
      return http::iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

void append_status_line(int status, bool http10, std::string& out) {
  out.append(http10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char buf[8];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, status);
  out.append(buf, p);
  out.push_back(' ');
  out.append(http::reason_phrase(status));
  out.append("\r\n");
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

bool is_set_field(std::span<const http::HeaderField> set, std::string_view name) {
  for (const http::HeaderField& f : set) {
    if (http::iequals(f.name, name)) return true;
  }
  return false;
}

void append_field(std::string_view name, std::string_view value, std::string& out) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace

std::string_view http_date() {
  thread_local time_t cached_sec = 0;
  thread_local char cached[40];
  thread_local size_t cached_len = 0;
  time_t now = time(nullptr);
  if (now != cached_sec) {
    tm tm_utc{};
    gmtime_r(&now, &tm_utc);
    cached_len = strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm_utc);
    cached_sec = now;
  }
  return {cached, cached_len};
}

void build_response_head(const ResponseHeadContext& c, std::string& out) {
  const http::ResponseHead& r = *c.response;
  out.clear();
  append_status_line(r.status, c.http10, out);
  std::string_view connection = http::find_header(r.headers, "connection");
  bool has_date = false;
  for (const auto& h : r.headers) {
    if (is_response_hop_by_hop(h.name)) continue;
    if (!connection.empty() && http::header_has_token(connection, h.name)) continue;
    if (c.chunked && http::iequals(h.name, "content-length")) continue;
    if (is_set_field(c.set_fields, h.name)) continue;
    if (c.target) {
      bool drop = false;
      for (const auto& name : c.target->response_headers.remove) {
        drop = drop || http::iequals(h.name, name);
      }
      for (const auto& add : c.target->response_headers.add) {
        drop = drop || (!add.append && http::iequals(h.name, add.name));
      }
      if (drop) continue;
    }
    if (!has_date && h.name.size() == 4 && http::iequals(h.name, "date")) has_date = true;
    out.append(h.name);
    out.append(": ");
    out.append(h.value);
    out.append("\r\n");
  }
  if (!has_date) {
    out.append("date: ");
    out.append(http_date());
    out.append("\r\n");
  }
  out.append("server: ");
  out.append(c.server_name);
  out.append("\r\n");
  if (c.upstream_service_ms >= 0) {
    out.append("x-envoy-upstream-service-time: ");
    append_uint(out, static_cast<uint64_t>(c.upstream_service_ms));
    out.append("\r\n");
  }
  if (c.target) {
    for (const auto& add : c.target->response_headers.add) {
      if (is_set_field(c.set_fields, add.name)) continue;
      out.append(add.name);
      out.append(": ");
      if (c.request_context) {
        expand_template(add.value, *c.request_context, out);
      } else {
        for (const auto& piece : add.value.pieces) out.append(piece.text);
      }
      out.append("\r\n");
    }
  }
  for (const http::HeaderField& f : c.set_fields) append_field(f.name, f.value, out);
  if (c.chunked) out.append("transfer-encoding: chunked\r\n");
  if (!c.upgrade.empty()) {
    out.append("upgrade: ");
    out.append(c.upgrade);
    out.append("\r\nconnection: upgrade\r\n");
  } else if (c.close) {
    out.append("connection: close\r\n");
  } else if (c.keep_alive_http10) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

size_t build_response_fields(const ResponseHeadContext& c, std::string& storage,
                             http::HeaderList& out) {
  const http::ResponseHead& r = *c.response;
  storage.clear();
  out.clear();
  // Values we compose go to `storage`, which may reallocate while it grows: remember them as
  // offsets and turn them into views at the end.
  struct Owned {
    size_t field, offset, length;
  };
  thread_local std::vector<Owned> owned;
  owned.clear();
  auto add_owned = [&](std::string_view name, size_t offset) {
    owned.push_back({out.size(), offset, storage.size() - offset});
    out.push_back({name, {}});
  };
  std::string_view connection = http::find_header(r.headers, "connection");
  bool has_date = false;
  for (const auto& h : r.headers) {
    if (is_response_hop_by_hop(h.name)) continue;
    if (!connection.empty() && http::header_has_token(connection, h.name)) continue;
    if (is_set_field(c.set_fields, h.name)) continue;
    if (c.target) {
      bool drop = false;
      for (const auto& name : c.target->response_headers.remove) {
        drop = drop || http::iequals(h.name, name);
      }
      for (const auto& add : c.target->response_headers.add) {
        drop = drop || (!add.append && http::iequals(h.name, add.name));
      }
      if (drop) continue;
    }
    if (!has_date && h.name.size() == 4 && http::iequals(h.name, "date")) has_date = true;
    out.push_back(h);
  }
  const size_t own = out.size();
  if (!has_date) {
    size_t at = storage.size();
    storage.append(http_date());
    add_owned("date", at);
  }
  out.push_back({"server", c.server_name});
  if (c.upstream_service_ms >= 0) {
    size_t at = storage.size();
    append_uint(storage, static_cast<uint64_t>(c.upstream_service_ms));
    add_owned("x-envoy-upstream-service-time", at);
  }
  if (c.target) {
    for (const auto& add : c.target->response_headers.add) {
      if (is_set_field(c.set_fields, add.name)) continue;
      size_t at = storage.size();
      if (c.request_context) {
        expand_template(add.value, *c.request_context, storage);
      } else {
        for (const auto& piece : add.value.pieces) storage.append(piece.text);
      }
      add_owned(add.name, at);
    }
  }
  std::string_view base = storage;
  for (const Owned& o : owned) out[o.field].value = base.substr(o.offset, o.length);
  out.insert(out.end(), c.set_fields.begin(), c.set_fields.end());
  return own;
}

void append_local_reply_head(int status, size_t content_length, std::string_view location,
                             std::string_view server_name, bool close, bool http10,
                             std::string& out, std::span<const http::HeaderField> extra) {
  append_status_line(status, http10, out);
  if (!location.empty()) {
    out.append("location: ");
    out.append(location);
    out.append("\r\n");
  }
  out.append("content-length: ");
  append_uint(out, content_length);
  out.append("\r\n");
  if (content_length > 0) out.append("content-type: text/plain\r\n");
  for (const http::HeaderField& f : extra) append_field(f.name, f.value, out);
  out.append("date: ");
  out.append(http_date());
  out.append("\r\nserver: ");
  out.append(server_name);
  out.append("\r\n");
  if (close) out.append("connection: close\r\n");
  out.append("\r\n");
}

}  // namespace proxenos::proxy
