#include "config/decode.h"

#include <cctype>
#include <charconv>
#include <limits>

namespace proxenos::config {

namespace {

constexpr std::string_view kTagStr = "tag:yaml.org,2002:str";
constexpr std::string_view kTagInt = "tag:yaml.org,2002:int";
constexpr std::string_view kTagBool = "tag:yaml.org,2002:bool";
constexpr std::string_view kTagFloat = "tag:yaml.org,2002:float";
constexpr std::string_view kTagNull = "tag:yaml.org,2002:null";

bool is_digits(std::string_view s, int base) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = base == 16  ? std::isxdigit(static_cast<unsigned char>(c)) != 0
              : base == 8 ? (c >= '0' && c <= '7')
                          : (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool looks_int(std::string_view s) {
  if (s.starts_with("0x")) return is_digits(s.substr(2), 16);
  if (s.starts_with("0o")) return is_digits(s.substr(2), 8);
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return is_digits(s, 10);
}

bool looks_float(std::string_view s) {
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "-.inf" || s == "-.Inf" || s == "-.INF" ||
      s == "+.inf" || s == "+.Inf" || s == "+.INF" || s == ".nan" || s == ".NaN" || s == ".NAN") {
    return true;
  }
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  size_t i = 0;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp_start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == exp_start) return false;
  }
  return i == s.size();
}

const char* kind_name(const YAML::Node& value) {
  if (!value.IsDefined() || value.IsNull()) return "null";
  if (value.IsSequence()) return "a list";
  if (value.IsMap()) return "a map";
  switch (scalar_kind(value)) {
    case ScalarKind::kNull:
      return "null";
    case ScalarKind::kBool:
      return "a boolean";
    case ScalarKind::kInt:
      return "an integer";
    case ScalarKind::kFloat:
      return "a number";
    case ScalarKind::kString:
      return "a string";
  }
  return "something else";
}

std::optional<int64_t> parse_int(std::string_view s) {
  int base = 10;
  bool negative = false;
  if (s.starts_with("0x")) {
    base = 16;
    s.remove_prefix(2);
  } else if (s.starts_with("0o")) {
    base = 8;
    s.remove_prefix(2);
  } else if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), magnitude, base);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  if (negative) {
    if (magnitude > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) {
      return std::nullopt;
    }
    return static_cast<int64_t>(0 - magnitude);
  }
  if (magnitude > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return static_cast<int64_t>(magnitude);
}

const YAML::Node& undefined_node() {
  // Building an undefined node allocates a whole yaml-cpp memory holder (about 200 ns), and
  // decoding asks for dozens of absent keys per resource; so absent lookups share one node per
  // thread. Writing through a copy (operator=, non-const operator[]) would define it for every
  // holder: the check below at least stops that from leaking into later lookups.
  thread_local YAML::Node node(YAML::NodeType::Undefined);
  if (node.IsDefined()) node.reset(YAML::Node(YAML::NodeType::Undefined));
  return node;
}

}  // namespace

YAML::Node child(const YAML::Node& node, std::string_view key) {
  if (node.IsDefined() && node.IsMap()) {
    // Each dereference builds a pair of handles (shared_ptr copies): dereference once per entry.
    const auto end = node.end();
    for (auto it = node.begin(); it != end; ++it) {
      const auto kv = *it;
      if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
    }
  }
  return undefined_node();
}

ScalarKind scalar_kind(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return ScalarKind::kNull;
  if (!node.IsScalar()) return ScalarKind::kString;
  // string_view comparisons: these run for every scalar read, and std::string == const char*
  // is an out-of-line strlen and compare each.
  const std::string_view tag = node.Tag();
  if (tag == "!" || tag == kTagStr) return ScalarKind::kString;
  if (tag == kTagInt) return ScalarKind::kInt;
  if (tag == kTagBool) return ScalarKind::kBool;
  if (tag == kTagFloat) return ScalarKind::kFloat;
  if (tag == kTagNull) return ScalarKind::kNull;
  const std::string_view s = node.Scalar();
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return ScalarKind::kNull;
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
    return ScalarKind::kBool;
  }
  if (looks_int(s)) return ScalarKind::kInt;
  if (looks_float(s)) return ScalarKind::kFloat;
  return ScalarKind::kString;
}

// ---------------------------------------------------------------------------------------------

Origin Reporter::origin_at(const YAML::Node& at) const {
  Origin origin = resource_.origin;
  if (!origin.file.empty() && at.IsDefined() && !at.Mark().is_null()) {
    origin.line = at.Mark().line + 1;
  }
  return origin;
}

void Reporter::add(Severity severity, const YAML::Node& at, std::string field,
                   std::string message) {
  if (severity == Severity::kError) {
    ++errors_;
    error_fields_.push_back(field);
  }
  if (out_ == nullptr) return;
  Diagnostic d;
  d.severity = severity;
  d.origin = origin_at(at);
  d.resource = resource_.key();
  d.field = std::move(field);
  d.message = std::move(message);
  out_->push_back(std::move(d));
}

