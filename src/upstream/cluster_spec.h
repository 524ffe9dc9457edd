#pragma once
// A cluster as the compiler hands it to the data plane: where to send requests and how.
// Pure data; the per-worker runtime state (pools, endpoint choice) lives in upstream/cluster.h.

#include <cstdint>
#include <string>

#include "net/tls_settings.h"

namespace proxenos::upstream {

struct ClusterSpec {
  std::string name;  // stable, derived from service + settings (e.g. "cluster_echo_8080_default")
  std::string host;  // DNS name or IP literal, from the Mapping's service
  uint16_t port = 80;
  bool tls = false;  // originate TLS (https:// service, Mapping `tls`, TCPMapping `tls`)
  net::TlsClientSettings tls_settings;  // when tls
  bool http2 = false;                   // speak HTTP/2 to the upstream (Mapping grpc: true)
  uint32_t connect_timeout_ms = 3000;
  uint32_t idle_timeout_ms = 3600 * 1000;   // cluster_idle_timeout_ms: idle pooled connection close
  uint32_t max_connection_lifetime_ms = 0;  // 0 = unlimited
  bool enable_ipv4 = true;
  bool enable_ipv6 = false;
  std::string stats_name;
  // Non-empty with a KubernetesEndpointResolver: the endpoints are the ready addresses of this
  // Service's EndpointSlices (at the port `port` names), not a DNS lookup of `host`.
  std::string endpoint_namespace;
  std::string endpoint_service;

  // Two specs with equal keys describe the same upstream; reloads keep its pooled connections.
  bool same_upstream(const ClusterSpec& o) const {
    return name == o.name && host == o.host && port == o.port && tls == o.tls &&
           tls_settings == o.tls_settings && http2 == o.http2 &&
           connect_timeout_ms == o.connect_timeout_ms && idle_timeout_ms == o.idle_timeout_ms &&
           max_connection_lifetime_ms == o.max_connection_lifetime_ms &&
           endpoint_namespace == o.endpoint_namespace && endpoint_service == o.endpoint_service;
  }
};

}  // namespace proxenos::upstream
