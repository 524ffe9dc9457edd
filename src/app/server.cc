#include "app/server.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <malloc.h>

#include <chrono>
#include <thread>

#include "admin/admin_server.h"
#include "admin/diag_page.h"
#include "app/tls_runtime.h"
#include "config/file_source.h"
#include "k8s/ambassador_status.h"
#include "net/address.h"
#include "observe/prometheus.h"

namespace proxenos::app {

namespace {
// How often DNS names of clusters are resolved again.
constexpr uint64_t kDnsRefreshMs = 5000;
constexpr uint64_t kDrainPollMs = 50;

class SignalHandler final : public net::IoHandler {
 public:
  explicit SignalHandler(std::function<void()> fn) : fn_(std::move(fn)) {}
  void on_io(uint32_t) override { fn_(); }

 private:
  std::function<void()> fn_;
};
}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() {
  for (auto& w : workers_) w->stop_and_join();
  if (signal_fd_ >= 0) close(signal_fd_);
}

void Server::resolve_endpoints(const config::Snapshot& snapshot, proxy::EndpointMap& out) {
  for (const auto& c : snapshot.clusters) {
    if (out.count(c.name)) continue;
    if (!c.endpoint_service.empty()) {
      // KubernetesEndpointResolver: pod addresses from EndpointSlices; none ready → 503s.
      std::vector<net::Address> addresses;
      if (kube_) addresses = kube_->endpoints(c.endpoint_namespace, c.endpoint_service, c.port);
      out.emplace(c.name, std::move(addresses));
      continue;
    }
    std::string error;
    auto addresses = net::resolve(c.host, c.port, c.enable_ipv4, c.enable_ipv6, &error);
    if (addresses.empty()) {
      spdlog::warn("cluster {}: cannot resolve {}:{}: {}", c.name, c.host, c.port, error);
    }
    out.emplace(c.name, std::move(addresses));
  }
}

bool Server::load_and_apply(bool initial) {
  auto t0 = std::chrono::steady_clock::now();
  config::LoadResult loaded;
  if (!options_.config_path.empty()) loaded = config::load_path(options_.config_path);
  std::vector<k8s::StatusUpdate> statuses;
  std::vector<k8s::StatusTarget> status_targets;
  if (kube_) {
    kube_->collect(loaded, statuses);
    status_targets = k8s::status_targets(loaded.resources, options_.update_mapping_status);
  }
  auto t1 = std::chrono::steady_clock::now();
  config::CompileOptions copts;
  copts.ambassador_id = options_.ambassador_id;
  copts.generation = ++generation_;
  copts.kubernetes = kube_ != nullptr;
  copts.gateway_namespace = gateway_namespace_;
  config::StoreResult stored = store_.compile(std::move(loaded), copts);
  const config::CompileResult& compiled = stored.compiled;
  auto t2 = std::chrono::steady_clock::now();
  size_t errors = 0;
  for (const auto& d : stored.diagnostics) {
    if (d.severity == config::Severity::kError) {
      ++errors;
      spdlog::error("{}", d.to_string());
    } else {
      spdlog::warn("{}", d.to_string());
    }
  }
  for (const auto& note : compiled.notes) {
    // Resources of other kinds or other ambassador_ids are normal in a shared folder or cluster.
    if (note.rfind("ignoring ", 0) == 0) {
      spdlog::debug("{}", note);
    } else {
      spdlog::info("{}", note);
    }
  }
  size_t routes = 0;
  for (const auto& l : compiled.snapshot->listeners) {
    if (!l.routes) continue;
    for (const auto& h : l.routes->hosts()) routes += h.routes.size();
  }
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  // One line per reload, key=value, so log pipelines can pick the figures out.
  spdlog::info(
      "config generation {}: resources={} added={} changed={} removed={} kept_last_good={} "
      "errors={} warnings={} listeners={} routes={} clusters={} read_ms={} compile_ms={}",
      copts.generation, stored.resources, stored.changes.added, stored.changes.changed,
      stored.changes.removed, stored.kept.size(), errors, stored.diagnostics.size() - errors,
      compiled.snapshot->listeners.size(), routes, compiled.snapshot->clusters.size(), ms(t1 - t0),
      ms(t2 - t1));
  config_kept_ = stored.kept.size();

  auto endpoints = std::make_shared<proxy::EndpointMap>();
  resolve_endpoints(*compiled.snapshot, *endpoints);
  // Certificates and keys are parsed here, once, and shared by every worker.
  config::Diagnostics tls_diagnostics;
  auto tls = build_tls_runtime(*compiled.snapshot, ticket_keys_, tls_.get(), tls_diagnostics);
  tls_ = tls;
  for (const auto& d : tls_diagnostics) {
    if (d.severity == config::Severity::kError) {
      ++errors;
      spdlog::error("{}", d.to_string());
    } else {
      spdlog::warn("{}", d.to_string());
    }
  }
  config_errors_ = errors;
  if (status_writer_) {
    std::vector<k8s::StatusUpdate> own =
        k8s::ambassador_statuses(status_targets, stored.diagnostics);
    for (auto& u : own) statuses.push_back(std::move(u));
    status_writer_->publish(std::move(statuses));
  }
  stored.diagnostics.insert(stored.diagnostics.end(), tls_diagnostics.begin(),
                            tls_diagnostics.end());
  snapshot_ = compiled.snapshot;
  endpoints_ = endpoints;
  diagnostics_ = std::move(stored.diagnostics);
  applied_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();

  std::shared_ptr<const observe::AccessLogFormat> format;
  const auto& module = snapshot_->module;
  std::string error;
  // envoy_log_type json and typed_json: envoy_log_format is a map of key -> format string.
  bool json_log = module.log_type != "text";
  auto parse_format = [json_log](std::string_view text, std::string* err) {
    return json_log ? observe::AccessLogFormat::parse_json(text, err)
                    : observe::AccessLogFormat::parse(text, err);
  };
  std::string_view default_format =
      json_log ? observe::kDefaultJsonAccessLogFormat : observe::kDefaultAccessLogFormat;
  std::string_view fmt_text = module.log_format.empty() ? default_format : module.log_format;
  if (auto parsed = parse_format(fmt_text, &error)) {
    format = std::make_shared<observe::AccessLogFormat>(std::move(*parsed));
  } else {
    spdlog::error("Module ambassador: envoy_log_format: {}; using the default format", error);
    format = std::make_shared<observe::AccessLogFormat>(*parse_format(default_format, &error));
  }
  // Everything written to /dev/null is lost, so nothing is formatted either: a line costs about
  // as much CPU as the rest of an HTTP/2 request. The format is still parsed above so that its
  // errors are reported.
  if (module.log_path == "/dev/null") format.reset();
  if (access_log_ && !access_log_->reopen(module.log_path, &error)) {
    spdlog::error("Module ambassador: envoy_log_path: {}; access log stays where it was", error);
  }

  pending_applies_.store(static_cast<int>(workers_.size()));
  apply_failures_.store(0);
  for (auto& w : workers_) {
    w->apply(snapshot_, endpoints_, tls, format, [this, initial](int failures, std::string errors) {
      if (failures > 0) {
        apply_failures_.fetch_add(failures);
        control_loop_.post([errors] { spdlog::error("cannot bind: {}", errors); });
      }
      if (pending_applies_.fetch_sub(1) == 1) {
        control_loop_.post([this, initial] {
          if (apply_failures_.load() == 0) {
            if (initial) spdlog::info("ready: all listeners bound");
            ready_.store(!draining_);
          }
        });
      }
    });
  }
  // Only now, with the snapshot on its way, free what parsing and compiling left behind, and
  // hand the freed pages back so resident memory reflects the configuration, not the compile.
  stored = config::StoreResult{};
  malloc_trim(0);
  return true;
}

void Server::refresh_endpoints() {
  if (!snapshot_ || draining_) return;
  auto fresh = std::make_shared<proxy::EndpointMap>();
  resolve_endpoints(*snapshot_, *fresh);
  bool changed = !endpoints_ || fresh->size() != endpoints_->size();
  if (!changed) {
    for (const auto& [name, list] : *fresh) {
      auto it = endpoints_->find(name);
      if (it == endpoints_->end() || it->second.size() != list.size()) {
        changed = true;
        break;
      }
      for (size_t i = 0; i < list.size() && !changed; ++i) {
        changed = list[i].to_string() != it->second[i].to_string();
      }
      if (changed) break;
    }
  }
  if (changed) {
    endpoints_ = fresh;
    for (auto& w : workers_) w->update_endpoints(endpoints_);
  }
}

bool Server::start_kubernetes(std::string* error) {
  std::optional<k8s::KubeConfig> config;
  if (options_.kubeconfig.empty()) {
    config = k8s::in_cluster_config(k8s::InClusterPaths{}, error);
    if (!config && !error->empty()) return false;
  }
  if (!config) {
    std::string path =
        options_.kubeconfig.empty() ? k8s::default_kubeconfig_path() : options_.kubeconfig;
    if (path.empty()) {
      *error =
          "not in a cluster (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig found "
          "(--kubeconfig, $KUBECONFIG, ~/.kube/config)";
      return false;
    }
    config = k8s::load_kubeconfig(path, options_.kube_context, error);
    if (!config) return false;
  }
  if (const char* pod_namespace = std::getenv("POD_NAMESPACE"); pod_namespace && *pod_namespace) {
    gateway_namespace_ = pod_namespace;
  } else if (!config->namespace_.empty()) {
    gateway_namespace_ = config->namespace_;
  }
  kube_client_ = k8s::ApiClient::create(control_loop_, *config, error);
  if (!kube_client_) return false;
  k8s::KubernetesSourceOptions so;
  so.namespace_ = options_.namespace_;
  so.ambassador_id = options_.ambassador_id;
  so.label_selector = options_.label_selector;
  so.field_selector = options_.field_selector;
  so.publish_service = options_.publish_service;
  k8s::KubernetesSourceCallbacks callbacks;
  callbacks.on_synced = [this] {
    if (!draining_) load_and_apply(true);
  };
  callbacks.on_config_changed = [this] {
    if (draining_) return;
    spdlog::info("kubernetes: configuration changed: recompiling");
    load_and_apply(false);
  };
  callbacks.on_endpoints_changed = [this] { refresh_endpoints(); };
  kube_ = std::make_unique<k8s::KubernetesSource>(*kube_client_, so, std::move(callbacks));
  status_writer_ = std::make_unique<k8s::StatusWriter>(*kube_client_);
  k8s::LeaderElectorOptions eo;
  eo.namespace_ = gateway_namespace_;
  k8s::LeaderElectorCallbacks ec;
  ec.on_started_leading = [this] {
    spdlog::info("kubernetes: this replica holds Lease {}/proxenos-status: writing status",
                 gateway_namespace_);
    status_writer_->set_enabled(true);
  };
  ec.on_stopped_leading = [this] {
    spdlog::info("kubernetes: Lease lost or released: not writing status");
    status_writer_->set_enabled(false);
  };
  elector_ = std::make_unique<k8s::LeaderElector>(*kube_client_, eo, std::move(ec));
  kube_->start();
  elector_->start();
  return true;
}

void Server::on_signal() {
  signalfd_siginfo info{};
  while (read(signal_fd_, &info, sizeof info) == sizeof info) {
    if (info.ssi_signo == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}",
                   options_.config_path.empty() ? "from the Kubernetes API" : options_.config_path);
      load_and_apply(false);
    } else {
      spdlog::info("{}: draining (up to {} s)", info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
                   options_.drain_seconds);
      begin_drain();
    }
  }
}

