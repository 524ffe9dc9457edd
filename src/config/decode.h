#pragma once
// Strict, located reading of resource fields. Every wrong type, missing field or bad value becomes
// a Diagnostic that names the field path ("spec.timeout_ms") and the line the field is on, so the
// owner of the resource can fix it without guessing. Unknown fields are warnings, not errors:
// newer Emissary versions add fields, and a typo should not take a route down.

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"
#include "config/resource.h"

namespace proxenos::config {

// YAML 1.2 core-schema type of a scalar. Quoted scalars are always strings, so `"3000"` is not an
// integer and `"true"` is not a boolean (as the Kubernetes API server would judge the JSON).
enum class ScalarKind : uint8_t { kNull, kBool, kInt, kFloat, kString };
ScalarKind scalar_kind(const YAML::Node& node);

// The value under `key` of a map node, or an undefined node. (yaml-cpp's operator[] either
// inserts, on a non-const node, or yields a node that throws when inspected.) Absent keys here
// and in MapReader all yield one shared undefined node: never assign to a returned node (yaml-cpp
// assignment writes through to every holder of the node, as it would into the document).
YAML::Node child(const YAML::Node& node, std::string_view key);

// Collects the diagnostics of one resource and counts its errors.
class Reporter {
 public:
  Reporter(const Resource& resource, Diagnostics* out) : resource_(resource), out_(out) {}

  // `at` locates the problem (a key node, usually); a node without a mark falls back to the
  // resource's own origin.
  void error(const YAML::Node& at, std::string field, std::string message);
  void warning(const YAML::Node& at, std::string field, std::string message);
  int errors() const { return errors_; }
  // True when an error was reported on `field` or a field below it.
  bool has_error_at(const std::string& field) const;
  const Resource& resource() const { return resource_; }
  Origin origin_at(const YAML::Node& at) const;

 private:
  void add(Severity severity, const YAML::Node& at, std::string field, std::string message);

  const Resource& resource_;
  Diagnostics* out_;
  int errors_ = 0;
  std::vector<std::string> error_fields_;
};

// Reads one scalar value that is not directly under a map key (a list item, a map value).
std::optional<std::string> read_string(Reporter& r, const YAML::Node& value, const YAML::Node& at,
                                       const std::string& path);
std::optional<bool> read_bool(Reporter& r, const YAML::Node& value, const YAML::Node& at,
                              const std::string& path);
std::optional<int64_t> read_int(Reporter& r, const YAML::Node& value, const YAML::Node& at,
                                const std::string& path, int64_t min, int64_t max);

// A mapping node being decoded. Each accessor consumes its key; finish() warns about the keys
// nobody asked for. Accessors return nullopt both for an absent key and for a bad value (the
// latter with an error reported), so callers can simply skip what they did not get.
class MapReader {
 public:
  // `anchor` locates errors about missing keys when `node` itself is absent.
  MapReader(Reporter& r, YAML::Node node, std::string path, YAML::Node anchor);

  bool present() const { return node_.IsDefined() && !node_.IsNull(); }
  bool is_map() const { return is_map_; }
  bool has(std::string_view key) const;
  const std::string& path() const { return path_; }
  std::string path(std::string_view key) const;
  // The key node (for locations); the map node itself when the key is absent.
  YAML::Node where(std::string_view key) const;
  const YAML::Node& node() const { return node_; }
  Reporter& reporter() { return r_; }

  YAML::Node take(std::string_view key);  // raw value, consumed; undefined when absent
  std::optional<std::string> string(std::string_view key);
  std::optional<bool> boolean(std::string_view key);
  std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max);
  std::optional<uint32_t> millis(std::string_view key);  // 0..2^32-1
  std::optional<std::vector<std::string>> string_list(std::string_view key);
  // A string-valued map; `allow_true` lets a value be `true` (stored as nullopt: "present").
  std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> string_map(
      std::string_view key, bool allow_true);
  std::optional<std::string> one_of(std::string_view key,
                                    const std::vector<std::string_view>& allowed);
  // A nested map; returns a reader even when absent (present() false) unless the type is wrong.
  std::optional<MapReader> map(std::string_view key);

  void require(std::string_view key);                            // error when absent
  void unsupported(std::string_view key, std::string_view why);  // error when present
  void not_yet_effective(std::string_view key);                  // warning when present
  void ignore(std::string_view key);                             // consumed without comment
  void finish();                                                 // warns about unknown keys

 private:
  struct Entry {
    std::string name;
    YAML::Node key;
    YAML::Node value;
    bool used = false;
  };
  Entry* find(std::string_view key);
  const Entry* find(std::string_view key) const;
  const Entry* take_present(std::string_view key);  // consumes; null when absent or null

  Reporter& r_;
  YAML::Node node_;
  std::string path_;
  YAML::Node anchor_;
  bool is_map_ = false;
  std::vector<Entry> entries_;
};

// Compiles an RE2 pattern the way Emissary's Envoy does (`max_program_size` = Module
// `regex_max_size`). Returns null with `error` set for an invalid or too complex pattern.
std::shared_ptr<const RE2> compile_regex(std::string_view pattern, bool case_sensitive,
                                         uint32_t max_program_size, std::string* error);

// An IPv4 dotted quad or an IPv6 literal (no DNS name): such hosts get no SNI.
bool is_ip_literal(std::string_view host);

}  // namespace proxenos::config
