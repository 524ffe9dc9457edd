#include "config/mapping.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "config/decode.h"

namespace proxenos::config {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Most optional sub-maps are absent, and a reader for an absent map costs a field path and a few
// handle copies: skip those (consuming the key, as map() would).
bool skip_absent(MapReader& parent, std::string_view key) {
  if (parent.has(key)) return false;
  parent.ignore(key);
  return true;
}

// Compiles `pattern` and reports why it cannot be used.
std::shared_ptr<const RE2> regex_or_error(Reporter& r, const YAML::Node& at,
                                          const std::string& path, const std::string& pattern,
                                          bool case_sensitive, uint32_t max_size) {
  std::string error;
  std::shared_ptr<const RE2> re = compile_regex(pattern, case_sensitive, max_size, &error);
  if (!re) r.error(at, path, error);
  return re;
}

std::optional<RegexMap> decode_regex_map(MapReader& parent, std::string_view key,
                                         uint32_t max_size) {
  if (skip_absent(parent, key)) return std::nullopt;
  std::optional<MapReader> m = parent.map(key);
  if (!m || !m->present()) return std::nullopt;
  Reporter& r = m->reporter();
  RegexMap out;
  m->require("pattern");
  YAML::Node at = m->where("pattern");
  std::optional<std::string> pattern = m->string("pattern");
  std::optional<std::string> substitution = m->string("substitution");
  m->finish();
  if (!pattern) return std::nullopt;
  out.pattern = *pattern;
  out.substitution = substitution.value_or("");
  out.compiled = regex_or_error(r, at, m->path("pattern"), out.pattern, true, max_size);
  if (!out.compiled) return std::nullopt;
  return out;
}

// Header matchers: exact values (or `true` = present), optionally regexes.
std::vector<KeyValueMatch> decode_matchers(MapReader& m, std::string_view key, bool regex,
                                           bool header_names, uint32_t max_size) {
  std::vector<KeyValueMatch> out;
  std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> entries =
      m.string_map(key, !regex);
  if (!entries) return out;
  Reporter& r = m.reporter();
  // Locations of individual entries, for regex errors.
  const YAML::Node map_node = child(m.node(), key);
  // Nodes are located by constructing new handles, never by assigning: assigning to a
  // yaml-cpp handle that shares a document node would rewrite the document.
  auto locate = [&](const std::string& name) -> YAML::Node {
    for (auto it = map_node.begin(); it != map_node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == name) return it->first;
    }
    return m.where(key);
  };
  for (auto& [name, value] : *entries) {
    YAML::Node at = locate(name);
    std::string path = m.path(key) + "." + name;
    bool pseudo = name == ":authority" || name == ":method";
    if (header_names && !pseudo && !is_header_name(name)) {
      r.error(at, path,
              name.starts_with(":")
                  ? "only the pseudo-headers :authority and :method can be matched"
                  : "is not a valid header name");
      continue;
    }
    if (!header_names && name.empty()) {
      r.error(at, path, "query parameter name must not be empty");
      continue;
    }
    KeyValueMatch kv;
    kv.name = name;
    kv.value = value;
    kv.regex = regex;
    if (regex) {
      kv.compiled = regex_or_error(r, at, path, *value, true, max_size);
      if (!kv.compiled) continue;
    }
    out.push_back(std::move(kv));
  }
  return out;
}

