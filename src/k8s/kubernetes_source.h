#pragma once
// The Kubernetes config source: one list-then-watch Reflector per kind the gateway consumes
// (every getambassador.io/v3alpha1 kind it serves, Services and their getambassador.io/config
// annotations, Secrets, EndpointSlices, Ingresses and IngressClasses, the Gateway API kinds).
// It tells the server when every kind has been listed once (readiness), when configuration
// changed (coalesced: a storm of events becomes few compiles) and when only endpoints changed
// (no recompile). While the API server is away the reflectors keep their last objects, so the
// last good configuration keeps serving. Runs on the control thread's event loop.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/file_source.h"
#include "k8s/api_client.h"
#include "k8s/reflector.h"
#include "k8s/status_update.h"
#include "net/address.h"
#include "net/event_loop.h"

namespace proxenos::k8s {

struct KubernetesSourceOptions {
  std::string namespace_;  // "" = all namespaces (cluster-scoped kinds are always watched)
  std::string ambassador_id = "default";
  std::string label_selector;   // AMBASSADOR_LABEL_SELECTOR
  std::string field_selector;   // AMBASSADOR_FIELD_SELECTOR (ambassador kinds only)
  std::string publish_service;  // "ns/name": Ingress status copies its status.loadBalancer
  std::string gateway_controller = "proxenos.dev/gateway-controller";
  bool watch_gateway_api = true;
  bool watch_ingress = true;
  // A change waits this long for more before the server is told: an update storm (kubectl
  // apply of a folder, a rollout) becomes one compile.
  uint64_t coalesce_ms = 50;
  ReflectorOptions reflector;  // timeouts/backoff for every reflector (tests shorten them)
};

struct KubernetesSourceCallbacks {
  std::function<void()> on_synced;             // once: every kind listed (or absent)
  std::function<void()> on_config_changed;     // after the first sync, coalesced
  std::function<void()> on_endpoints_changed;  // EndpointSlices (or Services) changed
};

// The kinds watched, in the order they are listed.
std::vector<ResourceKind> watched_kinds(const KubernetesSourceOptions& options);

class KubernetesSource {
 public:
  KubernetesSource(ApiClient& client, KubernetesSourceOptions options,
                   KubernetesSourceCallbacks callbacks);
  ~KubernetesSource();
  KubernetesSource(const KubernetesSource&) = delete;
  KubernetesSource& operator=(const KubernetesSource&) = delete;

  void start();
  void stop();
  bool synced() const { return synced_; }

  // Everything to compile now: the getambassador.io objects, the resources embedded in Service
  // annotations, Secrets, and the translations of Ingresses and Gateway API objects. Problems
  // (an annotation that does not parse, an Ingress that cannot be translated) land in
  // `diagnostics`; `statuses` gets the status to write for translated objects.
  void collect(config::LoadResult& out, std::vector<StatusUpdate>& statuses) const;

  // Ready pod addresses for `service` in `namespace_` at Service port `port` (resolved through
  // the Service's port name to the EndpointSlice port). Serving-but-terminating endpoints are
  // used only when none is ready. Empty when unknown.
  std::vector<net::Address> endpoints(const std::string& namespace_, const std::string& service,
                                      uint16_t port) const;

  // The publish Service's status.loadBalancer (null when not configured or not seen).
  nlohmann::json publish_load_balancer() const;

  const std::vector<std::unique_ptr<Reflector>>& reflectors() const { return reflectors_; }
  uint64_t config_changes() const { return config_changes_; }

 private:
  const Reflector* find(const std::string& resource) const;
  ObjectList objects_of(const std::string& resource) const;
  void on_kind_synced();
  void on_kind_changed(const ResourceKind& kind);

  ApiClient& client_;
  KubernetesSourceOptions options_;
  KubernetesSourceCallbacks callbacks_;
  std::vector<std::unique_ptr<Reflector>> reflectors_;
  net::Timer config_timer_;
  net::Timer endpoints_timer_;
  bool synced_ = false;
  uint64_t config_changes_ = 0;
  // Sum of the configuration reflectors' versions at the last collect(): a change timer that
  // finds nothing newer (the initial list's own change calls) does not recompile.
  uint64_t config_version() const;
  mutable uint64_t collected_version_ = 0;
};

}  // namespace proxenos::k8s
