#include "k8s/object_fields.h"

#include <cctype>

#include "config/decode.h"

namespace proxenos::k8s {

std::optional<int64_t> to_int(const std::string& s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return std::nullopt;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return s[0] == '-' ? -v : v;
}

std::string scalar(const YAML::Node& node) {
  return node.IsDefined() && node.IsScalar() ? node.Scalar() : std::string();
}

std::string scalar(const YAML::Node& node, std::string_view key) {
  return scalar(config::child(node, key));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

YAML::Node text(const std::string& s) {
  YAML::Node n(s);
  n.SetTag("!");
  return n;
}

nlohmann::json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& e : node) j[e.first.Scalar()] = to_json(e.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& e : node) j.push_back(to_json(e));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() != "!") {
        if (s == "true") return true;
        if (s == "false") return false;
        if (auto v = to_int(s)) return *v;
      }
      return s;
    }
    default:
      return nullptr;
  }
}

config::Resource translated_resource(const config::Resource& source, const std::string& kind,
                                     const std::string& name, const std::string& namespace_,
                                     const config::Labels& labels, const std::string& ambassador_id,
                                     YAML::Node spec) {
  constexpr const char* kApiVersion = "getambassador.io/v3alpha1";
  config::Resource r;
  r.api_version = kApiVersion;
  r.kind = kind;
  r.name = name;
  r.namespace_ = namespace_;
  r.labels = labels;
  r.ambassador_id = {ambassador_id};
  YAML::Node ids(YAML::NodeType::Sequence);
  ids.push_back(text(ambassador_id));
  spec["ambassador_id"] = ids;
  r.spec = spec;
  YAML::Node object(YAML::NodeType::Map);
  object["apiVersion"] = text(kApiVersion);
  object["kind"] = text(kind);
  YAML::Node meta(YAML::NodeType::Map);
  meta["name"] = text(name);
  meta["namespace"] = text(namespace_);
  if (!labels.empty()) {
    YAML::Node l(YAML::NodeType::Map);
    for (const auto& [k, v] : labels) l[k] = text(v);
    meta["labels"] = l;
  }
  object["metadata"] = meta;
  object["spec"] = spec;
  r.object = object;
  r.origin = source.origin;
  r.source_id = source.source_id;
  return r;
}

config::Diagnostic source_diagnostic(const config::Resource& source, config::Severity severity,
                                     std::string field, std::string message) {
  config::Diagnostic d;
  d.severity = severity;
  d.origin = source.origin;
  d.resource = source.key();
  d.field = std::move(field);
  d.message = std::move(message);
  return d;
}

}  // namespace proxenos::k8s
