#include "k8s/gateway_translator.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <set>

#include "config/decode.h"
#include "config/label_selector.h"
#include "k8s/object_fields.h"

namespace proxenos::k8s {

namespace {

constexpr const char* kEpoch = "1970-01-01T00:00:00Z";

// What a request gets when its rule's backendRef cannot be used (HTTPRouteRule.backendRefs).
constexpr int kNoBackendStatus = 500;

// What the data plane can do, published on our GatewayClasses (names as in pkg/features).
const char* const kSupportedFeatures[] = {
    "GRPCRoute",
    "Gateway",
    "HTTPRoute",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRewrite",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "ReferenceGrant",
    "TCPRoute",
    "TLSRoute",
    "TLSRouteModeTerminate",
};

// ---------------------------------------------------------------------------------------------
// Small helpers.

YAML::Node map_node() {
  return YAML::Node(YAML::NodeType::Map);
}

// A Gateway API Duration (^([0-9]{1,5}(h|m|s|ms)){1,4}$) in milliseconds.
std::optional<uint64_t> parse_duration(const std::string& s) {
  static const RE2 kShape("([0-9]{1,5}(h|m|s|ms)){1,4}");
  if (!RE2::FullMatch(s, kShape)) return std::nullopt;
  uint64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    uint64_t n = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
      n = n * 10 + static_cast<uint64_t>(s[i++] - '0');
    if (s.compare(i, 2, "ms") == 0) {
      total += n;
      i += 2;
    } else if (s[i] == 's') {
      total += n * 1000;
      ++i;
    } else if (s[i] == 'm') {
      total += n * 60 * 1000;
      ++i;
    } else {
      total += n * 3600 * 1000;
      ++i;
    }
  }
  return total;
}

bool is_wildcard(const std::string& h) {
  return h.starts_with("*.");
}

// `name` lies strictly under `suffix` (".example.com").
bool under(const std::string& name, const std::string& suffix) {
  return name.size() > suffix.size() && name.ends_with(suffix);
}

// The hostnames a route serves on a listener (gateway-api hostname intersection): the more
// specific of two matching names. "" = unconstrained. nullopt: they do not intersect.
std::optional<std::string> intersect(const std::string& listener, const std::string& route) {
  if (listener.empty()) return route;
  if (route.empty()) return listener;
  if (listener == route) return route;
  bool lw = is_wildcard(listener), rw = is_wildcard(route);
  if (lw && !rw) return under(route, listener.substr(1)) ? std::optional(route) : std::nullopt;
  if (!lw && rw) return under(listener, route.substr(1)) ? std::optional(listener) : std::nullopt;
  if (lw && rw) {
    if (under(route, listener.substr(1))) return route;
    if (under(listener, route.substr(1))) return listener;
  }
  return std::nullopt;
}

// Gateway API precedence's first terms: a matching non-wildcard hostname beats any wildcard,
// then more characters win.
int64_t host_score(const std::string& h) {
  if (h.empty()) return 0;
  int64_t len = std::min<int64_t>(static_cast<int64_t>(h.size()), 253);
  return is_wildcard(h) ? len : 256 + len;
}

std::string authority_regex(const std::string& h) {
  if (is_wildcard(h)) return "(?i).+" + RE2::QuoteMeta(h.substr(1));
  return "(?i)" + RE2::QuoteMeta(h);
}

// Envoy-style header value templates take `%` as a command: Gateway API values are literal.
std::string literal_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    out += c;
    if (c == '%') out += '%';
  }
  return out;
}

