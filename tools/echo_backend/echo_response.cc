#include "echo_response.h"

#include <charconv>

#include "http/header.h"
#include "http/status.h"

namespace proxenos::echo {

namespace {

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && http::iequals(s.substr(0, prefix.size()), prefix);
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool truthy(std::string_view v) {
  return v == "1" || http::iequals(v, "true") || http::iequals(v, "yes") || http::iequals(v, "on");
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

void append_u64(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 when it is not valid (overlong
// forms, surrogates and code points above U+10FFFF are invalid).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char cc = byte(i + k);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return n;
}

}  // namespace

EchoControls parse_controls(const http::HeaderList& headers) {
  EchoControls c;
  for (const auto& h : headers) {
    if (!starts_with_ci(h.name, kControlPrefix)) continue;
    std::string_view key = h.name.substr(kControlPrefix.size());
    uint64_t n = 0;
    if (http::iequals(key, "status")) {
      if (!parse_u64(h.value, &n) || n < 200 || n > 599) {
        c.error = "x-echo-status must be an integer in [200, 599]";
      } else {
        c.status = static_cast<int>(n);
      }
    } else if (http::iequals(key, "delay-ms")) {
      if (!parse_u64(h.value, &n) || n > 3600 * 1000) {
        c.error = "x-echo-delay-ms must be an integer in [0, 3600000]";
      } else {
        c.delay_ms = n;
      }
    } else if (http::iequals(key, "response-bytes")) {
      if (!parse_u64(h.value, &n)) {
        c.error = "x-echo-response-bytes must be a non-negative integer";
      } else {
        c.has_response_bytes = true;
        c.response_bytes = n;
      }
    } else if (http::iequals(key, "chunked")) {
      c.chunked = truthy(h.value);
    } else if (http::iequals(key, "close")) {
      c.close = truthy(h.value);
    } else if (http::iequals(key, "reset")) {
      c.reset = truthy(h.value);
    } else if (http::iequals(key, "partial")) {
      c.partial = truthy(h.value);
    }
  }
  return c;
}

void append_json_string(std::string& out, std::string_view s, bool lowercase) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    // Copy the longest run that needs no escaping in one append (most of every header value).
    size_t run = i;
    while (run < s.size()) {
      unsigned char c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\' || (lowercase && c >= 'A' && c <= 'Z')) {
        break;
      }
      ++run;
    }
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      if (i == s.size()) break;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_sequence_length(s, i);
      if (n != 0) {
        out.append(s.data() + i, n);
        i += n;
      } else {
        char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(esc, sizeof esc);
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (c >= 'A' && c <= 'Z') {
          out.push_back(lower(static_cast<char>(c)));
        } else {
          char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out.append(esc, sizeof esc);
        }
    }
    ++i;
  }
  out.push_back('"');
}

void append_request_json(std::string& out, const RequestInfo& info) {
  const http::RequestHead& head = *info.head;
  out.append("{\"backend\":");
  append_json_string(out, info.backend);
  out.append(",\"method\":");
  append_json_string(out, head.method);
  out.append(",\"path\":");
  append_json_string(out, head.target);
  out.append(",\"host\":");
  bool found = false;
  std::string_view host = http::find_header(head.headers, "host", &found);
  append_json_string(out, found ? host : head.authority);

  // Repeated fields become a list in first-appearance order; n <= header limit, so the quadratic
  // scan is cheaper than any map.
  out.append(",\"headers\":{");
  const auto& hs = head.headers;
  bool first = true;
  for (size_t i = 0; i < hs.size(); ++i) {
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = http::iequals(hs[j].name, hs[i].name);
    if (seen) continue;
    size_t count = 1;
    for (size_t j = i + 1; j < hs.size(); ++j) count += http::iequals(hs[j].name, hs[i].name);
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, hs[i].name, /*lowercase=*/true);
    out.push_back(':');
    if (count == 1) {
      append_json_string(out, hs[i].value);
      continue;
    }
    out.push_back('[');
    append_json_string(out, hs[i].value);
    for (size_t j = i + 1; j < hs.size(); ++j) {
      if (!http::iequals(hs[j].name, hs[i].name)) continue;
      out.push_back(',');
      append_json_string(out, hs[j].value);
    }
    out.push_back(']');
  }
  out.append("},\"body_length\":");
  append_u64(out, info.body_length);
  out.append(",\"body_sha256\":");
  append_json_string(out, info.body_sha256);
  if (!info.protocol.empty()) {
    out.append(",\"http_version\":");
    append_json_string(out, info.protocol);
  } else {
    out.append(head.version_minor == 0 ? ",\"http_version\":\"HTTP/1.0\""
                                       : ",\"http_version\":\"HTTP/1.1\"");
  }
  out.append(",\"remote_address\":");
  append_json_string(out, info.remote_address);
  if (!info.protocol.empty()) {
    out.append(",\"protocol\":");
    append_json_string(out, info.protocol);
    out.append(",\"scheme\":");
    append_json_string(out, info.scheme);
  }
  if (info.tls != nullptr) {
    out.append(",\"tls\":{\"version\":");
    append_json_string(out, info.tls->version);
    out.append(",\"sni\":");
    append_json_string(out, info.tls->sni);
    out.append(",\"alpn\":");
    append_json_string(out, info.tls->alpn);
    out.append(",\"client_subject\":");
    append_json_string(out, info.tls->client_subject);
    out.push_back('}');
  }
  out.append("}\n");
}

void append_response_head(std::string& out, const ResponseHeadSpec& spec) {
  out.append("HTTP/1.1 ");
  append_u64(out, static_cast<uint64_t>(spec.status));
  out.push_back(' ');
  out.append(reason_for(spec.status));
  out.append("\r\n");
  if (!spec.content_type.empty()) {
    out.append("content-type: ");
    out.append(spec.content_type);
    out.append("\r\n");
  }
  if (spec.body_mode == BodyMode::kContentLength) {
    out.append("content-length: ");
    append_u64(out, spec.content_length);
    out.append("\r\n");
  } else if (spec.body_mode == BodyMode::kChunked) {
    out.append("transfer-encoding: chunked\r\n");
  }
  if (spec.request_headers != nullptr) {
    for (const auto& h : *spec.request_headers) {
      if (h.name.size() <= kResponseHeaderPrefix.size() ||
          !starts_with_ci(h.name, kResponseHeaderPrefix)) {
        continue;
      }
      out.append(h.name.substr(kResponseHeaderPrefix.size()));
      out.append(": ");
      out.append(h.value);
      out.append("\r\n");
    }
  }
  if (spec.close) {
    out.append("connection: close\r\n");
  } else if (spec.keep_alive_10) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

void append_chunk_size(std::string& out, uint64_t size) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, size, 16);
  out.append(buf, end);
  out.append("\r\n");
}

std::string_view reason_for(int status) {
  std::string_view r = http::reason_phrase(status);
  return r.empty() ? std::string_view("Unknown") : r;
}

}  // namespace proxenos::echo
