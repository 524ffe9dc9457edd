#include "config/listener.h"

#include <algorithm>
#include <cctype>

#include "config/decode.h"

namespace proxenos::config {

namespace {

const std::vector<std::pair<std::string_view, std::vector<std::string>>>& protocol_stacks() {
  static const std::vector<std::pair<std::string_view, std::vector<std::string>>> stacks = {
      {"HTTP", {"HTTP", "TCP"}},
      {"HTTPS", {"TLS", "HTTP", "TCP"}},
      {"HTTPPROXY", {"PROXY", "HTTP", "TCP"}},
      {"HTTPSPROXY", {"TLS", "PROXY", "HTTP", "TCP"}},
      {"TCP", {"TCP"}},
      {"TLS", {"TLS", "TCP"}},
      {"UDP", {"UDP"}},
  };
  return stacks;
}

bool has(const std::vector<std::string>& stack, std::string_view element) {
  return std::find(stack.begin(), stack.end(), element) != stack.end();
}

// The default stats prefix, as irlistener.py computes it (underscores, not the docs' hyphens).
std::string default_stats_prefix(const std::vector<std::string>& stack, uint16_t port) {
  bool tls = has(stack, "TLS");
  if (has(stack, "HTTP")) return tls ? "ingress_https" : "ingress_http";
  if (tls) return "ingress_tls_" + std::to_string(port);
  std::string socket = stack.empty() ? "tcp" : stack.back();
  for (char& c : socket) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return "ingress_" + socket + "_" + std::to_string(port);
}

}  // namespace

const char* protocol_name(ListenerProtocol protocol) {
  switch (protocol) {
    case ListenerProtocol::kHttp:
      return "HTTP";
    case ListenerProtocol::kHttps:
      return "HTTPS";
    case ListenerProtocol::kHttpProxy:
      return "HTTPPROXY";
    case ListenerProtocol::kHttpsProxy:
      return "HTTPSPROXY";
    case ListenerProtocol::kTcp:
      return "TCP";
    case ListenerProtocol::kTls:
      return "TLS";
  }
  return "?";
}

bool ListenerSpec::serves_http() const {
  return !udp && has(protocol_stack, "HTTP");
}

bool ListenerSpec::binds_host(const HostSpec& host) const {
  if (namespace_from == NamespaceFrom::kSelf && host.namespace_ != namespace_) return false;
  return !host_selector || host_selector->matches(host.labels);
}

std::optional<ListenerSpec> decode_listener(const Resource& resource, Diagnostics* diagnostics) {
  Reporter r(resource, diagnostics);
  ListenerSpec l;
  l.name = resource.name;
  l.namespace_ = resource.namespace_;
  l.labels = resource.labels;
  l.source = resource.key();
  l.origin = resource.origin;

  MapReader spec(r, resource.spec, "spec", resource.object);
  if (!spec.is_map()) {
    if (!spec.present()) r.error(resource.object, "spec", "is required");
    return std::nullopt;
  }
  spec.ignore("ambassador_id");

  spec.require("port");
  if (auto port = spec.integer("port", 1, 65535)) l.port = static_cast<uint16_t>(*port);
  // Not in the CRD, but Emissary's IR honours it (irlistener.py AllowedKeys).
  if (auto addr = spec.string("bind_address"); addr && !addr->empty()) l.bind_address = *addr;

  std::vector<std::string_view> protocols;
  for (const auto& [name, stack] : protocol_stacks()) protocols.push_back(name);
  bool has_protocol = spec.has("protocol");
  bool has_stack = spec.has("protocolStack");
  if (has_protocol && has_stack) {
    r.error(spec.where("protocolStack"), "spec.protocolStack",
            "must not be set together with spec.protocol");
  } else if (!has_protocol && !has_stack) {
    r.error(spec.where("protocol"), "spec.protocol", "is required (or spec.protocolStack)");
  }
  if (auto protocol = spec.one_of("protocol", protocols)) {
    for (const auto& [name, stack] : protocol_stacks()) {
      if (name == *protocol) l.protocol_stack = stack;
    }
  }
  YAML::Node stack_at = spec.where("protocolStack");
  if (auto stack = spec.string_list("protocolStack")) {
    bool ok = true;
    for (const std::string& element : *stack) {
      if (element != "HTTP" && element != "PROXY" && element != "TLS" && element != "TCP" &&
          element != "UDP") {
        r.error(stack_at, "spec.protocolStack",
                "\"" + element + "\" is not one of HTTP, PROXY, TLS, TCP, UDP");
        ok = false;
      }
    }
    if (ok && (stack->empty() || (stack->back() != "TCP" && stack->back() != "UDP"))) {
      r.error(stack_at, "spec.protocolStack", "must end with TCP or UDP");
      ok = false;
    }
    if (ok) l.protocol_stack = *stack;
  }
  if (!l.protocol_stack.empty()) {
    const std::vector<std::string>& st = l.protocol_stack;
    l.udp = st.back() == "UDP";
    if (l.udp && !has(st, "HTTP")) {
      r.error(has_stack ? stack_at : spec.where("protocol"),
              has_stack ? "spec.protocolStack" : "spec.protocol",
              "UDP is only supported with HTTP (HTTP/3)");
    }
    bool tls = has(st, "TLS");
    bool proxy = has(st, "PROXY");
    if (has(st, "HTTP")) {
      l.protocol = tls ? (proxy ? ListenerProtocol::kHttpsProxy : ListenerProtocol::kHttps)
                       : (proxy ? ListenerProtocol::kHttpProxy : ListenerProtocol::kHttp);
    } else {
      l.protocol = tls ? ListenerProtocol::kTls : ListenerProtocol::kTcp;
    }
  }

  spec.require("securityModel");
  if (auto model = spec.one_of("securityModel", {"XFP", "SECURE", "INSECURE"})) {
    l.security_model = *model == "XFP"      ? SecurityModel::kXfp
                       : *model == "SECURE" ? SecurityModel::kSecure
                                            : SecurityModel::kInsecure;
  }
  if (auto depth = spec.integer("l7Depth", 0, 64)) l.l7_depth = static_cast<uint32_t>(*depth);

  spec.require("hostBinding");
  if (std::optional<MapReader> binding = spec.map("hostBinding"); binding && binding->present()) {
    bool has_ns = binding->has("namespace");
    bool has_selector = binding->has("selector");
    if (!has_ns && !has_selector) {
      r.error(binding->where("namespace"), "spec.hostBinding", "must have namespace or selector");
    }
    if (std::optional<MapReader> ns = binding->map("namespace"); ns && ns->present()) {
      ns->require("from");
      if (auto from = ns->one_of("from", {"SELF", "ALL", "SELECTOR"})) {
        if (*from == "SELECTOR") {
          r.error(ns->where("from"), "spec.hostBinding.namespace.from",
                  "SELECTOR is not supported (use SELF, ALL, or hostBinding.selector)");
        }
        l.namespace_from = *from == "ALL" ? NamespaceFrom::kAll : NamespaceFrom::kSelf;
      }
      ns->finish();
    }
    if (auto sel = decode_label_selector(*binding, "selector"); sel && !sel->empty()) {
      l.host_selector = sel;
    }
    binding->finish();
  }

  if (auto prefix = spec.string("statsPrefix"); prefix && !prefix->empty()) {
    l.stats_prefix = *prefix;
  }
  if (auto streams = spec.integer("http2MaxConcurrentStreams", 1, 0x7fffffff)) {
    l.http2_max_concurrent_streams = static_cast<uint32_t>(*streams);
  }
  spec.finish();

  if (r.errors() > 0) return std::nullopt;
  if (l.stats_prefix.empty()) l.stats_prefix = default_stats_prefix(l.protocol_stack, l.port);
  return l;
}

std::vector<ListenerSpec> default_listeners() {
  std::vector<ListenerSpec> out;
  for (auto [port, proto] : {std::pair<uint16_t, const char*>{8080, "HTTP"}, {8443, "HTTPS"}}) {
    ListenerSpec l;
    l.name = std::string("default-") + std::to_string(port);
    l.namespace_ = "default";
    l.source = l.name;  // no resource behind it
    l.port = port;
    for (const auto& [name, stack] : protocol_stacks()) {
      if (name == proto) l.protocol_stack = stack;
    }
    l.protocol = port == 8080 ? ListenerProtocol::kHttp : ListenerProtocol::kHttps;
    l.security_model = SecurityModel::kXfp;
    l.namespace_from = NamespaceFrom::kAll;
    l.stats_prefix = default_stats_prefix(l.protocol_stack, port);
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace proxenos::config
