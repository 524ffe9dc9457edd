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
  // Envoy reports histogram sums in milliseconds; ours keep microseconds.
  std::string sum_name = std::string(name) + "_sum";
  std::string sum = fmt::format("{}.{:03}", h.sum_us / 1000, h.sum_us % 1000);
  if (labels.empty()) {
    fmt::format_to(std::back_inserter(out), "{} {}\n", sum_name, sum);
  } else {
    fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", sum_name, labels, sum);
  }
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

namespace {

// One labelled family: a header, then one sample per item.
template <typename Item, typename Value>
void family(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            const std::vector<Item>& items, const std::vector<std::string>& labels, Value value) {
  if (items.empty()) return;
  header(out, name, type, help);
  for (size_t i = 0; i < items.size(); ++i) {
    sample(out, name, labels[i],
           static_cast<uint64_t>(std::max<int64_t>(static_cast<int64_t>(value(items[i])), 0)));
  }
}

template <typename Item, size_t N>
void by_class(std::string& out, std::string_view name, std::string_view help,
              const std::vector<Item>& items, const std::vector<std::string>& labels,
              std::array<uint64_t, N> Item::*field) {
  if (items.empty()) return;
  header(out, name, "counter", help);
  for (size_t i = 0; i < items.size(); ++i) {
    for (size_t cls = 1; cls < kStatusClasses; ++cls) {
      sample(out, name, fmt::format("envoy_response_code_class=\"{}\",{}", cls, labels[i]),
             (items[i].*field)[cls]);
    }
  }
}

template <typename Item>
void histograms(std::string& out, std::string_view name, std::string_view help,
                const std::vector<Item>& items, const std::vector<std::string>& labels,
                HistogramValues Item::*field) {
  if (items.empty()) return;
  header(out, name, "histogram", help);
  for (size_t i = 0; i < items.size(); ++i) histogram(out, name, labels[i], items[i].*field);
}

template <typename Item>
std::vector<std::string> label_list(const std::vector<Item>& items, std::string_view key,
                                    std::string (*name_of)(const Item&)) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const Item& item : items) {
    out.push_back(fmt::format("{}=\"{}\"", key, escape_label_value(name_of(item))));
  }
  return out;
}

}  // namespace

