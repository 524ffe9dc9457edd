#include "http/value_template.h"

#include <array>
#include <utility>

#include "http/header.h"

namespace proxenos::http {
namespace {

struct Command {
  std::string_view name;
  TemplateVar var;
};

constexpr std::array<Command, 9> kCommands{{
    {"DOWNSTREAM_REMOTE_ADDRESS", TemplateVar::kDownstreamRemoteAddress},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", TemplateVar::kDownstreamRemoteAddressWithoutPort},
    {"DOWNSTREAM_LOCAL_ADDRESS", TemplateVar::kDownstreamLocalAddress},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", TemplateVar::kDownstreamLocalAddressWithoutPort},
    {"DOWNSTREAM_LOCAL_PORT", TemplateVar::kDownstreamLocalPort},
    {"UPSTREAM_REMOTE_ADDRESS", TemplateVar::kUpstreamRemoteAddress},
    {"PROTOCOL", TemplateVar::kProtocol},
    {"START_TIME", TemplateVar::kStartTime},
    {"HOSTNAME", TemplateVar::kHostname},
}};

std::nullopt_t set_error(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
  return std::nullopt;
}

}  // namespace

std::optional<ValueTemplate> parse_value_template(std::string_view value, std::string* error) {
  // The result becomes a header value on the wire, so CR, LF, NUL and other CTLs are refused here,
  // once, rather than risking a second request line upstream (CVE-2023-27493).
  for (char c : value) {
    if (!chars::kFieldValue[static_cast<unsigned char>(c)]) {
      return set_error(error, "invalid control character in header value");
    }
  }
  ValueTemplate out;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) {
      out.pieces.push_back({TemplateVar::kLiteral, std::move(literal)});
      literal.clear();
    }
  };
  size_t i = 0;
  while (i < value.size()) {
    const size_t open = value.find('%', i);
    if (open == std::string_view::npos) {
      literal.append(value.substr(i));
      break;
    }
    literal.append(value.substr(i, open - i));
    if (open + 1 < value.size() && value[open + 1] == '%') {
      literal.push_back('%');
      i = open + 2;
      continue;
    }
    const size_t close = value.find('%', open + 1);
    if (close == std::string_view::npos) {
      return set_error(error,
                       "unterminated substitution: '%' without closing '%' (write %% for "
                       "a literal percent sign)");
    }
    const std::string_view command = value.substr(open + 1, close - open - 1);
    i = close + 1;
    if (command.size() >= 5 && command.substr(0, 4) == "REQ(" && command.back() == ')') {
      const std::string_view name = command.substr(4, command.size() - 5);
      bool valid = !name.empty();
      for (char c : name) valid = valid && chars::kToken[static_cast<unsigned char>(c)];
      if (!valid) return set_error(error, "invalid header name in %" + std::string(command) + "%");
      flush();
      TemplatePiece piece{TemplateVar::kRequestHeader, std::string(name)};
      for (char& c : piece.text) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
      }
      out.pieces.push_back(std::move(piece));
      continue;
    }
    bool known = false;
    for (const Command& cmd : kCommands) {
      if (cmd.name == command) {
        flush();
        out.pieces.push_back({cmd.var, {}});
        known = true;
        break;
      }
    }
    if (!known) return set_error(error, "unknown substitution %" + std::string(command) + "%");
  }
  flush();
  return out;
}

}  // namespace proxenos::http
