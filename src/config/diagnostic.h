#pragma once
// Problems found in configuration, each tied to where it came from so its owner can find it.

#include <string>
#include <vector>

namespace proxenos::config {

// Where a resource (or one of its fields) came from: a file and line now, a Kubernetes object
// and its resourceVersion when the API source exists.
struct Origin {
  std::string file;               // "" for non-file sources
  int line = 0;                   // 1-based; 0 = unknown
  std::string object;             // "namespace/name" of the Kubernetes object, if any
  std::string resource_version;   // Kubernetes resourceVersion, if any
  std::string to_string() const;  // "file:line" or "k8s ns/name@rv"
};

enum class Severity { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  Origin origin;
  std::string resource;  // "Kind/namespace/name" ("" for file-level problems)
  std::string field;     // dotted path within the resource, e.g. "spec.regex_rewrite.pattern"
  std::string message;   // what is wrong, in words a user acts on
  // "file:line: error: Mapping/default/foo: spec.prefix: is required"
  std::string to_string() const;
};

using Diagnostics = std::vector<Diagnostic>;

bool has_errors(const Diagnostics& diagnostics);

}  // namespace proxenos::config
