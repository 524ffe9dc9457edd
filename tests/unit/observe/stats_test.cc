#include "observe/stats.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "observe/prometheus.h"

namespace proxenos::observe {
namespace {

// name{labels} -> value, for every sample line of an exposition.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

TEST(HistogramTest, BucketBoundsAreInclusive) {
  auto index_of = [](double ms) {
    for (size_t i = 0; i < kLatencyBoundsMs.size(); ++i) {
      if (kLatencyBoundsMs[i] == ms) return i;
    }
    return kLatencyBoundsMs.size();
  };
  EXPECT_EQ(Histogram::bucket_index_us(0), 0u);
  EXPECT_EQ(Histogram::bucket_index_us(100), 0u);  // le=0.1
  EXPECT_EQ(Histogram::bucket_index_us(101), 1u);
  EXPECT_EQ(Histogram::bucket_index_us(1000), index_of(1));
  EXPECT_EQ(Histogram::bucket_index_us(1001), index_of(1.5));
  EXPECT_EQ(Histogram::bucket_index_us(7500), index_of(7.5));
  EXPECT_EQ(Histogram::bucket_index_us(100000), index_of(100));
  EXPECT_EQ(Histogram::bucket_index_us(100001), index_of(250));
  EXPECT_EQ(Histogram::bucket_index_us(600000000), kLatencyBoundsMs.size() - 1);
  EXPECT_EQ(Histogram::bucket_index_us(600000001), kLatencyBoundsMs.size());  // +Inf
  for (size_t i = 1; i < kLatencyBoundsMs.size(); ++i) {
    EXPECT_LT(kLatencyBoundsMs[i - 1], kLatencyBoundsMs[i]);
  }
}

TEST(HistogramTest, RecordCountsSumAndBuckets) {
  Histogram h;
  h.record_us(0);
  h.record_us(7000);
  h.record_us(7400);
  h.record_us(700000000);
  HistogramValues v;
  h.add_to(v);
  EXPECT_EQ(v.count, 4u);
  EXPECT_EQ(v.sum_us, 700014400u);
  EXPECT_EQ(v.buckets[0], 1u);
  EXPECT_EQ(v.buckets[Histogram::bucket_index_us(7500)], 2u);  // le=7.5
  EXPECT_EQ(v.buckets[kLatencyBuckets - 1], 1u);
}

TEST(StatsTest, CounterAndGauge) {
  Counter c;
  c.inc();
  c.add(41);
  EXPECT_EQ(c.value(), 42u);
  Gauge g;
  g.set(5);
  g.add(-7);
  EXPECT_EQ(g.value(), -2);
}

TEST(StatsTest, ClusterResponseCodesOutsideRangeAreIgnored) {
  ClusterStats s("c");
  s.count_response(503);
  s.count_response(503);
  s.count_response(200);
  s.count_response(0);
  s.count_response(600);
  EXPECT_EQ(s.upstream_rq_code[503 - kMinStatusCode].value(), 2u);
  EXPECT_EQ(s.upstream_rq_xx[5].value(), 2u);
  EXPECT_EQ(s.upstream_rq_xx[2].value(), 1u);
}

TEST(StatsTest, MergeSumsShardsByClusterName) {
  ClusterStats a1("alpha"), a2("alpha"), b("beta");
  a1.upstream_rq_total.add(3);
  a2.upstream_rq_total.add(4);
  b.upstream_rq_total.add(1);
  MergedStats m;
  m.add(b);
  m.add(a1);
  m.add(a2);
  ASSERT_EQ(m.clusters.size(), 2u);
  EXPECT_EQ(m.clusters[0].name, "alpha");
  EXPECT_EQ(m.clusters[0].upstream_rq_total, 7u);
  EXPECT_EQ(m.clusters[1].name, "beta");
  EXPECT_EQ(m.clusters[1].upstream_rq_total, 1u);
}

TEST(PrometheusTest, LabelEscaping) {
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(PrometheusTest, ExpositionOfTwoWorkers) {
  // Two workers' shards of one listener, plus a second listener with the same stats prefix.
  ListenerStats w1("ingress_http", "0.0.0.0_8080"), w2("ingress_http", "0.0.0.0_8080");
  ListenerStats other("ingress_http", "127.0.0.1_9090");
  w1.downstream_cx_total.add(2);
  w2.downstream_cx_total.add(1);
  other.downstream_cx_total.add(4);
  w1.downstream_cx_active.set(1);
  w1.downstream_rq_total.add(3);
  w2.downstream_rq_total.add(2);
  w1.downstream_rq_active.add(2);
  w1.downstream_cx_rx_bytes_total.add(100);
  w2.downstream_cx_tx_bytes_total.add(250);
  w1.count_response(200);
  w1.count_response(200);
  w1.count_response(404);
  w2.count_response(503);
  w2.count_response(204);
  w1.downstream_rq_time.record_us(1000);
  w2.downstream_rq_time.record_us(30000);
  w2.downstream_rq_time.record_us(700000000);
  w1.http2_rx_reset.add(3);
  other.http2_rx_reset.add(2);
  w2.http2_tx_reset.inc();
  w1.http2_streams_active.add(2);
  w2.http2_streams_active.add(1);
  w2.downstream_rq_too_many_premature_resets.inc();
  ClusterStats c1("echo"), c2("echo"), q("we\"ird");
  c1.upstream_rq_total.add(2);
  c2.upstream_rq_total.add(1);
  c1.count_response(200);
  c2.count_response(503);
  c2.upstream_cx_connect_fail.inc();
  c1.upstream_cx_active.add(3);
  c2.upstream_cx_active.add(-1);
  c1.upstream_rq_time.record_us(4000);
  RouteStats r1("api"), r2("api"), idle("never_used");
  r1.rq_total.add(2);
  r2.rq_total.add(1);
  r1.count_response(200);
  r2.count_response(500);
  r1.rq_time.record_us(2500);

  MergedStats m;
  m.add(w1);
  m.add(w2);
  m.add(other);
  m.add(c1);
  m.add(c2);
  m.add(q);
  m.add(r1);
  m.add(r2);
  m.add(idle);
  PrometheusOptions opt;
  opt.config_generation = 3;
  opt.config_reloads = 2;
  std::string text = render_prometheus(m, opt);
  auto s = samples(text);

  const std::string hcm = "envoy_http_conn_manager_prefix=\"ingress_http\"";
  EXPECT_EQ(s["envoy_http_downstream_cx_total{" + hcm + "}"], "7");
  EXPECT_EQ(s["envoy_http_downstream_cx_active{" + hcm + "}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_total{" + hcm + "}"], "5");
  EXPECT_EQ(s["envoy_http_downstream_rq_active{" + hcm + "}"], "2");
  EXPECT_EQ(s["envoy_http_downstream_cx_rx_bytes_total{" + hcm + "}"], "100");
  EXPECT_EQ(s["envoy_http_downstream_cx_tx_bytes_total{" + hcm + "}"], "250");
  EXPECT_EQ(s["envoy_http_downstream_rq_xx{envoy_response_code_class=\"2\"," + hcm + "}"], "3");
  EXPECT_EQ(s["envoy_http_downstream_rq_xx{envoy_response_code_class=\"4\"," + hcm + "}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_xx{envoy_response_code_class=\"5\"," + hcm + "}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_xx{envoy_response_code_class=\"1\"," + hcm + "}"], "0");
  // Buckets are cumulative.
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"0.5\"}"], "0");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"1\"}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"25\"}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"30\"}"], "2");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"600000\"}"], "2");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"+Inf\"}"], "3");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_count{" + hcm + "}"], "3");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_sum{" + hcm + "}"], "700031.000");
  EXPECT_EQ(s["envoy_http2_rx_reset{" + hcm + "}"], "5");
  EXPECT_EQ(s["envoy_http2_tx_reset{" + hcm + "}"], "1");
  EXPECT_EQ(s["envoy_http2_header_overflow{" + hcm + "}"], "0");
  EXPECT_EQ(s["envoy_http2_streams_active{" + hcm + "}"], "3");
  EXPECT_EQ(s["envoy_http_downstream_rq_too_many_premature_resets{" + hcm + "}"], "1");

  EXPECT_EQ(s["envoy_listener_downstream_cx_total{envoy_listener_address=\"0.0.0.0_8080\"}"], "3");
  EXPECT_EQ(s["envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.1_9090\"}"],
            "4");

  const std::string echo = "envoy_cluster_name=\"echo\"";
  EXPECT_EQ(s["envoy_cluster_upstream_rq_total{" + echo + "}"], "3");
  EXPECT_EQ(s["envoy_cluster_upstream_cx_active{" + echo + "}"], "2");
  EXPECT_EQ(s["envoy_cluster_upstream_cx_connect_fail{" + echo + "}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\"," + echo + "}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq{envoy_response_code=\"503\"," + echo + "}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq{envoy_response_code=\"200\"," + echo + "}"], "1");
  EXPECT_EQ(s.count("envoy_cluster_upstream_rq{envoy_response_code=\"404\"," + echo + "}"), 0u);
  EXPECT_EQ(s["envoy_cluster_upstream_rq_time_bucket{" + echo + ",le=\"4\"}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq_time_bucket{" + echo + ",le=\"3\"}"], "0");
  EXPECT_EQ(s["envoy_cluster_upstream_rq_time_count{" + echo + "}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq_total{envoy_cluster_name=\"we\\\"ird\"}"], "0");

  EXPECT_EQ(s["proxenos_route_rq_total{route=\"api\"}"], "3");
  EXPECT_EQ(s["proxenos_route_rq_xx{envoy_response_code_class=\"5\",route=\"api\"}"], "1");
  EXPECT_EQ(s["proxenos_route_rq_time_bucket{route=\"api\",le=\"2.5\"}"], "1");
  EXPECT_EQ(s.count("proxenos_route_rq_total{route=\"never_used\"}"), 0u);  // used only

  EXPECT_EQ(s["proxenos_config_generation"], "3");
  EXPECT_EQ(s["proxenos_config_reloads_total"], "2");

  EXPECT_NE(text.find("# TYPE envoy_http_downstream_rq_time histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE envoy_http_downstream_cx_active gauge\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE envoy_cluster_upstream_rq_total counter\n"), std::string::npos);
  // Each family's TYPE line appears once even with several clusters.
  size_t first = text.find("# TYPE envoy_cluster_upstream_rq_time histogram");
  EXPECT_EQ(text.find("# TYPE envoy_cluster_upstream_rq_time histogram", first + 1),
            std::string::npos);
  EXPECT_EQ(text.back(), '\n');
}

