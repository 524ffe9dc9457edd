#pragma once
// Per-worker stats shards. Each shard has exactly one writer (its worker thread), so a counter
// bump is a relaxed load and store: no locked read-modify-write on the request path. The control
// thread reads the same atomics with relaxed loads when /metrics is scraped and sums the shards of
// every worker. Everything a worker touches per request is inline here, so areas below observe
// (upstream) can hold shards without linking it.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace proxenos::observe {

class Counter {
 public:
  void inc() { add(1); }
  void add(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) {
    value_.store(value_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Upper bounds (inclusive, Prometheus `le`) of the latency buckets, in milliseconds; a last
// bucket without a bound (+Inf) follows. Finer than Envoy's defaults below 10 ms, where an edge
// proxy's latencies live, so histogram_quantile() gives a meaningful p99; Envoy's bounds above.
inline constexpr std::array<double, 30> kLatencyBoundsMs = {
    0.1, 0.25, 0.5, 0.75, 1,   1.5, 2,   2.5,  3,    4,    5,     7.5,   10,    15,     20,
    25,  30,   50,  75,   100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsMs.size() + 1;

// Plain sums of histogram shards, as a scrape sees them. Buckets are per bucket, not cumulative.
struct HistogramValues {
  std::array<uint64_t, kLatencyBuckets> buckets{};
  uint64_t count = 0;
  uint64_t sum_us = 0;
};

class Histogram {
 public:
  // Index of the first bucket whose bound is >= the value; the +Inf bucket beyond the last.
  static size_t bucket_index_us(uint64_t us) {
    size_t lo = 0, hi = kBoundsUs.size();  // binary search: 5 compares instead of up to 30
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (us <= kBoundsUs[mid]) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }
  void record_us(uint64_t us) {
    buckets_[bucket_index_us(us)].inc();
    sum_us_.add(us);
    count_.inc();  // last, so a concurrent scrape rarely sees count ahead of the buckets
  }
  void add_to(HistogramValues& out) const {
    for (size_t i = 0; i < kLatencyBuckets; ++i) out.buckets[i] += buckets_[i].value();
    out.sum_us += sum_us_.value();
    out.count += count_.value();
  }

 private:
  static constexpr std::array<uint64_t, kLatencyBoundsMs.size()> kBoundsUs = [] {
    std::array<uint64_t, kLatencyBoundsMs.size()> out{};
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = static_cast<uint64_t>(kLatencyBoundsMs[i] * 1000);
    }
    return out;
  }();
  std::array<Counter, kLatencyBuckets> buckets_;
  Counter sum_us_;
  Counter count_;
};

// Status classes 1xx..5xx by status / 100; index 0 unused.
inline constexpr size_t kStatusClasses = 6;
inline constexpr int kMinStatusCode = 100;
inline constexpr int kMaxStatusCode = 599;
inline constexpr size_t kStatusCodes = kMaxStatusCode - kMinStatusCode + 1;

// The stats of each shard, declared once (Envoy style): COUNTER(name), GAUGE(name),
// HISTOGRAM(name). Names are Envoy's, without the envoy_http_ / envoy_cluster_ prefix; the
// listener's http2_* are Envoy's downstream HTTP/2 codec stats (http2.*), kept per listener.
#define PROXENOS_LISTENER_STATS(COUNTER, GAUGE, HISTOGRAM) \
  COUNTER(downstream_cx_total)                             \
  COUNTER(downstream_cx_protocol_error)                    \
  COUNTER(downstream_cx_rx_bytes_total)                    \
  COUNTER(downstream_cx_tx_bytes_total)                    \
  COUNTER(downstream_cx_http1_total)                       \
  COUNTER(downstream_cx_http2_total)                       \
  COUNTER(downstream_cx_upgrades_total)                    \
  COUNTER(downstream_rq_total)                             \
  COUNTER(downstream_rq_http1_total)                       \
  COUNTER(downstream_rq_http2_total)                       \
  COUNTER(downstream_rq_ws_on_non_ws_route)                \
  COUNTER(downstream_rq_rx_reset)                          \
  COUNTER(downstream_rq_tx_reset)                          \
  GAUGE(downstream_cx_active)                              \
  GAUGE(downstream_cx_http1_active)                        \
  GAUGE(downstream_cx_http2_active)                        \
  GAUGE(downstream_cx_upgrades_active)                     \
  GAUGE(downstream_rq_active)                              \
  COUNTER(ssl_handshake)                                   \
  COUNTER(ssl_connection_error)                            \
  COUNTER(ssl_session_reused)                              \
  COUNTER(downstream_rq_too_many_premature_resets)         \
  COUNTER(http2_rx_reset)                                  \
  COUNTER(http2_tx_reset)                                  \
  COUNTER(http2_header_overflow)                           \
  COUNTER(http2_rx_messaging_error)                        \
  COUNTER(http2_goaway_sent)                               \
  COUNTER(http2_streams_refused)                           \
  COUNTER(http2_outbound_flood)                            \
  COUNTER(http2_outbound_control_flood)                    \
  COUNTER(http2_inbound_empty_frames_flood)                \
  COUNTER(http2_inbound_priority_frames_flood)             \
  COUNTER(http2_inbound_window_update_frames_flood)        \
  GAUGE(http2_streams_active)                              \
  HISTOGRAM(downstream_rq_time)

#define PROXENOS_CLUSTER_STATS(COUNTER, GAUGE, HISTOGRAM) \
  COUNTER(upstream_rq_total)                              \
  COUNTER(upstream_cx_total)                              \
  COUNTER(upstream_cx_connect_fail)                       \
  COUNTER(upstream_cx_rx_bytes_total)                     \
  COUNTER(upstream_cx_tx_bytes_total)                     \
  COUNTER(upstream_rq_timeout)                            \
  COUNTER(upstream_rq_retry)                              \
  GAUGE(upstream_cx_active)                               \
  GAUGE(upstream_rq_active)                               \
  HISTOGRAM(upstream_rq_time)

#define PROXENOS_ROUTE_STATS(COUNTER, GAUGE, HISTOGRAM) \
  COUNTER(rq_total)                                     \
  GAUGE(rq_active)                                      \
  HISTOGRAM(rq_time)

// Envoy's tcp_proxy stats, per TCPMapping (group).
#define PROXENOS_TCP_STATS(COUNTER, GAUGE, HISTOGRAM) \
  COUNTER(downstream_cx_total)                        \
  COUNTER(downstream_cx_no_route)                     \
  COUNTER(downstream_cx_rx_bytes_total)               \
  COUNTER(downstream_cx_tx_bytes_total)               \
  COUNTER(idle_timeout)                               \
  GAUGE(downstream_cx_active)

#define PROXENOS_STATS_SHARD_COUNTER(name) Counter name;
#define PROXENOS_STATS_SHARD_GAUGE(name) Gauge name;
#define PROXENOS_STATS_SHARD_HISTOGRAM(name) Histogram name;
#define PROXENOS_STATS_VALUE_COUNTER(name) uint64_t name = 0;
#define PROXENOS_STATS_VALUE_GAUGE(name) int64_t name = 0;
#define PROXENOS_STATS_VALUE_HISTOGRAM(name) HistogramValues name;
#define PROXENOS_STATS_NONE(name)

// One worker's stats of one listener (Envoy's HTTP connection manager stats, named by the
// listener's stats prefix, plus the listener's own by address). Shared with the worker's
// registry so a scrape still reads them after the listener is gone.
struct ListenerStats {
  ListenerStats(std::string stats_prefix, std::string listener_address)
      : name(std::move(listener_address)), prefix(std::move(stats_prefix)) {}

  const std::string name;    // "0.0.0.0_8080" (Envoy's envoy_listener_address)
  const std::string prefix;  // "ingress_http" (Envoy's envoy_http_conn_manager_prefix)
  PROXENOS_LISTENER_STATS(PROXENOS_STATS_SHARD_COUNTER, PROXENOS_STATS_SHARD_GAUGE,
                          PROXENOS_STATS_SHARD_HISTOGRAM)
  std::array<Counter, kStatusClasses> downstream_rq_xx;

  void count_response(int status) {
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) downstream_rq_xx[static_cast<size_t>(cls)].inc();
  }
};

// One worker's stats of one cluster; shared with the worker's stats registry so a scrape can
// still read them after the cluster is gone.
struct ClusterStats {
  explicit ClusterStats(std::string cluster_name) : name(std::move(cluster_name)) {}

  const std::string name;
  PROXENOS_CLUSTER_STATS(PROXENOS_STATS_SHARD_COUNTER, PROXENOS_STATS_SHARD_GAUGE,
                         PROXENOS_STATS_SHARD_HISTOGRAM)
  std::array<Counter, kStatusClasses> upstream_rq_xx;
  std::array<Counter, kStatusCodes> upstream_rq_code;  // index = status - 100

  void count_response(int status) {
    if (status < kMinStatusCode || status > kMaxStatusCode) return;
    upstream_rq_xx[static_cast<size_t>(status / 100)].inc();
    upstream_rq_code[static_cast<size_t>(status - kMinStatusCode)].inc();
  }
};

// One worker's stats of one route, named by the route's stats name (the Mapping's `stats_name`,
// or one derived from the Mapping: routes sharing a name share the stats).
struct RouteStats {
  explicit RouteStats(std::string route_name) : name(std::move(route_name)) {}

  const std::string name;
  PROXENOS_ROUTE_STATS(PROXENOS_STATS_SHARD_COUNTER, PROXENOS_STATS_SHARD_GAUGE,
                       PROXENOS_STATS_SHARD_HISTOGRAM)
  std::array<Counter, kStatusClasses> rq_xx;

  void count_response(int status) {
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) rq_xx[static_cast<size_t>(cls)].inc();
  }
};

// One worker's stats of one TCPMapping (Envoy's `tcp.<stat_prefix>.*`).
struct TcpStats {
  explicit TcpStats(std::string stats_prefix) : name(std::move(stats_prefix)) {}

