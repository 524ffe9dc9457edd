#pragma once
// Resource store -> Snapshot. Validates every resource (dropping and reporting bad ones),
// binds Listeners to Hosts and Hosts to Mappings, builds canary groups, orders routes as
// Emissary does, and creates the clusters. Knows nothing of sockets.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/resource.h"
#include "config/snapshot.h"

namespace proxenos::config {

struct CompileOptions {
  std::string ambassador_id = "default";  // --ambassador-id
  uint64_t generation = 1;
  // Running against the Kubernetes API: the KubernetesServiceResolver qualifies a bare service
  // name with its Mapping's namespace unless that is the gateway's own.
  bool kubernetes = false;
  std::string gateway_namespace = "default";
};

struct CompileResult {
  std::shared_ptr<const Snapshot> snapshot;  // always set (possibly with no routes)
  Diagnostics diagnostics;                   // errors (resource dropped) and warnings
  std::vector<std::string> notes;            // info lines, e.g. "no Listeners: opened defaults"
};

CompileResult compile(const std::vector<Resource>& resources, const CompileOptions& options);

// `proxenos routes`: the compiled table per listener and host, in match order, one line per
// route with its source resource.
std::string format_routes(const Snapshot& snapshot);

}  // namespace proxenos::config