// RE2 rewrite strings take `\` as an escape.
std::string rewrite_literal(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Integer percentages of `weights` (largest remainder), summing to 100 when any is positive.
std::vector<uint32_t> percentages(const std::vector<uint64_t>& weights) {
  std::vector<uint32_t> out(weights.size(), 0);
  uint64_t total = 0;
  for (uint64_t w : weights) total += w;
  if (total == 0) return out;
  std::vector<std::pair<uint64_t, size_t>> remainders;
  uint32_t assigned = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    uint64_t scaled = weights[i] * 100;
    out[i] = static_cast<uint32_t>(scaled / total);
    assigned += out[i];
    remainders.push_back({scaled % total, i});
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; assigned < 100 && k < remainders.size(); ++k, ++assigned) {
    ++out[remainders[k].second];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The translation's model.

enum class Proto : uint8_t { kHttp, kHttps, kTls, kTcp };
enum class Family : uint8_t { kHttp, kTls, kTcp };

Family family_of(Proto p) {
  switch (p) {
    case Proto::kHttp:
      return Family::kHttp;
    case Proto::kHttps:
    case Proto::kTls:
      return Family::kTls;
    case Proto::kTcp:
      return Family::kTcp;
  }
  return Family::kHttp;
}

struct Cond {
  bool ok = true;
  std::string reason;
  std::string message;
};

struct GatewayState;

struct ListenerState {
  GatewayState* gw = nullptr;
  std::string name;
  uint16_t port = 0;
  Proto proto = Proto::kHttp;
  std::string hostname;  // lower case; "" = any
  std::string id;        // "<gateway ns>/<gateway>/<listener>"
  std::vector<std::string> kinds;
  enum class From : uint8_t { kSame, kAll, kSelector } from = From::kSame;
  std::string secret_name, secret_namespace;
  Cond accepted{true, "Accepted", "listener accepted"};
  Cond resolved{true, "ResolvedRefs", "all references resolved"};
  bool conflicted = false;
  std::string conflict_reason = "NoConflicts", conflict_message = "no conflicts";
  std::set<const config::Resource*> attached;
  std::vector<std::string> sni;  // TLSRoute names served (TLS listeners)
  bool passthrough = false;      // tls.mode Passthrough: TLSRoutes routed by SNI, not terminated

  bool certificate_ok = true;  // a TLS listener without a usable certificate is not programmed

  bool usable() const { return accepted.ok && certificate_ok && !conflicted; }
};

struct GatewayState {
  const config::Resource* res = nullptr;
  int64_t generation = 0;
  Cond accepted{true, "Accepted", "gateway accepted"};
  std::vector<std::unique_ptr<ListenerState>> listeners;
};

struct Backend {
  bool valid = false;
  std::string service;  // "name.ns:port"
  uint64_t weight = 1;
  bool h2c = false;
  bool websocket = false;
  std::string reason, message;  // ResolvedRefs when invalid
};

enum class PathKind : uint8_t { kElement, kExact, kStringPrefix, kRegex };

struct KeyValue {
  std::string name, value;
  bool regex = false;
};

struct Match {
  PathKind kind = PathKind::kElement;
  std::string path = "/";
  std::vector<KeyValue> headers, query;
  std::string method;
  // Precedence inputs.
  bool exact = false;
  size_t path_length = 1;

  std::string key() const {
    std::string k = std::to_string(static_cast<int>(kind)) + "\x1f" + path + "\x1f" + method;
    std::vector<std::string> parts;
    for (const KeyValue& h : headers)
      parts.push_back("h" + h.name + "\x1e" + h.value + (h.regex ? "~" : ""));
    for (const KeyValue& q : query)
      parts.push_back("q" + q.name + "\x1e" + q.value + (q.regex ? "~" : ""));
    std::sort(parts.begin(), parts.end());
    for (const std::string& p : parts) k += "\x1f" + p;
    return k;
  }
};

struct HeaderEdits {
  std::vector<std::pair<std::string, std::string>> set, add;
  std::vector<std::string> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

struct RedirectSpec {
  std::string scheme, hostname;
  std::optional<int64_t> port;
  std::string path_type, path_value;
  int64_t status = 302;
};

struct RewriteSpec {
  std::string hostname;
  std::string path_type, path_value;
};

struct Rule {
  std::vector<Match> matches;
  HeaderEdits request, response;
  std::optional<RedirectSpec> redirect;
  std::optional<RewriteSpec> rewrite;
  std::optional<Backend> mirror;
  uint32_t mirror_percent = 100;
  std::vector<Backend> backends;
  std::optional<uint32_t> timeout_ms;
};

struct ParsedRoute {
  std::vector<Rule> rules;
  std::vector<std::string> hostnames;  // lower case
  Cond problem;                        // !ok: Accepted=False
  Cond resolved{true, "ResolvedRefs", "all references resolved"};
};

struct Attachment {
  ListenerState* listener = nullptr;
  std::vector<std::string> hosts;  // effective hostnames ("" = the listener's own)
};

// ---------------------------------------------------------------------------------------------

class Translator {
 public:
  Translator(const GatewayInputs& in, Translation& out) : in_(in), out_(out) {
    now_ = in.now.empty() ? kEpoch : in.now;
  }

  void run() {
    classes();
    gateways();
    std::vector<std::pair<const config::Resource*, std::string>> routes;
    for (const auto& [list, kind] :
         {std::pair{&in_.http_routes, "HTTPRoute"}, std::pair{&in_.grpc_routes, "GRPCRoute"},
          std::pair{&in_.tls_routes, "TLSRoute"}, std::pair{&in_.tcp_routes, "TCPRoute"}}) {
      for (const auto& r : *list) {
        if (r) routes.push_back({r.get(), kind});
      }
    }
    // Oldest first: on conflicting matches the oldest route wins (then namespace/name).
    std::stable_sort(routes.begin(), routes.end(),
                     [](const auto& a, const auto& b) { return older(*a.first, *b.first); });
    for (const auto& [r, kind] : routes) route(*r, kind);
    infrastructure();
    gateway_statuses();
  }

 private:
  static std::string created(const config::Resource& r) {
    return scalar(config::child(r.object, "metadata"), "creationTimestamp");
  }
  static bool older(const config::Resource& a, const config::Resource& b) {
    std::string ca = created(a), cb = created(b);
    if (ca != cb) return ca < cb;
    if (a.namespace_ != b.namespace_) return a.namespace_ < b.namespace_;
    return a.name < b.name;
  }
  static int64_t generation(const config::Resource& r) {
    return to_int(scalar(config::child(r.object, "metadata"), "generation")).value_or(0);
  }

  nlohmann::json condition(const std::string& type, bool status, const std::string& reason,
                           const std::string& message, int64_t gen) const {
    return {
        {"type", type},       {"status", status ? "True" : "False"}, {"reason", reason},
        {"message", message}, {"observedGeneration", gen},           {"lastTransitionTime", now_}};
  }

  void report(const config::Resource& r, config::Severity severity, std::string field,
              std::string message) {
    out_.diagnostics.push_back(
        source_diagnostic(r, severity, std::move(field), std::move(message)));
  }

  void emit(const config::Resource& source, const std::string& kind, const std::string& name,
            const std::string& namespace_, const config::Labels& labels, YAML::Node spec) {
    config::Resource r =
        translated_resource(source, kind, name, namespace_, labels, in_.ambassador_id, spec);
    r.source_id = config::kGatewayApiSource;  // the compiler gives these their own Listeners
    out_.resources.push_back(std::move(r));
  }

  // --- GatewayClass ----------------------------------------------------------------------------
  void classes() {
    for (const auto& c : in_.gateway_classes) {
      if (!c || scalar(c->spec, "controllerName") != in_.controller_name) continue;
      our_classes_.insert(c->name);
      int64_t gen = generation(*c);
      std::string message = "handled by " + in_.controller_name;
      if (config::child(c->spec, "parametersRef").IsDefined()) {
        message += "; parametersRef is not used";
      }
      nlohmann::json status = nlohmann::json::object();
      status["conditions"] =
          nlohmann::json::array({condition("Accepted", true, "Accepted", message, gen),
                                 condition("SupportedVersion", true, "SupportedVersion",
                                           "Gateway API v1 resources are supported", gen)});
      nlohmann::json features = nlohmann::json::array();
      for (const char* f : kSupportedFeatures) features.push_back({{"name", f}});
      status["supportedFeatures"] = features;
      StatusUpdate s;
      s.kind = gateway_api_kind("GatewayClass");
      s.name = c->name;
      s.status = std::move(status);
      out_.statuses.push_back(std::move(s));
    }
  }

  // --- Gateway and listeners ---------------------------------------------------------------------
  bool granted(const std::string& from_kind, const std::string& from_ns, const std::string& to_kind,
               const std::string& to_ns, const std::string& to_name) const {
    for (const auto& g : in_.reference_grants) {
      if (!g || g->namespace_ != to_ns) continue;
      bool from_ok = false, to_ok = false;
      const YAML::Node from = config::child(g->spec, "from");
      if (from.IsSequence()) {
        for (const YAML::Node& f : from) {
          if (scalar(f, "group") == kGatewayApiGroup && scalar(f, "kind") == from_kind &&
              scalar(f, "namespace") == from_ns) {
            from_ok = true;
          }
        }
      }
      const YAML::Node to = config::child(g->spec, "to");
      if (to.IsSequence()) {
        for (const YAML::Node& t : to) {
          std::string name = scalar(t, "name");
          if (scalar(t, "group").empty() && scalar(t, "kind") == to_kind &&
              (name.empty() || name == to_name)) {
            to_ok = true;
          }
        }
      }
      if (from_ok && to_ok) return true;
    }
    return false;
  }

  const config::Resource* find(const ObjectList& list, const std::string& ns,
                               const std::string& name) const {
    for (const auto& r : list) {
      if (r && r->namespace_ == ns && r->name == name) return r.get();
    }
    return nullptr;
  }

  void gateways() {
    std::vector<const config::Resource*> ours;
    for (const auto& g : in_.gateways) {
      if (g && our_classes_.count(scalar(g->spec, "gatewayClassName")) != 0)
        ours.push_back(g.get());
    }
    std::stable_sort(
        ours.begin(), ours.end(),
        [](const config::Resource* a, const config::Resource* b) { return older(*a, *b); });
    for (const config::Resource* g : ours) {
      auto state = std::make_unique<GatewayState>();
      state->res = g;
      state->generation = generation(*g);
      const YAML::Node addresses = config::child(g->spec, "addresses");
      if (addresses.IsSequence() && addresses.size() > 0) {
        state->accepted = {false, "UnsupportedAddress",
                           "spec.addresses cannot be honoured: the gateway is reached through its "
                           "own Service"};
        report(*g, config::Severity::kError, "spec.addresses", state->accepted.message);
      }
      const YAML::Node listeners = config::child(g->spec, "listeners");
      if (listeners.IsSequence()) {
        for (size_t i = 0; i < listeners.size(); ++i) {
          state->listeners.push_back(listener(*state, listeners[i], i));
        }
      }
      by_key_[g->namespace_ + "/" + g->name] = state.get();
      gateways_.push_back(std::move(state));
    }
  }

  std::unique_ptr<ListenerState> listener(GatewayState& gw, const YAML::Node& node, size_t index) {
    const config::Resource& g = *gw.res;
    auto l = std::make_unique<ListenerState>();
    l->gw = &gw;
    l->name = scalar(node, "name");
    l->id = g.namespace_ + "/" + g.name + "/" + l->name;
    std::string field = "spec.listeners[" + std::to_string(index) + "]";
    auto fail = [&](Cond& c, std::string reason, std::string message) {
      if (!c.ok) return;
      c = {false, std::move(reason), message};
      report(g, config::Severity::kError, field, "listener " + l->name + ": " + message);
    };
    if (!gw.accepted.ok) fail(l->accepted, "Pending", "the Gateway is not accepted");
    std::optional<int64_t> port = to_int(scalar(node, "port"));
    if (!port || *port < 1 || *port > 65535) {
      fail(l->accepted, "PortUnavailable", "port must be between 1 and 65535");
    } else {
      l->port = static_cast<uint16_t>(*port);
    }
    std::string protocol = scalar(node, "protocol");
    if (protocol == "HTTP") {
      l->proto = Proto::kHttp;
    } else if (protocol == "HTTPS") {
      l->proto = Proto::kHttps;
    } else if (protocol == "TLS") {
      l->proto = Proto::kTls;
    } else if (protocol == "TCP") {
      l->proto = Proto::kTcp;
    } else {
      fail(l->accepted, "UnsupportedProtocol", "protocol " + protocol + " is not supported");
    }
    if (l->proto != Proto::kTcp) l->hostname = lower(scalar(node, "hostname"));

    // Route kinds.
    std::vector<std::string> supported;
    switch (l->proto) {
      case Proto::kHttp:
      case Proto::kHttps:
        supported = {"HTTPRoute", "GRPCRoute"};
        break;
      case Proto::kTls:
        supported = {"TLSRoute"};
        break;
      case Proto::kTcp:
        supported = {"TCPRoute"};
        break;
    }
    const YAML::Node allowed = config::child(node, "allowedRoutes");
    const YAML::Node kinds = config::child(allowed, "kinds");
    if (kinds.IsSequence() && kinds.size() > 0) {
      for (const YAML::Node& k : kinds) {
        std::string group =
            config::child(k, "group").IsDefined() ? scalar(k, "group") : kGatewayApiGroup;
        std::string kind = scalar(k, "kind");
        bool ok = group == kGatewayApiGroup &&
                  std::find(supported.begin(), supported.end(), kind) != supported.end();
        if (ok) {
          if (std::find(l->kinds.begin(), l->kinds.end(), kind) == l->kinds.end())
            l->kinds.push_back(kind);
        } else {
          fail(l->resolved, "InvalidRouteKinds",
               "route kind " + group + "/" + kind + " is not supported on a " + protocol +
                   " listener");
        }
      }
    } else {
      l->kinds = supported;
    }
    std::string from = scalar(config::child(allowed, "namespaces"), "from");
    if (from == "All") {
      l->from = ListenerState::From::kAll;
    } else if (from == "Selector") {
      l->from = ListenerState::From::kSelector;
      report(g, config::Severity::kWarning, field + ".allowedRoutes.namespaces.from",
             "Selector is not supported (Namespaces are not watched): no route attaches");
    }

    // TLS.
    const YAML::Node tls = config::child(node, "tls");
    if (l->proto == Proto::kHttps || l->proto == Proto::kTls) {
      std::string mode = scalar(tls, "mode");
      if (mode.empty()) mode = "Terminate";
      const YAML::Node refs = config::child(tls, "certificateRefs");
      if (mode == "Passthrough" && l->proto == Proto::kTls) {
        // TLSRoutes here are routed by SNI with TLS left to the backends: no certificate.
        l->passthrough = true;
        if (refs.IsSequence() && refs.size() > 0) {
          report(g, config::Severity::kWarning, field + ".tls.certificateRefs",
                 "ignored: a Passthrough listener does not terminate TLS");
        }
      } else if (mode != "Terminate") {
        fail(l->accepted, "UnsupportedValue",
             "tls.mode " + mode + " is not supported on a " + protocol +
                 " listener (Passthrough needs protocol TLS)");
      } else {
        l->certificate_ok = certificate(*l, g, refs, fail);
      }
    }
    if (l->accepted.ok) claim(*l);
    return l;
  }

  template <typename Fail>
  bool certificate(ListenerState& l, const config::Resource& g, const YAML::Node& refs,
                   Fail& fail) {
    if (!refs.IsSequence() || refs.size() == 0) {
      fail(l.resolved, "InvalidCertificateRef", "tls.certificateRefs is required to terminate TLS");
      return false;
    }
    if (refs.size() > 1) {
      report(g, config::Severity::kWarning, "spec.listeners",
             "listener " + l.name + ": only the first certificateRef is used");
    }
    const YAML::Node ref = refs[0];
    std::string group = scalar(ref, "group");
    std::string kind = scalar(ref, "kind");
    if (kind.empty()) kind = "Secret";
    std::string name = scalar(ref, "name");
    std::string ns = scalar(ref, "namespace");
    if (ns.empty()) ns = g.namespace_;
    if (!group.empty() || kind != "Secret") {
      fail(l.resolved, "InvalidCertificateRef", "certificateRef must be a core Secret");
      return false;
    }
    if (ns != g.namespace_ && !granted("Gateway", g.namespace_, "Secret", ns, name)) {
      fail(l.resolved, "RefNotPermitted",
           "no ReferenceGrant in " + ns + " lets Gateways of " + g.namespace_ + " use Secret " +
               name);
      return false;
    }
    if (in_.secrets) {
      const config::Resource* s = find(*in_.secrets, ns, name);
      const YAML::Node data = s ? config::child(s->object, "data") : YAML::Node();
      if (s == nullptr) {
        fail(l.resolved, "InvalidCertificateRef", "Secret " + ns + "/" + name + " does not exist");
        return false;
      }
      if (!config::child(data, "tls.crt").IsDefined() ||
          !config::child(data, "tls.key").IsDefined()) {
        fail(l.resolved, "InvalidCertificateRef",
             "Secret " + ns + "/" + name + " has no tls.crt and tls.key");
        return false;
      }
    }
    l.secret_name = name;
    l.secret_namespace = ns;
    return true;
  }

  // One socket per port: the first listener (oldest Gateway, then listener order) decides the
  // port's protocol family; later ones must fit it and not repeat a hostname.
  void claim(ListenerState& l) {
    auto& owners = ports_[l.port];
    for (ListenerState* o : owners) {
      if (!o->usable()) continue;
      std::string where =
          o->gw == l.gw ? "listener " + o->name : "listener " + o->id + " of another Gateway";
      if (family_of(o->proto) != family_of(l.proto) || l.proto == Proto::kTcp) {
        l.conflicted = true;
        l.conflict_reason = "ProtocolConflict";
        l.conflict_message = "port " + std::to_string(l.port) + " is already used by " + where;
        break;
      }
      if (o->hostname == l.hostname) {
        l.conflicted = true;
        l.conflict_reason = "HostnameConflict";
        l.conflict_message = "hostname \"" + (l.hostname.empty() ? "*" : l.hostname) +
                             "\" on port " + std::to_string(l.port) + " is already used by " +
                             where;
        break;
      }
    }
    if (l.conflicted) {
      report(*l.gw->res, config::Severity::kError, "spec.listeners",
             "listener " + l.name + ": " + l.conflict_message);
      return;
    }
    if (l.certificate_ok) owners.push_back(&l);
  }

  // --- routes ------------------------------------------------------------------------------------
  Backend backend(const config::Resource& r, const std::string& route_kind, const YAML::Node& ref) {
    Backend b;
    std::string group = scalar(ref, "group");
    std::string kind = scalar(ref, "kind");
    if (kind.empty()) kind = "Service";
    std::string name = scalar(ref, "name");
    std::string ns = scalar(ref, "namespace");
    if (ns.empty()) ns = r.namespace_;
    std::string weight = scalar(ref, "weight");
    if (!weight.empty())
      b.weight = static_cast<uint64_t>(std::max<int64_t>(0, to_int(weight).value_or(1)));
    if (!group.empty() || kind != "Service") {
      b.reason = "InvalidKind";
      b.message = "backendRef " + (group.empty() ? "" : group + "/") + kind + " " + name +
                  " is not a Service";
      return b;
    }
    if (ns != r.namespace_ && !granted(route_kind, r.namespace_, "Service", ns, name)) {
      b.reason = "RefNotPermitted";
      b.message = "no ReferenceGrant in " + ns + " lets " + route_kind + "s of " + r.namespace_ +
                  " use Service " + name;
      return b;
    }
    std::string port = scalar(ref, "port");
    const config::Resource* service = find(in_.services, ns, name);
    if (service == nullptr) {
      b.reason = "BackendNotFound";
      b.message = "Service " + ns + "/" + name + " does not exist";
      return b;
    }
    if (port.empty()) {
      b.reason = "BackendNotFound";
      b.message = "backendRef to Service " + ns + "/" + name + " needs a port";
      return b;
    }
    const YAML::Node ports = config::child(service->spec, "ports");
    if (ports.IsSequence() && ports.size() > 0) {
      bool found = false;
      for (const YAML::Node& p : ports) {
        if (scalar(p, "port") != port) continue;
        found = true;
        std::string app = scalar(p, "appProtocol");
        b.h2c = app == "kubernetes.io/h2c";
        b.websocket = app == "kubernetes.io/ws" || app == "kubernetes.io/wss";
      }
      if (!found) {
        b.reason = "BackendNotFound";
        b.message = "Service " + ns + "/" + name + " has no port " + port;
        return b;
      }
    }
    b.valid = true;
    b.service = name + "." + ns + ":" + port;
    return b;
  }

  static void unsupported(ParsedRoute& p, const std::string& reason, const std::string& message) {
    if (p.problem.ok) p.problem = {false, reason, message};
  }
  static void unresolved(ParsedRoute& p, const Backend& b) {
    if (!b.valid && p.resolved.ok) p.resolved = {false, b.reason, b.message};
  }

  void header_edits(ParsedRoute& p, const YAML::Node& node, HeaderEdits& out,
                    const std::string& field) {
    std::set<std::string> seen;
    for (const char* op : {"set", "add"}) {
      const YAML::Node list = config::child(node, op);
      if (!list.IsSequence()) continue;
      for (const YAML::Node& h : list) {
        std::string name = lower(scalar(h, "name"));
        if (name.empty()) continue;
        if (!seen.insert(name).second) {
          unsupported(p, "UnsupportedValue", field + ": header " + name + " is modified twice");
          continue;
        }
        (std::string(op) == "set" ? out.set : out.add).push_back({name, scalar(h, "value")});
      }
    }
    const YAML::Node remove = config::child(node, "remove");
    if (remove.IsSequence()) {
      for (const YAML::Node& h : remove) {
        if (h.IsScalar()) out.remove.push_back(lower(h.Scalar()));
      }
    }
  }

  // HTTPRoute and GRPCRoute header matches (type Exact | RegularExpression; the first of
  // duplicate names wins).
  void header_matches(ParsedRoute& p, const YAML::Node& list, bool lower_names,
                      std::vector<KeyValue>& out, const std::string& field) {
    if (!list.IsSequence()) return;
    for (const YAML::Node& h : list) {
      KeyValue kv;
      kv.name = lower_names ? lower(scalar(h, "name")) : scalar(h, "name");
      kv.value = scalar(h, "value");
      std::string type = scalar(h, "type");
      if (type == "RegularExpression") {
        kv.regex = true;
        RE2 re(kv.value, RE2::Quiet);
        if (!re.ok()) {
          unsupported(p, "UnsupportedValue", field + ": invalid regular expression " + kv.value);
          continue;
        }
      } else if (!type.empty() && type != "Exact") {
        unsupported(p, "UnsupportedValue", field + ": match type " + type + " is not supported");
        continue;
      }
      if (kv.name.empty()) continue;
      bool dup = std::any_of(out.begin(), out.end(), [&](const KeyValue& o) {
        return lower_names ? o.name == kv.name : o.name == kv.name;
      });
      if (!dup) out.push_back(std::move(kv));
    }
  }

  ParsedRoute parse(const config::Resource& r, const std::string& kind) {
    ParsedRoute p;
    const YAML::Node hostnames = config::child(r.spec, "hostnames");
    if (hostnames.IsSequence()) {
      for (const YAML::Node& h : hostnames) {
        if (h.IsScalar() && !h.Scalar().empty()) p.hostnames.push_back(lower(h.Scalar()));
      }
    }
    const YAML::Node rules = config::child(r.spec, "rules");
    if (!rules.IsSequence()) return p;
    for (size_t i = 0; i < rules.size(); ++i) {
      const YAML::Node rule = rules[i];
      std::string field = "spec.rules[" + std::to_string(i) + "]";
      Rule out;
      if (kind == "HTTPRoute") {
        http_rule(p, rule, field, out);
      } else if (kind == "GRPCRoute") {
        grpc_rule(p, rule, field, out);
      }
      const YAML::Node refs = config::child(rule, "backendRefs");
      if (refs.IsSequence()) {
        for (const YAML::Node& ref : refs) {
          Backend b = backend(r, kind, ref);
          unresolved(p, b);
          const YAML::Node filters = config::child(ref, "filters");
          if (filters.IsSequence() && filters.size() > 0) {
            unsupported(p, "UnsupportedValue", field + ": backendRefs[].filters are not supported");
          }
          out.backends.push_back(std::move(b));
        }
      }
      if (out.mirror) unresolved(p, *out.mirror);
      p.rules.push_back(std::move(out));
    }
    if (!p.problem.ok) report(r, config::Severity::kError, "spec", p.problem.message);
    return p;
  }

  void http_rule(ParsedRoute& p, const YAML::Node& rule, const std::string& field, Rule& out) {
    const YAML::Node matches = config::child(rule, "matches");
    if (matches.IsSequence() && matches.size() > 0) {
      for (size_t j = 0; j < matches.size(); ++j) {
        const YAML::Node m = matches[j];
        std::string mfield = field + ".matches[" + std::to_string(j) + "]";
        Match match;
        const YAML::Node path = config::child(m, "path");
        std::string type = scalar(path, "type");
        std::string value = scalar(path, "value");
        if (value.empty()) value = "/";
        if (type.empty() || type == "PathPrefix") {
          match.kind = PathKind::kElement;
          while (value.size() > 1 && value.back() == '/') value.pop_back();
        } else if (type == "Exact") {
          match.kind = PathKind::kExact;
          match.exact = true;
        } else if (type == "RegularExpression") {
          match.kind = PathKind::kRegex;
          RE2 re(value, RE2::Quiet);
          if (!re.ok())
            unsupported(p, "UnsupportedValue", mfield + ".path: invalid regular expression");
        } else {
          unsupported(p, "UnsupportedValue", mfield + ".path.type " + type + " is not supported");
        }
        if (match.kind != PathKind::kRegex && value.front() != '/') {
          unsupported(p, "UnsupportedValue", mfield + ".path.value must start with /");
        }
        match.path = value;
        match.path_length = value.size();
        header_matches(p, config::child(m, "headers"), true, match.headers, mfield + ".headers");
        header_matches(p, config::child(m, "queryParams"), false, match.query,
                       mfield + ".queryParams");
        match.method = scalar(m, "method");
        out.matches.push_back(std::move(match));
      }
    } else {
      out.matches.push_back(Match{});
    }

    translate_filters(p, rule, field, "HTTPRoute", out);
    if (out.redirect && out.rewrite) {
      unsupported(p, "IncompatibleFilters",
                  field + ": RequestRedirect and URLRewrite cannot be used together");
    }
    for (const auto* spec : {out.redirect ? &out.redirect->path_type : nullptr,
                             out.rewrite ? &out.rewrite->path_type : nullptr}) {
      if (spec == nullptr || spec->empty()) continue;
      if (*spec != "ReplaceFullPath" && *spec != "ReplacePrefixMatch") {
        unsupported(p, "UnsupportedValue",
                    field + ": path modifier " + *spec + " is not supported");
      } else if (*spec == "ReplacePrefixMatch") {
        for (const Match& m : out.matches) {
          if (m.kind == PathKind::kRegex) {
            unsupported(p, "UnsupportedValue",
                        field +
                            ": ReplacePrefixMatch needs a PathPrefix match, not a regular "
                            "expression");
          }
        }
      }
    }
    const YAML::Node timeouts = config::child(rule, "timeouts");
    if (timeouts.IsDefined()) {
      std::string request = scalar(timeouts, "request");
      std::string backend = scalar(timeouts, "backendRequest");
      // Without retries the backend timeout bounds the whole request as well.
      std::string chosen = !request.empty() ? request : backend;
      if (!chosen.empty()) {
        std::optional<uint64_t> ms = parse_duration(chosen);
        if (!ms) {
          unsupported(p, "UnsupportedValue",
                      field + ".timeouts: \"" + chosen + "\" is not a Duration");
        } else {
          out.timeout_ms = static_cast<uint32_t>(std::min<uint64_t>(*ms, UINT32_MAX));
        }
      }
    }
  }

  // A rule's filters. Both kinds take the header modifiers and RequestMirror; redirects and
  // rewrites are HTTPRoute's alone, so on a GRPCRoute they are reported like any unknown type.
  void translate_filters(ParsedRoute& p, const YAML::Node& rule, const std::string& field,
                         const std::string& kind, Rule& out) {
    const YAML::Node filters = config::child(rule, "filters");
    if (!filters.IsSequence()) return;
    const bool http = kind == "HTTPRoute";
    for (size_t k = 0; k < filters.size(); ++k) {
      const YAML::Node f = filters[k];
      std::string ffield = field + ".filters[" + std::to_string(k) + "]";
      std::string type = scalar(f, "type");
      if (type == "RequestHeaderModifier") {
        header_edits(p, config::child(f, "requestHeaderModifier"), out.request, ffield);
      } else if (type == "ResponseHeaderModifier") {
        header_edits(p, config::child(f, "responseHeaderModifier"), out.response, ffield);
      } else if (type == "RequestMirror") {
        mirror(p, f, ffield, out);
      } else if (http && type == "RequestRedirect") {
        out.redirect = redirect_spec(p, config::child(f, "requestRedirect"), ffield);
      } else if (http && type == "URLRewrite") {
        const YAML::Node ur = config::child(f, "urlRewrite");
        RewriteSpec spec;
        spec.hostname = scalar(ur, "hostname");
        path_modifier(config::child(ur, "path"), spec.path_type, spec.path_value);
        out.rewrite = spec;
      } else {
        unsupported(p, "UnsupportedValue", ffield + ": filter type " + type + " is not supported");
      }
    }
  }

  static RedirectSpec redirect_spec(ParsedRoute& p, const YAML::Node& rr,
                                    const std::string& field) {
    RedirectSpec spec;
    spec.scheme = scalar(rr, "scheme");
    spec.hostname = scalar(rr, "hostname");
    if (auto port = to_int(scalar(rr, "port"))) spec.port = *port;
    path_modifier(config::child(rr, "path"), spec.path_type, spec.path_value);
    if (auto code = to_int(scalar(rr, "statusCode"))) spec.status = *code;
    if (spec.scheme != "" && spec.scheme != "http" && spec.scheme != "https") {
      unsupported(p, "UnsupportedValue", field + ": scheme " + spec.scheme + " is not supported");
    }
    if (spec.status != 301 && spec.status != 302 && spec.status != 303 && spec.status != 307 &&
        spec.status != 308) {
      unsupported(p, "UnsupportedValue",
                  field + ": statusCode " + std::to_string(spec.status) + " is not supported");
    }
    return spec;
  }

  // An HTTPPathModifier; its type is checked against the rule's matches by the caller.
  static void path_modifier(const YAML::Node& path, std::string& type, std::string& value) {
    type = scalar(path, "type");
    value = type == "ReplaceFullPath" ? scalar(path, "replaceFullPath")
                                      : scalar(path, "replacePrefixMatch");
  }

  void mirror(ParsedRoute& p, const YAML::Node& f, const std::string& field, Rule& out) {
    if (out.mirror) {
      unsupported(p, "UnsupportedValue", field + ": only one RequestMirror per rule is supported");
      return;
    }
    const YAML::Node rm = config::child(f, "requestMirror");
    out.mirror = backend(*current_, current_kind_, config::child(rm, "backendRef"));
    if (auto percent = to_int(scalar(rm, "percent"))) {
      out.mirror_percent = static_cast<uint32_t>(std::clamp<int64_t>(*percent, 0, 100));
    } else if (config::child(rm, "fraction").IsDefined()) {
      const YAML::Node fr = config::child(rm, "fraction");
      int64_t num = to_int(scalar(fr, "numerator")).value_or(0);
      int64_t den = to_int(scalar(fr, "denominator")).value_or(100);
      if (den <= 0) den = 100;
      out.mirror_percent =
          static_cast<uint32_t>(std::clamp<int64_t>((num * 100 + den / 2) / den, 0, 100));
    }
  }

  void grpc_rule(ParsedRoute& p, const YAML::Node& rule, const std::string& field, Rule& out) {
    const YAML::Node matches = config::child(rule, "matches");
    if (matches.IsSequence() && matches.size() > 0) {
      for (size_t j = 0; j < matches.size(); ++j) {
        const YAML::Node m = matches[j];
        std::string mfield = field + ".matches[" + std::to_string(j) + "]";
        Match match;
        const YAML::Node method = config::child(m, "method");
        std::string type = scalar(method, "type");
        std::string service = scalar(method, "service");
        std::string name = scalar(method, "method");
        if (type.empty() || type == "Exact") {
          if (!service.empty() && !name.empty()) {
            match.kind = PathKind::kExact;
            match.path = "/" + service + "/" + name;
            match.exact = true;
          } else if (!service.empty()) {
            match.kind = PathKind::kStringPrefix;
            match.path = "/" + service + "/";
          } else if (!name.empty()) {
            match.kind = PathKind::kRegex;
            match.path = "/[^/]+/" + RE2::QuoteMeta(name);
          } else {
            match.kind = PathKind::kStringPrefix;
            match.path = "/";
          }
        } else if (type == "RegularExpression") {
          match.kind = PathKind::kRegex;
          match.path = "/(" + (service.empty() ? std::string("[^/]+") : service) + ")/(" +
                       (name.empty() ? std::string("[^/]+") : name) + ")";
          RE2 re(match.path, RE2::Quiet);
          if (!re.ok())
            unsupported(p, "UnsupportedValue", mfield + ".method: invalid regular expression");
        } else {
          unsupported(p, "UnsupportedValue", mfield + ".method.type " + type + " is not supported");
        }
        match.path_length = service.size() + name.size();
        header_matches(p, config::child(m, "headers"), true, match.headers, mfield + ".headers");
        out.matches.push_back(std::move(match));
      }
    } else {
      Match all;
      all.kind = PathKind::kStringPrefix;
      all.path = "/";
      all.path_length = 0;
      out.matches.push_back(std::move(all));
    }
    translate_filters(p, rule, field, "GRPCRoute", out);
  }

  // Where one parentRef attaches, or why it does not.
  struct ParentResult {
    std::vector<Attachment> attachments;
    Cond accepted;
  };

  ParentResult attach(const config::Resource& r, const std::string& kind, const ParsedRoute& p,
                      GatewayState& gw, const YAML::Node& ref) {
    ParentResult out;
    std::string section = scalar(ref, "sectionName");
    std::string port = scalar(ref, "port");
    if (!gw.accepted.ok) {
      out.accepted = {false, "NoMatchingParent", "Gateway is not accepted: " + gw.accepted.message};
      return out;
    }
    int stage = 0;  // how far the best listener got: 1 section/port, 2 kind+namespace
    std::string why;
    for (auto& lp : gw.listeners) {
      ListenerState& l = *lp;
      if (!section.empty() && l.name != section) continue;
      if (!port.empty() && std::to_string(l.port) != port) continue;
      if (!l.usable()) {
        if (why.empty()) why = "listener " + l.name + " is not ready";
        continue;
      }
      stage = std::max(stage, 1);
      if (std::find(l.kinds.begin(), l.kinds.end(), kind) == l.kinds.end()) {
        why = "listener " + l.name + " does not allow " + kind;
        continue;
      }
      if (l.from == ListenerState::From::kSelector) {
        why = "listener " + l.name +
              " selects namespaces by label, which is not supported (Namespaces are not watched)";
        continue;
      }
      if (l.from == ListenerState::From::kSame && r.namespace_ != gw.res->namespace_) {
        why = "listener " + l.name + " only allows routes from namespace " + gw.res->namespace_;
        continue;
      }
      stage = 2;
      Attachment a;
      a.listener = &l;
      if (kind == "TCPRoute") {
        a.hosts.push_back("");
      } else if (p.hostnames.empty()) {
        a.hosts.push_back(l.hostname);
      } else {
        for (const std::string& h : p.hostnames) {
          std::optional<std::string> e = intersect(l.hostname, h);
          if (e && std::find(a.hosts.begin(), a.hosts.end(), *e) == a.hosts.end()) {
            a.hosts.push_back(*e);
          }
        }
      }
      if (a.hosts.empty()) continue;
      out.attachments.push_back(std::move(a));
    }
    if (!out.attachments.empty()) {
      out.accepted = {true, "Accepted", "accepted"};
    } else if (stage == 2) {
      out.accepted = {false, "NoMatchingListenerHostname",
                      "no listener hostname intersects the route's hostnames"};
    } else if (stage == 1) {
      out.accepted = {false, "NotAllowedByListeners", why};
    } else {
      out.accepted = {false, "NoMatchingParent",
                      why.empty() ? "no listener matches sectionName/port" : why};
    }
    return out;
  }

  void route(const config::Resource& r, const std::string& kind) {
    current_ = &r;
    current_kind_ = kind;
    int64_t gen = generation(r);
    ParsedRoute parsed;
    bool parsed_once = false;
    nlohmann::json parents = nlohmann::json::array();
    const YAML::Node refs = config::child(r.spec, "parentRefs");
    if (refs.IsSequence()) {
      for (const YAML::Node& ref : refs) {
        std::string group =
            config::child(ref, "group").IsDefined() ? scalar(ref, "group") : kGatewayApiGroup;
        std::string ref_kind = scalar(ref, "kind");
        if (group != kGatewayApiGroup || (!ref_kind.empty() && ref_kind != "Gateway")) continue;
        std::string ns = scalar(ref, "namespace");
        if (ns.empty()) ns = r.namespace_;
        auto it = by_key_.find(ns + "/" + scalar(ref, "name"));
        if (it == by_key_.end()) continue;  // not one of our Gateways
        if (!parsed_once) {
          parsed = parse(r, kind);
          parsed_once = true;
        }
        ParentResult pr = attach(r, kind, parsed, *it->second, ref);
        for (const Attachment& a : pr.attachments) a.listener->attached.insert(&r);
        Cond accepted = pr.accepted;
        if (accepted.ok && !parsed.problem.ok) accepted = parsed.problem;
        if (accepted.ok) {
          for (const Attachment& a : pr.attachments) {
            Cond e = kind == "HTTPRoute" || kind == "GRPCRoute" ? emit_http(r, kind, parsed, a)
                                                                : emit_tcp(r, kind, parsed, a);
            if (accepted.ok && !e.ok) accepted = e;
          }
          if (!accepted.ok) report(r, config::Severity::kError, "spec", accepted.message);
        }
        nlohmann::json entry = nlohmann::json::object();
        entry["parentRef"] = to_json(ref);
        entry["controllerName"] = in_.controller_name;
        entry["conditions"] = nlohmann::json::array(
            {condition("Accepted", accepted.ok, accepted.reason, accepted.message, gen),
             condition("ResolvedRefs", parsed.resolved.ok, parsed.resolved.reason,
                       parsed.resolved.message, gen)});
        parents.push_back(std::move(entry));
      }
    }
    if (parents.empty() && !has_our_entries(r)) return;
    StatusUpdate s;
    s.kind = gateway_api_kind(kind);
    s.namespace_ = r.namespace_;
    s.name = r.name;
    s.status = {{"parents", std::move(parents)}};
    s.parents_controller = in_.controller_name;
    out_.statuses.push_back(std::move(s));
  }

  // The route's stored status still has entries of ours (a parentRef was removed): they must go.
  bool has_our_entries(const config::Resource& r) const {
    const YAML::Node parents = config::child(config::child(r.object, "status"), "parents");
    if (!parents.IsSequence()) return false;
    for (const YAML::Node& p : parents) {
      if (scalar(p, "controllerName") == in_.controller_name) return true;
    }
    return false;
  }

  static std::string prefix_replacement(const std::string& value, bool matched_ends_with_slash) {
    std::string v = value.empty() ? "/" : value;
    if (matched_ends_with_slash && v.back() != '/') v += '/';
    return v;
  }

  // Mappings for one route on one listener, and whether the route can be accepted there.
  Cond emit_http(const config::Resource& r, const std::string& kind, const ParsedRoute& p,
                 const Attachment& a) {
    const ListenerState& l = *a.listener;
    const bool grpc = kind == "GRPCRoute";
    Cond result{true, "Accepted", "accepted"};
    std::string kind_prefix = grpc ? "grpcroute-" : "httproute-";
    std::string listener_key = l.gw->res->namespace_ + "." + l.gw->res->name + "." + l.name;
    for (size_t hi = 0; hi < a.hosts.size(); ++hi) {
      const std::string& host = a.hosts[hi];
      for (size_t i = 0; i < p.rules.size(); ++i) {
        const Rule& rule = p.rules[i];
        for (size_t j = 0; j < rule.matches.size(); ++j) {
          const Match& m = rule.matches[j];
          if (!claimed_.insert(l.id + "\x1f" + host + "\x1f" + m.key()).second) continue;
          std::string base = kind_prefix + r.name + "-" + listener_key + "-r" + std::to_string(i) +
                             "-m" + std::to_string(j) +
                             (a.hosts.size() > 1 ? "-h" + std::to_string(hi) : "");
          int64_t precedence = (host_score(host) << 22) | (int64_t(m.exact) << 21) |
                               (int64_t(std::min<size_t>(m.path_length, 1023)) << 11) |
                               (int64_t(!m.method.empty()) << 10) |
                               (int64_t(std::min<size_t>(m.headers.size(), 31)) << 5) |
                               int64_t(std::min<size_t>(m.query.size(), 31));
          struct Half {
            std::string suffix, prefix;
            bool exact = false, regex = false;
          };
          std::vector<Half> halves;
          switch (m.kind) {
            case PathKind::kElement:
              if (m.path == "/") {
                halves.push_back({"", "/", false, false});
              } else {
                halves.push_back({"", m.path, true, false});
                halves.push_back({"-sub", m.path + "/", false, false});
              }
              break;
            case PathKind::kExact:
              halves.push_back({"", m.path, true, false});
              break;
            case PathKind::kStringPrefix:
              halves.push_back({"", m.path, false, false});
              break;
            case PathKind::kRegex:
              halves.push_back({"", m.path, false, true});
              break;
          }
          for (const Half& half : halves) {
            YAML::Node match = map_node();
            match["prefix"] = text(half.prefix);
            if (half.exact) match["prefix_exact"] = true;
            if (half.regex) match["prefix_regex"] = true;
            match["precedence"] = precedence;
            if (!m.method.empty()) match["method"] = text(m.method);
            YAML::Node headers = map_node(), regex_headers = map_node();
            for (const KeyValue& h : m.headers)
              (h.regex ? regex_headers : headers)[h.name] = text(h.value);
            if (!host.empty() && host != l.hostname)
              regex_headers[":authority"] = text(authority_regex(host));
            if (headers.size() > 0) match["headers"] = headers;
            if (regex_headers.size() > 0) match["regex_headers"] = regex_headers;
            YAML::Node query = map_node(), regex_query = map_node();
            for (const KeyValue& q : m.query)
              (q.regex ? regex_query : query)[q.name] = text(q.value);
            if (query.size() > 0) match["query_parameters"] = query;
            if (regex_query.size() > 0) match["regex_query_parameters"] = regex_query;
            config::Labels labels = {{kGatewayListenerLabel, l.id}};
            std::string name = base + half.suffix;
            const bool prefix_slash = !half.exact && !half.regex && half.prefix.back() == '/';

            if (rule.redirect) {
              std::string e = redirect(r, l, host, *rule.redirect, half.exact, prefix_slash, name,
                                       labels, YAML::Clone(match));
              if (result.ok && !e.empty()) result = {false, "UnsupportedValue", e};
              continue;
            }
            // An invalid backendRef keeps its share of the traffic, answered with 500; so is
            // all of it when no backendRef carries weight (the Gateway API's rule).
            std::vector<uint64_t> weights;
            for (const Backend& b : rule.backends) weights.push_back(b.weight);
            std::vector<uint32_t> shares = percentages(weights);
            const bool split =
                std::count_if(shares.begin(), shares.end(), [](uint32_t x) { return x > 0; }) > 1;
            bool members = false;
            auto answer_500 = [&](const std::string& member, uint32_t share) {
              YAML::Node spec = YAML::Clone(match);
              spec["direct_response_code"] = kNoBackendStatus;
              if (split) spec["weight"] = share;
              emit(r, "Mapping", member, r.namespace_, labels, spec);
            };
            if (std::all_of(shares.begin(), shares.end(), [](uint32_t x) { return x == 0; })) {
              answer_500(name + "-nobackend", 100);
            }
            for (size_t b = 0; b < rule.backends.size(); ++b) {
              const Backend& be = rule.backends[b];
              if (shares[b] == 0) continue;
              if (!be.valid) {
                answer_500(name + "-b" + std::to_string(b), shares[b]);
                continue;
              }
              YAML::Node spec = YAML::Clone(match);
              spec["service"] = text(be.service);
              if (split) spec["weight"] = shares[b];
              if (grpc || be.h2c) spec["grpc"] = true;
              if (be.websocket) {
                YAML::Node up(YAML::NodeType::Sequence);
                up.push_back(text("websocket"));
                spec["allow_upgrade"] = up;
              }
              rewrite(rule, half.exact || half.regex, prefix_slash, spec);
              edits(rule.request, spec, "add_request_headers", "remove_request_headers");
              edits(rule.response, spec, "add_response_headers", "remove_response_headers");
              if (rule.timeout_ms) spec["timeout_ms"] = *rule.timeout_ms;
              emit(r, "Mapping", name + "-b" + std::to_string(b), r.namespace_, labels, spec);
              members = true;
            }
            if (members && rule.mirror && rule.mirror->valid) {
              YAML::Node spec = YAML::Clone(match);
              spec["service"] = text(rule.mirror->service);
              spec["shadow"] = true;
              spec["rewrite"] = text("");
              if (rule.mirror_percent != 100) spec["weight"] = rule.mirror_percent;
              if (grpc || rule.mirror->h2c) spec["grpc"] = true;
              emit(r, "Mapping", name + "-mirror", r.namespace_, labels, spec);
            }
          }
        }
      }
    }
    return result;
  }

  static void rewrite(const Rule& rule, bool whole_path, bool prefix_slash, YAML::Node& spec) {
    if (rule.rewrite && !rule.rewrite->hostname.empty()) {
      spec["host_rewrite"] = text(rule.rewrite->hostname);
    }
    if (!rule.rewrite || rule.rewrite->path_type.empty()) {
      spec["rewrite"] = text("");
      return;
    }
    const std::string& value = rule.rewrite->path_value;
    if (rule.rewrite->path_type == "ReplaceFullPath") {
      YAML::Node re = map_node();
      re["pattern"] = text("^.*$");
      re["substitution"] = text(rewrite_literal(value.empty() ? "/" : value));
      spec["regex_rewrite"] = re;
      return;
    }
    // ReplacePrefixMatch: an exact (or regex) route swaps its whole path; a prefix route swaps
    // the matched prefix, which ends with / when it is an element-wise prefix.
    spec["rewrite"] =
        text(whole_path ? (value.empty() ? "/" : value) : prefix_replacement(value, prefix_slash));
  }

  static void edits(const HeaderEdits& e, YAML::Node& spec, const char* add_key,
                    const char* remove_key) {
    if (!e.set.empty() || !e.add.empty()) {
      YAML::Node add = map_node();
      for (const auto& [name, value] : e.set) {
        YAML::Node v = map_node();
        v["value"] = text(literal_value(value));
        v["append"] = false;
        add[name] = v;
      }
      for (const auto& [name, value] : e.add) {
        YAML::Node v = map_node();
        v["value"] = text(literal_value(value));
        v["append"] = true;
        add[name] = v;
      }
      spec[add_key] = add;
    }
    if (!e.remove.empty()) {
      YAML::Node remove(YAML::NodeType::Sequence);
      for (const std::string& h : e.remove) remove.push_back(text(h));
      spec[remove_key] = remove;
    }
  }

  std::string redirect(const config::Resource& r, const ListenerState& l, const std::string& host,
                       const RedirectSpec& rd, bool whole_path, bool prefix_slash,
                       const std::string& name, const config::Labels& labels, YAML::Node spec) {
    std::string target = rd.hostname;
    if (target.empty()) {
      std::string known = !host.empty() ? host : l.hostname;
      if (known.empty() || is_wildcard(known)) {
        return "RequestRedirect without hostname needs the route or listener " + l.name +
               " to name one exact hostname (keeping the request's host is not supported)";
      }
      target = known;
    }
    bool https_listener = l.proto == Proto::kHttps;
    if (rd.scheme == "http" && https_listener) {
      return "RequestRedirect to scheme http from HTTPS listener " + l.name + " is not supported";
    }
    std::string scheme = !rd.scheme.empty() ? rd.scheme : (https_listener ? "https" : "http");
    int64_t port =
        rd.port ? *rd.port : (!rd.scheme.empty() ? (scheme == "https" ? 443 : 80) : l.port);
    bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
    std::string service = (scheme == "https" ? "https://" : "") + target +
                          (default_port ? "" : ":" + std::to_string(port));
    spec["service"] = text(service);
    spec["host_redirect"] = true;
    spec["redirect_response_code"] = rd.status;
    if (rd.path_type == "ReplaceFullPath") {
      spec["path_redirect"] = text(rd.path_value.empty() ? "/" : rd.path_value);
    } else if (rd.path_type == "ReplacePrefixMatch") {
      if (whole_path) {
        spec["path_redirect"] = text(rd.path_value.empty() ? "/" : rd.path_value);
      } else {
        spec["prefix_redirect"] = text(prefix_replacement(rd.path_value, prefix_slash));
      }
    }
    emit(r, "Mapping", name + "-redirect", r.namespace_, labels, spec);
    return "";
  }

  // TCPMappings for a TLSRoute or TCPRoute on one listener.
  Cond emit_tcp(const config::Resource& r, const std::string& kind, const ParsedRoute& p,
                const Attachment& a) {
    ListenerState& l = *a.listener;
    std::vector<Backend> backends;
    for (const Rule& rule : p.rules) {
      for (const Backend& b : rule.backends) backends.push_back(b);
    }
    std::vector<uint64_t> weights;
    for (const Backend& b : backends) weights.push_back(b.valid ? b.weight : 0);
    std::vector<uint32_t> shares = percentages(weights);
    const bool split =
        std::count_if(shares.begin(), shares.end(), [](uint32_t x) { return x > 0; }) > 1;
    std::string listener_key = l.gw->res->namespace_ + "." + l.gw->res->name + "." + l.name;
    std::string taken;
    size_t served = 0;
    for (size_t hi = 0; hi < a.hosts.size(); ++hi) {
      std::string sni = kind == "TLSRoute" ? (a.hosts[hi].empty() ? "*" : a.hosts[hi]) : "";
      std::string key = "tcp\x1f" + std::to_string(l.port) + "\x1f" + sni;
      auto [it, inserted] = tcp_claims_.emplace(key, r.key());
      if (!inserted) {
        if (it->second != r.key()) taken = it->second;
        continue;
      }
      ++served;
      if (!sni.empty() && !l.passthrough) l.sni.push_back(sni);
      for (size_t b = 0; b < backends.size(); ++b) {
        if (!backends[b].valid || shares[b] == 0) continue;
        YAML::Node spec = map_node();
        spec["port"] = static_cast<int>(l.port);
        if (!sni.empty()) spec["host"] = text(sni);
        if (!sni.empty() && l.passthrough) spec["tls_passthrough"] = true;
        spec["service"] = text(backends[b].service);
        if (split) spec["weight"] = shares[b];
        std::string name = lower(kind) + "-" + r.name + "-" + listener_key +
                           (a.hosts.size() > 1 ? "-h" + std::to_string(hi) : "") + "-b" +
                           std::to_string(b);
        emit(r, "TCPMapping", name, r.namespace_, {}, spec);
      }
    }
    if (served == 0 && !taken.empty()) {
      return {false, "NotAllowedByListeners",
              "listener " + l.name + " already routes " +
                  (kind == "TLSRoute" ? std::string("these hostnames") : std::string("its port")) +
                  " for " + taken};
    }
    return {true, "Accepted", "accepted"};
  }

  // --- Listeners, Hosts, TLSContexts -------------------------------------------------------------
  void infrastructure() {
    for (auto& [port, owners] : ports_) {
      std::vector<ListenerState*> live;
      for (ListenerState* l : owners) {
        if (l->usable()) live.push_back(l);
      }
      if (live.empty()) continue;
      const ListenerState& first = *live.front();
      const config::Resource& owner = *first.gw->res;
      bool any_https = std::any_of(live.begin(), live.end(), [](const ListenerState* l) {
        return l->proto == Proto::kHttps;
      });
      std::string protocol, model;
      switch (family_of(first.proto)) {
        case Family::kHttp:
          protocol = "HTTP";
          model = "INSECURE";
          break;
        case Family::kTls:
          protocol = any_https ? "HTTPS" : "TLS";
          model = "SECURE";
          break;
        case Family::kTcp:
          protocol = "TCP";
          model = "SECURE";
          break;
      }
      YAML::Node spec = map_node();
      spec["port"] = static_cast<int>(port);
      spec["protocol"] = text(protocol);
      spec["securityModel"] = text(model);
      YAML::Node binding = map_node();
      YAML::Node ns = map_node();
      ns["from"] = text("ALL");
      binding["namespace"] = ns;
      YAML::Node selector = map_node();
      YAML::Node labels = map_node();
      labels[kGatewayPortLabel] = text(std::to_string(port));
      selector["matchLabels"] = labels;
      binding["selector"] = selector;
      spec["hostBinding"] = binding;
      emit(owner, "Listener", "gateway-" + owner.name + "-" + std::to_string(port),
           owner.namespace_, {}, spec);

      for (ListenerState* l : live) {
        const config::Resource& g = *l->gw->res;
        std::string name = "gateway-" + g.name + "-" + l->name;
        if (l->proto == Proto::kHttp || l->proto == Proto::kHttps) {
          YAML::Node h = map_node();
          h["hostname"] = text(l->hostname.empty() ? "*" : l->hostname);
          YAML::Node ms = map_node();
          YAML::Node ml = map_node();
          ml[kGatewayListenerLabel] = text(l->id);
          ms["matchLabels"] = ml;
          h["mappingSelector"] = ms;
          YAML::Node policy = map_node();
          YAML::Node insecure = map_node();
          insecure["action"] = text("Route");
          policy["insecure"] = insecure;
          h["requestPolicy"] = policy;
          if (l->proto == Proto::kHttps) {
            YAML::Node secret = map_node();
            secret["name"] = text(l->secret_name);
            secret["namespace"] = text(l->secret_namespace);
            h["tlsSecret"] = secret;
          }
          emit(g, "Host", name, g.namespace_, {{kGatewayPortLabel, std::to_string(port)}}, h);
        } else if (l->proto == Proto::kTls && !l->sni.empty()) {
          YAML::Node c = map_node();
          YAML::Node hosts(YAML::NodeType::Sequence);
          for (const std::string& s : l->sni) hosts.push_back(text(s));
          c["hosts"] = hosts;
          if (l->secret_namespace == g.namespace_) {
            c["secret"] = text(l->secret_name);
            c["secret_namespacing"] = false;
          } else {
            c["secret"] = text(l->secret_name + "." + l->secret_namespace);
          }
          emit(g, "TLSContext", name, g.namespace_, {}, c);
        }
      }
    }
  }

  // --- Gateway status ----------------------------------------------------------------------------
  void gateway_statuses() {
    nlohmann::json addresses = nlohmann::json::array();
    if (in_.load_balancer.is_object() && in_.load_balancer.contains("ingress") &&
        in_.load_balancer["ingress"].is_array()) {
      for (const auto& i : in_.load_balancer["ingress"]) {
        if (i.contains("ip") && i["ip"].is_string()) {
          addresses.push_back({{"type", "IPAddress"}, {"value", i["ip"]}});
        } else if (i.contains("hostname") && i["hostname"].is_string()) {
          addresses.push_back({{"type", "Hostname"}, {"value", i["hostname"]}});
        }
      }
    }
    for (const auto& gw : gateways_) {
      const config::Resource& g = *gw->res;
      int64_t gen = gw->generation;
      nlohmann::json listeners = nlohmann::json::array();
      size_t valid = 0;
      for (const auto& lp : gw->listeners) {
        const ListenerState& l = *lp;
        bool programmed = gw->accepted.ok && l.usable();
        if (programmed) ++valid;
        nlohmann::json kinds = nlohmann::json::array();
        for (const std::string& k : l.kinds)
          kinds.push_back({{"group", kGatewayApiGroup}, {"kind", k}});
        Cond accepted = l.accepted;
        if (accepted.ok && l.conflicted) {
          accepted = {false, "PortUnavailable", l.conflict_message};
        }
        std::string not_programmed = !accepted.ok     ? accepted.message
                                     : !l.resolved.ok ? l.resolved.message
                                                      : l.conflict_message;
        listeners.push_back(
            {{"name", l.name},
             {"supportedKinds", kinds},
             {"attachedRoutes", l.attached.size()},
             {"conditions",
              nlohmann::json::array(
                  {condition("Accepted", accepted.ok, accepted.reason, accepted.message, gen),
                   condition("ResolvedRefs", l.resolved.ok, l.resolved.reason, l.resolved.message,
                             gen),
                   condition("Conflicted", l.conflicted, l.conflict_reason, l.conflict_message,
                             gen),
                   condition("Programmed", programmed, programmed ? "Programmed" : "Invalid",
                             programmed ? "listener programmed" : not_programmed, gen)})}});
      }
      Cond accepted = gw->accepted;
      if (accepted.ok && valid < gw->listeners.size()) {
        accepted = {valid > 0, "ListenersNotValid",
                    std::to_string(gw->listeners.size() - valid) + " of " +
                        std::to_string(gw->listeners.size()) + " listeners are not valid"};
      }
      bool programmed = gw->accepted.ok && valid > 0;
      nlohmann::json status = nlohmann::json::object();
      if (!addresses.empty()) status["addresses"] = addresses;
      status["conditions"] = nlohmann::json::array(
          {condition("Accepted", accepted.ok, accepted.reason, accepted.message, gen),
           condition("Programmed", programmed, programmed ? "Programmed" : "Invalid",
                     programmed ? "gateway programmed" : "no listener is programmed", gen)});
      status["listeners"] = listeners;
      StatusUpdate s;
      s.kind = gateway_api_kind("Gateway");
      s.namespace_ = g.namespace_;
      s.name = g.name;
      s.status = std::move(status);
      out_.statuses.push_back(std::move(s));
    }
  }

  const GatewayInputs& in_;
  Translation& out_;
  std::string now_;
  std::set<std::string> our_classes_;
  std::vector<std::unique_ptr<GatewayState>> gateways_;
  std::map<std::string, GatewayState*> by_key_;
  std::map<uint16_t, std::vector<ListenerState*>> ports_;
  std::set<std::string> claimed_;                  // HTTP matches already routed
  std::map<std::string, std::string> tcp_claims_;  // port+SNI -> route key
  const config::Resource* current_ = nullptr;
  std::string current_kind_;
};

}  // namespace

ResourceKind gateway_api_kind(const std::string& kind) {
  std::string resource = lower(kind) + (kind == "GatewayClass" ? "es" : "s");
  bool namespaced = kind != "GatewayClass";
  return {kGatewayApiGroup, "v1", resource, kind, namespaced};
}

Translation translate_gateway_api(const GatewayInputs& inputs) {
  Translation out;
  Translator(inputs, out).run();
  return out;
}

}  // namespace proxenos::k8s
