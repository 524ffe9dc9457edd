#pragma once
// One configuration object in Kubernetes form, as any source delivers it. The spec stays a YAML
// node (JSON from the Kubernetes API parses into the same) so field errors can carry lines.

#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <vector>

#include "config/diagnostic.h"

namespace proxenos::config {

// source_id of resources generated from Gateway API objects: they live on their own Listeners
// and Hosts (bound by labels), so they do not count as the user's own when the compiler decides
// whether to open the default Listeners or synthesize the `*` Host.
inline constexpr const char* kGatewayApiSource = "gateway-api";

struct Resource {
  std::string api_version;  // getambassador.io/v3alpha1, getambassador.io/v2, v1, ...
  std::string kind;
  std::string name;
  std::string namespace_ = "default";
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> ambassador_id;  // spec.ambassador_id; empty = ["default"]
  YAML::Node spec;                         // the whole `spec` mapping (may be null)
  YAML::Node object;                       // the whole object (Secrets keep `data` here)
  Origin origin;
  std::string source_id;  // which source delivered it ("file", "k8s"), for per-source replace

  std::string key() const { return kind + "/" + namespace_ + "/" + name; }
};

}  // namespace proxenos::config
