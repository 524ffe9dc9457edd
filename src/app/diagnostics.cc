#include "app/diagnostics.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/time_format.h"
#include "config/listener.h"

namespace proxenos::app {

namespace {

using nlohmann::json;

// Sampling collections closer together than this replace the newest sample instead of adding one,
// so frequent scrapes cannot grow the history beyond about kWindowMs / kMinSpacingMs samples.
constexpr uint64_t kMinSpacingMs = 5000;

// The Envoy command operator a template piece was parsed from, for dumps.
std::string template_text(const http::ValueTemplate& t) {
  std::string out;
  for (const http::TemplatePiece& p : t.pieces) {
    switch (p.var) {
      case http::TemplateVar::kLiteral:
        for (char c : p.text) {
          out += c;
          if (c == '%') out += '%';
        }
        break;
      case http::TemplateVar::kDownstreamRemoteAddress:
        out += "%DOWNSTREAM_REMOTE_ADDRESS%";
        break;
      case http::TemplateVar::kDownstreamRemoteAddressWithoutPort:
        out += "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%";
        break;
      case http::TemplateVar::kDownstreamLocalAddress:
        out += "%DOWNSTREAM_LOCAL_ADDRESS%";
        break;
      case http::TemplateVar::kDownstreamLocalAddressWithoutPort:
        out += "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%";
        break;
      case http::TemplateVar::kDownstreamLocalPort:
        out += "%DOWNSTREAM_LOCAL_PORT%";
        break;
      case http::TemplateVar::kUpstreamRemoteAddress:
        out += "%UPSTREAM_REMOTE_ADDRESS%";
        break;
      case http::TemplateVar::kProtocol:
        out += "%PROTOCOL%";
        break;
      case http::TemplateVar::kStartTime:
        out += "%START_TIME%";
        break;
      case http::TemplateVar::kHostname:
        out += "%HOSTNAME%";
        break;
      case http::TemplateVar::kRequestHeader:
        out += "%REQ(" + p.text + ")%";
        break;
    }
  }
  return out;
}

std::string origin_text(const config::Snapshot& snapshot, const std::string& source) {
  auto it = snapshot.resource_origins.find(source);
  return it == snapshot.resource_origins.end() ? std::string() : it->second.to_string();
}

json matcher_json(const router::StringMatcher& m) {
  json j = {{"kind", router::to_string(m.kind)}, {"value", m.value}};
  if (m.ignore_case) j["ignoreCase"] = true;
  return j;
}

json header_edits_json(const router::HeaderEdits& e) {
  json add = json::array();
  for (const router::HeaderToAdd& h : e.add) {
    add.push_back({{"name", h.name}, {"value", template_text(h.value)}, {"append", h.append}});
  }
  return {{"add", add}, {"remove", e.remove}};
}

json regex_rewrite_json(const std::optional<router::RegexRewrite>& r) {
  if (!r || !r->pattern) return nullptr;
  return {{"pattern", r->pattern->pattern()}, {"substitution", r->substitution}};
}

json target_json(const config::Snapshot& snapshot, const router::RouteTarget& t, uint32_t share,
                 bool detailed) {
  json j;
  j["weight"] = share;
  j["source"] = t.source;
  j["origin"] = origin_text(snapshot, t.source);
  if (t.redirect) {
    const router::Redirect& r = *t.redirect;
    j["cluster"] = nullptr;
    j["redirect"] = {{"host", r.host},
                     {"https", r.https},
                     {"path", r.path ? json(*r.path) : json(nullptr)},
                     {"prefix", r.prefix ? json(*r.prefix) : json(nullptr)},
                     {"regex", regex_rewrite_json(r.regex)},
                     {"status", r.status}};
  } else if (t.direct_status != 0) {
    j["cluster"] = nullptr;
    j["redirect"] = nullptr;
    j["directStatus"] = t.direct_status;
  } else {
    j["cluster"] = t.cluster_name;
    j["redirect"] = nullptr;
    if (t.cluster < snapshot.clusters.size()) {
      const upstream::ClusterSpec& c = snapshot.clusters[t.cluster];
      j["service"] = c.host + ":" + std::to_string(c.port);
    }
  }
  j["rewrite"] = t.prefix_rewrite ? json(*t.prefix_rewrite) : json(nullptr);
  j["regexRewrite"] = regex_rewrite_json(t.regex_rewrite);
  j["hostRewrite"] = t.host_rewrite ? json(*t.host_rewrite) : json(nullptr);
  if (t.auto_host_rewrite) j["autoHostRewrite"] = true;
  if (detailed) {
    j["timeoutMs"] = t.timeout_ms;
    j["idleTimeoutMs"] = t.idle_timeout_ms;
    j["requestHeaders"] = header_edits_json(t.request_headers);
    j["responseHeaders"] = header_edits_json(t.response_headers);
    j["addLinkerdHeaders"] = t.add_linkerd_headers;
  }
  return j;
}

json route_json(const config::Snapshot& snapshot, const router::Route& r, size_t index,
                bool detailed) {
  json match;
  match["kind"] = router::to_string(r.path.kind);
  match["path"] = r.path.value;
  match["caseSensitive"] = r.path.case_sensitive;
  match["method"] = nullptr;
  match["host"] = nullptr;
  json headers = json::array();
  for (const router::HeaderMatcher& h : r.headers) {
    if (h.name == ":method") {
      match["method"] = matcher_json(h.match);
    } else if (h.name == ":authority") {
      match["host"] = matcher_json(h.match);
    } else {
      json m = matcher_json(h.match);
      m["name"] = h.name;
      headers.push_back(std::move(m));
    }
  }
  json query = json::array();
  for (const router::QueryMatcher& q : r.query) {
    json m = matcher_json(q.match);
    m["name"] = q.name;
    query.push_back(std::move(m));
  }
  match["headers"] = std::move(headers);
  match["query"] = std::move(query);

  json targets = json::array();
  uint32_t previous = 0;
  for (const router::RouteTarget& t : r.targets) {
    uint32_t share = t.cumulative_weight > previous ? t.cumulative_weight - previous : 0;
    previous = std::max(previous, t.cumulative_weight);
    targets.push_back(target_json(snapshot, t, share, detailed));
  }

  json j;
  j["index"] = index;
  j["match"] = std::move(match);
  j["precedence"] = r.precedence;
  j["statsName"] = r.stats_name;
  std::string source = r.targets.empty() ? std::string() : r.targets.front().source;
  j["source"] = source;
  j["origin"] = origin_text(snapshot, source);
  j["targets"] = std::move(targets);
  j["shadow"] = r.shadow ? target_json(snapshot, *r.shadow, r.shadow->cumulative_weight, detailed)
                         : json(nullptr);
  return j;
}

json listener_head_json(const config::ListenerSnapshot& l) {
  return {{"name", l.name},
          {"address", l.bind_address},
          {"port", l.port},
          {"protocol", config::protocol_name(l.protocol)},
          {"securityModel", config::to_string(l.security_model)},
          {"l7Depth", l.l7_depth},
          {"statsPrefix", l.stats_prefix}};
}

// "Mapping/ns/name" -> kind, namespace, name (a key without namespace has an empty one).
json resource_identity(const std::string& key) {
  size_t first = key.find('/');
  if (first == std::string::npos) return {{"kind", key}, {"namespace", ""}, {"name", ""}};
  size_t second = key.find('/', first + 1);
  if (second == std::string::npos) {
    return {{"kind", key.substr(0, first)}, {"namespace", ""}, {"name", key.substr(first + 1)}};
  }
  return {{"kind", key.substr(0, first)},
          {"namespace", key.substr(first + 1, second - first - 1)},
          {"name", key.substr(second + 1)}};
}

json diagnostic_json(const config::Diagnostic& d) {
  return {{"field", d.field}, {"message", d.message}, {"origin", d.origin.to_string()}};
}

std::string lower_alnum(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

bool is_kubernetes_secret(const json& object) {
  auto it = object.find("kind");
  return it != object.end() && it->is_string() && it->get<std::string>() == "Secret";
}

bool reveals_nothing(const json& v) {
  return v.is_null() || (v.is_string() && v.get<std::string>().empty());
}

}  // namespace

// --- StatsSampler -----------------------------------------------------------------------------

void StatsSampler::record(uint64_t now_ms, const observe::MergedStats& merged) {
  std::map<std::string, std::deque<Sample>> kept;
  for (const observe::ClusterValues& c : merged.clusters) {
    std::deque<Sample> history;
    if (auto it = samples_.find(c.name); it != samples_.end()) history = std::move(it->second);
    Sample s{now_ms, c.upstream_rq_total, c.upstream_rq_xx[5]};
    // Counters only go down when the cluster's shards were forgotten and created afresh.
    if (!history.empty() &&
        (s.total < history.back().total || s.errors_5xx < history.back().errors_5xx)) {
      history.clear();
    }
    // A cluster new since the previous collection had nothing then: that is its baseline.
    if (history.empty() && last_record_ms_ && *last_record_ms_ < now_ms) {
      history.push_back(Sample{*last_record_ms_, 0, 0});
    }
    if (history.size() >= 2 && history.back().at_ms + kMinSpacingMs > now_ms) {
      history.back() = s;
    } else {
      history.push_back(s);
    }
    // Keep the newest sample at least a window old as the baseline; drop the ones before it.
    while (history.size() >= 2 && history[1].at_ms + kWindowMs <= now_ms) history.pop_front();
    kept.emplace(c.name, std::move(history));
  }
  samples_ = std::move(kept);
  last_record_ms_ = now_ms;
}

std::optional<RecentErrorRate> StatsSampler::recent(const std::string& stats_name) const {
  auto it = samples_.find(stats_name);
  if (it == samples_.end() || it->second.empty()) return std::nullopt;
  const Sample& base = it->second.front();
  const Sample& last = it->second.back();
  RecentErrorRate r;
  r.requests = last.total - base.total;
  r.errors_5xx = last.errors_5xx - base.errors_5xx;
  r.window_ms = last.at_ms - base.at_ms;
  if (r.requests > 0) {
    r.rate = std::min(1.0, static_cast<double>(r.errors_5xx) / static_cast<double>(r.requests));
  }
  return r;
}

// --- the diagnostics model ---------------------------------------------------------------------

nlohmann::json build_diag_model(const DiagInputs& in) {
  json model;
  model["generation"] = in.generation;
  model["appliedUnixMs"] = in.applied_unix_ms;
  std::string applied_at;
  if (in.applied_unix_ms > 0) base::append_rfc3339_ms(in.applied_unix_ms, applied_at);
  model["appliedAt"] = applied_at;
  model["ageSeconds"] =
      in.applied_unix_ms > 0
          ? static_cast<double>(std::max<int64_t>(0, in.now_unix_ms - in.applied_unix_ms)) / 1000.0
          : 0.0;
  std::string now_at;
  base::append_rfc3339_ms(in.now_unix_ms, now_at);
  model["now"] = now_at;

  size_t host_count = 0;
  size_t route_count = 0;
  json listeners = json::array();
  // Cluster index -> sources of the Mappings sending traffic (or shadow traffic) to it.
  std::unordered_map<uint32_t, std::vector<std::string>> users;
  auto add_user = [&users](const router::RouteTarget& t) {
    if (t.redirect || t.cluster == router::kNoCluster) return;
    auto& list = users[t.cluster];
    if (std::find(list.begin(), list.end(), t.source) == list.end()) list.push_back(t.source);
  };
  if (in.snapshot != nullptr) {
    for (const config::ListenerSnapshot& l : in.snapshot->listeners) {
      json lj = listener_head_json(l);
      lj["http"] = static_cast<bool>(l.routes);
      json hosts = json::array();
      if (l.routes) {
        for (const router::VirtualHostSpec& h : l.routes->hosts()) {
          json routes = json::array();
          size_t index = 0;
          for (const auto& route : h.routes) {
            if (!route) continue;
            routes.push_back(route_json(*in.snapshot, *route, ++index, false));
            for (const router::RouteTarget& t : route->targets) add_user(t);
            if (route->shadow) add_user(*route->shadow);
          }
          route_count += routes.size();
          ++host_count;
          hosts.push_back({{"hostname", h.hostname},
                           {"source", h.source},
                           {"origin", origin_text(*in.snapshot, h.source)},
                           {"insecureAction", router::to_string(h.insecure_action)},
                           {"routes", std::move(routes)}});
        }
      }
      lj["hosts"] = std::move(hosts);
      listeners.push_back(std::move(lj));
    }
  }
  model["listeners"] = std::move(listeners);

  // Resources: every applied one, plus every one a diagnostic names (dropped ones included).
  struct Entry {
    std::string origin;
    bool applied = false;
    json errors = json::array();
    json warnings = json::array();
  };
  std::map<std::string, Entry> entries;
  if (in.snapshot != nullptr) {
    for (const auto& [key, origin] : in.snapshot->resource_origins) {
      Entry& e = entries[key];
      e.origin = origin.to_string();
      e.applied = true;
    }
  }
  json file_errors = json::array();
  size_t error_count = 0;
  size_t warning_count = 0;
  if (in.diagnostics != nullptr) {
    for (const config::Diagnostic& d : *in.diagnostics) {
      bool is_error = d.severity == config::Severity::kError;
      (is_error ? error_count : warning_count)++;
      if (d.resource.empty()) {
        json f = diagnostic_json(d);
        f["severity"] = is_error ? "error" : "warning";
        f["file"] = d.origin.file;
        f["line"] = d.origin.line;
        file_errors.push_back(std::move(f));
        continue;
      }
      Entry& e = entries[d.resource];
      if (e.origin.empty()) e.origin = d.origin.to_string();
      (is_error ? e.errors : e.warnings).push_back(diagnostic_json(d));
    }
  }
  // Resources in trouble first, so they are seen at a glance; alphabetical within each group.
  json resources = json::array();
  auto rank_of = [](const Entry& e) { return !e.errors.empty() ? 0 : !e.warnings.empty() ? 1 : 2; };
  std::vector<std::pair<const std::string*, Entry*>> ordered;
  ordered.reserve(entries.size());
  for (auto& [key, e] : entries) ordered.emplace_back(&key, &e);
  std::stable_sort(ordered.begin(), ordered.end(), [&rank_of](const auto& a, const auto& b) {
    return rank_of(*a.second) < rank_of(*b.second);
  });
  for (auto& [key, e] : ordered) {
    int rank = rank_of(*e);
    json r = resource_identity(*key);
    r["resource"] = *key;
    r["origin"] = e->origin;
    r["applied"] = e->applied;
    r["status"] = rank == 0 ? "error" : rank == 1 ? "warning" : "ok";
    r["errors"] = std::move(e->errors);
    r["warnings"] = std::move(e->warnings);
    resources.push_back(std::move(r));
  }
  model["resources"] = std::move(resources);
  model["fileErrors"] = std::move(file_errors);

  json clusters = json::array();
  if (in.snapshot != nullptr) {
    std::unordered_map<std::string, const observe::ClusterValues*> stats;
    if (in.stats != nullptr) {
      for (const observe::ClusterValues& v : in.stats->clusters) stats.emplace(v.name, &v);
    }
    for (size_t i = 0; i < in.snapshot->clusters.size(); ++i) {
      const upstream::ClusterSpec& c = in.snapshot->clusters[i];
      // Stats are kept under the stats name (Envoy's alt_stat_name), as /metrics shows them.
      const std::string& stats_name = c.stats_name.empty() ? c.name : c.stats_name;
      json cj;
      cj["name"] = c.name;
      cj["service"] = c.host + ":" + std::to_string(c.port);
      cj["tls"] = c.tls;
      cj["statsName"] = stats_name;
      json endpoints = json::array();
      if (in.endpoints != nullptr) {
        if (auto it = in.endpoints->find(c.name); it != in.endpoints->end()) {
          for (const net::Address& a : it->second) endpoints.push_back(a.to_string());
        }
      }
      cj["endpoints"] = std::move(endpoints);
      auto used = users.find(static_cast<uint32_t>(i));
      cj["mappings"] = used == users.end() ? json::array() : json(used->second);
      const observe::ClusterValues* v = nullptr;
      if (auto it = stats.find(stats_name); it != stats.end()) v = it->second;
      cj["requestsTotal"] = v ? v->upstream_rq_total : 0;
      json by_class = json::object();
      for (size_t k = 1; k < observe::kStatusClasses; ++k) {
        by_class[std::to_string(k) + "xx"] = v ? v->upstream_rq_xx[k] : 0;
      }
      cj["responses"] = std::move(by_class);
      cj["responses5xx"] = v ? v->upstream_rq_xx[5] : 0;
      cj["connectFailures"] = v ? v->upstream_cx_connect_fail : 0;
      cj["timeouts"] = v ? v->upstream_rq_timeout : 0;
      std::optional<RecentErrorRate> recent;
      if (in.sampler != nullptr) recent = in.sampler->recent(stats_name);
      cj["recentErrorRate"] = recent && recent->rate ? json(*recent->rate) : json(nullptr);
      cj["recent"] = {
          {"requests", recent ? recent->requests : 0},
          {"errors5xx", recent ? recent->errors_5xx : 0},
          {"windowSeconds", recent ? static_cast<double>(recent->window_ms) / 1000.0 : 0.0}};
      clusters.push_back(std::move(cj));
    }
  }
  model["clusters"] = std::move(clusters);

  model["summary"] = {{"listeners", model["listeners"].size()},
                      {"hosts", host_count},
                      {"routes", route_count},
                      {"clusters", model["clusters"].size()},
                      {"resources", model["resources"].size()},
                      {"errors", error_count},
                      {"warnings", warning_count}};
  return model;
}

// --- config dump ------------------------------------------------------------------------------

nlohmann::json config_dump(const config::Snapshot& snapshot) {
  const config::ModuleSettings& m = snapshot.module;
  json module = {
      {"source", m.source},
      {"server_name", m.server_name},
      {"enable_http10", m.enable_http10},
      {"max_request_headers_kb", m.max_request_headers_kb},
      {"merge_slashes", m.merge_slashes},
      {"use_remote_address", m.use_remote_address},
      {"xff_num_trusted_hops", m.xff_num_trusted_hops},
      {"headers_with_underscores_action", http::to_string(m.headers_with_underscores)},
      {"listener_idle_timeout_ms", m.listener_idle_timeout_ms},
      {"strip_matching_host_port", m.strip_matching_host_port},
      {"preserve_external_request_id", m.preserve_external_request_id},
      {"envoy_log_type", m.log_type},
      {"envoy_log_format", m.log_format},
      {"envoy_log_path", m.log_path},
      {"cluster_request_timeout_ms", m.cluster_request_timeout_ms},
      {"cluster_idle_timeout_ms", m.cluster_idle_timeout_ms},
      {"cluster_max_connection_lifetime_ms", m.cluster_max_connection_lifetime_ms},
      {"add_linkerd_headers", m.add_linkerd_headers},
      {"liveness_probe", m.liveness_probe},
      {"readiness_probe", m.readiness_probe},
      {"enable_ipv4", m.enable_ipv4},
      {"enable_ipv6", m.enable_ipv6},
      {"regex_max_size", m.regex_max_size},
  };

  json listeners = json::array();
  for (const config::ListenerSnapshot& l : snapshot.listeners) {
    json lj = listener_head_json(l);
    json hosts = json::array();
    if (l.routes) {
      for (const router::VirtualHostSpec& h : l.routes->hosts()) {
        json routes = json::array();
        size_t index = 0;
        for (const auto& route : h.routes) {
          if (route) routes.push_back(route_json(snapshot, *route, ++index, true));
        }
        hosts.push_back({{"hostname", h.hostname},
                         {"source", h.source},
                         {"insecureAction", router::to_string(h.insecure_action)},
                         {"routes", std::move(routes)}});
      }
    }
    lj["hosts"] = std::move(hosts);
    listeners.push_back(std::move(lj));
  }

  json clusters = json::array();
  for (const upstream::ClusterSpec& c : snapshot.clusters) {
    clusters.push_back({{"name", c.name},
                        {"host", c.host},
                        {"port", c.port},
                        {"tls", c.tls},
                        {"connectTimeoutMs", c.connect_timeout_ms},
                        {"idleTimeoutMs", c.idle_timeout_ms},
                        {"maxConnectionLifetimeMs", c.max_connection_lifetime_ms},
                        {"enableIpv4", c.enable_ipv4},
                        {"enableIpv6", c.enable_ipv6},
                        {"statsName", c.stats_name}});
  }

  json origins = json::object();
  for (const auto& [resource, origin] : snapshot.resource_origins) {
    origins[resource] = origin.to_string();
  }

  json dump = {{"generation", snapshot.generation},
               {"module", std::move(module)},
               {"listeners", std::move(listeners)},
               {"clusters", std::move(clusters)},
               {"resourceOrigins", std::move(origins)}};
  return redact_secrets(std::move(dump));
}

// --- redaction --------------------------------------------------------------------------------

bool is_secret_key(std::string_view key) {
  std::string k = lower_alnum(key);
  static const std::array<std::string_view, 4> kExact = {"key", "tlskey", "passwd", "pass"};
  static const std::array<std::string_view, 7> kSuffixes = {
      "privatekey", "apikey", "password", "token", "secret", "credentials", "signingkey"};
  if (std::find(kExact.begin(), kExact.end(), k) != kExact.end()) return true;
  return std::any_of(kSuffixes.begin(), kSuffixes.end(),
                     [&k](std::string_view s) { return k.ends_with(s); });
}

nlohmann::json redact_secrets(nlohmann::json value) {
  if (value.is_array()) {
    for (json& item : value) item = redact_secrets(std::move(item));
    return value;
  }
  if (!value.is_object()) return value;
  bool secret_object = is_kubernetes_secret(value);
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string& k = it.key();
    bool secret = is_secret_key(k) || (secret_object && (k == "data" || k == "stringData"));
    if (secret) {
      if (!reveals_nothing(it.value())) it.value() = "[redacted]";
    } else {
      it.value() = redact_secrets(std::move(it.value()));
    }
  }
  return value;
}

bool query_flag(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    std::string_view v = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    return !(v.empty() || v == "0" || v == "false" || v == "no");
  }
  return false;
}

}  // namespace proxenos::app
