#include "proxy/worker.h"

#include <algorithm>

#include "proxy/http_connection.h"
#include "proxy/listener_socket.h"
#include "proxy/shadow_request.h"

namespace proxenos::proxy {

namespace {
// Access-log lines are handed to the writer thread at this period (or sooner when big).
constexpr uint64_t kLogFlushMs = 100;
constexpr size_t kLogFlushBytes = 64 * 1024;
// Shards of removed clusters kept for a scrape beyond this many are dropped at the next apply,
// so a gateway that is never scraped does not accumulate them across reloads.
constexpr size_t kMaxOrphanShards = 64;

std::string listener_key(const config::ListenerSnapshot& l) {
  return l.bind_address + ":" + std::to_string(l.port);
}

constexpr const char* kTcpNoRoute = "no_route";

// "tcpmapping_<namespace>_<name>" of the group's first TCPMapping ("TCPMapping/ns/name").
std::string tcp_stats_name(const config::TcpRoute& r) {
  std::string source = r.targets.empty() ? r.source : r.targets.front().source;
  source = source.substr(0, source.find(' '));
  std::string out = "tcpmapping";
  size_t slash = source.find('/');
  std::string rest = slash == std::string::npos ? source : source.substr(slash);
  for (char c : rest) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    out.push_back(ok ? c : '_');
  }
  return out;
}
}  // namespace

const config::ListenerSnapshot* WorkerConfig::listener(const std::string& key) const {
  for (size_t i = 0; i < listener_keys.size(); ++i) {
    if (listener_keys[i] == key) return &snapshot->listeners[i];
  }
  return nullptr;
}

Worker::Worker(int index, observe::AccessLogSink* sink, const std::atomic<bool>* ready)
    : index_(index),
      sink_(sink),
      ready_(ready),
      rng_(std::random_device{}() ^ (static_cast<uint64_t>(index) << 32)),
      log_timer_(loop_, [this] { flush_access_log(); }) {}

Worker::~Worker() {
  stop_and_join();
}

void Worker::start() {
  thread_ = std::thread([this] {
    log_timer_.arm(kLogFlushMs);
    loop_.run();
    // Tear down on the worker's own thread: connections and pools belong to it.
    for (DownstreamConnection* c : std::vector<DownstreamConnection*>(connections_)) delete c;
    connections_.clear();
    for (ShadowRequest* s : shadows_) delete s;
    shadows_.clear();
    retire_all_listeners();
    clusters_.clear();
    config_.reset();
    loop_.run_deferred();
    flush_access_log();
  });
}

void Worker::stop_and_join() {
  if (!thread_.joinable()) return;
  loop_.stop();
  thread_.join();
}

void Worker::apply(std::shared_ptr<const config::Snapshot> snapshot,
                   std::shared_ptr<const EndpointMap> endpoints,
                   std::shared_ptr<const TlsRuntime> tls,
                   std::shared_ptr<const observe::AccessLogFormat> access_log,
                   std::function<void(int, std::string)> done) {
  loop_.post([this, snapshot = std::move(snapshot), endpoints = std::move(endpoints),
              tls = std::move(tls), access_log = std::move(access_log),
              done = std::move(done)]() mutable {
    apply_on_loop(std::move(snapshot), std::move(endpoints), std::move(tls), std::move(access_log),
                  done);
  });
}

