#pragma once
// What the gateway wants written to one object's `.status`, and what a translation of cluster
// objects (Ingress, Gateway API) into configuration resources produces. The KubernetesSource
// collects these after every compile; the StatusWriter (leader only) writes those that differ.

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/diagnostic.h"
#include "config/resource.h"
#include "k8s/reflector.h"

namespace proxenos::k8s {

struct StatusUpdate {
  ResourceKind kind;
  std::string namespace_;  // "" for cluster-scoped kinds
  std::string name;
  // The desired `.status`. Conditions carry lastTransitionTime = now; the writer keeps the
  // stored time of a condition whose status did not flip, and compares without it, so an
  // unchanged status is never rewritten.
  nlohmann::json status;
  // Non-empty for Gateway API routes: `status.parents` is shared by controllers, so only the
  // entries whose controllerName equals this are replaced by `status["parents"]`; the others are
  // kept as read (read-modify-write).
  std::string parents_controller;

  std::string key() const { return kind.name() + "/" + namespace_ + "/" + name; }
};

// Objects as the reflectors hold them; `object` is the whole Kubernetes object.
using ObjectList = std::vector<std::shared_ptr<const config::Resource>>;

struct Translation {
  std::vector<config::Resource> resources;  // getambassador.io/v3alpha1 resources to compile
  std::vector<StatusUpdate> statuses;       // status for the translated objects
  config::Diagnostics diagnostics;          // problems, reported against the source objects
};

}  // namespace proxenos::k8s
