#include "observe/prometheus.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <vector>

namespace proxenos::observe {

namespace {

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// labels: already rendered `k="v",...` without braces; empty for none.
void sample(std::string& out, std::string_view name, std::string_view labels, uint64_t value) {
  if (labels.empty()) {
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
  } else {
    fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, labels, value);
  }
}

std::string bound_text(double bound) {
  if (bound == std::floor(bound)) return fmt::format("{}", static_cast<uint64_t>(bound));
  return fmt::format("{}", bound);
}

void histogram(std::string& out, std::string_view name, std::string_view labels,
               const HistogramValues& h) {
  std::string bucket_name = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    cumulative += h.buckets[i];
    std::string le = i < kLatencyBoundsMs.size() ? bound_text(kLatencyBoundsMs[i]) : "+Inf";
    std::string bucket_labels =
        labels.empty() ? fmt::format("le=\"{}\"", le) : fmt::format("{},le=\"{}\"", labels, le);
    sample(out, bucket_name, bucket_labels, cumulative);
  }
  sample(out, std::string(name) + "_sum", labels, h.sum_ms);
  // The +Inf bucket and _count must agree even if a scrape raced a record.
  sample(out, std::string(name) + "_count", labels, cumulative);
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '"':
        out.append("\\\"");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string render_prometheus(const MergedStats& stats, const PrometheusOptions& options) {
  std::string out;
  out.reserve(4096 + stats.clusters.size() * 4096);
  const ListenerValues& l = stats.listener;
  std::string hcm =
      "envoy_http_conn_manager_prefix=\"" + escape_label_value(options.listener_prefix) + "\"";

  header(out, "envoy_http_downstream_cx_total", "counter", "Total downstream connections.");
  sample(out, "envoy_http_downstream_cx_total", hcm, l.downstream_cx_total);
  header(out, "envoy_http_downstream_cx_active", "gauge", "Active downstream connections.");
  sample(out, "envoy_http_downstream_cx_active", hcm,
         static_cast<uint64_t>(std::max<int64_t>(l.downstream_cx_active, 0)));
  header(out, "envoy_http_downstream_cx_protocol_error", "counter",
         "Downstream connections closed on a protocol error.");
  sample(out, "envoy_http_downstream_cx_protocol_error", hcm, l.downstream_cx_protocol_error);
  header(out, "envoy_http_downstream_rq_total", "counter", "Total downstream requests.");
  sample(out, "envoy_http_downstream_rq_total", hcm, l.downstream_rq_total);
  header(out, "envoy_http_downstream_rq_xx", "counter", "Downstream responses by status class.");
  for (size_t cls = 1; cls < kStatusClasses; ++cls) {
    sample(out, "envoy_http_downstream_rq_xx",
           fmt::format("envoy_response_code_class=\"{}\",{}", cls, hcm), l.downstream_rq_xx[cls]);
  }
  header(out, "envoy_http_downstream_rq_time", "histogram",
         "Downstream request time in milliseconds.");
  histogram(out, "envoy_http_downstream_rq_time", hcm, l.downstream_rq_time);

  std::vector<std::string> cluster_labels;
  cluster_labels.reserve(stats.clusters.size());
  for (const auto& c : stats.clusters) {
    cluster_labels.push_back("envoy_cluster_name=\"" + escape_label_value(c.name) + "\"");
  }
  auto per_cluster = [&](std::string_view name, std::string_view help, auto field) {
    if (stats.clusters.empty()) return;
    header(out, name, "counter", help);
    for (size_t i = 0; i < stats.clusters.size(); ++i) {
      sample(out, name, cluster_labels[i], stats.clusters[i].*field);
    }
  };
  per_cluster("envoy_cluster_upstream_rq_total", "Total upstream requests.",
              &ClusterValues::upstream_rq_total);
  per_cluster("envoy_cluster_upstream_cx_total", "Total upstream connections.",
              &ClusterValues::upstream_cx_total);
  per_cluster("envoy_cluster_upstream_cx_connect_fail", "Upstream connection failures.",
              &ClusterValues::upstream_cx_connect_fail);
  per_cluster("envoy_cluster_upstream_rq_timeout", "Upstream requests that timed out.",
              &ClusterValues::upstream_rq_timeout);
  per_cluster("envoy_cluster_upstream_rq_retry", "Upstream request retries.",
              &ClusterValues::upstream_rq_retry);
  if (!stats.clusters.empty()) {
    header(out, "envoy_cluster_upstream_rq_xx", "counter", "Upstream responses by status class.");
    for (size_t i = 0; i < stats.clusters.size(); ++i) {
      for (size_t cls = 1; cls < kStatusClasses; ++cls) {
        sample(out, "envoy_cluster_upstream_rq_xx",
               fmt::format("envoy_response_code_class=\"{}\",{}", cls, cluster_labels[i]),
               stats.clusters[i].upstream_rq_xx[cls]);
      }
    }
    // Like Envoy, a per-code counter exists only for codes that were seen.
    header(out, "envoy_cluster_upstream_rq", "counter", "Upstream responses by status code.");
    for (size_t i = 0; i < stats.clusters.size(); ++i) {
      for (size_t code = 0; code < kStatusCodes; ++code) {
        uint64_t v = stats.clusters[i].upstream_rq_code[code];
        if (v == 0) continue;
        sample(
            out, "envoy_cluster_upstream_rq",
            fmt::format("envoy_response_code=\"{}\",{}", code + kMinStatusCode, cluster_labels[i]),
            v);
      }
    }
    header(out, "envoy_cluster_upstream_rq_time", "histogram",
           "Upstream request time in milliseconds.");
    for (size_t i = 0; i < stats.clusters.size(); ++i) {
      histogram(out, "envoy_cluster_upstream_rq_time", cluster_labels[i],
                stats.clusters[i].upstream_rq_time);
    }
  }

  header(out, "proxenos_config_generation", "gauge", "Generation of the configuration served.");
  sample(out, "proxenos_config_generation", {}, options.config_generation);
  header(out, "proxenos_config_reloads_total", "counter", "Configuration reloads since start.");
  sample(out, "proxenos_config_reloads_total", {}, options.config_reloads);
  header(out, "proxenos_config_errors", "gauge",
         "Errors in the configuration served (resources dropped or kept at their last good "
         "version).");
  sample(out, "proxenos_config_errors", {}, options.config_errors);
  header(out, "proxenos_config_resources_kept_last_good", "gauge",
         "Resources serving their last good version because the new one is invalid.");
  sample(out, "proxenos_config_resources_kept_last_good", {}, options.config_kept_last_good);
  return out;
}

}  // namespace proxenos::observe
