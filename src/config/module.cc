#include "config/module.h"

#include <nlohmann/json.hpp>

#include "config/decode.h"

namespace proxenos::config {

namespace {

// Access-log JSON formats are written as YAML maps; the data plane takes them as JSON text.
nlohmann::ordered_json to_json(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (auto it = node.begin(); it != node.end(); ++it) {
      out[it->first.Scalar()] = to_json(it->second);
    }
    return out;
  }
  if (node.IsSequence()) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const YAML::Node& item : node) out.push_back(to_json(item));
    return out;
  }
  if (!node.IsDefined() || node.IsNull()) return nullptr;
  return node.Scalar();
}

void decode_defaults(MapReader& config, MappingDefaults& out) {
  std::optional<MapReader> defaults = config.map("defaults");
  if (!defaults || !defaults->present()) return;
  // Class-specific values (`defaults.httpmapping.x`) win over class-less ones (`defaults.x`).
  auto read_into = [&out](MapReader& m) {
    if (auto v = decode_added_headers(m, "add_request_headers")) out.add_request_headers = v;
    if (auto v = decode_added_headers(m, "add_response_headers")) out.add_response_headers = v;
    if (auto v = decode_header_names(m, "remove_request_headers")) {
      out.remove_request_headers = v;
    }
    if (auto v = decode_header_names(m, "remove_response_headers")) {
      out.remove_response_headers = v;
    }
    if (auto v = m.string("stats_name")) out.stats_name = v;
  };
  read_into(*defaults);
  if (std::optional<MapReader> http = defaults->map("httpmapping"); http && http->present()) {
    read_into(*http);
    http->finish();
  }
  // Other classes (tcpmapping, ...) have no fields Proxenos reads yet.
  for (auto it = defaults->node().begin(); it != defaults->node().end(); ++it) {
    if (it->first.IsScalar() && it->second.IsMap()) defaults->ignore(it->first.Scalar());
  }
  defaults->finish();
}

}  // namespace

bool is_ambassador_module(const Resource& resource) {
  return resource.kind == "Module" && resource.name == "ambassador";
}

