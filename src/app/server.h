#pragma once
// `proxenos run`: the control thread. Loads and compiles configuration, starts the workers, posts
// snapshots and endpoint sets to them, serves the admin port, and drains on SIGTERM/SIGINT.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "app/diagnostics.h"
#include "app/path_watcher.h"
#include "config/compiler.h"
#include "config/resource_store.h"
#include "k8s/api_client.h"
#include "k8s/kubernetes_source.h"
#include "k8s/leader_election.h"
#include "k8s/status_writer.h"
#include "net/event_loop.h"
#include "proxy/worker.h"

namespace proxenos::app {

struct ServerOptions {
  std::string config_path;
  int workers = 0;  // 0 = number of cores
  std::string admin_address = "127.0.0.1:8877";
  std::string ambassador_id = "default";
  int drain_seconds = 10;
  bool watch = true;  // reload when files under config_path change (inotify), besides SIGHUP
  // Configuration from the Kubernetes API (besides config_path, when that is set too).
  bool kubernetes = false;
  std::string kubeconfig;       // "" = in-cluster when KUBERNETES_SERVICE_HOST is set, else
                                // $KUBECONFIG or ~/.kube/config
  std::string kube_context;     // kubeconfig context ("" = current-context)
  std::string namespace_;       // single-namespace mode; "" = all namespaces
  std::string publish_service;  // "ns/name": Ingress status copies this Service's load balancer
  std::string label_selector;   // for getambassador.io kinds
  std::string field_selector;
  bool update_mapping_status = false;  // AMBASSADOR_UPDATE_MAPPING_STATUS
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  int run();  // returns the process exit code

 private:
  bool load_and_apply(bool initial);
  void resolve_endpoints(const config::Snapshot& snapshot, proxy::EndpointMap& out);
  void refresh_endpoints();
  bool start_kubernetes(std::string* error);
  void on_signal();
  void begin_drain();
  void check_drained();

  ServerOptions options_;
  net::EventLoop control_loop_;
  std::unique_ptr<observe::AccessLogSink> access_log_;
  std::vector<std::unique_ptr<proxy::Worker>> workers_;
  std::shared_ptr<const config::Snapshot> snapshot_;
  std::shared_ptr<const proxy::EndpointMap> endpoints_;
  // Every problem found by the last load and compile (file and resource errors, warnings), as
  // the diagnostics page and `validate` report them.
  config::Diagnostics diagnostics_;
  config::ResourceStore store_;
  std::shared_ptr<net::TicketKeys> ticket_keys_ = std::make_shared<net::TicketKeys>();
  std::shared_ptr<const proxy::TlsRuntime> tls_;  // the applied configuration's TLS objects
  std::unique_ptr<net::Timer> ticket_timer_;
  size_t config_errors_ = 0;     // errors in the active configuration
  size_t config_kept_ = 0;       // resources serving their last good version
  int64_t applied_unix_ms_ = 0;  // wall-clock time the active snapshot was compiled
  std::atomic<bool> ready_{false};
  std::atomic<int> pending_applies_{0};
  std::atomic<int> apply_failures_{0};
  uint64_t generation_ = 0;
  uint64_t started_ms_ = 0;
  bool draining_ = false;
  uint64_t drain_deadline_ms_ = 0;
  int signal_fd_ = -1;
  int exit_code_ = 0;
  std::unique_ptr<net::Timer> dns_timer_;
  std::unique_ptr<net::Timer> drain_timer_;
  std::unique_ptr<PathWatcher> watcher_;
  std::unique_ptr<k8s::ApiClient> kube_client_;
  std::unique_ptr<k8s::KubernetesSource> kube_;
  // Status is written by the Lease holder only; every replica watches and serves.
  std::unique_ptr<k8s::StatusWriter> status_writer_;
  std::unique_ptr<k8s::LeaderElector> elector_;
  std::string gateway_namespace_ = "default";  // the pod's namespace (POD_NAMESPACE)
  // Per-cluster request/5xx history for the diagnostics page's recent error rate, sampled by
  // stats_timer_ and by every /metrics scrape and diagnostics request.
  StatsSampler stats_sampler_;
  std::unique_ptr<net::Timer> stats_timer_;
};

}  // namespace proxenos::app
