#pragma once
// The status Emissary writes back on its own resources, computed from a compile's diagnostics:
// Mapping `{state: Running}` or `{state: Inactive, reason}` (only when enabled, as Emissary's
// AMBASSADOR_UPDATE_MAPPING_STATUS), and Host `{state: Ready}` or `{state: Error, errorReason}`
// with where its certificate comes from.

#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/resource.h"
#include "k8s/status_update.h"

namespace proxenos::k8s {

// A resource the status may be written to: one that came from a Kubernetes object (not from a
// file or a Service annotation).
struct StatusTarget {
  std::string kind;  // "Mapping" or "Host"
  std::string namespace_;
  std::string name;
  bool tls = false;  // Host with a TLS certificate configured
};

// The targets among `resources` (call before compiling: the compile consumes them).
std::vector<StatusTarget> status_targets(const std::vector<config::Resource>& resources,
                                         bool mappings);

// One StatusUpdate per target; the first error reported against a target becomes its reason.
std::vector<StatusUpdate> ambassador_statuses(const std::vector<StatusTarget>& targets,
                                              const config::Diagnostics& diagnostics);

}  // namespace proxenos::k8s
