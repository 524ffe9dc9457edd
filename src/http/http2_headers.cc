#include "http/http2_headers.h"

#include <algorithm>
#include <array>

namespace proxenos::http {
namespace {

inline unsigned char uc(char c) {
  return static_cast<unsigned char>(c);
}

inline char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

std::string_view trim_ows(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

bool valid_name(std::string_view name) {
  for (char c : name) {
    if (!chars::kToken[uc(c)]) return false;
  }
  return !name.empty();
}

bool valid_value(std::string_view value) {
  for (char c : value) {
    if (!chars::kFieldValue[uc(c)]) return false;
  }
  return true;
}

// Up to this many Connection header values are honoured when dropping nominated fields; a list
// longer than that is hostile, and the fixed connection-specific set is dropped regardless.
constexpr size_t kMaxConnectionHeaders = 8;

}  // namespace

PrefaceMatch match_http2_preface(std::string_view first_bytes) {
  // "PRI * HTTP/2" commits the connection to HTTP/2, as Envoy's codec detection does: a broken
  // rest of the preface is then the HTTP/2 session's to refuse (GOAWAY PROTOCOL_ERROR), not an
  // HTTP/1 request line.
  constexpr size_t kCommit = std::string_view("PRI * HTTP/2").size();
  const size_t n = std::min(first_bytes.size(), kHttp2Preface.size());
  if (first_bytes.substr(0, std::min(n, kCommit)) !=
      kHttp2Preface.substr(0, std::min(n, kCommit))) {
    return PrefaceMatch::kNo;
  }
  if (n >= kCommit) return PrefaceMatch::kFull;
  return PrefaceMatch::kPartial;
}

bool is_connection_specific_header(std::string_view name) {
  switch (name.size()) {
    case 7:
      return iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

void H2OutFields::push(std::string_view lower_name, std::string_view value) {
  Ref r;
  r.name_off = static_cast<uint32_t>(storage_.size());
  r.name_len = static_cast<uint32_t>(lower_name.size());
  storage_.append(lower_name);
  r.value_off = static_cast<uint32_t>(storage_.size());
  r.value_len = static_cast<uint32_t>(value.size());
  storage_.append(value);
  refs_.push_back(r);
}

void H2OutFields::add(std::string_view name, std::string_view value) {
  Ref r;
  r.name_off = static_cast<uint32_t>(storage_.size());
  r.name_len = static_cast<uint32_t>(name.size());
  for (char c : name) storage_.push_back(lower(c));
  r.value_off = static_cast<uint32_t>(storage_.size());
  r.value_len = static_cast<uint32_t>(value.size());
  storage_.append(value);
  refs_.push_back(r);
}

void H2OutFields::add_fields(const HeaderList& fields, Kind kind, bool drop_host) {
  std::array<std::string_view, kMaxConnectionHeaders> connection{};
  size_t connection_count = 0;
  for (const HeaderField& f : fields) {
    if (iequals(f.name, "connection") && connection_count < connection.size()) {
      connection[connection_count++] = f.value;
    }
  }

  for (const HeaderField& f : fields) {
    if (f.name.empty() || f.name[0] == ':' || !valid_name(f.name)) continue;
    const std::string_view value = trim_ows(f.value);
    if (!valid_value(value)) continue;
    if (is_connection_specific_header(f.name)) continue;
    if (iequals(f.name, "te")) {
      if (kind == Kind::kRequest && header_has_token(value, "trailers")) push("te", "trailers");
      continue;
    }
    if (drop_host && iequals(f.name, "host")) continue;
    bool nominated = false;
    for (size_t i = 0; i < connection_count && !nominated; ++i) {
      nominated = header_has_token(connection[i], f.name);
    }
    if (nominated) continue;

    if (kind == Kind::kRequest && iequals(f.name, "cookie")) {
      std::string_view rest = value;
      while (!rest.empty()) {
        const size_t semi = rest.find(';');
        const std::string_view crumb = trim_ows(rest.substr(0, semi));
        if (!crumb.empty()) push("cookie", crumb);
        if (semi == std::string_view::npos) break;
        rest.remove_prefix(semi + 1);
      }
      continue;
    }
    add(f.name, value);
  }
}

}  // namespace proxenos::http