void Worker::apply_on_loop(std::shared_ptr<const config::Snapshot> snapshot,
                           std::shared_ptr<const EndpointMap> endpoints,
                           std::shared_ptr<const TlsRuntime> tls,
                           std::shared_ptr<const observe::AccessLogFormat> access_log,
                           const std::function<void(int, std::string)>& done) {
  auto cfg = std::make_shared<WorkerConfig>();
  cfg->snapshot = snapshot;
  cfg->tls = tls ? std::move(tls) : std::make_shared<const TlsRuntime>();
  cfg->access_log = std::move(access_log);
  const auto& module = snapshot->module;
  cfg->limits.max_header_bytes = static_cast<size_t>(module.max_request_headers_kb) * 1024;
  cfg->limits.allow_http10 = module.enable_http10;
  cfg->limits.underscores = module.headers_with_underscores;
  for (const auto& l : snapshot->listeners) cfg->listener_keys.push_back(listener_key(l));

  // Clusters: same name keeps its worker state (and pooled connections) across snapshots.
  std::unordered_map<std::string, std::shared_ptr<upstream::WorkerCluster>> next;
  for (const auto& spec : snapshot->clusters) {
    std::shared_ptr<upstream::WorkerCluster> cluster;
    auto it = clusters_.find(spec.name);
    if (it != clusters_.end()) {
      cluster = it->second;
      const observe::ClusterStats* shard = &cluster->stats();
      cluster->update_spec(spec);
      if (&cluster->stats() != shard) cluster_registry_.add(cluster->stats_shard());
    } else {
      cluster = std::make_shared<upstream::WorkerCluster>(loop_, spec);
      cluster_registry_.add(cluster->stats_shard());
    }
    if (endpoints) {
      auto e = endpoints->find(spec.name);
      if (e != endpoints->end()) cluster->set_endpoints(e->second);
    }
    if (spec.tls) {
      auto t = cfg->tls->clusters.find(spec.name);
      cluster->set_tls(t != cfg->tls->clusters.end() ? t->second : nullptr);
    }
    cfg->clusters.push_back(cluster);
    next.emplace(spec.name, std::move(cluster));
  }
  clusters_ = std::move(next);
  cluster_registry_.prune(clusters_.size(), kMaxOrphanShards);

  // Route stats: same name keeps its shard (and its counts) across snapshots.
  std::unordered_map<std::string, std::shared_ptr<observe::RouteStats>> routes;
  routes.reserve(snapshot->route_stats_names.size());
  cfg->route_stats.reserve(snapshot->route_stats_names.size());
  for (const std::string& name : snapshot->route_stats_names) {
    std::shared_ptr<observe::RouteStats> shard;
    auto it = route_stats_.find(name);
    if (it != route_stats_.end()) {
      shard = it->second;
    } else {
      shard = std::make_shared<observe::RouteStats>(name);
      route_registry_.add(shard);
    }
    cfg->route_stats.push_back(shard);
    routes.emplace(name, std::move(shard));
  }
  route_stats_ = std::move(routes);
  route_registry_.prune(route_stats_.size(), kMaxOrphanShards);

  // TCPMapping stats, named after the group's first TCPMapping.
  std::unordered_map<std::string, std::shared_ptr<observe::TcpStats>> tcp;
  for (const auto& l : snapshot->listeners) {
    auto& shards = cfg->tcp_stats.emplace_back();
    for (const config::TcpRoute& r : l.tcp) {
      std::string name = tcp_stats_name(r);
      std::shared_ptr<observe::TcpStats> shard;
      if (auto it = tcp.find(name); it != tcp.end()) {
        shard = it->second;
      } else if (auto old = tcp_stats_.find(name); old != tcp_stats_.end()) {
        shard = old->second;
      } else {
        shard = std::make_shared<observe::TcpStats>(name);
        tcp_registry_.add(shard);
      }
      tcp.emplace(name, shard);
      shards.push_back(std::move(shard));
    }
  }
  if (auto none = tcp_stats_.find(kTcpNoRoute); none != tcp_stats_.end()) tcp.insert(*none);
  tcp_stats_ = std::move(tcp);
  tcp_registry_.prune(tcp_stats_.size(), kMaxOrphanShards);

  // Listener stats by key, named after the listener's address and stats prefix.
  for (const auto& l : snapshot->listeners) {
    std::string key = listener_key(l);
    auto it = listener_stats_.find(key);
    if (it != listener_stats_.end() && it->second->prefix == l.stats_prefix) continue;
    // Envoy's tag for listener stats: "0.0.0.0_8080" (the port joined with '_').
    std::string address = key;
    if (size_t colon = address.rfind(':'); colon != std::string::npos) address[colon] = '_';
    auto shard = std::make_shared<observe::ListenerStats>(l.stats_prefix, address);
    listener_registry_.add(shard);
    listener_stats_[key] = std::move(shard);
  }

  // Listeners: unchanged keys keep their sockets; new ones open; removed ones close.
  int failures = 0;
  std::string errors;
  std::unordered_map<std::string, std::unique_ptr<ListenerSocket>> listeners;
  for (const auto& l : snapshot->listeners) {
    std::string key = listener_key(l);
    if (listeners.count(key)) continue;
    auto it = listeners_.find(key);
    if (it != listeners_.end()) {
      listeners.emplace(key, std::move(it->second));
      continue;
    }
    auto address = net::Address::parse(l.bind_address, l.port);
    if (!address) {
      ++failures;
      errors += "listener " + key + ": bad bind address; ";
      continue;
    }
    auto socket = std::make_unique<ListenerSocket>(*this, key, *address);
    if (!socket->ok()) {
      ++failures;
      errors += "listener " + key + ": " + socket->error() + "; ";
      continue;
    }
    listeners.emplace(key, std::move(socket));
  }
  for (auto& [key, socket] : listeners_) {
    if (socket) retire(std::move(socket));
  }
  listeners_ = std::move(listeners);
  if (draining_) retire_all_listeners();
  config_ = std::move(cfg);
  if (done) done(failures, errors);
}