void Server::begin_drain() {
  if (draining_) return;
  draining_ = true;
  // Hand the Lease over now so another replica writes status without waiting for expiry.
  if (elector_) elector_->stop();
  ready_.store(false);
  drain_deadline_ms_ =
      control_loop_.refresh_now() + static_cast<uint64_t>(options_.drain_seconds) * 1000;
  for (auto& w : workers_) w->drain();
  drain_timer_->arm(kDrainPollMs);
}

void Server::check_drained() {
  uint64_t active = 0;
  for (auto& w : workers_) active += w->active_connections();
  if (active == 0 || control_loop_.now_ms() >= drain_deadline_ms_) {
    if (active > 0) spdlog::warn("drain deadline reached with {} connections open", active);
    control_loop_.stop();
    return;
  }
  drain_timer_->arm(kDrainPollMs);
}

int Server::run() {
  // Signals are taken synchronously on the control loop; workers never see them.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  SignalHandler signals([this] { on_signal(); });
  control_loop_.add(signal_fd_, EPOLLIN, &signals);
  started_ms_ = control_loop_.refresh_now();

  auto admin_address = net::Address::parse(options_.admin_address, 8877);
  if (!admin_address) {
    spdlog::error("--admin-address {}: expected IP:PORT", options_.admin_address);
    return 2;
  }
  admin::AdminServer admin(control_loop_, [this](const admin::AdminRequest& request) {
    const std::string& path = request.path;
    admin::AdminResponse r;
    if (path == "/ambassador/v0/check_alive") {
      uint64_t up = (control_loop_.now_ms() - started_ms_) / 1000;
      r.body = "ambassador liveness check OK (" + std::to_string(up) + " seconds)\n";
    } else if (path == "/ambassador/v0/check_ready") {
      if (ready_.load()) {
        r.body = "ambassador readiness check OK\n";
      } else {
        r.status = 503;
        r.body = draining_ ? "ambassador is draining\n" : "ambassador waiting for config\n";
      }
    } else if (path == "/metrics") {
      observe::MergedStats merged;
      for (auto& w : workers_) w->collect_stats(merged);
      stats_sampler_.record(control_loop_.now_ms(), merged);
      observe::PrometheusOptions options;
      options.config_generation = generation_;
      options.config_reloads = generation_ > 0 ? generation_ - 1 : 0;
      options.config_errors = config_errors_;
      options.config_kept_last_good = config_kept_;
      r.content_type = std::string(observe::kPrometheusContentType);
      r.body = observe::render_prometheus(merged, options);
    } else if (path == "/ambassador/v0/diag/" || path == "/ambassador/v0/diag") {
      observe::MergedStats merged;
      for (auto& w : workers_) w->collect_stats(merged);
      stats_sampler_.record(control_loop_.now_ms(), merged);
      DiagInputs in;
      in.snapshot = snapshot_.get();
      in.diagnostics = &diagnostics_;
      in.endpoints = endpoints_.get();
      in.stats = &merged;
      in.sampler = &stats_sampler_;
      in.generation = snapshot_ ? snapshot_->generation : 0;
      in.applied_unix_ms = applied_unix_ms_;
      in.now_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      nlohmann::json model = build_diag_model(in);
      if (query_flag(request.query, "json")) {
        r.content_type = "application/json";
        r.body = model.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      } else {
        r.content_type = "text/html; charset=utf-8";
        r.body = admin::render_diag_html(model);
      }
    } else if (path == "/config_dump") {
      r.content_type = "application/json";
      nlohmann::json dump = snapshot_ ? config_dump(*snapshot_) : nlohmann::json::object();
      r.body = dump.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } else {
      r.status = 404;
      r.body = "not found\n";
    }
    return r;
  });
  // Samples for the diagnostics page's recent error rate; the first one (no workers yet) is the
  // zero every cluster's window starts from.
  stats_timer_ = std::make_unique<net::Timer>(control_loop_, [this] {
    observe::MergedStats merged;
    for (auto& w : workers_) w->collect_stats(merged);
    stats_sampler_.record(control_loop_.now_ms(), merged);
    stats_timer_->arm(StatsSampler::kIntervalMs);
  });
  stats_sampler_.record(control_loop_.now_ms(), observe::MergedStats{});
  stats_timer_->arm(StatsSampler::kIntervalMs);
  std::string error;
  if (!admin.listen(*admin_address, &error)) {
    spdlog::error("admin listener: {}", error);
    return 2;
  }
  spdlog::info("admin listening on {}", admin.bound_address().to_string());

  access_log_ = std::make_unique<observe::AccessLogSink>(1);
  int n = options_.workers > 0
              ? options_.workers
              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<proxy::Worker>(i, access_log_.get(), &ready_));
    workers_.back()->start();
  }
  spdlog::info("started {} workers", n);
  if (options_.kubernetes) {
    // The first compile waits for every kind's first list: serving a partial view of the
    // cluster would drop routes that are only not listed yet.
    if (!start_kubernetes(&error)) {
      spdlog::error("kubernetes: {}", error);
      for (auto& w : workers_) w->stop_and_join();
      return 2;
    }
  } else {
    load_and_apply(true);
  }
  if (options_.watch && !options_.config_path.empty()) {
    watcher_ = std::make_unique<PathWatcher>(control_loop_, options_.config_path, [this] {
      if (draining_) return;
      spdlog::info("config change detected: reloading {}", options_.config_path);
      load_and_apply(false);
    });
    if (!watcher_->start(&error)) {
      spdlog::warn("config watch disabled ({}); SIGHUP still reloads", error);
      watcher_.reset();
    }
  }

  // Session-ticket keys rotate; the previous key still opens tickets for one more period.
  ticket_timer_ = std::make_unique<net::Timer>(control_loop_, [this] {
    ticket_keys_->rotate();
    ticket_timer_->arm(kTicketKeyRotationMs);
  });
  ticket_timer_->arm(kTicketKeyRotationMs);
  dns_timer_ = std::make_unique<net::Timer>(control_loop_, [this] {
    refresh_endpoints();
    dns_timer_->arm(kDnsRefreshMs);
  });
  dns_timer_->arm(kDnsRefreshMs);
  drain_timer_ = std::make_unique<net::Timer>(control_loop_, [this] { check_drained(); });
  control_loop_.run();
  watcher_.reset();
  elector_.reset();
  status_writer_.reset();
  kube_.reset();
  kube_client_.reset();

  for (auto& w : workers_) w->stop_and_join();
  workers_.clear();
  access_log_->flush();
  control_loop_.run_deferred();
  spdlog::info("stopped");
  return exit_code_;
}

}  // namespace proxenos::app