std::optional<AmbassadorModule> decode_ambassador_module(const Resource& resource,
                                                         Diagnostics* diagnostics) {
  Reporter r(resource, diagnostics);
  AmbassadorModule out;
  ModuleSettings& s = out.settings;
  s.source = resource.key();

  MapReader spec(r, resource.spec, "spec", resource.object);
  if (spec.present() && !spec.is_map()) return std::nullopt;
  spec.ignore("ambassador_id");
  std::optional<MapReader> config = spec.map("config");
  spec.finish();
  if (!config) return std::nullopt;

  MapReader& c = *config;
  if (auto v = c.string("server_name")) s.server_name = *v;
  if (auto v = c.boolean("enable_http10")) s.enable_http10 = *v;
  if (auto v = c.integer("max_request_headers_kb", 1, 8192)) {
    s.max_request_headers_kb = static_cast<uint32_t>(*v);
  }
  if (auto v = c.boolean("merge_slashes")) s.merge_slashes = *v;
  if (auto v = c.boolean("use_remote_address")) s.use_remote_address = *v;
  if (auto v = c.integer("xff_num_trusted_hops", 0, 64)) {
    s.xff_num_trusted_hops = static_cast<uint32_t>(*v);
  }
  if (auto v =
          c.one_of("headers_with_underscores_action", {"ALLOW", "DROP_HEADER", "REJECT_REQUEST"})) {
    s.headers_with_underscores = *v == "ALLOW"         ? http::UnderscoreAction::kAllow
                                 : *v == "DROP_HEADER" ? http::UnderscoreAction::kDropHeader
                                                       : http::UnderscoreAction::kReject;
  }
  if (auto v = c.millis("listener_idle_timeout_ms")) s.listener_idle_timeout_ms = *v;
  if (auto v = c.boolean("strip_matching_host_port")) s.strip_matching_host_port = *v;
  if (auto v = c.boolean("preserve_external_request_id")) s.preserve_external_request_id = *v;
  if (auto v = c.boolean("enable_grpc_web")) s.enable_grpc_web = *v;
  if (auto v = c.boolean("enable_grpc_http11_bridge")) s.enable_grpc_http11_bridge = *v;
  out.defaults.cors = decode_cors(c);
  if (auto v = c.one_of("envoy_log_type", {"text", "json", "typed_json"})) s.log_type = *v;
  if (c.has("envoy_log_format")) {
    YAML::Node at = c.where("envoy_log_format");
    YAML::Node f = c.take("envoy_log_format");
    if (f.IsMap()) {
      s.log_format = to_json(f).dump();
    } else if (auto text = read_string(r, f, at, c.path("envoy_log_format"))) {
      s.log_format = *text;
    }
  }
  if (auto v = c.string("envoy_log_path")) s.log_path = *v;
  if (auto v = c.millis("cluster_request_timeout_ms")) s.cluster_request_timeout_ms = *v;
  if (auto v = c.millis("cluster_idle_timeout_ms")) s.cluster_idle_timeout_ms = *v;
  if (auto v = c.millis("cluster_max_connection_lifetime_ms")) {
    s.cluster_max_connection_lifetime_ms = *v;
  }
  if (auto v = c.boolean("add_linkerd_headers")) s.add_linkerd_headers = *v;
  if (auto v = c.boolean("enable_ipv4")) s.enable_ipv4 = *v;
  if (auto v = c.boolean("enable_ipv6")) s.enable_ipv6 = *v;
  if (auto v = c.integer("regex_max_size", 1, 1 << 20)) {
    s.regex_max_size = static_cast<uint32_t>(*v);
  }
  decode_defaults(c, out.defaults);
  out.resolver = c.string("resolver");
  for (auto [key, field] : {std::pair<const char*, bool*>{"liveness_probe", &s.liveness_probe},
                            std::pair<const char*, bool*>{"readiness_probe", &s.readiness_probe}}) {
    if (auto probe = c.map(key)) {
      if (auto v = probe->boolean("enabled")) *field = *v;
      for (const char* sub : {"prefix", "rewrite", "service"}) probe->ignore(sub);
      probe->finish();
    }
  }

  // x-forwarded-client-cert (Envoy's names; the proxy builds the header).
  if (auto v = c.one_of(
          "forward_client_cert_details",
          {"SANITIZE", "FORWARD_ONLY", "APPEND_FORWARD", "SANITIZE_SET", "ALWAYS_FORWARD_ONLY"})) {
    s.forward_client_cert_details = *v;
  }
  if (auto set = c.map("set_current_client_cert_details")) {
    for (auto [key, field] : {std::pair<const char*, bool*>{"subject", &s.xfcc_subject},
                              std::pair<const char*, bool*>{"cert", &s.xfcc_cert},
                              std::pair<const char*, bool*>{"chain", &s.xfcc_chain},
                              std::pair<const char*, bool*>{"dns", &s.xfcc_dns},
                              std::pair<const char*, bool*>{"uri", &s.xfcc_uri}}) {
      if (auto v = set->boolean(key)) *field = *v;
    }
    set->finish();
  }

  c.unsupported("lua_scripts", "Envoy-specific");
  // Envoy-process and 1.x knobs with no meaning here (Emissary itself only reports them).
  for (const char* key :
       {"service_port", "admin_port", "diag_port", "envoy_validation_timeout", "runtime_flags",
        "statsd", "debug_mode", "auth_enabled", "use_proxy_proto", "x_forwarded_proto_redirect",
        "regex_type", "prune_unreachable_routes"}) {
    c.ignore(key);
  }
  for (const char* key : {"diagnostics",
                          "keepalive",
                          "circuit_breakers",
                          "load_balancer",
                          "retry_policy",
                          "default_label_domain",
                          "default_labels",
                          "use_ambassador_namespace_for_service_resolution",
                          "grpc_stats",
                          "gzip",
                          "buffer",
                          "buffer_limit_bytes",
                          "ip_allow",
                          "ip_deny",
                          "reject_requests_with_escaped_slashes",
                          "allow_chunked_length",
                          "suppress_envoy_headers",
                          "proper_case",
                          "header_case_overrides",
                          "error_response_overrides"}) {
    c.not_yet_effective(key);
  }
  c.finish();

  if (r.errors() > 0) return std::nullopt;
  return out;
}

}  // namespace proxenos::config