bool Reporter::has_error_at(const std::string& field) const {
  for (const std::string& f : error_fields_) {
    if (f == field ||
        (f.starts_with(field) && (f[field.size()] == '.' || f[field.size()] == '['))) {
      return true;
    }
  }
  return false;
}

void Reporter::error(const YAML::Node& at, std::string field, std::string message) {
  add(Severity::kError, at, std::move(field), std::move(message));
}

void Reporter::warning(const YAML::Node& at, std::string field, std::string message) {
  add(Severity::kWarning, at, std::move(field), std::move(message));
}

// ---------------------------------------------------------------------------------------------

std::optional<std::string> read_string(Reporter& r, const YAML::Node& value, const YAML::Node& at,
                                       const std::string& path) {
  if (value.IsScalar() && scalar_kind(value) == ScalarKind::kString) return value.Scalar();
  r.error(at, path, std::string("must be a string, not ") + kind_name(value));
  return std::nullopt;
}

std::optional<bool> read_bool(Reporter& r, const YAML::Node& value, const YAML::Node& at,
                              const std::string& path) {
  if (value.IsScalar() && scalar_kind(value) == ScalarKind::kBool) {
    char c = value.Scalar()[0];
    return c == 't' || c == 'T';
  }
  r.error(at, path, std::string("must be true or false, not ") + kind_name(value));
  return std::nullopt;
}

std::optional<int64_t> read_int(Reporter& r, const YAML::Node& value, const YAML::Node& at,
                                const std::string& path, int64_t min, int64_t max) {
  if (!value.IsScalar() || scalar_kind(value) != ScalarKind::kInt) {
    r.error(at, path, std::string("must be an integer, not ") + kind_name(value));
    return std::nullopt;
  }
  std::optional<int64_t> v = parse_int(value.Scalar());
  if (!v || *v < min || *v > max) {
    r.error(at, path,
            "must be between " + std::to_string(min) + " and " + std::to_string(max) + " (got " +
                value.Scalar() + ")");
    return std::nullopt;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------

MapReader::MapReader(Reporter& r, YAML::Node node, std::string field_path, YAML::Node anchor)
    : r_(r), node_(std::move(node)), path_(std::move(field_path)), anchor_(std::move(anchor)) {
  if (!node_.IsDefined() || node_.IsNull()) return;
  if (!node_.IsMap()) {
    r_.error(node_, path_, std::string("must be a map, not ") + kind_name(node_));
    return;
  }
  is_map_ = true;
  entries_.reserve(node_.size());
  const auto end = node_.end();
  for (auto it = node_.begin(); it != end; ++it) {
    const auto kv = *it;
    if (!kv.first.IsScalar()) {
      r_.error(kv.first, path_, "keys must be strings");
      continue;
    }
    const std::string& name = kv.first.Scalar();
    if (find(name) != nullptr) {
      r_.error(kv.first, path(name), "appears more than once");
      continue;
    }
    entries_.emplace_back(name, kv.first, kv.second, false);
  }
}

const MapReader::Entry* MapReader::take_present(std::string_view key) {
  Entry* e = find(key);
  if (e == nullptr) return nullptr;
  e->used = true;
  if (e->value.IsNull()) return nullptr;
  return e;
}

MapReader::Entry* MapReader::find(std::string_view key) {
  for (Entry& e : entries_) {
    if (e.name == key) return &e;
  }
  return nullptr;
}

const MapReader::Entry* MapReader::find(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.name == key) return &e;
  }
  return nullptr;
}

bool MapReader::has(std::string_view key) const {
  const Entry* e = find(key);
  // Kubernetes drops null fields; so do we.
  return e != nullptr && !e->value.IsNull();
}

std::string MapReader::path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

YAML::Node MapReader::where(std::string_view key) const {
  if (const Entry* e = find(key)) return e->key;
  if (node_.IsDefined() && !node_.Mark().is_null()) return node_;
  return anchor_;
}

YAML::Node MapReader::take(std::string_view key) {
  Entry* e = find(key);
  if (e == nullptr) return undefined_node();
  e->used = true;
  if (e->value.IsNull()) return undefined_node();
  return e->value;
}

// The accessors below check the good case themselves, so the field path is built only for an
// error (read_* then reports it).
std::optional<std::string> MapReader::string(std::string_view key) {
  const Entry* e = take_present(key);
  if (e == nullptr) return std::nullopt;
  if (e->value.IsScalar() && scalar_kind(e->value) == ScalarKind::kString) {
    return e->value.Scalar();
  }
  return read_string(r_, e->value, e->key, path(key));
}

std::optional<bool> MapReader::boolean(std::string_view key) {
  const Entry* e = take_present(key);
  if (e == nullptr) return std::nullopt;
  if (e->value.IsScalar() && scalar_kind(e->value) == ScalarKind::kBool) {
    char c = e->value.Scalar()[0];
    return c == 't' || c == 'T';
  }
  return read_bool(r_, e->value, e->key, path(key));
}