std::optional<LoadBalancerSpec> decode_load_balancer(MapReader& parent) {
  if (skip_absent(parent, "load_balancer")) return std::nullopt;
  std::optional<MapReader> m = parent.map("load_balancer");
  if (!m || !m->present()) return std::nullopt;
  Reporter& r = m->reporter();
  int before = r.errors();
  LoadBalancerSpec lb;
  m->require("policy");
  if (auto p = m->one_of("policy", {"round_robin", "least_request", "ring_hash", "maglev"})) {
    lb.policy = *p;
  }
  if (std::optional<MapReader> cookie = m->map("cookie"); cookie && cookie->present()) {
    cookie->require("name");
    lb.cookie_name = cookie->string("name");
    lb.cookie_path = cookie->string("path");
    lb.cookie_ttl = cookie->string("ttl");
    cookie->finish();
  }
  lb.header = m->string("header");
  lb.source_ip = m->boolean("source_ip");
  m->finish();
  if (r.errors() != before) return std::nullopt;
  // irhttpmapping.py validate_load_balancer: hash policies need exactly one hash source; the
  // others take none.
  int sources =
      (m->has("cookie") ? 1 : 0) + (m->has("header") ? 1 : 0) + (m->has("source_ip") ? 1 : 0);
  bool hashing = lb.policy == "ring_hash" || lb.policy == "maglev";
  if (hashing && sources != 1) {
    r.error(m->where("policy"), m->path(),
            "policy " + lb.policy + " needs exactly one of cookie, header, source_ip");
    return std::nullopt;
  }
  if (!hashing && sources != 0) {
    r.error(m->where("policy"), m->path(),
            "policy " + lb.policy + " takes no cookie, header or source_ip");
    return std::nullopt;
  }
  return lb;
}

std::optional<std::vector<CircuitBreakerSpec>> decode_circuit_breakers(MapReader& parent) {
  if (!parent.has("circuit_breakers")) {
    parent.ignore("circuit_breakers");
    return std::nullopt;
  }
  Reporter& r = parent.reporter();
  YAML::Node at = parent.where("circuit_breakers");
  std::string path = parent.path("circuit_breakers");
  YAML::Node list = parent.take("circuit_breakers");
  if (!list.IsSequence()) {
    r.error(at, path, "must be a list");
    return std::nullopt;
  }
  int before = r.errors();
  std::vector<CircuitBreakerSpec> out;
  for (size_t i = 0; i < list.size(); ++i) {
    MapReader m(r, list[i], path + "[" + std::to_string(i) + "]", list[i]);
    if (!m.is_map()) continue;
    CircuitBreakerSpec cb;
    if (auto p = m.one_of("priority", {"default", "high"})) cb.priority = *p;
    cb.max_connections = m.millis("max_connections");
    cb.max_pending_requests = m.millis("max_pending_requests");
    cb.max_requests = m.millis("max_requests");
    cb.max_retries = m.millis("max_retries");
    m.finish();
    out.push_back(std::move(cb));
  }
  if (r.errors() != before) return std::nullopt;
  return out;
}

std::optional<KeepAliveSpec> decode_keepalive(MapReader& parent) {
  if (skip_absent(parent, "keepalive")) return std::nullopt;
  std::optional<MapReader> m = parent.map("keepalive");
  if (!m || !m->present()) return std::nullopt;
  KeepAliveSpec k;
  k.probes = m->millis("probes");
  k.idle_time = m->millis("idle_time");
  k.interval = m->millis("interval");
  m->finish();
  return k;
}

std::optional<RetryPolicySpec> decode_retry_policy(MapReader& parent) {
  if (skip_absent(parent, "retry_policy")) return std::nullopt;
  std::optional<MapReader> m = parent.map("retry_policy");
  if (!m || !m->present()) return std::nullopt;
  RetryPolicySpec p;
  p.retry_on = m->one_of("retry_on", {"5xx", "gateway-error", "connect-failure", "retriable-4xx",
                                      "refused-stream", "retriable-status-codes"});
  p.num_retries = m->millis("num_retries");
  p.per_try_timeout = m->string("per_try_timeout");
  m->finish();
  return p;
}

// CORS lists may be written as a list or as one comma-separated string.
std::vector<std::string> cors_list(MapReader& m, std::string_view key) {
  std::vector<std::string> out;
  std::optional<std::vector<std::string>> v = m.string_list(key);
  if (!v) return out;
  for (const std::string& item : *v) {
    size_t start = 0;
    while (start <= item.size()) {
      size_t comma = item.find(',', start);
      if (comma == std::string::npos) comma = item.size();
      std::string part = item.substr(start, comma - start);
      part.erase(0, part.find_first_not_of(" \t"));
      part.erase(part.find_last_not_of(" \t") + 1);
      if (!part.empty()) out.push_back(part);
      start = comma + 1;
    }
  }
  return out;
}

}  // namespace

