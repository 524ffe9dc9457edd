#pragma once
// A worker thread: its own event loop, its own SO_REUSEPORT listening sockets, every connection
// it accepted, its own upstream pools and its own counters. Workers share nothing mutable; the
// control thread reaches them only by posting tasks onto their loops.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/snapshot.h"
#include "http/http1_parser.h"
#include "net/address.h"
#include "net/buffer.h"
#include "net/event_loop.h"
#include "net/tls_context.h"
#include "observe/access_log.h"
#include "observe/stats.h"
#include "upstream/worker_cluster.h"

namespace proxenos::proxy {

class DownstreamConnection;
class ListenerSocket;
class ShadowRequest;

using EndpointMap = std::unordered_map<std::string, std::vector<net::Address>>;

// The TLS objects of one configuration, built once on the control thread (parsing certificates and
// keys is slow) and shared read-only by every worker.
struct TlsRuntime {
  // By snapshot listener: the SNI choice of a TLS-terminating listener; null = cleartext only.
  std::vector<std::shared_ptr<const net::SniSelector>> listeners;
  // By snapshot listener: it is meant to terminate TLS (with no usable certificate, TLS clients
  // are closed rather than read as cleartext).
  std::vector<bool> terminates;
  // The certificate contexts built, by the name of the Host or TLSContext they came from: a
  // certificate that fails on a later reload keeps serving from here (its last good version).
  std::unordered_map<std::string, std::shared_ptr<const net::TlsServerContext>> contexts;
  // By cluster name: TLS origination for clusters whose spec says tls.
  std::unordered_map<std::string, std::shared_ptr<const net::TlsClientContext>> clusters;
};

// What a worker serves with: a snapshot plus this worker's handles on its clusters, aligned with
// snapshot->clusters. Requests keep the shared_ptr they started with.
struct WorkerConfig {
  std::shared_ptr<const config::Snapshot> snapshot;
  std::vector<std::shared_ptr<upstream::WorkerCluster>> clusters;
  http::ParserLimits limits;
  std::shared_ptr<const observe::AccessLogFormat> access_log;  // null: access log off
  std::shared_ptr<const TlsRuntime> tls;                       // never null once applied
  std::vector<std::string> listener_keys;  // "addr:port", aligned with snapshot->listeners
  std::vector<std::shared_ptr<observe::RouteStats>> route_stats;  // by Route::stats_index
  // Per listener (aligned with snapshot->listeners), per TCPMapping on it (aligned with `tcp`).
  std::vector<std::vector<std::shared_ptr<observe::TcpStats>>> tcp_stats;

  const config::ListenerSnapshot* listener(const std::string& key) const;
};

class Worker {
 public:
  Worker(int index, observe::AccessLogSink* sink, const std::atomic<bool>* ready);
  ~Worker();

  void start();
  void stop_and_join();

  // Control thread API (all post onto the worker's loop). `done` runs on the worker thread with
  // the number of listeners that failed to bind and their errors.
  void apply(std::shared_ptr<const config::Snapshot> snapshot,
             std::shared_ptr<const EndpointMap> endpoints, std::shared_ptr<const TlsRuntime> tls,
             std::shared_ptr<const observe::AccessLogFormat> access_log,
             std::function<void(int failures, std::string errors)> done);
  void update_endpoints(std::shared_ptr<const EndpointMap> endpoints);
  // Stop accepting; idle connections close now, busy ones after their current response.
  void drain();
  uint64_t active_connections() const { return active_connections_.load(); }
  // Adds this worker's shards to `out` (a /metrics scrape). Cluster shards no longer held by any
  // cluster are reported this one last time and then forgotten.
  void collect_stats(observe::MergedStats& out);

  // Worker-thread API for connections.
  int index() const { return index_; }
  net::EventLoop& loop() { return loop_; }
  net::BufferPool& buffers() { return buffers_; }
  const std::shared_ptr<const WorkerConfig>& config() const { return config_; }
  bool draining() const { return draining_; }
  bool ready() const { return ready_ != nullptr && ready_->load(std::memory_order_relaxed); }
  uint32_t draw_percent() { return static_cast<uint32_t>(rng_() % 100); }
  uint64_t random64() { return rng_(); }
  std::string& access_log_buffer() { return log_buffer_; }
  void maybe_flush_access_log();
  // The stats shard of the listener `key` ("addr:port") on this worker.
  std::shared_ptr<observe::ListenerStats> listener_stats(const std::string& key);
  // Where connections on a TCP port with no usable TCPMapping are counted.
  std::shared_ptr<observe::TcpStats> tcp_no_route_stats();
  void on_connection_open(DownstreamConnection* connection);
  void on_connection_close(DownstreamConnection* connection);
  // Shadow requests outlive the exchanges that start them; the worker owns them until done.
  void adopt_shadow(ShadowRequest* shadow) { shadows_.insert(shadow); }
  void release_shadow(ShadowRequest* shadow);

 private:
  void apply_on_loop(std::shared_ptr<const config::Snapshot> snapshot,
                     std::shared_ptr<const EndpointMap> endpoints,
                     std::shared_ptr<const TlsRuntime> tls,
                     std::shared_ptr<const observe::AccessLogFormat> access_log,
                     const std::function<void(int, std::string)>& done);
  void flush_access_log();
  void retire(std::unique_ptr<ListenerSocket> socket);
  void retire_all_listeners();

  int index_;
  observe::AccessLogSink* sink_;
  const std::atomic<bool>* ready_;
  net::EventLoop loop_;
  std::thread thread_;
  net::BufferPool buffers_;
  std::shared_ptr<const WorkerConfig> config_;
  std::unordered_map<std::string, std::shared_ptr<upstream::WorkerCluster>> clusters_;
  std::unordered_map<std::string, std::unique_ptr<ListenerSocket>> listeners_;  // by "addr:port"
  std::vector<DownstreamConnection*> connections_;
  std::unordered_set<ShadowRequest*> shadows_;
  std::atomic<uint64_t> active_connections_{0};
  bool draining_ = false;
  std::mt19937_64 rng_;
  std::string log_buffer_;
  net::Timer log_timer_;
  // Current shards by listener key and by route stats name; every shard this worker created is
  // also in a registry for scrapes.
  std::unordered_map<std::string, std::shared_ptr<observe::ListenerStats>> listener_stats_;
  std::unordered_map<std::string, std::shared_ptr<observe::RouteStats>> route_stats_;
  std::unordered_map<std::string, std::shared_ptr<observe::TcpStats>> tcp_stats_;
  observe::ShardRegistry<observe::ListenerStats> listener_registry_;
  observe::ShardRegistry<observe::ClusterStats> cluster_registry_;
  observe::ShardRegistry<observe::RouteStats> route_registry_;
  observe::ShardRegistry<observe::TcpStats> tcp_registry_;
};

}  // namespace proxenos::proxy