void Worker::update_endpoints(std::shared_ptr<const EndpointMap> endpoints) {
  loop_.post([this, endpoints = std::move(endpoints)] {
    for (auto& [name, cluster] : clusters_) {
      auto it = endpoints->find(name);
      if (it != endpoints->end()) cluster->set_endpoints(it->second);
    }
  });
}

void Worker::collect_stats(observe::MergedStats& out) {
  listener_registry_.collect(out);
  cluster_registry_.collect(out);
  route_registry_.collect(out);
  tcp_registry_.collect(out);
}

std::shared_ptr<observe::TcpStats> Worker::tcp_no_route_stats() {
  auto it = tcp_stats_.find(kTcpNoRoute);
  if (it != tcp_stats_.end()) return it->second;
  auto shard = std::make_shared<observe::TcpStats>(kTcpNoRoute);
  tcp_registry_.add(shard);
  tcp_stats_.emplace(kTcpNoRoute, shard);
  return shard;
}

std::shared_ptr<observe::ListenerStats> Worker::listener_stats(const std::string& key) {
  auto it = listener_stats_.find(key);
  if (it != listener_stats_.end()) return it->second;
  // Not reachable in practice (sockets exist only for configured listeners); counted apart.
  auto shard = std::make_shared<observe::ListenerStats>("unknown", key);
  listener_registry_.add(shard);
  listener_stats_.emplace(key, shard);
  return shard;
}

void Worker::release_shadow(ShadowRequest* shadow) {
  if (shadows_.erase(shadow) == 0) return;
  loop_.defer([shadow] { delete shadow; });
}

void Worker::drain() {
  loop_.post([this] {
    draining_ = true;
    retire_all_listeners();
    for (auto& [name, cluster] : clusters_) cluster->close_idle();
    for (DownstreamConnection* c : std::vector<DownstreamConnection*>(connections_)) c->drain();
  });
}

void Worker::retire(std::unique_ptr<ListenerSocket> socket) {
  // Closing now stops accepting; freeing waits until the current batch of events, which may
  // still name this socket, has been dispatched.
  socket->pause();
  ListenerSocket* raw = socket.release();
  loop_.defer([raw] { delete raw; });
}

void Worker::retire_all_listeners() {
  for (auto& [key, socket] : listeners_) retire(std::move(socket));
  listeners_.clear();
}

void Worker::on_connection_open(DownstreamConnection* connection) {
  connections_.push_back(connection);
  active_connections_.store(connections_.size(), std::memory_order_relaxed);
}

void Worker::on_connection_close(DownstreamConnection* connection) {
  auto it = std::find(connections_.begin(), connections_.end(), connection);
  if (it != connections_.end()) {
    *it = connections_.back();
    connections_.pop_back();
  }
  active_connections_.store(connections_.size(), std::memory_order_relaxed);
}

void Worker::flush_access_log() {
  if (!log_buffer_.empty() && sink_ != nullptr) {
    sink_->submit(std::move(log_buffer_));
    log_buffer_ = std::string();
    log_buffer_.reserve(kLogFlushBytes);
  }
  log_timer_.arm(kLogFlushMs);
}

void Worker::maybe_flush_access_log() {
  if (log_buffer_.size() >= kLogFlushBytes) flush_access_log();
}

}  // namespace proxenos::proxy
