#pragma once
// The header-editing fields shared by Mapping and the Module's `defaults`: add_request_headers,
// add_response_headers (name -> string | {value, append}) and remove_*_headers (names).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/decode.h"
#include "http/value_template.h"

namespace proxenos::config {

struct AddedHeader {
  std::string name;
  std::string value;  // as written, with %VAR% commands
  bool append = true;
  http::ValueTemplate value_template;  // `value` parsed
};

// Decodes an add_*_headers map. Present-but-empty (`{}`) yields an empty vector, which is how a
// Mapping suppresses the Module defaults.
std::optional<std::vector<AddedHeader>> decode_added_headers(MapReader& m, std::string_view key);

// Decodes a remove_*_headers list (or single string); names come back lower-cased.
std::optional<std::vector<std::string>> decode_header_names(MapReader& m, std::string_view key);

// True when `name` is an HTTP token (RFC 9110 field-name).
bool is_header_name(std::string_view name);

}  // namespace proxenos::config
