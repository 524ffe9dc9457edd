#pragma once
// networking.k8s.io/v1 Ingress -> getambassador.io/v3alpha1 Mappings and Hosts, as Emissary's
// fetch/ingress.py does it (../shared/spec/kubernetes-api.md §4), plus the status to write back.
//
// Which Ingresses are ours: `spec.ingressClassName` names an IngressClass whose controller is
// getambassador.io/ingress-controller (IngressClasses are ignored in single-namespace mode), or
// the annotation `kubernetes.io/ingress.class: ambassador`; and the
// `getambassador.io/ambassador-id` annotation (default "default") equals our ambassador_id.
//
// Translation: every `tls` entry with a secretName becomes one Host per host (default `*`) with
// that Secret, insecure action Route, and a mappingSelector on the Ingress's label
// `a10r-k8s-ingress`; every path becomes Mappings (Exact: prefix_exact with precedence 1;
// Prefix: element-wise, i.e. the exact path plus the prefix `path/`; ImplementationSpecific: a
// plain prefix); `*.example.com` rule hosts become a one-label host regex; a rule without host
// gets hostname `*` unless the Ingress has TLS (then it serves only through its own Hosts); the
// default backend becomes a `*` catch-all on `/`. Unlike Emissary, paths reach the backend
// unchanged (`rewrite: ""`), as the Ingress API specifies (emissary#2280). Resources carried in
// a `getambassador.io/config` annotation on the Ingress are added too.

#include <string>

#include <nlohmann/json.hpp>

#include "k8s/status_update.h"

namespace proxenos::k8s {

inline constexpr const char* kIngressController = "getambassador.io/ingress-controller";

// The kind used for Ingress status updates.
ResourceKind ingress_kind();

struct IngressInputs {
  ObjectList ingresses, ingress_classes;
  // Services, to resolve a backend's named port (`port.name`) to its number.
  ObjectList services;
  std::string ambassador_id = "default";
  bool single_namespace = false;
  // The publish Service's status.loadBalancer; null when unknown (no status is written then).
  nlohmann::json load_balancer;
};

Translation translate_ingresses(const IngressInputs& inputs);

}  // namespace proxenos::k8s
