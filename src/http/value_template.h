#pragma once
// Header values with Envoy-style `%COMMAND%` substitutions (add_request_headers and friends),
// parsed once by the compiler into pieces and expanded per request by the proxy.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace proxenos::http {

enum class TemplateVar : uint8_t {
  kLiteral,
  kDownstreamRemoteAddress,             // %DOWNSTREAM_REMOTE_ADDRESS%  ip:port
  kDownstreamRemoteAddressWithoutPort,  // %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%
  kDownstreamLocalAddress,              // %DOWNSTREAM_LOCAL_ADDRESS%
  kDownstreamLocalAddressWithoutPort,   // %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%
  kDownstreamLocalPort,                 // %DOWNSTREAM_LOCAL_PORT%
  kUpstreamRemoteAddress,               // %UPSTREAM_REMOTE_ADDRESS%
  kProtocol,                            // %PROTOCOL%  HTTP/1.1
  kStartTime,                           // %START_TIME%  RFC 3339
  kHostname,                            // %HOSTNAME%
  kRequestHeader,                       // %REQ(name)%  name lower-cased in `text`
};

struct TemplatePiece {
  TemplateVar var = TemplateVar::kLiteral;
  std::string text;  // literal text, or the header name for kRequestHeader
};

struct ValueTemplate {
  std::vector<TemplatePiece> pieces;
  bool is_literal() const {
    return pieces.empty() || (pieces.size() == 1 && pieces[0].var == TemplateVar::kLiteral);
  }
};

// Parses `value`; returns nullopt with `error` set for an unknown or unterminated command.
// `%%` is a literal percent sign.
std::optional<ValueTemplate> parse_value_template(std::string_view value, std::string* error);

}  // namespace proxenos::http