std::string render_prometheus(const MergedStats& stats, const PrometheusOptions& options) {
  std::string out;
  out.reserve(8192 + stats.clusters.size() * 6144 + stats.routes.size() * 4096);

  // HTTP connection manager stats: one series per stats prefix (listeners sharing a prefix add
  // up, as Envoy's stats of one name do).
  std::vector<ListenerValues> hcms;
  for (const ListenerValues& l : stats.listeners) {
    auto it = std::find_if(hcms.begin(), hcms.end(),
                           [&](const ListenerValues& h) { return h.prefix == l.prefix; });
    if (it == hcms.end()) {
      hcms.push_back(l);
      hcms.back().name = l.prefix;
    } else {
      it->add(l);
    }
  }
  auto hcm = label_list<ListenerValues>(hcms, "envoy_http_conn_manager_prefix",
                                        [](const ListenerValues& l) { return l.name; });
  using L = ListenerValues;
  family(out, "envoy_http_downstream_cx_total", "counter", "Total downstream connections.", hcms,
         hcm, [](const L& l) { return l.downstream_cx_total; });
  family(out, "envoy_http_downstream_cx_active", "gauge", "Active downstream connections.", hcms,
         hcm, [](const L& l) { return l.downstream_cx_active; });
  family(out, "envoy_http_downstream_cx_protocol_error", "counter",
         "Downstream connections closed on a protocol error.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_protocol_error; });
  family(out, "envoy_http_downstream_cx_rx_bytes_total", "counter",
         "Bytes received from downstream connections.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_rx_bytes_total; });
  family(out, "envoy_http_downstream_cx_tx_bytes_total", "counter",
         "Bytes sent to downstream connections.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_tx_bytes_total; });
  family(out, "envoy_http_downstream_cx_http1_total", "counter",
         "Total downstream HTTP/1.1 connections.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_http1_total; });
  family(out, "envoy_http_downstream_cx_http1_active", "gauge",
         "Active downstream HTTP/1.1 connections.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_http1_active; });
  family(out, "envoy_http_downstream_cx_http2_total", "counter",
         "Total downstream HTTP/2 connections.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_http2_total; });
  family(out, "envoy_http_downstream_cx_http2_active", "gauge",
         "Active downstream HTTP/2 connections.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_http2_active; });
  family(out, "envoy_http_downstream_cx_upgrades_total", "counter",
         "Total successfully upgraded downstream connections and tunnels.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_upgrades_total; });
  family(out, "envoy_http_downstream_cx_upgrades_active", "gauge",
         "Active upgraded downstream connections and tunnels.", hcms, hcm,
         [](const L& l) { return l.downstream_cx_upgrades_active; });
  family(out, "envoy_http_downstream_rq_total", "counter", "Total downstream requests.", hcms, hcm,
         [](const L& l) { return l.downstream_rq_total; });
  family(out, "envoy_http_downstream_rq_active", "gauge", "Active downstream requests.", hcms, hcm,
         [](const L& l) { return l.downstream_rq_active; });
  family(out, "envoy_http_downstream_rq_http1_total", "counter",
         "Total downstream HTTP/1.1 requests.", hcms, hcm,
         [](const L& l) { return l.downstream_rq_http1_total; });
  family(out, "envoy_http_downstream_rq_http2_total", "counter",
         "Total downstream HTTP/2 requests.", hcms, hcm,
         [](const L& l) { return l.downstream_rq_http2_total; });
  family(out, "envoy_http_downstream_rq_ws_on_non_ws_route", "counter",
         "Upgrade requests refused by a route that does not allow the upgrade.", hcms, hcm,
         [](const L& l) { return l.downstream_rq_ws_on_non_ws_route; });
  family(out, "envoy_http_downstream_rq_rx_reset", "counter",
         "Downstream requests reset by the client.", hcms, hcm,
         [](const L& l) { return l.downstream_rq_rx_reset; });
  family(out, "envoy_http_downstream_rq_tx_reset", "counter",
         "Downstream requests reset by the gateway.", hcms, hcm,
         [](const L& l) { return l.downstream_rq_tx_reset; });
  by_class(out, "envoy_http_downstream_rq_xx", "Downstream responses by status class.", hcms, hcm,
           &L::downstream_rq_xx);
  histograms(out, "envoy_http_downstream_rq_time", "Downstream request time in milliseconds.", hcms,
             hcm, &L::downstream_rq_time);
  family(out, "envoy_http_downstream_rq_too_many_premature_resets", "counter",
         "HTTP/2 connections closed for resetting too many streams early (rapid reset).", hcms, hcm,
         [](const L& l) { return l.downstream_rq_too_many_premature_resets; });

  // Downstream HTTP/2 codec stats (Envoy's http2.*), by the listener's stats prefix.
  family(out, "envoy_http2_rx_reset", "counter", "RST_STREAM frames received from clients.", hcms,
         hcm, [](const L& l) { return l.http2_rx_reset; });
  family(out, "envoy_http2_tx_reset", "counter", "RST_STREAM frames sent to clients.", hcms, hcm,
         [](const L& l) { return l.http2_tx_reset; });
  family(out, "envoy_http2_header_overflow", "counter",
         "HTTP/2 streams reset for a header list over the limits.", hcms, hcm,
         [](const L& l) { return l.http2_header_overflow; });
  family(out, "envoy_http2_rx_messaging_error", "counter",
         "HTTP/2 streams reset for a malformed request head.", hcms, hcm,
         [](const L& l) { return l.http2_rx_messaging_error; });
  family(out, "envoy_http2_goaway_sent", "counter", "GOAWAY frames sent to clients.", hcms, hcm,
         [](const L& l) { return l.http2_goaway_sent; });
  family(out, "envoy_http2_outbound_flood", "counter",
         "HTTP/2 connections closed for queueing too many outbound frames.", hcms, hcm,
         [](const L& l) { return l.http2_outbound_flood; });
  family(out, "envoy_http2_outbound_control_flood", "counter",
         "HTTP/2 connections closed for queueing too many outbound control frames.", hcms, hcm,
         [](const L& l) { return l.http2_outbound_control_flood; });
  family(out, "envoy_http2_inbound_empty_frames_flood", "counter",
         "HTTP/2 connections closed for consecutive empty frames.", hcms, hcm,
         [](const L& l) { return l.http2_inbound_empty_frames_flood; });
  family(out, "envoy_http2_inbound_priority_frames_flood", "counter",
         "HTTP/2 connections closed for too many PRIORITY frames.", hcms, hcm,
         [](const L& l) { return l.http2_inbound_priority_frames_flood; });
  family(out, "envoy_http2_inbound_window_update_frames_flood", "counter",
         "HTTP/2 connections closed for too many WINDOW_UPDATE frames.", hcms, hcm,
         [](const L& l) { return l.http2_inbound_window_update_frames_flood; });
  family(out, "envoy_http2_streams_active", "gauge", "Open downstream HTTP/2 streams.", hcms, hcm,
         [](const L& l) { return l.http2_streams_active; });
  family(out, "proxenos_http2_streams_refused", "counter",
         "HTTP/2 streams refused (REFUSED_STREAM) over http2MaxConcurrentStreams.", hcms, hcm,
         [](const L& l) { return l.http2_streams_refused; });

  auto listener = label_list<ListenerValues>(stats.listeners, "envoy_listener_address",
                                             [](const ListenerValues& l) { return l.name; });
  family(out, "envoy_listener_downstream_cx_total", "counter",
         "Connections accepted by the listener.", stats.listeners, listener,
         [](const L& l) { return l.downstream_cx_total; });
  family(out, "envoy_listener_downstream_cx_active", "gauge", "Open connections of the listener.",
         stats.listeners, listener, [](const L& l) { return l.downstream_cx_active; });
  family(out, "envoy_listener_ssl_handshake", "counter", "TLS handshakes completed.",
         stats.listeners, listener, [](const L& l) { return l.ssl_handshake; });
  family(out, "envoy_listener_ssl_connection_error", "counter",
         "TLS handshakes that failed or timed out.", stats.listeners, listener,
         [](const L& l) { return l.ssl_connection_error; });
  family(out, "envoy_listener_ssl_session_reused", "counter", "TLS sessions resumed.",
         stats.listeners, listener, [](const L& l) { return l.ssl_session_reused; });

  using C = ClusterValues;
  const auto& cl = stats.clusters;
  auto cluster = label_list<ClusterValues>(cl, "envoy_cluster_name",
                                           [](const ClusterValues& c) { return c.name; });
  family(out, "envoy_cluster_upstream_rq_total", "counter", "Total upstream requests.", cl, cluster,
         [](const C& c) { return c.upstream_rq_total; });
  family(out, "envoy_cluster_upstream_rq_active", "gauge", "Active upstream requests.", cl, cluster,
         [](const C& c) { return c.upstream_rq_active; });
  family(out, "envoy_cluster_upstream_cx_total", "counter", "Total upstream connections.", cl,
         cluster, [](const C& c) { return c.upstream_cx_total; });
  family(out, "envoy_cluster_upstream_cx_active", "gauge", "Open upstream connections.", cl,
         cluster, [](const C& c) { return c.upstream_cx_active; });
  family(out, "envoy_cluster_upstream_cx_connect_fail", "counter", "Upstream connection failures.",
         cl, cluster, [](const C& c) { return c.upstream_cx_connect_fail; });
  family(out, "envoy_cluster_upstream_cx_rx_bytes_total", "counter",
         "Bytes received from upstream connections.", cl, cluster,
         [](const C& c) { return c.upstream_cx_rx_bytes_total; });
  family(out, "envoy_cluster_upstream_cx_tx_bytes_total", "counter",
         "Bytes sent to upstream connections.", cl, cluster,
         [](const C& c) { return c.upstream_cx_tx_bytes_total; });
  family(out, "envoy_cluster_upstream_rq_timeout", "counter", "Upstream requests that timed out.",
         cl, cluster, [](const C& c) { return c.upstream_rq_timeout; });
  family(out, "envoy_cluster_upstream_rq_retry", "counter", "Upstream request retries.", cl,
         cluster, [](const C& c) { return c.upstream_rq_retry; });
  by_class(out, "envoy_cluster_upstream_rq_xx", "Upstream responses by status class.", cl, cluster,
           &C::upstream_rq_xx);
  if (!cl.empty()) {
    // Like Envoy, a per-code counter exists only for codes that were seen.
    header(out, "envoy_cluster_upstream_rq", "counter", "Upstream responses by status code.");
    for (size_t i = 0; i < cl.size(); ++i) {
      for (size_t code = 0; code < kStatusCodes; ++code) {
        uint64_t v = cl[i].upstream_rq_code[code];
        if (v == 0) continue;
        sample(out, "envoy_cluster_upstream_rq",
               fmt::format("envoy_response_code=\"{}\",{}", code + kMinStatusCode, cluster[i]), v);
      }
    }
  }
  histograms(out, "envoy_cluster_upstream_rq_time", "Upstream request time in milliseconds.", cl,
             cluster, &C::upstream_rq_time);

  using T = TcpValues;
  auto tcp =
      label_list<TcpValues>(stats.tcp, "envoy_tcp_prefix", [](const T& t) { return t.name; });
  family(out, "envoy_tcp_downstream_cx_total", "counter", "Connections the TCPMapping took.",
         stats.tcp, tcp, [](const T& t) { return t.downstream_cx_total; });
  family(out, "envoy_tcp_downstream_cx_active", "gauge", "Open connections of the TCPMapping.",
         stats.tcp, tcp, [](const T& t) { return t.downstream_cx_active; });
  family(out, "envoy_tcp_downstream_cx_no_route", "counter",
         "Connections closed because no TCPMapping matched.", stats.tcp, tcp,
         [](const T& t) { return t.downstream_cx_no_route; });
  family(out, "envoy_tcp_downstream_cx_rx_bytes_total", "counter",
         "Bytes received from clients of the TCPMapping.", stats.tcp, tcp,
         [](const T& t) { return t.downstream_cx_rx_bytes_total; });
  family(out, "envoy_tcp_downstream_cx_tx_bytes_total", "counter",
         "Bytes sent to clients of the TCPMapping.", stats.tcp, tcp,
         [](const T& t) { return t.downstream_cx_tx_bytes_total; });
  family(out, "envoy_tcp_idle_timeout", "counter", "Connections closed by the idle timeout.",
         stats.tcp, tcp, [](const T& t) { return t.idle_timeout; });

  // Routes that have seen traffic (a table of thousands of routes would otherwise flood every
  // scrape with zeros, as Envoy's "usedonly" filter avoids).
  std::vector<RouteValues> routes;
  for (const RouteValues& r : stats.routes) {
    if (r.rq_total > 0 || r.rq_active > 0) routes.push_back(r);
  }
  using R = RouteValues;
  auto route = label_list<RouteValues>(routes, "route", [](const R& r) { return r.name; });
  family(out, "proxenos_route_rq_total", "counter", "Requests matched by the route.", routes, route,
         [](const R& r) { return r.rq_total; });
  family(out, "proxenos_route_rq_active", "gauge", "Requests of the route in progress.", routes,
         route, [](const R& r) { return r.rq_active; });
  by_class(out, "proxenos_route_rq_xx", "Responses of the route by status class.", routes, route,
           &R::rq_xx);
  histograms(out, "proxenos_route_rq_time", "Request time of the route in milliseconds.", routes,
             route, &R::rq_time);

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