std::optional<CorsSpec> decode_cors(MapReader& parent) {
  if (skip_absent(parent, "cors")) return std::nullopt;
  std::optional<MapReader> m = parent.map("cors");
  if (!m || !m->present()) return std::nullopt;
  CorsSpec c;
  c.origins = cors_list(*m, "origins");
  c.methods = cors_list(*m, "methods");
  c.headers = cors_list(*m, "headers");
  c.exposed_headers = cors_list(*m, "exposed_headers");
  c.credentials = m->boolean("credentials");
  YAML::Node max_age = m->take("max_age");
  if (max_age.IsDefined()) {
    if (max_age.IsScalar()) {
      c.max_age = max_age.Scalar();
    } else {
      m->reporter().error(m->where("max_age"), m->path("max_age"), "must be a string");
    }
  }
  m->finish();
  return c;
}

namespace {

// A field of free-form content (labels, health checks, docs): type-checked, kept as text.
std::optional<std::string> free_form(MapReader& m, std::string_view key, bool list) {
  if (!m.has(key)) {
    m.ignore(key);
    return std::nullopt;
  }
  YAML::Node at = m.where(key);
  YAML::Node v = m.take(key);
  if (list ? !v.IsSequence() : !v.IsMap()) {
    m.reporter().error(at, m.path(key), list ? "must be a list" : "must be a map");
    return std::nullopt;
  }
  YAML::Emitter e;
  e.SetMapFormat(YAML::Flow);
  e.SetSeqFormat(YAML::Flow);
  e << v;
  return std::string(e.c_str());
}

}  // namespace

bool parse_service(const std::string& service, ServiceAddress* out, std::string* error) {
  ServiceAddress a;
  std::string_view rest = service;
  size_t scheme_end = rest.find("://");
  if (scheme_end != std::string_view::npos) {
    a.scheme = lower(std::string(rest.substr(0, scheme_end)));
    if (a.scheme != "http" && a.scheme != "https") {
      *error = "scheme \"" + a.scheme + "\" is not supported (use http:// or https://)";
      return false;
    }
    a.tls = a.scheme == "https";
    rest.remove_prefix(scheme_end + 3);
  }
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    *error = "must be [scheme://]host[:port], without a path, query or user";
    return false;
  }
  a.authority = std::string(rest);
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      *error = "has an unterminated IPv6 address";
      return false;
    }
    a.host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        *error = "has junk after the IPv6 address";
        return false;
      }
      port_text = after.substr(1);
      a.port_given = true;
    }
  } else {
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      if (rest.find(':') != colon) {
        *error = "IPv6 addresses must be written in brackets, e.g. [::1]:8080";
        return false;
      }
      port_text = rest.substr(colon + 1);
      a.port_given = true;
      rest = rest.substr(0, colon);
    }
    a.host = std::string(rest);
  }
  if (a.host.empty()) {
    *error = "has no host name";
    return false;
  }
  for (char c : a.host) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      *error = "host name contains whitespace or control characters";
      return false;
    }
  }
  a.port = a.tls ? 443 : 80;
  if (a.port_given) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 ||
        port > 65535) {
      *error = "port \"" + std::string(port_text) + "\" is not between 1 and 65535";
      return false;
    }
    a.port = static_cast<uint16_t>(port);
  }
  *out = std::move(a);
  return true;
}

std::string qualify_kubernetes_service(const std::string& host,
                                       const std::string& mapping_namespace,
                                       const std::string& gateway_namespace) {
  if (host.find('.') != std::string::npos || is_ip_literal(host) || lower(host) == "localhost") {
    return host;
  }
  if (mapping_namespace.empty() || mapping_namespace == gateway_namespace) return host;
  return host + "." + mapping_namespace;
}

