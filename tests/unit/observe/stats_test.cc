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
  EXPECT_EQ(Histogram::bucket_index(0), 0u);
  EXPECT_EQ(Histogram::bucket_index(0.5), 0u);
  EXPECT_EQ(Histogram::bucket_index(0.6), 1u);
  EXPECT_EQ(Histogram::bucket_index(1), 1u);
  EXPECT_EQ(Histogram::bucket_index(2), 2u);
  EXPECT_EQ(Histogram::bucket_index(3), 3u);
  EXPECT_EQ(Histogram::bucket_index(100), 7u);
  EXPECT_EQ(Histogram::bucket_index(101), 8u);
  EXPECT_EQ(Histogram::bucket_index(60000), 15u);
  EXPECT_EQ(Histogram::bucket_index(60001), 16u);  // +Inf
}

TEST(HistogramTest, RecordCountsSumAndBuckets) {
  Histogram h;
  h.record_ms(0);
  h.record_ms(7);
  h.record_ms(7);
  h.record_ms(120000);
  HistogramValues v;
  h.add_to(v);
  EXPECT_EQ(v.count, 4u);
  EXPECT_EQ(v.sum_ms, 120014u);
  EXPECT_EQ(v.buckets[0], 1u);
  EXPECT_EQ(v.buckets[4], 2u);  // le=10
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
  ListenerStats w1, w2;
  w1.downstream_cx_total.add(2);
  w2.downstream_cx_total.add(1);
  w1.downstream_cx_active.set(1);
  w1.downstream_rq_total.add(3);
  w2.downstream_rq_total.add(2);
  w1.count_response(200);
  w1.count_response(200);
  w1.count_response(404);
  w2.count_response(503);
  w2.count_response(204);
  w1.downstream_rq_time.record_ms(1);
  w2.downstream_rq_time.record_ms(30);
  w2.downstream_rq_time.record_ms(70000);
  ClusterStats c1("echo"), c2("echo"), q("we\"ird");
  c1.upstream_rq_total.add(2);
  c2.upstream_rq_total.add(1);
  c1.count_response(200);
  c2.count_response(503);
  c2.upstream_cx_connect_fail.inc();
  c1.upstream_rq_time.record_ms(4);

  MergedStats m;
  m.add(w1);
  m.add(w2);
  m.add(c1);
  m.add(c2);
  m.add(q);
  PrometheusOptions opt;
  opt.listener_prefix = "ingress_http";
  opt.config_generation = 3;
  opt.config_reloads = 2;
  std::string text = render_prometheus(m, opt);
  auto s = samples(text);

  const std::string hcm = "envoy_http_conn_manager_prefix=\"ingress_http\"";
  EXPECT_EQ(s["envoy_http_downstream_cx_total{" + hcm + "}"], "3");
  EXPECT_EQ(s["envoy_http_downstream_cx_active{" + hcm + "}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_total{" + hcm + "}"], "5");
  EXPECT_EQ(s["envoy_http_downstream_rq_xx{envoy_response_code_class=\"2\"," + hcm + "}"], "3");
  EXPECT_EQ(s["envoy_http_downstream_rq_xx{envoy_response_code_class=\"4\"," + hcm + "}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_xx{envoy_response_code_class=\"5\"," + hcm + "}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_xx{envoy_response_code_class=\"1\"," + hcm + "}"], "0");
  // Buckets are cumulative.
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"0.5\"}"], "0");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"1\"}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"25\"}"], "1");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"50\"}"], "2");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"60000\"}"], "2");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_bucket{" + hcm + ",le=\"+Inf\"}"], "3");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_count{" + hcm + "}"], "3");
  EXPECT_EQ(s["envoy_http_downstream_rq_time_sum{" + hcm + "}"], "70031");

  const std::string echo = "envoy_cluster_name=\"echo\"";
  EXPECT_EQ(s["envoy_cluster_upstream_rq_total{" + echo + "}"], "3");
  EXPECT_EQ(s["envoy_cluster_upstream_cx_connect_fail{" + echo + "}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\"," + echo + "}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq{envoy_response_code=\"503\"," + echo + "}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq{envoy_response_code=\"200\"," + echo + "}"], "1");
  EXPECT_EQ(s.count("envoy_cluster_upstream_rq{envoy_response_code=\"404\"," + echo + "}"), 0u);
  EXPECT_EQ(s["envoy_cluster_upstream_rq_time_bucket{" + echo + ",le=\"5\"}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq_time_count{" + echo + "}"], "1");
  EXPECT_EQ(s["envoy_cluster_upstream_rq_total{envoy_cluster_name=\"we\\\"ird\"}"], "0");
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

TEST(PrometheusTest, NoClustersStillRendersListenerAndConfig) {
  MergedStats m;
  std::string text = render_prometheus(m, PrometheusOptions{});
  auto s = samples(text);
  EXPECT_EQ(s["envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"ingress_http\"}"],
            "0");
  EXPECT_EQ(text.find("envoy_cluster_"), std::string::npos);
}

}  // namespace
}  // namespace proxenos::observe
