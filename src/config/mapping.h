#pragma once
// Mapping: what requests to match (path, host, method, headers, query) and where they go
// (service, rewrites, header edits, redirect, timeouts). Decoded strictly; every field of the
// v3alpha1 table is read, including those that take effect in later releases.

#include <re2/re2.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/header_fields.h"
#include "config/label_selector.h"
#include "config/resource.h"

namespace proxenos::config {

// One header or query-parameter matcher as written (Emissary's KeyValueDecorator).
struct KeyValueMatch {
  std::string name;
  std::optional<std::string> value;  // nullopt = present (v2-style `true`)
  bool regex = false;
  std::shared_ptr<const RE2> compiled;  // regex only

  // Emissary's route-weight terms: len(name) + len(value or "*") (+1 if regex), "name-value"
  // (an empty value counts as "*", as Python's `or` has it).
  std::string weight_value() const { return value && !value->empty() ? *value : "*"; }
  size_t weight_length() const { return name.size() + weight_value().size() + (regex ? 1 : 0); }
  std::string weight_key() const { return name + "-" + weight_value(); }
  bool operator==(const KeyValueMatch& o) const {
    return name == o.name && value == o.value && regex == o.regex;
  }
};

struct RegexMap {
  std::string pattern;
  std::string substitution;
  std::shared_ptr<const RE2> compiled;
  bool operator==(const RegexMap& o) const {
    return pattern == o.pattern && substitution == o.substitution;
  }
};

struct LoadBalancerSpec {
  std::string policy;  // round_robin | least_request | ring_hash | maglev
  std::optional<std::string> cookie_name, cookie_path, cookie_ttl;
  std::optional<std::string> header;
  std::optional<bool> source_ip;
  bool operator==(const LoadBalancerSpec&) const = default;
};

struct CircuitBreakerSpec {
  std::string priority = "default";
  std::optional<uint32_t> max_connections, max_pending_requests, max_requests, max_retries;
  bool operator==(const CircuitBreakerSpec&) const = default;
};

struct KeepAliveSpec {
  std::optional<uint32_t> probes, idle_time, interval;
  bool operator==(const KeepAliveSpec&) const = default;
};

struct RetryPolicySpec {
  std::optional<std::string> retry_on;
  std::optional<uint32_t> num_retries;
  std::optional<std::string> per_try_timeout;
  bool operator==(const RetryPolicySpec&) const = default;
};

struct CorsSpec {
  std::vector<std::string> origins, methods, headers, exposed_headers;
  std::optional<bool> credentials;
  std::optional<std::string> max_age;
  bool operator==(const CorsSpec&) const = default;
};

class MapReader;

// A `cors` field (Mapping or Module); nullopt when absent or not a map (reported).
std::optional<CorsSpec> decode_cors(MapReader& parent);

struct ServiceAddress {
  std::string host;  // DNS name or IP literal (IPv6 without brackets)
  uint16_t port = 80;
  bool port_given = false;
  bool tls = false;       // https:// (or v2 `tls: true`)
  std::string scheme;     // "", "http" or "https"
  std::string authority;  // host[:port] as written, without the scheme (redirect targets)
};

// Parses `[scheme://]host[:port]`; default port 80 (443 with https). False with `error` set when
// it is not a usable address.
bool parse_service(const std::string& service, ServiceAddress* out, std::string* error);

// Kubernetes service resolvers qualify a bare name with the Mapping's namespace (svc -> svc.ns)
// unless it already has a dot or lives in the gateway's own namespace (irbasemapping.py
// normalize_service_name). Only meaningful with a KubernetesServiceResolver.
std::string qualify_kubernetes_service(const std::string& host,
                                       const std::string& mapping_namespace,
                                       const std::string& gateway_namespace);

struct MappingSpec {
  std::string name;
  std::string namespace_;
  Labels labels;
  std::string source;  // "Mapping/ns/name"
  Origin origin;
  std::string api_version;

  // Match.
  std::string prefix;
  bool prefix_regex = false;
  bool prefix_exact = false;
  std::optional<bool> prefix_regex_set, prefix_exact_set;  // as written (group checks)
  std::optional<bool> case_sensitive;
  std::optional<std::string> hostname;
  std::optional<std::string> host;
  bool host_regex = false;
  std::optional<std::string> method;
  bool method_regex = false;
  std::vector<KeyValueMatch> headers;  // `headers` minus an exact :authority
  std::vector<KeyValueMatch> regex_headers;
  std::optional<std::string> authority_header;  // exact `:authority` from `headers`
  std::vector<KeyValueMatch> query_parameters;  // exact/present, then regex ones
  int64_t precedence = 0;
  std::optional<uint32_t> weight;
  bool shadow = false;
  std::shared_ptr<const RE2> path_regex;      // prefix_regex only
  std::shared_ptr<const RE2> host_pattern;    // host with host_regex (and no hostname)
  std::shared_ptr<const RE2> method_pattern;  // method with method_regex

  // Upstream.
  std::optional<int> direct_response_code;  // Gateway API only: answer this, send nothing up
  std::string service;
  ServiceAddress address;
  std::optional<std::string> resolver;
  std::optional<std::string> tls_context;  // `tls: name`
  std::optional<bool> grpc;
  std::vector<std::string> allow_upgrade;
  std::optional<std::string> dns_type;
  std::optional<bool> respect_dns_ttl;
  std::optional<bool> enable_ipv4, enable_ipv6;
  std::optional<LoadBalancerSpec> load_balancer;
  std::optional<std::vector<CircuitBreakerSpec>> circuit_breakers;
  std::optional<KeepAliveSpec> keepalive;
  std::optional<std::string> cluster_tag;
  std::optional<std::string> stats_name;
  std::optional<bool> add_linkerd_headers;

  // Rewrites, headers, redirects.
  std::optional<std::string> rewrite;
  std::optional<RegexMap> regex_rewrite;
  std::optional<std::string> host_rewrite;
  std::optional<bool> auto_host_rewrite;
  std::optional<std::vector<AddedHeader>> add_request_headers, add_response_headers;
  std::optional<std::vector<std::string>> remove_request_headers, remove_response_headers;
  bool host_redirect = false;
  std::optional<std::string> path_redirect, prefix_redirect;
  std::optional<RegexMap> regex_redirect;
  std::optional<int> redirect_response_code;
  std::optional<CorsSpec> cors;

  // Timeouts, retries, auth, misc.
  std::optional<uint32_t> timeout_ms, idle_timeout_ms, connect_timeout_ms;
  std::optional<uint32_t> cluster_idle_timeout_ms, cluster_max_connection_lifetime_ms;
  std::optional<RetryPolicySpec> retry_policy;
  std::optional<bool> bypass_auth;
  std::optional<std::string> labels_text;  // rate-limit `labels`, canonical YAML (group check)
};

struct MappingDecodeOptions {
  uint32_t regex_max_size = 200;  // Module regex_max_size
};

std::optional<MappingSpec> decode_mapping(const Resource& resource,
                                          const MappingDecodeOptions& options,
                                          Diagnostics* diagnostics);

}  // namespace proxenos::config