std::optional<MappingSpec> decode_mapping(const Resource& resource,
                                          const MappingDecodeOptions& options,
                                          Diagnostics* diagnostics) {
  Reporter r(resource, diagnostics);
  const uint32_t max_size = options.regex_max_size;
  MappingSpec mp;
  mp.name = resource.name;
  mp.namespace_ = resource.namespace_;
  mp.labels = resource.labels;
  mp.source = resource.key();
  mp.origin = resource.origin;
  mp.api_version = resource.api_version;

  MapReader spec(r, resource.spec, "spec", resource.object);
  if (!spec.is_map()) {
    if (!spec.present()) r.error(resource.object, "spec", "is required");
    return std::nullopt;
  }
  spec.ignore("ambassador_id");

  // --- match ---------------------------------------------------------------------------------
  spec.require("prefix");
  YAML::Node prefix_at = spec.where("prefix");
  std::optional<std::string> prefix = spec.string("prefix");
  if (prefix) mp.prefix = *prefix;
  mp.prefix_regex_set = spec.boolean("prefix_regex");
  mp.prefix_exact_set = spec.boolean("prefix_exact");
  mp.prefix_regex = mp.prefix_regex_set.value_or(false);
  mp.prefix_exact = mp.prefix_exact_set.value_or(false);
  mp.case_sensitive = spec.boolean("case_sensitive");
  if (mp.prefix_regex && mp.prefix_exact) {
    r.warning(spec.where("prefix_exact"), "spec.prefix_exact", "ignored: prefix_regex is set");
  }
  if (!prefix) {
    // missing or not a string: reported
  } else if (mp.prefix.empty()) {
    r.error(prefix_at, "spec.prefix", "must not be empty");
  } else if (mp.prefix_regex) {
    mp.path_regex = regex_or_error(r, prefix_at, "spec.prefix", mp.prefix,
                                   mp.case_sensitive.value_or(true), max_size);
  } else if (!mp.prefix.empty() && mp.prefix.front() != '/') {
    r.error(prefix_at, "spec.prefix", "must start with /");
  }

  YAML::Node host_at = spec.where("host");
  mp.hostname = spec.string("hostname");
  mp.host = spec.string("host");
  mp.host_regex = spec.boolean("host_regex").value_or(false);
  if (mp.host && mp.hostname) {
    r.warning(host_at, "spec.host", "ignored: spec.hostname is also set");
  }
  if (mp.hostname && mp.hostname->empty()) mp.hostname.reset();
  if (mp.host && !mp.host_regex && mp.host->find('*') != std::string::npos) {
    r.error(host_at, "spec.host",
            "exact match \"" + *mp.host +
                "\" contains *, which cannot match anything (use "
                "hostname for globs)");
  }
  if (mp.host && mp.host_regex && !mp.hostname) {
    mp.host_pattern = regex_or_error(r, host_at, "spec.host", *mp.host, true, max_size);
  }
  YAML::Node method_at = spec.where("method");
  mp.method = spec.string("method");
  mp.method_regex = spec.boolean("method_regex").value_or(false);
  if (mp.method && mp.method_regex) {
    mp.method_pattern = regex_or_error(r, method_at, "spec.method", *mp.method, true, max_size);
  } else if (mp.method && !is_header_name(*mp.method)) {
    r.error(method_at, "spec.method", "\"" + *mp.method + "\" is not a valid HTTP method");
  }

  mp.headers = decode_matchers(spec, "headers", false, true, max_size);
  mp.regex_headers = decode_matchers(spec, "regex_headers", true, true, max_size);
  // An exact `:authority` header behaves like `host` (irhttpmapping.py).
  for (auto it = mp.headers.begin(); it != mp.headers.end();) {
    if (lower(it->name) == ":authority" && it->value) {
      if (it->value->find('*') != std::string::npos) {
        r.error(spec.where("headers"), "spec.headers.:authority",
                "exact match \"" + *it->value + "\" contains *, which cannot match anything");
      } else {
        mp.authority_header = *it->value;
      }
      it = mp.headers.erase(it);
    } else {
      ++it;
    }
  }
  mp.query_parameters = decode_matchers(spec, "query_parameters", false, false, max_size);
  for (KeyValueMatch& q : decode_matchers(spec, "regex_query_parameters", true, false, max_size)) {
    mp.query_parameters.push_back(std::move(q));
  }

  if (auto v = spec.integer("precedence", INT32_MIN, INT32_MAX)) mp.precedence = *v;
  if (auto v = spec.integer("weight", 0, 100)) mp.weight = static_cast<uint32_t>(*v);
  mp.shadow = spec.boolean("shadow").value_or(false);

  // --- upstream ------------------------------------------------------------------------------
  // Only the Gateway API translation writes `direct_response_code` (a backendRef that cannot be
  // resolved answers 500 for its share); in anyone else's Mapping it is an unknown field.
  if (resource.source_id == kGatewayApiSource) {
    if (auto v = spec.integer("direct_response_code", 200, 599)) {
      mp.direct_response_code = static_cast<int>(*v);
    }
  }
  if (!mp.direct_response_code) spec.require("service");
  YAML::Node service_at = spec.where("service");
  if (auto v = spec.string("service")) {
    mp.service = *v;
    std::string error;
    if (!parse_service(mp.service, &mp.address, &error)) {
      r.error(service_at, "spec.service", "\"" + mp.service + "\" " + error);
    }
  }
  mp.resolver = spec.string("resolver");
  // `tls` names a TLSContext (v3) or is a boolean (v2 "originate TLS").
  if (spec.has("tls")) {
    YAML::Node at = spec.where("tls");
    YAML::Node v = spec.take("tls");
    if (v.IsScalar() && scalar_kind(v) == ScalarKind::kBool) {
      mp.address.tls = mp.address.tls || read_bool(r, v, at, "spec.tls").value_or(false);
    } else if (auto name = read_string(r, v, at, "spec.tls")) {
      mp.tls_context = *name;
      // ircluster.py: a named context originates TLS even against an http:// service.
      if (mp.address.scheme == "http") {
        r.warning(at, "spec.tls",
                  "TLS is originated because a TLSContext is named, although spec.service says "
                  "http://");
      }
      mp.address.tls = true;
    }
  }
  // ircluster.py: a service without a port gets 443 whenever TLS is originated.
  if (!mp.address.port_given) mp.address.port = mp.address.tls ? 443 : 80;
  mp.grpc = spec.boolean("grpc");
  if (auto v = spec.string_list("allow_upgrade")) {
    // Upgrade protocol names compare case-insensitively (RFC 9110 §7.8).
    for (std::string p : *v) {
      std::transform(p.begin(), p.end(), p.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      mp.allow_upgrade.push_back(std::move(p));
    }
  }
  if (auto ws = spec.boolean("use_websocket"); ws && *ws) {
    if (std::find(mp.allow_upgrade.begin(), mp.allow_upgrade.end(), "websocket") ==
        mp.allow_upgrade.end()) {
      mp.allow_upgrade.push_back("websocket");
    }
  }
  mp.dns_type = spec.one_of("dns_type", {"strict_dns", "logical_dns"});
  mp.respect_dns_ttl = spec.boolean("respect_dns_ttl");
  mp.enable_ipv4 = spec.boolean("enable_ipv4");
  mp.enable_ipv6 = spec.boolean("enable_ipv6");
  mp.load_balancer = decode_load_balancer(spec);
  mp.circuit_breakers = decode_circuit_breakers(spec);
  mp.keepalive = decode_keepalive(spec);
  free_form(spec, "health_checks", true);
  mp.cluster_tag = spec.string("cluster_tag");
  mp.stats_name = spec.string("stats_name");
  mp.add_linkerd_headers = spec.boolean("add_linkerd_headers");
  for (const char* key : {"dns_type", "respect_dns_ttl", "load_balancer", "circuit_breakers",
                          "keepalive", "health_checks", "cluster_tag"}) {
    spec.not_yet_effective(key);
  }
  spec.unsupported("outlier_detection", "");
  spec.unsupported("envoy_override", "Envoy-specific");

  // --- rewrites, headers, redirects ----------------------------------------------------------
  mp.rewrite = spec.string("rewrite");
  mp.regex_rewrite = decode_regex_map(spec, "regex_rewrite", max_size);
  mp.host_rewrite = spec.string("host_rewrite");
  mp.auto_host_rewrite = spec.boolean("auto_host_rewrite");
  mp.add_request_headers = decode_added_headers(spec, "add_request_headers");
  mp.add_response_headers = decode_added_headers(spec, "add_response_headers");
  mp.remove_request_headers = decode_header_names(spec, "remove_request_headers");
  mp.remove_response_headers = decode_header_names(spec, "remove_response_headers");
  mp.host_redirect = spec.boolean("host_redirect").value_or(false);
  mp.path_redirect = spec.string("path_redirect");
  mp.prefix_redirect = spec.string("prefix_redirect");
  mp.regex_redirect = decode_regex_map(spec, "regex_redirect", max_size);
  YAML::Node code_at = spec.where("redirect_response_code");
  if (auto code = spec.integer("redirect_response_code", INT32_MIN, INT32_MAX)) {
    if (*code == 301 || *code == 302 || *code == 303 || *code == 307 || *code == 308) {
      mp.redirect_response_code = static_cast<int>(*code);
    } else {
      r.error(code_at, "spec.redirect_response_code",
              "must be one of 301, 302, 303, 307, 308 (got " + std::to_string(*code) + ")");
    }
  }
  // irhttpmapping.py: path_redirect > prefix_redirect > regex_redirect.
  if (mp.path_redirect && (mp.prefix_redirect || mp.regex_redirect)) {
    r.warning(spec.where("path_redirect"), "spec.path_redirect",
              "is used; prefix_redirect and regex_redirect are ignored");
    mp.prefix_redirect.reset();
    mp.regex_redirect.reset();
  } else if (mp.prefix_redirect && mp.regex_redirect) {
    r.warning(spec.where("prefix_redirect"), "spec.prefix_redirect",
              "is used; regex_redirect is ignored");
    mp.regex_redirect.reset();
  }
  if (!mp.host_redirect) {
    for (const char* key :
         {"path_redirect", "prefix_redirect", "regex_redirect", "redirect_response_code"}) {
      if (spec.has(key)) {
        r.warning(spec.where(key), spec.path(key), "has no effect without host_redirect: true");
      }
    }
  }
  if (mp.host_redirect && mp.shadow) {
    r.warning(spec.where("host_redirect"), "spec.host_redirect",
              "ignored: at most one of host_redirect and shadow may be set, and shadow wins");
    mp.host_redirect = false;
  }
  if (mp.regex_rewrite && mp.rewrite && *mp.rewrite != "/" && !mp.rewrite->empty()) {
    r.warning(spec.where("rewrite"), "spec.rewrite", "ignored: regex_rewrite is set");
  }
  mp.cors = decode_cors(spec);

  // --- timeouts, retries, auth, misc ---------------------------------------------------------
  mp.timeout_ms = spec.millis("timeout_ms");
  mp.idle_timeout_ms = spec.millis("idle_timeout_ms");
  mp.connect_timeout_ms = spec.millis("connect_timeout_ms");
  mp.cluster_idle_timeout_ms = spec.millis("cluster_idle_timeout_ms");
  mp.cluster_max_connection_lifetime_ms = spec.millis("cluster_max_connection_lifetime_ms");
  mp.retry_policy = decode_retry_policy(spec);
  mp.bypass_auth = spec.boolean("bypass_auth");
  spec.string_map("auth_context_extensions", false);
  spec.string("auth_service");  // Proxenos extension: which AuthService applies
  mp.labels_text = free_form(spec, "labels", false);
  free_form(spec, "error_response_overrides", true);
  spec.boolean("bypass_error_response_overrides");
  spec.one_of("priority", {"default", "high"});
  free_form(spec, "docs", false);
  for (const char* key :
       {"retry_policy", "bypass_auth", "auth_context_extensions", "auth_service", "labels",
        "error_response_overrides", "bypass_error_response_overrides", "priority"}) {
    spec.not_yet_effective(key);
  }
  // Dev Portal metadata and v2<->v3 round-trip bookkeeping: no runtime effect anywhere.
  for (const char* key :
       {"docs", "modules", "v2ExplicitTLS", "v2BoolHeaders", "v2BoolQueryParameters"}) {
    spec.ignore(key);
  }
  spec.finish();

  if (r.errors() > 0) return std::nullopt;
  return mp;
}

}  // namespace proxenos::config
