#include "config/diagnostic.h"

#include <algorithm>

namespace proxenos::config {

std::string Origin::to_string() const {
  if (!file.empty()) {
    if (line > 0) return file + ":" + std::to_string(line);
    return file;
  }
  if (!object.empty()) {
    std::string out = "k8s " + object;
    if (!resource_version.empty()) out += "@" + resource_version;
    return out;
  }
  return "";
}

std::string Diagnostic::to_string() const {
  std::string out = origin.to_string();
  if (!out.empty()) out += ": ";
  out += severity == Severity::kError ? "error: " : "warning: ";
  if (!resource.empty()) out += resource + ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

bool has_errors(const Diagnostics& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

}  // namespace proxenos::config
