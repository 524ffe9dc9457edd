#include "observe/stats.h"

#include <algorithm>

namespace proxenos::observe {

#define PROXENOS_STATS_SUM_COUNTER(name) name += shard.name.value();
#define PROXENOS_STATS_SUM_GAUGE(name) name += shard.name.value();
#define PROXENOS_STATS_SUM_HISTOGRAM(name) shard.name.add_to(name);
#define PROXENOS_STATS_FOLD_COUNTER(name) name += other.name;
#define PROXENOS_STATS_FOLD_HISTOGRAM(name)                                              \
  for (size_t i = 0; i < kLatencyBuckets; ++i) name.buckets[i] += other.name.buckets[i]; \
  name.count += other.name.count;                                                        \
  name.sum_us += other.name.sum_us;

namespace {

template <typename Values>
Values& entry(std::vector<Values>& list, const std::string& name) {
  auto it = std::lower_bound(list.begin(), list.end(), name,
                             [](const Values& v, const std::string& n) { return v.name < n; });
  if (it == list.end() || it->name != name) {
    it = list.insert(it, Values{});
    it->name = name;
  }
  return *it;
}

}  // namespace

void ListenerValues::add(const ListenerStats& shard) {
  PROXENOS_LISTENER_STATS(PROXENOS_STATS_SUM_COUNTER, PROXENOS_STATS_SUM_GAUGE,
                          PROXENOS_STATS_SUM_HISTOGRAM)
  for (size_t i = 0; i < kStatusClasses; ++i)
    downstream_rq_xx[i] += shard.downstream_rq_xx[i].value();
}

void ListenerValues::add(const ListenerValues& other) {
  PROXENOS_LISTENER_STATS(PROXENOS_STATS_FOLD_COUNTER, PROXENOS_STATS_FOLD_COUNTER,
                          PROXENOS_STATS_FOLD_HISTOGRAM)
  for (size_t i = 0; i < kStatusClasses; ++i) downstream_rq_xx[i] += other.downstream_rq_xx[i];
}

void ClusterValues::add(const ClusterStats& shard) {
  PROXENOS_CLUSTER_STATS(PROXENOS_STATS_SUM_COUNTER, PROXENOS_STATS_SUM_GAUGE,
                         PROXENOS_STATS_SUM_HISTOGRAM)
  for (size_t i = 0; i < kStatusClasses; ++i) upstream_rq_xx[i] += shard.upstream_rq_xx[i].value();
  for (size_t i = 0; i < kStatusCodes; ++i)
    upstream_rq_code[i] += shard.upstream_rq_code[i].value();
}

void RouteValues::add(const RouteStats& shard) {
  PROXENOS_ROUTE_STATS(PROXENOS_STATS_SUM_COUNTER, PROXENOS_STATS_SUM_GAUGE,
                       PROXENOS_STATS_SUM_HISTOGRAM)
  for (size_t i = 0; i < kStatusClasses; ++i) rq_xx[i] += shard.rq_xx[i].value();
}

void TcpValues::add(const TcpStats& shard) {
  PROXENOS_TCP_STATS(PROXENOS_STATS_SUM_COUNTER, PROXENOS_STATS_SUM_GAUGE,
                     PROXENOS_STATS_SUM_HISTOGRAM)
}

void MergedStats::add(const ListenerStats& shard) {
  ListenerValues& v = entry(listeners, shard.name);
  v.prefix = shard.prefix;
  v.add(shard);
}

void MergedStats::add(const ClusterStats& shard) {
  entry(clusters, shard.name).add(shard);
}

void MergedStats::add(const RouteStats& shard) {
  entry(routes, shard.name).add(shard);
}

void MergedStats::add(const TcpStats& shard) {
  entry(tcp, shard.name).add(shard);
}

}  // namespace proxenos::observe
