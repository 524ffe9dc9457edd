#pragma once
// Reading Kubernetes objects (JSON from the API, parsed as YAML nodes) and writing the YAML
// resources translated from them.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/diagnostic.h"
#include "config/label_selector.h"
#include "config/resource.h"

namespace proxenos::k8s {

// The scalar's text; "" when the node is absent or not a scalar.
std::string scalar(const YAML::Node& node);
// The text of `node[key]`; "" when absent or not a scalar.
std::string scalar(const YAML::Node& node, std::string_view key);

std::string lower(std::string s);  // ASCII

// A decimal integer of up to 18 digits (optionally negative); nullopt for anything else.
std::optional<int64_t> to_int(const std::string& s);

// A string scalar the config decoder reads as a string whatever it looks like ("80", "true").
YAML::Node text(const std::string& s);

// JSON for a node: objects from the API are JSON, so plain true/false and integers are booleans
// and numbers there; quoted strings carry the "!" tag and stay strings.
nlohmann::json to_json(const YAML::Node& node);

// A getambassador.io/v3alpha1 resource translated from `source` (an Ingress, a Gateway API
// object) for `ambassador_id`: its spec carries ambassador_id and its object is what the API
// would hold, so it compiles like a resource a user wrote. Origin and source_id are the source's.
config::Resource translated_resource(const config::Resource& source, const std::string& kind,
                                     const std::string& name, const std::string& namespace_,
                                     const config::Labels& labels, const std::string& ambassador_id,
                                     YAML::Node spec);

// A problem with `source`, reported against it (its origin and key).
config::Diagnostic source_diagnostic(const config::Resource& source, config::Severity severity,
                                     std::string field, std::string message);

}  // namespace proxenos::k8s