std::optional<int64_t> MapReader::integer(std::string_view key, int64_t min, int64_t max) {
  const Entry* e = take_present(key);
  if (e == nullptr) return std::nullopt;
  if (e->value.IsScalar() && scalar_kind(e->value) == ScalarKind::kInt) {
    std::optional<int64_t> v = parse_int(e->value.Scalar());
    if (v && *v >= min && *v <= max) return v;
  }
  return read_int(r_, e->value, e->key, path(key), min, max);
}

std::optional<uint32_t> MapReader::millis(std::string_view key) {
  std::optional<int64_t> v = integer(key, 0, std::numeric_limits<uint32_t>::max());
  if (!v) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

std::optional<std::vector<std::string>> MapReader::string_list(std::string_view key) {
  YAML::Node v = take(key);
  if (!v.IsDefined()) return std::nullopt;
  std::vector<std::string> out;
  // Emissary accepts a single string where a list is expected (remove_request_headers: x).
  if (v.IsScalar()) {
    std::optional<std::string> s = read_string(r_, v, where(key), path(key));
    if (!s) return std::nullopt;
    out.push_back(*s);
    return out;
  }
  if (!v.IsSequence()) {
    r_.error(where(key), path(key), std::string("must be a list of strings, not ") + kind_name(v));
    return std::nullopt;
  }
  bool ok = true;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string item_path = path(key) + "[" + std::to_string(i) + "]";
    std::optional<std::string> s = read_string(r_, v[i], v[i], item_path);
    if (!s) {
      ok = false;
      continue;
    }
    out.push_back(*s);
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>>
MapReader::string_map(std::string_view key, bool allow_true) {
  YAML::Node v = take(key);
  if (!v.IsDefined()) return std::nullopt;
  MapReader m(r_, v, path(key), where(key));
  if (!m.is_map()) return std::nullopt;
  std::vector<std::pair<std::string, std::optional<std::string>>> out;
  bool ok = true;
  for (Entry& e : m.entries_) {
    e.used = true;
    std::string item_path = m.path(e.name);
    if (allow_true && e.value.IsScalar() && scalar_kind(e.value) == ScalarKind::kBool) {
      char c = e.value.Scalar()[0];
      if (c == 't' || c == 'T') {
        out.emplace_back(e.name, std::nullopt);
      } else {
        r_.error(e.key, item_path, "must be a string or true (meaning: present), not false");
        ok = false;
      }
      continue;
    }
    std::optional<std::string> s = read_string(r_, e.value, e.key, item_path);
    if (!s) {
      ok = false;
      continue;
    }
    out.emplace_back(e.name, std::move(*s));
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> MapReader::one_of(std::string_view key,
                                             const std::vector<std::string_view>& allowed) {
  std::optional<std::string> s = string(key);
  if (!s) return std::nullopt;
  for (std::string_view a : allowed) {
    if (*s == a) return s;
  }
  std::string list;
  for (std::string_view a : allowed) {
    if (!list.empty()) list += ", ";
    list += a;
  }
  r_.error(where(key), path(key), "must be one of " + list + " (got \"" + *s + "\")");
  return std::nullopt;
}

std::optional<MapReader> MapReader::map(std::string_view key) {
  YAML::Node v = take(key);
  MapReader m(r_, v, path(key), where(key));
  if (m.present() && !m.is_map()) return std::nullopt;
  return m;
}

void MapReader::require(std::string_view key) {
  if (!has(key)) r_.error(where(key), path(key), "is required");
}

void MapReader::unsupported(std::string_view key, std::string_view why) {
  Entry* e = find(key);
  if (e == nullptr) return;
  e->used = true;
  std::string message = "is not supported by Proxenos";
  if (!why.empty()) message += std::string(" (") + std::string(why) + ")";
  r_.error(e->key, path(key), std::move(message));
}

void MapReader::not_yet_effective(std::string_view key) {
  Entry* e = find(key);
  if (e == nullptr) return;
  e->used = true;
  if (e->value.IsNull() || r_.has_error_at(path(key))) return;
  r_.warning(e->key, path(key), "is accepted but has no effect in this release");
}

void MapReader::ignore(std::string_view key) {
  if (Entry* e = find(key)) e->used = true;
}

void MapReader::finish() {
  for (Entry& e : entries_) {
    if (e.used) continue;
    e.used = true;
    r_.warning(e.key, path(e.name), "unknown field; ignored");
  }
}

// ---------------------------------------------------------------------------------------------

std::shared_ptr<const RE2> compile_regex(std::string_view pattern, bool case_sensitive,
                                         uint32_t max_program_size, std::string* error) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_case_sensitive(case_sensitive);
  auto re = std::make_shared<const RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) {
    if (error) *error = "invalid regex \"" + std::string(pattern) + "\": " + re->error();
    return nullptr;
  }
  if (max_program_size > 0 && re->ProgramSize() > static_cast<int>(max_program_size)) {
    if (error) {
      *error = "regex too complex: \"" + std::string(pattern) + "\" has program size " +
               std::to_string(re->ProgramSize()) + ", above regex_max_size " +
               std::to_string(max_program_size);
    }
    return nullptr;
  }
  return re;
}

bool is_ip_literal(std::string_view host) {
  if (host.find(':') != std::string_view::npos) return true;  // IPv6
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

}  // namespace proxenos::config