  const std::string name;
  PROXENOS_TCP_STATS(PROXENOS_STATS_SHARD_COUNTER, PROXENOS_STATS_SHARD_GAUGE,
                     PROXENOS_STATS_SHARD_HISTOGRAM)
};

struct ListenerValues {
  std::string name;
  std::string prefix;
  PROXENOS_LISTENER_STATS(PROXENOS_STATS_VALUE_COUNTER, PROXENOS_STATS_VALUE_GAUGE,
                          PROXENOS_STATS_VALUE_HISTOGRAM)
  std::array<uint64_t, kStatusClasses> downstream_rq_xx{};

  void add(const ListenerStats& shard);
  void add(const ListenerValues& other);  // folds listeners that share a stats prefix
};

struct ClusterValues {
  std::string name;
  PROXENOS_CLUSTER_STATS(PROXENOS_STATS_VALUE_COUNTER, PROXENOS_STATS_VALUE_GAUGE,
                         PROXENOS_STATS_VALUE_HISTOGRAM)
  std::array<uint64_t, kStatusClasses> upstream_rq_xx{};
  std::array<uint64_t, kStatusCodes> upstream_rq_code{};

  void add(const ClusterStats& shard);
};

struct RouteValues {
  std::string name;
  PROXENOS_ROUTE_STATS(PROXENOS_STATS_VALUE_COUNTER, PROXENOS_STATS_VALUE_GAUGE,
                       PROXENOS_STATS_VALUE_HISTOGRAM)
  std::array<uint64_t, kStatusClasses> rq_xx{};

