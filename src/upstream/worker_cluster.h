#pragma once
// A worker's view of one upstream cluster: its current endpoints, the round-robin cursor and the
// pool of idle keep-alive connections. Owned by one worker; never touched by another thread.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "net/address.h"
#include "net/event_loop.h"
#include "net/tls_context.h"
#include "observe/stats.h"
#include "upstream/cluster_spec.h"
#include "upstream/upstream_connection.h"

namespace proxenos::upstream {

class Http2Upstream;

class WorkerCluster {
 public:
  WorkerCluster(net::EventLoop& loop, ClusterSpec spec);
  ~WorkerCluster();

  const ClusterSpec& spec() const { return spec_; }
  void update_spec(const ClusterSpec& spec);  // a reload with the same upstream keeps the pool
  void set_endpoints(std::vector<net::Address> endpoints);
  // TLS origination (the spec says tls): connections made from now on use this context.
  void set_tls(std::shared_ptr<const net::TlsClientContext> context) { tls_ = std::move(context); }
  const std::vector<net::Address>& endpoints() const { return endpoints_; }

  // Round-robin over endpoints; nullptr when there are none (DNS failed or empty).
  const net::Address* pick_endpoint();

  // Most recently used idle connection (warm, least likely to have been closed by the peer).
  std::unique_ptr<UpstreamConnection> take_idle();
  // Starts a non-blocking connect (and, for TLS clusters, the TLS client side: the connection
  // handshakes by itself); nullptr (and `error_number`) when the socket call fails.
  std::unique_ptr<UpstreamConnection> connect(const net::Address& endpoint, int* error_number);
  void release(std::unique_ptr<UpstreamConnection> connection);
  void drop_idle(UpstreamConnection* connection);
  void close_idle();  // drain: close every pooled connection
  size_t idle_count() const { return idle_.size(); }
  // HTTP/2 connections (spec says http2), each shared by many requests (upstream/http2_upstream.h).
  std::vector<std::unique_ptr<Http2Upstream>>& http2_connections() { return http2_; }

  // This worker's stats shard for the cluster, named by the spec's stats_name (written only by
  // this worker); shared so the worker's stats registry keeps it readable after the cluster is
  // gone. update_spec() replaces it when the stats name changes.
  observe::ClusterStats& stats() { return *stats_; }
  const std::shared_ptr<observe::ClusterStats>& stats_shard() const { return stats_; }

 private:
  void expire_idle();

  net::EventLoop& loop_;
  ClusterSpec spec_;
  std::vector<net::Address> endpoints_;
  size_t next_endpoint_ = 0;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;
  net::Timer idle_timer_;  // one sweep timer per cluster instead of one per pooled connection
  std::shared_ptr<observe::ClusterStats> stats_;
  std::shared_ptr<const net::TlsClientContext> tls_;
  std::vector<std::unique_ptr<Http2Upstream>> http2_;
};

}  // namespace proxenos::upstream
