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
// bucket without a bound (+Inf) follows.
inline constexpr std::array<double, 16> kLatencyBoundsMs = {
    0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsMs.size() + 1;

// Plain sums of histogram shards, as a scrape sees them. Buckets are per bucket, not cumulative.
struct HistogramValues {
  std::array<uint64_t, kLatencyBuckets> buckets{};
  uint64_t count = 0;
  uint64_t sum_ms = 0;
};

class Histogram {
 public:
  // Index of the first bucket whose bound is >= ms; the +Inf bucket beyond the last bound.
  static size_t bucket_index(double ms) {
    for (size_t i = 0; i < kLatencyBoundsMs.size(); ++i) {
      if (ms <= kLatencyBoundsMs[i]) return i;
    }
    return kLatencyBoundsMs.size();
  }
  void record_ms(uint64_t ms) {
    buckets_[bucket_index(static_cast<double>(ms))].inc();
    sum_ms_.add(ms);
    count_.inc();  // last, so a concurrent scrape rarely sees count ahead of the buckets
  }
  void add_to(HistogramValues& out) const {
    for (size_t i = 0; i < kLatencyBuckets; ++i) out.buckets[i] += buckets_[i].value();
    out.sum_ms += sum_ms_.value();
    out.count += count_.value();
  }

 private:
  std::array<Counter, kLatencyBuckets> buckets_;
  Counter sum_ms_;
  Counter count_;
};

// Status classes 1xx..5xx by status / 100; index 0 unused.
inline constexpr size_t kStatusClasses = 6;
inline constexpr int kMinStatusCode = 100;
inline constexpr int kMaxStatusCode = 599;
inline constexpr size_t kStatusCodes = kMaxStatusCode - kMinStatusCode + 1;

// The stats of each shard, declared once (Envoy style): COUNTER(name), GAUGE(name),
// HISTOGRAM(name). Names are Envoy's, without the envoy_http_ / envoy_cluster_ prefix.
#define PROXENOS_LISTENER_STATS(COUNTER, GAUGE, HISTOGRAM) \
  COUNTER(downstream_cx_total)                             \
  COUNTER(downstream_cx_protocol_error)                    \
  COUNTER(downstream_rq_total)                             \
  GAUGE(downstream_cx_active)                              \
  HISTOGRAM(downstream_rq_time)

#define PROXENOS_CLUSTER_STATS(COUNTER, GAUGE, HISTOGRAM) \
  COUNTER(upstream_rq_total)                              \
  COUNTER(upstream_cx_total)                              \
  COUNTER(upstream_cx_connect_fail)                       \
  COUNTER(upstream_rq_timeout)                            \
  COUNTER(upstream_rq_retry)                              \
  HISTOGRAM(upstream_rq_time)

#define PROXENOS_STATS_SHARD_COUNTER(name) Counter name;
#define PROXENOS_STATS_SHARD_GAUGE(name) Gauge name;
#define PROXENOS_STATS_SHARD_HISTOGRAM(name) Histogram name;
#define PROXENOS_STATS_VALUE_COUNTER(name) uint64_t name = 0;
#define PROXENOS_STATS_VALUE_GAUGE(name) int64_t name = 0;
#define PROXENOS_STATS_VALUE_HISTOGRAM(name) HistogramValues name;
#define PROXENOS_STATS_NONE(name)

// One worker's HTTP connection manager stats.
struct ListenerStats {
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
  PROXENOS_CLUSTER_STATS(PROXENOS_STATS_SHARD_COUNTER, PROXENOS_STATS_NONE,
                         PROXENOS_STATS_SHARD_HISTOGRAM)
  std::array<Counter, kStatusClasses> upstream_rq_xx;
  std::array<Counter, kStatusCodes> upstream_rq_code;  // index = status - 100

  void count_response(int status) {
    if (status < kMinStatusCode || status > kMaxStatusCode) return;
    upstream_rq_xx[static_cast<size_t>(status / 100)].inc();
    upstream_rq_code[static_cast<size_t>(status - kMinStatusCode)].inc();
  }
};

struct ListenerValues {
  PROXENOS_LISTENER_STATS(PROXENOS_STATS_VALUE_COUNTER, PROXENOS_STATS_VALUE_GAUGE,
                          PROXENOS_STATS_VALUE_HISTOGRAM)
  std::array<uint64_t, kStatusClasses> downstream_rq_xx{};

  void add(const ListenerStats& shard);
};

struct ClusterValues {
  std::string name;
  PROXENOS_CLUSTER_STATS(PROXENOS_STATS_VALUE_COUNTER, PROXENOS_STATS_NONE,
                         PROXENOS_STATS_VALUE_HISTOGRAM)
  std::array<uint64_t, kStatusClasses> upstream_rq_xx{};
  std::array<uint64_t, kStatusCodes> upstream_rq_code{};

  void add(const ClusterStats& shard);
};

// The sum of every worker's shards at one scrape (control thread only).
struct MergedStats {
  ListenerValues listener;
  std::vector<ClusterValues> clusters;  // sorted by name, one entry per name

  void add(const ListenerStats& shard) { listener.add(shard); }
  void add(const ClusterStats& shard);
};

}  // namespace proxenos::observe
