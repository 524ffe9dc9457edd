#pragma once
// TCPMapping: raw TCP (or TLS terminated and routed by SNI) on a port, to a service, canaried by
// weight. Groups are keyed by bind address, port and host (irtcpmapping.py _group_id).
// `tls_passthrough: true` (a Proxenos extension; Emissary has no such field) routes by the
// ClientHello's SNI without terminating TLS: `host` is required and `tls` is refused, since the
// upstream terminates TLS itself.

#include <cstdint>
#include <optional>
#include <string>

#include "config/diagnostic.h"
#include "config/label_selector.h"
#include "config/mapping.h"
#include "config/resource.h"

namespace proxenos::config {

struct TcpMappingSpec {
  std::string name;
  std::string namespace_;
  Labels labels;
  std::string source;  // "TCPMapping/ns/name"
  Origin origin;

  uint16_t port = 0;
  std::string address = "0.0.0.0";  // bind address
  std::optional<std::string> host;  // SNI (TLS terminated here); nullopt = raw TCP
  // Proxenos extension `tls_passthrough`: route by `host` without terminating TLS.
  bool tls_passthrough = false;
  std::string service;                     // as written
  ServiceAddress upstream;                 // parsed; tls set by https://, `tls: true` or a context
  std::optional<std::string> tls_context;  // `tls: NAME`
  Origin tls_at;
  std::optional<uint32_t> weight;
  std::optional<uint32_t> idle_timeout_ms;  // a string in the CRD; integers accepted too
  std::optional<bool> enable_ipv4, enable_ipv6;
  std::optional<std::string> circuit_breakers_text;  // canonical YAML, for the group check
  std::optional<std::string> resolver, cluster_tag, stats_name;

  // The group key: TCPMappings with equal keys are one canary group.
  std::string group_key() const;
};

std::optional<TcpMappingSpec> decode_tcp_mapping(const Resource& resource,
                                                 Diagnostics* diagnostics);

}  // namespace proxenos::config