  void add(const RouteStats& shard);
};

struct TcpValues {
  std::string name;
  PROXENOS_TCP_STATS(PROXENOS_STATS_VALUE_COUNTER, PROXENOS_STATS_VALUE_GAUGE,
                     PROXENOS_STATS_VALUE_HISTOGRAM)

  void add(const TcpStats& shard);
};

// The sum of every worker's shards at one scrape (control thread only). Each list is sorted by
// name with one entry per name.
struct MergedStats {
  std::vector<ListenerValues> listeners;
  std::vector<ClusterValues> clusters;
  std::vector<RouteValues> routes;
  std::vector<TcpValues> tcp;

  void add(const ListenerStats& shard);
  void add(const ClusterStats& shard);
  void add(const RouteStats& shard);
  void add(const TcpStats& shard);
};

// A worker's shards of one kind, for scrapes. The mutex is taken when shards are created (config
// apply, new connections' listeners) and by scrapes, never per request: requests reach their
// shards through their connection, cluster or route.
template <typename Shard>
class ShardRegistry {
 public:
  void add(std::shared_ptr<const Shard> shard) {
    std::lock_guard<std::mutex> lock(mutex_);
    shards_.push_back(std::move(shard));
  }
  // Drops the shards nobody else holds (those of removed listeners, clusters and routes) once
  // there are more than `keep` of them beyond the `live` ones. Until then a removed cluster's
  // counters stay visible, frozen, to every reader alike.
  void prune(size_t live, size_t keep) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shards_.size() > live + keep) {
      std::erase_if(shards_, [](const auto& s) { return s.use_count() == 1; });
    }
  }
  // Adds every shard to `out` (relaxed reads of single-writer atomics).
  void collect(MergedStats& out) {
    std::vector<std::shared_ptr<const Shard>> shards;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shards = shards_;
    }
    for (const auto& s : shards) out.add(*s);
  }

 private:
  std::mutex mutex_;
  std::vector<std::shared_ptr<const Shard>> shards_;
};

}  // namespace proxenos::observe
