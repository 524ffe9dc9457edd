#include "observe/stats.h"

#include <algorithm>

namespace proxenos::observe {

#define PROXENOS_STATS_SUM_COUNTER(name) name += shard.name.value();
#define PROXENOS_STATS_SUM_GAUGE(name) name += shard.name.value();
#define PROXENOS_STATS_SUM_HISTOGRAM(name) shard.name.add_to(name);

void ListenerValues::add(const ListenerStats& shard) {
  PROXENOS_LISTENER_STATS(PROXENOS_STATS_SUM_COUNTER, PROXENOS_STATS_SUM_GAUGE,
                          PROXENOS_STATS_SUM_HISTOGRAM)
  for (size_t i = 0; i < kStatusClasses; ++i)
    downstream_rq_xx[i] += shard.downstream_rq_xx[i].value();
}

void ClusterValues::add(const ClusterStats& shard) {
  PROXENOS_CLUSTER_STATS(PROXENOS_STATS_SUM_COUNTER, PROXENOS_STATS_NONE,
                         PROXENOS_STATS_SUM_HISTOGRAM)
  for (size_t i = 0; i < kStatusClasses; ++i) upstream_rq_xx[i] += shard.upstream_rq_xx[i].value();
  for (size_t i = 0; i < kStatusCodes; ++i)
    upstream_rq_code[i] += shard.upstream_rq_code[i].value();
}

void MergedStats::add(const ClusterStats& shard) {
  auto it =
      std::lower_bound(clusters.begin(), clusters.end(), shard.name,
                       [](const ClusterValues& v, const std::string& n) { return v.name < n; });
  if (it == clusters.end() || it->name != shard.name) {
    it = clusters.insert(it, ClusterValues{});
    it->name = shard.name;
  }
  it->add(shard);
}

}  // namespace proxenos::observe