TEST(PrometheusTest, ProtocolUpgradeAndResetCountersByPrefix) {
  // Two workers of one listener and another listener sharing its prefix: the connection
  // manager's protocol, upgrade and reset stats add up per prefix, gauges included.
  ListenerStats w1("ingress_http", "0.0.0.0_8080"), w2("ingress_http", "0.0.0.0_8080");
  ListenerStats other("ingress_http", "127.0.0.1_9090");
  w1.downstream_cx_http1_total.add(4);
  w2.downstream_cx_http1_total.add(1);
  w1.downstream_cx_http1_active.add(2);
  other.downstream_cx_http2_total.add(3);
  other.downstream_cx_http2_active.add(1);
  w1.downstream_rq_http1_total.add(7);
  w2.downstream_rq_http2_total.add(9);
  other.downstream_rq_http2_total.add(2);
  w1.downstream_cx_upgrades_total.add(2);
  w2.downstream_cx_upgrades_total.inc();
  w1.downstream_cx_upgrades_active.add(1);
  w2.downstream_cx_upgrades_active.add(1);
  w2.downstream_cx_upgrades_active.add(-1);
  other.downstream_rq_ws_on_non_ws_route.add(5);
  w1.downstream_rq_rx_reset.add(6);
  w2.downstream_rq_tx_reset.add(8);

  MergedStats m;
  m.add(w1);
  m.add(w2);
  m.add(other);
  std::string text = render_prometheus(m, PrometheusOptions{});
  auto s = samples(text);

  const std::string hcm = "{envoy_http_conn_manager_prefix=\"ingress_http\"}";
  EXPECT_EQ(s["envoy_http_downstream_cx_http1_total" + hcm], "5");
  EXPECT_EQ(s["envoy_http_downstream_cx_http1_active" + hcm], "2");
  EXPECT_EQ(s["envoy_http_downstream_cx_http2_total" + hcm], "3");
  EXPECT_EQ(s["envoy_http_downstream_cx_http2_active" + hcm], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_http1_total" + hcm], "7");
  EXPECT_EQ(s["envoy_http_downstream_rq_http2_total" + hcm], "11");
  EXPECT_EQ(s["envoy_http_downstream_cx_upgrades_total" + hcm], "3");
  EXPECT_EQ(s["envoy_http_downstream_cx_upgrades_active" + hcm], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_ws_on_non_ws_route" + hcm], "5");
  EXPECT_EQ(s["envoy_http_downstream_rq_rx_reset" + hcm], "6");
  EXPECT_EQ(s["envoy_http_downstream_rq_tx_reset" + hcm], "8");
  for (const char* family :
       {"envoy_http_downstream_cx_http1_total counter",
        "envoy_http_downstream_cx_http2_total counter",
        "envoy_http_downstream_cx_http1_active gauge",
        "envoy_http_downstream_cx_http2_active gauge",
        "envoy_http_downstream_cx_upgrades_total counter",
        "envoy_http_downstream_cx_upgrades_active gauge",
        "envoy_http_downstream_rq_http1_total counter",
        "envoy_http_downstream_rq_http2_total counter",
        "envoy_http_downstream_rq_ws_on_non_ws_route counter",
        "envoy_http_downstream_rq_rx_reset counter", "envoy_http_downstream_rq_tx_reset counter"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + "\n"), std::string::npos) << family;
  }
}

TEST(PrometheusTest, NothingYetStillRendersConfig) {
  MergedStats m;
  std::string text = render_prometheus(m, PrometheusOptions{});
  auto s = samples(text);
  EXPECT_EQ(s["proxenos_config_generation"], "0");
  EXPECT_EQ(text.find("envoy_cluster_"), std::string::npos);
}

TEST(ShardRegistryTest, OrphanShardsStayVisibleUntilPruned) {
  ShardRegistry<ClusterStats> registry;
  auto live = std::make_shared<ClusterStats>("live");
  auto gone = std::make_shared<ClusterStats>("gone");
  live->upstream_rq_total.add(1);
  gone->upstream_rq_total.add(5);
  registry.add(live);
  registry.add(gone);
  gone.reset();
  for (int scrape = 0; scrape < 2; ++scrape) {  // every reader sees the same totals
    MergedStats m;
    registry.collect(m);
    ASSERT_EQ(m.clusters.size(), 2u);
    EXPECT_EQ(m.clusters[0].name, "gone");
    EXPECT_EQ(m.clusters[0].upstream_rq_total, 5u);
  }
  registry.prune(1, 1);  // one orphan is within the allowance
  MergedStats kept;
  registry.collect(kept);
  EXPECT_EQ(kept.clusters.size(), 2u);
  registry.prune(1, 0);
  MergedStats pruned;
  registry.collect(pruned);
  ASSERT_EQ(pruned.clusters.size(), 1u);
  EXPECT_EQ(pruned.clusters[0].name, "live");
}

}  // namespace
}  // namespace proxenos::observe
