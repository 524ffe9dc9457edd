#include "config/header_fields.h"

#include "http/header.h"

namespace proxenos::config {

namespace {

bool is_field_value(std::string_view value) {
  for (char c : value) {
    if (!http::chars::kFieldValue[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace

bool is_header_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!http::chars::kToken[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

std::optional<std::vector<AddedHeader>> decode_added_headers(MapReader& parent,
                                                             std::string_view key) {
  if (!parent.has(key)) {
    parent.ignore(key);  // consumed, as map() would (a reader for nothing costs a field path)
    return std::nullopt;
  }
  std::optional<MapReader> m = parent.map(key);
  if (!m || !m->present()) return std::nullopt;
  Reporter& r = m->reporter();
  int errors_before = r.errors();
  std::vector<AddedHeader> out;

  for (auto it = m->node().begin(); it != m->node().end(); ++it) {
    if (!it->first.IsScalar()) continue;  // reported by MapReader
    const std::string name = it->first.Scalar();
    const YAML::Node at = m->where(name);
    const std::string path = m->path(name);
    YAML::Node value = m->take(name);
    AddedHeader h;
    h.name = name;
    if (!is_header_name(name)) {
      r.error(at, path, "is not a valid header name");
      continue;
    }
    if (!value.IsDefined()) {
      r.error(at, path, "must be a string or {value, append}, not null");
      continue;
    }
    if (value.IsMap()) {
      MapReader v(r, value, path, at);
      v.require("value");
      YAML::Node raw = v.take("value");
      if (raw.IsDefined()) {
        if (raw.IsScalar()) {
          h.value = raw.Scalar();
        } else {
          r.error(v.where("value"), v.path("value"), "must be a string");
          continue;
        }
      }
      if (auto append = v.boolean("append")) h.append = *append;
      v.finish();
      if (!raw.IsDefined()) continue;
    } else if (value.IsScalar()) {
      // Numbers and booleans are taken as written: `x-version: 2` means the text "2".
      h.value = value.Scalar();
    } else {
      r.error(at, path, "must be a string or {value, append}, not a list");
      continue;
    }
    if (!is_field_value(h.value)) {
      r.error(at, path, "value contains characters not allowed in a header (control characters)");
      continue;
    }
    std::string error;
    std::optional<http::ValueTemplate> parsed = http::parse_value_template(h.value, &error);
    if (!parsed) {
      r.error(at, path, error.empty() ? "invalid header value template" : error);
      continue;
    }
    h.value_template = std::move(*parsed);
    out.push_back(std::move(h));
  }
  m->finish();
  if (r.errors() != errors_before) return std::nullopt;
  return out;
}

std::optional<std::vector<std::string>> decode_header_names(MapReader& m, std::string_view key) {
  YAML::Node at = m.where(key);
  std::optional<std::vector<std::string>> names = m.string_list(key);
  if (!names) return std::nullopt;
  bool ok = true;
  for (std::string& n : *names) {
    if (!is_header_name(n)) {
      m.reporter().error(at, m.path(key), "\"" + n + "\" is not a valid header name");
      ok = false;
    }
    n = lower(std::move(n));
  }
  if (!ok) return std::nullopt;
  return names;
}

}  // namespace proxenos::config
