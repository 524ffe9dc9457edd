#include "config/compiler.h"

#include <algorithm>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "config/decode.h"
#include "config/host.h"
#include "config/listener.h"
#include "config/mapping.h"
#include "config/mapping_group.h"
#include "config/module.h"
#include "config/secret.h"
#include "config/tcp_mapping.h"
#include "config/tls_context.h"

namespace proxenos::config {

namespace {

constexpr std::string_view kApiV3 = "getambassador.io/v3alpha1";
constexpr std::string_view kApiV2 = "getambassador.io/v2";

bool applies_to(const Resource& r, const std::string& ambassador_id) {
  if (r.ambassador_id.empty()) return ambassador_id == "default";
  for (const std::string& id : r.ambassador_id) {
    if (id == ambassador_id || id == "_automatic_") return true;
  }
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string sanitize(std::string out) {
  for (char& c : out) {
    bool ok =
        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!ok) c = '_';
  }
  return out;
}

uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

std::string hex8(uint32_t v) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(8, '0');
  for (int i = 7; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kDigits[v & 0xf];
  return out;
}

router::StringMatcher exact(const std::string& v) {
  router::StringMatcher m;
  m.kind = router::StringMatchKind::kExact;
  m.value = v;
  return m;
}

enum class ResolverKind : uint8_t { kService, kEndpoint, kUnsupported };

// A canary group under construction (irhttpmappinggroup.py).
struct Group {
  std::string id;
  const MappingSpec* first = nullptr;  // supplies the group-wide ("core") values
  std::vector<const MappingSpec*> members;
  const MappingSpec* redirect = nullptr;
  const MappingSpec* shadow = nullptr;
  RouteKey key;
  size_t order = 0;
  Labels labels;  // merged metadata labels of the members
};

class Compiler {
 public:
  Compiler(const CompileOptions& options, CompileResult& result, Snapshot& snapshot)
      : options_(options), result_(result), snap_(snapshot) {}

  void run(const std::vector<Resource>& resources) {
    snap_.generation = options_.generation;
    select(resources);
    apply_module();
    decode_all();
    build_groups();
    build_listeners();
  }

 private:
  // --- diagnostics -----------------------------------------------------------------------------
  void error(const Origin& origin, const std::string& resource, std::string field,
             std::string message) {
    add(Severity::kError, origin, resource, std::move(field), std::move(message));
  }
  void warning(const Origin& origin, const std::string& resource, std::string field,
               std::string message) {
    add(Severity::kWarning, origin, resource, std::move(field), std::move(message));
  }
  void add(Severity severity, const Origin& origin, const std::string& resource, std::string field,
           std::string message) {
    Diagnostic d;
    d.severity = severity;
    d.origin = origin;
    d.resource = resource;
    d.field = std::move(field);
    d.message = std::move(message);
    result_.diagnostics.push_back(std::move(d));
  }
  void note(std::string text) { result_.notes.push_back(std::move(text)); }

  // --- selection -------------------------------------------------------------------------------
  void select(const std::vector<Resource>& resources) {
    // Only looked up, never iterated: a hash map (keys share long prefixes, which ordered
    // comparisons read again and again).
    std::unordered_map<std::string, const Resource*> seen;
    seen.reserve(resources.size());
    for (const Resource& r : resources) {
      // Secrets are Kubernetes objects, not Ambassador resources: no ambassador_id applies.
      const bool secret = r.kind == "Secret";
      if (!secret && !applies_to(r, options_.ambassador_id)) {
        note("ignoring " + r.key() + ": ambassador_id [" + join(r.ambassador_id) +
             "] does not include " + options_.ambassador_id);
        continue;
      }
      const bool resolver = r.kind == "KubernetesServiceResolver" ||
                            r.kind == "KubernetesEndpointResolver" || r.kind == "ConsulResolver";
      bool ours = r.kind == "Mapping" || r.kind == "Host" || r.kind == "Listener" ||
                  r.kind == "Module" || r.kind == "TLSContext" || r.kind == "TCPMapping" ||
                  secret || resolver;
      if (!ours) {
        // Kinds handled elsewhere may name a TLSContext in spec.tls: that context is in use.
        const YAML::Node tls = child(r.spec, "tls");
        if (tls.IsScalar() && scalar_kind(tls) == ScalarKind::kString) {
          external_tls_refs_.insert(tls.Scalar());
        }
        note("ignoring " + r.key() + ": kind " + r.kind + " is not handled");
        continue;
      }
      if (secret ? r.api_version != "v1" : (r.api_version != kApiV3 && r.api_version != kApiV2)) {
        error(r.origin, r.key(), "apiVersion",
              "\"" + r.api_version + "\" is not supported (use " +
                  (secret ? std::string("v1") : std::string(kApiV3)) + ")");
        continue;
      }
      std::string key = r.key();
      auto [it, inserted] = seen.emplace(key, &r);
      if (!inserted) {
        error(r.origin, key, "",
              "duplicates the resource defined at " + it->second->origin.to_string() + "; ignored");
        continue;
      }
      if (r.kind == "Mapping") mappings_in_.push_back(&r);
      if (r.kind == "Host") hosts_in_.push_back(&r);
      if (r.kind == "Listener") listeners_in_.push_back(&r);
      if (r.kind == "Module") modules_in_.push_back(&r);
      if (r.kind == "TLSContext") tls_contexts_in_.push_back(&r);
      if (r.kind == "TCPMapping") tcp_mappings_in_.push_back(&r);
      if (secret) secrets_in_.push_back(&r);
      if (resolver) add_resolver(r);
    }
  }

  // --- resolvers -------------------------------------------------------------------------------
  // Emissary's built-in resolvers exist without a resource; a resource of the same name
  // replaces one.
  void add_resolver(const Resource& r) {
    if (r.kind == "ConsulResolver") {
      warning(r.origin, r.key(), "",
              "ConsulResolver is not supported by Proxenos (no Consul catalog here); Mappings "
              "that name it are not served");
      resolvers_[r.name] = ResolverKind::kUnsupported;
      return;
    }
    resolvers_[r.name] =
        r.kind == "KubernetesEndpointResolver" ? ResolverKind::kEndpoint : ResolverKind::kService;
    snap_.resource_origins[r.key()] = r.origin;
  }

  // The resolver a Mapping or TCPMapping uses; nullopt (reported) when it names none known.
  std::optional<ResolverKind> resolver_for(const std::optional<std::string>& name,
                                           const std::string& source, const Origin& origin) {
    const std::string& chosen =
        name ? *name : (default_resolver_ ? *default_resolver_ : kDefaultResolver);
    auto it = resolvers_.find(chosen);
    if (it == resolvers_.end()) {
      error(origin, source, name ? "spec.resolver" : "",
            "resolver \"" + chosen + "\" does not exist (known: kubernetes-service, " +
                "kubernetes-endpoint and the resolver resources)");
      return std::nullopt;
    }
    if (it->second == ResolverKind::kUnsupported) {
      error(origin, source, "spec.resolver",
            "resolver \"" + chosen + "\" is a ConsulResolver, which Proxenos does not support");
      return std::nullopt;
    }
    return it->second;
  }

  // Points `spec` at its Service: a qualified DNS name (service resolver, Kubernetes mode) or the
  // Service's EndpointSlices (endpoint resolver). IP literals are used as written.
  void apply_resolver(upstream::ClusterSpec& spec, ResolverKind kind,
                      const std::string& namespace_) const {
    if (is_ip_literal(spec.host)) return;
    if (kind == ResolverKind::kEndpoint) {
      // "svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local"
      std::string host = spec.host;
      size_t dot = host.find('.');
      spec.endpoint_service = host.substr(0, dot);
      if (dot == std::string::npos) {
        spec.endpoint_namespace = namespace_;
      } else {
        size_t next = host.find('.', dot + 1);
        spec.endpoint_namespace =
            host.substr(dot + 1, next == std::string::npos ? std::string::npos : next - dot - 1);
      }
      return;
    }
    if (options_.kubernetes) {
      spec.host = qualify_kubernetes_service(spec.host, namespace_, options_.gateway_namespace);
    }
  }

  // Drops the Mappings and TCPMappings whose resolver does not exist, so no route points at
  // an upstream nobody can resolve.
  void check_resolvers() {
    resolvers_.emplace(kDefaultResolver, ResolverKind::kService);
    resolvers_.emplace("kubernetes-endpoint", ResolverKind::kEndpoint);
    std::erase_if(mappings_, [&](const MappingSpec& m) {
      return !m.host_redirect && !m.direct_response_code &&
             !resolver_for(m.resolver, m.source, m.origin);
    });
    std::erase_if(tcp_mappings_, [&](const TcpMappingSpec& t) {
      return !resolver_for(t.resolver, t.source, t.origin);
    });
  }

  // --- Module ----------------------------------------------------------------------------------
  void apply_module() {
    const Resource* chosen = nullptr;
    for (const Resource* r : modules_in_) {
      if (!is_ambassador_module(*r)) {
        note("ignoring " + r->key() + ": only the Module named ambassador is read" +
             (r->name == "tls" ? " (configure TLS with Host and TLSContext)" : ""));
        continue;
      }
      if (chosen != nullptr) {
        error(r->origin, r->key(), "",
              "only one ambassador Module may exist; " + chosen->key() + " (" +
                  chosen->origin.to_string() + ") applies and this one is ignored");
        continue;
      }
      chosen = r;
    }
    if (chosen == nullptr) return;
    std::optional<AmbassadorModule> module =
        guarded(*chosen, [&] { return decode_ambassador_module(*chosen, &result_.diagnostics); });
    if (!module) return;  // reported; defaults apply
    snap_.module = module->settings;
    defaults_ = module->defaults;
    default_resolver_ = module->resolver;
    snap_.resource_origins[chosen->key()] = chosen->origin;
  }

  // --- decoding --------------------------------------------------------------------------------
  // Runs one decoder; a YAML exception (a malformed node the decoder did not expect) drops only
  // that resource.
  template <typename Decode>
  auto guarded(const Resource& r, Decode decode) -> decltype(decode()) {
    try {
      return decode();
    } catch (const YAML::Exception& e) {
      error(r.origin, r.key(), "", std::string("cannot read the resource: ") + e.what());
      return std::nullopt;
    }
  }

  void decode_all() {
    Diagnostics* out = &result_.diagnostics;
    for (const Resource* r : listeners_in_) {
      if (auto l = guarded(*r, [&] { return decode_listener(*r, out); })) {
        listeners_.push_back(std::move(*l));
      }
    }
    for (const Resource* r : hosts_in_) {
      if (auto h = guarded(*r, [&] { return decode_host(*r, out); })) {
        hosts_.push_back(std::move(*h));
      }
    }
    MappingDecodeOptions mopts;
    mopts.regex_max_size = snap_.module.regex_max_size;
    mappings_.reserve(mappings_in_.size());
    for (const Resource* r : mappings_in_) {
      if (auto m = guarded(*r, [&] { return decode_mapping(*r, mopts, out); })) {
        mappings_.push_back(std::move(*m));
      }
    }
    tls_contexts_.reserve(tls_contexts_in_.size());
    for (const Resource* r : tls_contexts_in_) {
      if (auto c = guarded(*r, [&] { return decode_tls_context(*r, out); })) {
        tls_contexts_.push_back(std::move(*c));
      }
    }
    for (const Resource* r : tcp_mappings_in_) {
      if (auto t = guarded(*r, [&] { return decode_tcp_mapping(*r, out); })) {
        tcp_mappings_.push_back(std::move(*t));
      }
    }
    check_resolvers();
    resolve_tls();
    for (const ListenerSpec& l : listeners_) snap_.resource_origins[l.source] = l.origin;
    for (const HostSpec& h : hosts_) snap_.resource_origins[h.source] = h.origin;
    for (const MappingSpec& m : mappings_) snap_.resource_origins[m.source] = m.origin;
    for (const TlsContextSpec& c : tls_contexts_) snap_.resource_origins[c.source] = c.origin;
    for (const TcpMappingSpec& t : tcp_mappings_) snap_.resource_origins[t.source] = t.origin;

    std::set<std::string> generated_hosts;
    for (const Resource* r : hosts_in_) {
      if (r->source_id == kGatewayApiSource) generated_hosts.insert(r->key());
    }
    const bool user_hosts = std::any_of(hosts_.begin(), hosts_.end(), [&](const HostSpec& h) {
      return generated_hosts.count(h.source) == 0;
    });
    if (!user_hosts) {
      hosts_.push_back(synthetic_default_host());
      note(
          "no Host resources: serving every hostname with a synthesized Host * (cleartext, "
          "insecure action Route)");
    }
    const bool user_listeners =
        std::any_of(listeners_in_.begin(), listeners_in_.end(),
                    [](const Resource* r) { return r->source_id != kGatewayApiSource; });
    if (!user_listeners) {
      // Gateway API listeners keep their ports; the defaults take the others.
      std::vector<ListenerSpec> defaults = default_listeners();
      std::erase_if(defaults, [&](const ListenerSpec& d) {
        return std::any_of(listeners_.begin(), listeners_.end(),
                           [&](const ListenerSpec& l) { return l.port == d.port; });
      });
      listeners_.insert(listeners_.begin(), defaults.begin(), defaults.end());
      note(
          "no Listener resources: opened the default Listeners 8080 (HTTP) and 8443 (HTTPS), "
          "securityModel XFP, Hosts from all namespaces");
    }
  }

  // --- TLS -------------------------------------------------------------------------------------
  // Resolves every TLS reference against Secrets, files and TLSContexts. A Host, Mapping or
  // TCPMapping whose TLS cannot be set up is dropped with the error on it (irhost.py marks such a
  // Host inactive); everything else keeps serving.
  void resolve_tls() {
    tls_ = std::make_unique<TlsResolver>(&result_.diagnostics);
    for (const Resource* r : secrets_in_) tls_->add_secret(r);
    for (const TlsContextSpec& c : tls_contexts_) tls_->add_context(&c);

    // erase_if moves nothing when nothing is dropped (the common case with many resources).
    std::erase_if(hosts_, [&](const HostSpec& h) {
      if (!h.tls.any()) return false;
      std::optional<ServerTls> st =
          tls_->host_tls(h.source, h.name, h.namespace_, h.hostname, h.origin, h.tls);
      if (!st) {
        note(h.source + ": not served, its TLS cannot be set up (see its errors)");
        return true;
      }
      host_tls_.emplace(h.source, std::move(*st));
      return false;
    });

    // Mappings and TCPMappings naming a TLSContext: it must exist and be usable, or TLS would
    // silently go out without the client certificate or CA it asks for.
    auto context_ok = [&](const std::optional<std::string>& name, const std::string& ns,
                          const std::string& source, const Origin& origin) {
      if (!name) return true;
      std::string why;
      const TlsContextSpec* c = tls_->find_context(*name, ns, &why);
      if (c != nullptr) {
        tls_->mark_used(*c);
        if (tls_->material(*c) != nullptr) return true;
        why = "TLSContext " + c->namespace_ + "/" + c->name +
              " cannot be used: see the errors reported on it";
      }
      error(origin, source, "spec.tls", why + "; dropped");
      return false;
    };
    std::erase_if(mappings_, [&](const MappingSpec& m) {
      return !context_ok(m.tls_context, m.namespace_, m.source, m.origin);
    });
    std::erase_if(tcp_mappings_, [&](const TcpMappingSpec& t) {
      return !context_ok(t.tls_context, t.namespace_, t.source, t.tls_at);
    });
  }

  // Snapshot::tls index for termination settings; equal settings share one entry. A TCPMapping
  // terminating TLS offers no ALPN unless its context asks: the bytes are not HTTP to us.
  uint32_t tls_index(const ServerTls& st, TlsPurpose purpose) {
    net::TlsServerSettings s = st.settings;
    if (purpose == TlsPurpose::kTcp && !st.alpn_explicit) s.alpn.clear();
    auto same = [](const net::TlsServerSettings& a, const net::TlsServerSettings& b) {
      return a.cert_chain_pem == b.cert_chain_pem && a.private_key_pem == b.private_key_pem &&
             a.ca_pem == b.ca_pem && a.cert_required == b.cert_required && a.crl_pem == b.crl_pem &&
             a.alpn == b.alpn && a.min_version == b.min_version && a.max_version == b.max_version &&
             a.cipher_suites == b.cipher_suites && a.ecdh_curves == b.ecdh_curves;
    };
    std::string key = s.cert_chain_pem + '\x1f' + s.private_key_pem + '\x1f' + s.ca_pem + '\x1f' +
                      s.crl_pem + (s.cert_required ? "R" : "") + '\x1f' +
                      std::to_string(static_cast<int>(s.min_version)) +
                      std::to_string(static_cast<int>(s.max_version));
    for (const auto* list : {&s.alpn, &s.cipher_suites, &s.ecdh_curves}) {
      key += '\x1f';
      for (const std::string& v : *list) key += v + ',';
    }
    std::vector<uint32_t>& bucket = tls_index_[hex8(fnv1a(key))];
    for (uint32_t i : bucket) {
      if (same(snap_.tls[i], s)) return i;
    }
    snap_.tls.push_back(std::move(s));
    bucket.push_back(static_cast<uint32_t>(snap_.tls.size() - 1));
    return bucket.back();
  }

  // --- canary groups ---------------------------------------------------------------------------
  // Keys that must agree within a group (irhttpmappinggroup.py CoreMappingKeys): a member that
  // sets one differently from the group's first Mapping is rejected.
  std::vector<std::string> core_mismatches(const MappingSpec& g, const MappingSpec& m) {
    std::vector<std::string> out;
    auto check = [&out](bool set, bool differs, const char* key) {
      if (set && differs) out.push_back(key);
    };
    check(m.bypass_auth.has_value(), m.bypass_auth.value_or(false) != g.bypass_auth.value_or(false),
          "bypass_auth");
    check(m.circuit_breakers.has_value(), m.circuit_breakers != g.circuit_breakers,
          "circuit_breakers");
    check(m.connect_timeout_ms.has_value(),
          m.connect_timeout_ms.value_or(3000) != g.connect_timeout_ms.value_or(3000),
          "connect_timeout_ms");
    check(m.cluster_idle_timeout_ms.has_value(),
          m.cluster_idle_timeout_ms != g.cluster_idle_timeout_ms, "cluster_idle_timeout_ms");
    check(m.cluster_max_connection_lifetime_ms.has_value(),
          m.cluster_max_connection_lifetime_ms != g.cluster_max_connection_lifetime_ms,
          "cluster_max_connection_lifetime_ms");
    check(true, header_matchers(m) != header_matchers(g), "headers");
    check(m.keepalive.has_value(), m.keepalive != g.keepalive, "keepalive");
    check(m.labels_text.has_value(), m.labels_text != g.labels_text, "labels");
    check(m.load_balancer.has_value(), m.load_balancer != g.load_balancer, "load_balancer");
    check(m.method.has_value(), m.method != g.method, "method");
    check(true, m.prefix != g.prefix, "prefix");
    check(m.prefix_regex_set.has_value(), m.prefix_regex != g.prefix_regex, "prefix_regex");
    check(m.prefix_exact_set.has_value(), m.prefix_exact != g.prefix_exact, "prefix_exact");
    return out;
  }

  void build_groups() {
    std::unordered_map<std::string, size_t> index;  // looked up only
    index.reserve(mappings_.size());
    groups_.reserve(mappings_.size());
    for (const MappingSpec& m : mappings_) {
      std::string id = group_id(m, hosts_);
      auto it = index.find(id);
      if (it == index.end()) {
        Group g;
        g.id = id;
        g.first = &m;
        g.key = route_key(m);
        g.order = groups_.size();
        index.emplace(std::move(id), groups_.size());
        groups_.push_back(std::move(g));
        add_to_group(groups_.back(), m);
        continue;
      }
      Group& g = groups_[it->second];
      std::vector<std::string> mismatched = core_mismatches(*g.first, m);
      if (!mismatched.empty()) {
        error(m.origin, m.source, "",
              "cannot join the canary group of " + g.first->source + ": " + join(mismatched) +
                  " must be set to the same values in all Mappings of a group");
        continue;
      }
      add_to_group(g, m);
    }
  }

  void add_to_group(Group& g, const MappingSpec& m) {
    if (m.shadow) {
      if (g.shadow != nullptr) {
        error(m.origin, m.source, "spec.shadow",
              "a canary group takes one shadow, and " + g.shadow->source + " already is");
        return;
      }
      g.shadow = &m;
    } else if (m.host_redirect) {
      if (g.redirect != nullptr) {
        error(m.origin, m.source, "spec.host_redirect",
              "a canary group takes one host_redirect Mapping, and " + g.redirect->source +
                  " already is");
        return;
      }
      if (!g.members.empty()) {
        error(m.origin, m.source, "spec.host_redirect",
              "cannot join the group of " + g.members.front()->source +
                  ": host_redirect Mappings do not mix with Mappings that proxy");
        return;
      }
      g.redirect = &m;
    } else {
      if (g.redirect != nullptr) {
        error(m.origin, m.source, "",
              "cannot join the group of " + g.redirect->source +
                  ": Mappings that proxy do not mix with host_redirect Mappings");
        return;
      }
      g.members.push_back(&m);
      RouteKey k = route_key(m);
      if (g.key < k) g.key = std::move(k);
    }
    for (const auto& [k, v] : m.labels) g.labels[k] = v;
  }

  // --- clusters --------------------------------------------------------------------------------
  uint32_t cluster_for(const MappingSpec& m, bool shadow) {
    upstream::ClusterSpec spec;
    const ModuleSettings& mod = snap_.module;
    spec.host = m.address.host;
    spec.port = m.address.port;
    spec.tls = m.address.tls;
    spec.http2 = m.grpc.value_or(false);
    spec.connect_timeout_ms = m.connect_timeout_ms.value_or(3000);
    spec.idle_timeout_ms = m.cluster_idle_timeout_ms.value_or(mod.cluster_idle_timeout_ms);
    spec.max_connection_lifetime_ms =
        m.cluster_max_connection_lifetime_ms.value_or(mod.cluster_max_connection_lifetime_ms);
    spec.enable_ipv4 = m.enable_ipv4.value_or(mod.enable_ipv4);
    spec.enable_ipv6 = m.enable_ipv6.value_or(mod.enable_ipv6);
    const std::optional<std::string>& stats = m.stats_name ? m.stats_name : defaults_.stats_name;
    spec.stats_name =
        stats ? *stats : sanitize(m.address.host + "_" + std::to_string(m.address.port));
    if (auto kind = resolver_for(m.resolver, m.source, m.origin)) {
      apply_resolver(spec, *kind, m.namespace_);
    }
    originate(spec, TlsPurpose::kHttp, m.tls_context, m.namespace_, m.source, m.origin);
    std::string base =
        cluster_base(shadow, m.service, m.address, m.tls_context, m.host_rewrite, m.namespace_);
    return intern_cluster(std::move(spec), std::move(base));
  }

  uint32_t cluster_for(const TcpMappingSpec& t) {
    upstream::ClusterSpec spec;
    const ModuleSettings& mod = snap_.module;
    spec.host = t.upstream.host;
    spec.port = t.upstream.port;
    spec.tls = t.upstream.tls;
    spec.idle_timeout_ms = mod.cluster_idle_timeout_ms;
    spec.max_connection_lifetime_ms = mod.cluster_max_connection_lifetime_ms;
    spec.enable_ipv4 = t.enable_ipv4.value_or(mod.enable_ipv4);
    spec.enable_ipv6 = t.enable_ipv6.value_or(mod.enable_ipv6);
    spec.stats_name = t.stats_name
                          ? *t.stats_name
                          : sanitize(t.upstream.host + "_" + std::to_string(t.upstream.port));
    if (auto kind = resolver_for(t.resolver, t.source, t.origin)) {
      apply_resolver(spec, *kind, t.namespace_);
    }
    originate(spec, TlsPurpose::kTcp, t.tls_context, t.namespace_, t.source, t.tls_at);
    std::string base =
        cluster_base(false, t.service, t.upstream, t.tls_context, std::nullopt, t.namespace_);
    return intern_cluster(std::move(spec), std::move(base));
  }

  // TLS origination settings: `https://`, `tls: true`, or a TLSContext (checked in resolve_tls).
  void originate(upstream::ClusterSpec& spec, TlsPurpose purpose,
                 const std::optional<std::string>& context, const std::string& namespace_,
                 const std::string& source, const Origin& at) {
    if (!spec.tls) return;
    const TlsContextSpec* ctx = nullptr;
    if (context) {
      std::string ignored;
      ctx = tls_->find_context(*context, namespace_, &ignored);
    }
    spec.tls_settings = tls_->client_tls(ctx, spec.host, purpose, spec.http2, source, at);
  }

  // Emissary's cluster name (ircluster.py): cluster_[shadow_]<service as written>[_otls
  // [_<context>, when the service has no scheme]][_hr-<host_rewrite>, with TLS]_<namespace>,
  // sanitized.
  static std::string cluster_base(bool shadow, const std::string& service,
                                  const ServiceAddress& address,
                                  const std::optional<std::string>& context,
                                  const std::optional<std::string>& host_rewrite,
                                  const std::string& namespace_) {
    std::string base = "cluster_";
    if (shadow) base += "shadow_";
    base += service;
    if (address.tls) {
      base += "_otls";
      if (context && address.scheme.empty()) base += "_" + *context;
      if (host_rewrite && !host_rewrite->empty()) base += "_hr-" + *host_rewrite;
    }
    base += '_';
    base += namespace_;
    return sanitize(std::move(base));
  }

  uint32_t intern_cluster(upstream::ClusterSpec spec, std::string base) {
    std::string settings;
    settings.reserve(spec.host.size() + spec.stats_name.size() + 64);
    settings += spec.host;
    settings += '|';
    settings += std::to_string(spec.port);
    settings += '|';
    if (spec.tls) {
      const net::TlsClientSettings& t = spec.tls_settings;
      settings += "tls:" + t.name + ":" + t.sni + ":";
      for (const std::string& p : t.alpn) settings += p + ",";
    }
    settings += '|';
    if (spec.http2) settings += "h2";
    settings += '|';
    settings += std::to_string(spec.connect_timeout_ms);
    settings += '|';
    settings += std::to_string(spec.idle_timeout_ms);
    settings += '|';
    settings += std::to_string(spec.max_connection_lifetime_ms);
    settings += '|';
    if (spec.enable_ipv4) settings += '4';
    if (spec.enable_ipv6) settings += '6';
    settings += '|';
    settings += spec.stats_name;
    if (!spec.endpoint_service.empty()) {
      settings += "|ep:" + spec.endpoint_namespace + "/" + spec.endpoint_service;
    }
    // Same name and same settings: share it. Same name, other settings: a hashed sibling (named
    // only when needed: most Mappings share their cluster).
    auto use = [&](const std::string& name) -> std::optional<uint32_t> {
      auto it = cluster_index_.find(name);
      if (it == cluster_index_.end()) {
        spec.name = name;
        cluster_index_.emplace(name, std::make_pair(settings, snap_.clusters.size()));
        snap_.clusters.push_back(std::move(spec));
        return static_cast<uint32_t>(snap_.clusters.size() - 1);
      }
      if (it->second.first == settings) return static_cast<uint32_t>(it->second.second);
      return std::nullopt;
    };
    if (std::optional<uint32_t> index = use(base)) return *index;
    if (std::optional<uint32_t> index = use(base + "_" + hex8(fnv1a(settings)))) return *index;
    // A hash collision between different settings: practically impossible; fall back to a count.
    spec.name = base + "_" + std::to_string(snap_.clusters.size());
    snap_.clusters.push_back(std::move(spec));
    return static_cast<uint32_t>(snap_.clusters.size() - 1);
  }

  // --- routes ----------------------------------------------------------------------------------
  // add_*_headers of the members merged in order (a later member's value for the same name
  // wins), each member using its own value or else the Module default; remove_* from the last
  // member that has one (irhttpmappinggroup.py finalize).
  void group_header_edits(const std::vector<const MappingSpec*>& members,
                          router::HeaderEdits* request, router::HeaderEdits* response) {
    auto merge = [](std::vector<router::HeaderToAdd>& into, const std::vector<AddedHeader>& add) {
      for (const AddedHeader& h : add) {
        router::HeaderToAdd t;
        t.name = h.name;
        t.value = h.value_template;
        t.append = h.append;
        auto same = std::find_if(into.begin(), into.end(),
                                 [&h](const router::HeaderToAdd& x) { return x.name == h.name; });
        if (same != into.end()) {
          *same = std::move(t);
        } else {
          into.push_back(std::move(t));
        }
      }
    };
    for (const MappingSpec* m : members) {
      const auto& add_req =
          m->add_request_headers ? m->add_request_headers : defaults_.add_request_headers;
      const auto& add_resp =
          m->add_response_headers ? m->add_response_headers : defaults_.add_response_headers;
      if (add_req) merge(request->add, *add_req);
      if (add_resp) merge(response->add, *add_resp);
      const auto& rm_req =
          m->remove_request_headers ? m->remove_request_headers : defaults_.remove_request_headers;
      const auto& rm_resp = m->remove_response_headers ? m->remove_response_headers
                                                       : defaults_.remove_response_headers;
      if (rm_req) request->remove = *rm_req;
      if (rm_resp) response->remove = *rm_resp;
    }
  }

  // The group's CORS policy: the last member's own `cors` (the group takes Mapping fields from
  // its members in order, irhttpmappinggroup.py finalize), else the Module's. List values are
  // joined with ", " as Emissary does (ircors.py).
  std::shared_ptr<const router::CorsPolicy> cors_policy(
      const std::vector<const MappingSpec*>& members) {
    const CorsSpec* spec = defaults_.cors ? &*defaults_.cors : nullptr;
    for (const MappingSpec* m : members) {
      if (m->cors) spec = &*m->cors;
    }
    if (spec == nullptr) return nullptr;
    auto join = [](const std::vector<std::string>& items) {
      std::string out;
      for (const std::string& item : items) {
        if (!out.empty()) out += ", ";
        out += item;
      }
      return out;
    };
    auto policy = std::make_shared<router::CorsPolicy>();
    policy->origins = spec->origins;
    policy->allow_methods = join(spec->methods);
    policy->allow_headers = join(spec->headers);
    policy->expose_headers = join(spec->exposed_headers);
    policy->max_age = spec->max_age.value_or("");
    policy->allow_credentials = spec->credentials.value_or(false);
    return policy;
  }

  router::RouteTarget make_target(const MappingSpec& m, bool shadow) {
    router::RouteTarget t;
    if (m.direct_response_code) {
      t.direct_status = *m.direct_response_code;
      t.cluster = router::kNoCluster;
      t.timeout_ms = 0;
      t.source = m.source;
      return t;
    }
    t.cluster = cluster_for(m, shadow);
    t.cluster_name = snap_.clusters[t.cluster].name;
    if (m.regex_rewrite) {
      t.regex_rewrite =
          router::RegexRewrite{m.regex_rewrite->compiled, m.regex_rewrite->substitution};
    } else {
      std::string rewrite = m.rewrite.value_or("/");
      if (!rewrite.empty()) t.prefix_rewrite = rewrite;
    }
    t.host_rewrite = m.host_rewrite;
    t.auto_host_rewrite = m.auto_host_rewrite.value_or(false);
    t.timeout_ms = m.timeout_ms.value_or(snap_.module.cluster_request_timeout_ms);
    t.idle_timeout_ms = m.idle_timeout_ms.value_or(router::kDefaultStreamIdleMs);
    t.add_linkerd_headers = m.add_linkerd_headers.value_or(snap_.module.add_linkerd_headers);
    t.allow_upgrade = m.allow_upgrade;
    t.source = m.source;
    return t;
  }

  router::RouteTarget make_redirect(const MappingSpec& m) {
    router::RouteTarget t;
    router::Redirect r;
    r.host = m.address.authority;
    r.https = m.address.tls;
    r.path = m.path_redirect;
    r.prefix = m.prefix_redirect;
    if (m.regex_redirect) {
      r.regex = router::RegexRewrite{m.regex_redirect->compiled, m.regex_redirect->substitution};
    }
    r.status = m.redirect_response_code.value_or(301);
    t.redirect = std::move(r);
    t.timeout_ms = 0;
    t.source = m.source;
    return t;
  }

  // The match part of a group's route, from its first Mapping.
  void make_match(const MappingSpec& m, router::Route* route) {
    route->path.value = m.prefix;
    route->path.case_sensitive = m.case_sensitive.value_or(true);
    if (m.prefix_regex) {
      route->path.kind = router::PathMatchKind::kRegex;
      std::string err;
      // Recompiled only when case-insensitive; the decoder checked the pattern already.
      route->path.regex = route->path.case_sensitive
                              ? m.path_regex
                              : compile_regex(m.prefix, false, snap_.module.regex_max_size, &err);
      if (!route->path.regex) route->path.regex = m.path_regex;
    } else if (m.prefix_exact) {
      route->path.kind = router::PathMatchKind::kExact;
    }
    for (const KeyValueMatch& kv : header_matchers(m)) {
      router::HeaderMatcher h;
      h.name = lower(kv.name);
      if (kv.regex) {
        h.match.kind = router::StringMatchKind::kRegex;
        h.match.value = kv.value.value_or("");
        h.match.regex = kv.compiled;
      } else if (!kv.value) {
        h.match.kind = router::StringMatchKind::kPresent;
      } else if (h.name == ":authority") {
        if (*kv.value == "*") continue;  // matches everything: no predicate
        h.match = router::host_glob_matcher(*kv.value);
      } else {
        h.match = exact(*kv.value);
      }
      route->headers.push_back(std::move(h));
    }
    for (const KeyValueMatch& kv : m.query_parameters) {
      router::QueryMatcher q;
      q.name = kv.name;
      if (kv.regex) {
        q.match.kind = router::StringMatchKind::kRegex;
        q.match.value = kv.value.value_or("");
        q.match.regex = kv.compiled;
      } else if (!kv.value) {
        q.match.kind = router::StringMatchKind::kPresent;
      } else {
        q.match = exact(*kv.value);
      }
      route->query.push_back(std::move(q));
    }
    route->precedence = static_cast<int>(m.precedence);
    route->source = m.source + " (" + m.origin.to_string() + ")";
  }

  // Builds the route of a group; null when it has nothing routable.
  std::shared_ptr<const router::Route> make_route(const Group& g) {
    auto route = std::make_shared<router::Route>();
    if (g.redirect != nullptr) {
      make_match(*g.redirect, route.get());
      route->targets.push_back(make_redirect(*g.redirect));
      route->stats_name = g.redirect->stats_name.value_or("");
      route->stats_index = route_stats_index(*route, *g.redirect);
      return route;
    }
    if (g.members.empty()) {
      if (g.shadow != nullptr) {
        warning(g.shadow->origin, g.shadow->source, "spec.shadow",
                "no Mapping with the same match proxies traffic, so there is nothing to mirror");
      }
      return nullptr;
    }
    std::vector<WeightedMember> weighted;
    std::string err;
    const MappingSpec* culprit = nullptr;
    if (!normalize_weights(g.members, &weighted, &err, &culprit)) {
      for (const MappingSpec* m : g.members) {
        error(m->origin, m->source, m == culprit ? "spec.weight" : "",
              m == culprit ? err + "; the group's routes are dropped"
                           : "dropped with its canary group: " + culprit->source + ": " + err);
      }
      return nullptr;
    }
    make_match(*g.members.front(), route.get());
    router::HeaderEdits request, response;
    group_header_edits(g.members, &request, &response);
    for (const WeightedMember& w : weighted) {
      router::RouteTarget t = make_target(*w.mapping, false);
      t.cumulative_weight = w.cumulative_weight;
      t.request_headers = request;
      t.response_headers = response;
      route->targets.push_back(std::move(t));
    }
    route->cors = cors_policy(g.members);
    if (g.shadow != nullptr) {
      router::RouteTarget s = make_target(*g.shadow, true);
      s.cumulative_weight = g.shadow->weight.value_or(100);
      route->shadow = std::move(s);
    }
    const MappingSpec& first = *g.members.front();
    std::optional<std::string> stats = first.stats_name ? first.stats_name : defaults_.stats_name;
    route->stats_name = stats.value_or("");
    route->stats_index = route_stats_index(*route, first);
    return route;
  }

  // Routes are counted under their stats_name, or under a name derived from the Mapping they
  // come from; routes with the same name share one set of stats.
  uint32_t route_stats_index(const router::Route& route, const MappingSpec& m) {
    std::string name = !route.stats_name.empty()
                           ? route.stats_name
                           : sanitize("mapping_" + m.namespace_ + "_" + m.name);
    auto [it, inserted] =
        route_stats_index_.emplace(name, static_cast<uint32_t>(snap_.route_stats_names.size()));
    if (inserted) snap_.route_stats_names.push_back(std::move(name));
    return it->second;
  }

  // --- TCPMappings ------------------------------------------------------------------------------
  // SNI match order: exact names, then `*.suffix` (longer first), then `prefix.*`, then `*`.
  static std::pair<int, int> sni_rank(const std::string& glob) {
    int length = static_cast<int>(glob.size());
    if (glob == "*") return {3, 0};
    if (glob.starts_with("*")) return {1, -length};
    if (glob.ends_with("*")) return {2, -length};
    return {0, 0};
  }

  // A Host's hostname as an SNI name: lower case, without a :port.
  static std::string sni_name(const std::string& hostname) {
    std::string h = lower(hostname);
    size_t colon = h.rfind(':');
    if (colon != std::string::npos && h.find(':') == colon && h.find(']') == std::string::npos) {
      h.resize(colon);
    }
    return h;
  }

  // The certificate for a TCPMapping `host` (spec §1.2): a Host with TLS of exactly that name,
  // else a TLSContext listing it in `hosts`, else a Host whose wildcard covers it.
  std::optional<uint32_t> tcp_certificate(const std::string& host) {
    for (const HostSpec& h : hosts_) {
      auto st = host_tls_.find(h.source);
      if (st != host_tls_.end() && sni_name(h.hostname) == host) {
        return tls_index(st->second, TlsPurpose::kTcp);
      }
    }
    for (const TlsContextSpec* c : tls_->contexts_for_host(host)) {
      if (std::optional<ServerTls> st = tls_->context_server_tls(*c)) {
        tls_->mark_used(*c);
        return tls_index(*st, TlsPurpose::kTcp);
      }
    }
    if (host.find('*') != std::string::npos) return std::nullopt;  // only names are covered
    std::vector<const HostSpec*> wildcard;
    for (const HostSpec& h : hosts_) {
      if (host_tls_.count(h.source) != 0 && sni_name(h.hostname).find('*') != std::string::npos &&
          router::glob_matches_host(sni_name(h.hostname), host)) {
        wildcard.push_back(&h);
      }
    }
    std::stable_sort(wildcard.begin(), wildcard.end(), [](const HostSpec* a, const HostSpec* b) {
      return sni_rank(sni_name(a->hostname)) < sni_rank(sni_name(b->hostname));
    });
    if (wildcard.empty()) return std::nullopt;
    return tls_index(host_tls_.at(wildcard.front()->source), TlsPurpose::kTcp);
  }

  struct TcpBinding {
    std::string address;
    uint16_t port = 0;
    std::vector<TcpRoute> routes;
    std::vector<std::string> sources;
  };

  // TCPMapping canary groups (irtcpmappinggroup.py) turned into routes per bind address and
  // port, in match order: SNI routes (exact, suffix, `*`), then the catch-all.
  std::map<std::string, TcpBinding> build_tcp_routes(
      const std::map<std::string, const ListenerSpec*>& listeners) {
    struct TcpGroup {
      std::vector<const TcpMappingSpec*> members;
    };
    std::vector<TcpGroup> groups;
    std::unordered_map<std::string, size_t> index;
    for (const TcpMappingSpec& t : tcp_mappings_) {
      auto [it, inserted] = index.emplace(t.group_key(), groups.size());
      if (inserted) {
        groups.push_back({{&t}});
        continue;
      }
      const TcpMappingSpec& g = *groups[it->second].members.front();
      std::vector<std::string> mismatched;
      auto check = [&](bool set, bool differs, const char* key) {
        if (set && differs) mismatched.push_back(key);
      };
      check(t.idle_timeout_ms.has_value(), t.idle_timeout_ms != g.idle_timeout_ms,
            "idle_timeout_ms");
      check(t.tls_context.has_value(), t.tls_context != g.tls_context, "tls");
      check(true, t.tls_passthrough != g.tls_passthrough, "tls_passthrough");
      check(t.enable_ipv4.has_value(), t.enable_ipv4 != g.enable_ipv4, "enable_ipv4");
      check(t.enable_ipv6.has_value(), t.enable_ipv6 != g.enable_ipv6, "enable_ipv6");
      check(t.circuit_breakers_text.has_value(), t.circuit_breakers_text != g.circuit_breakers_text,
            "circuit_breakers");
      if (!mismatched.empty()) {
        error(t.origin, t.source, "",
              "cannot join the canary group of " + g.source + " (same address, port and host): " +
                  join(mismatched) + " must be set to the same values in all its TCPMappings");
        continue;
      }
      groups[it->second].members.push_back(&t);
    }

    std::map<std::string, TcpBinding> out;
    for (const TcpGroup& g : groups) {
      const TcpMappingSpec& first = *g.members.front();
      auto fail = [&](const std::string& field, const std::string& message) {
        for (const TcpMappingSpec* m : g.members) error(m->origin, m->source, field, message);
      };
      std::string bind = first.address + ":" + std::to_string(first.port);
      auto l = listeners.find(bind);
      if (l == listeners.end()) {
        // Another address on the same port would make the two sockets clash.
        const ListenerSpec* clash = nullptr;
        for (const auto& [key, spec] : listeners) {
          bool any = spec->bind_address == "0.0.0.0" || spec->bind_address == "::" ||
                     first.address == "0.0.0.0" || first.address == "::";
          if (spec->port == first.port && any) clash = spec;
        }
        if (clash != nullptr) {
          fail("spec.address", bind + " overlaps " + clash->source + " on " + clash->bind_address +
                                   ":" + std::to_string(clash->port) +
                                   "; give the TCPMapping that Listener's address");
          continue;
        }
      } else if (l->second->serves_http() && !first.host) {
        fail("spec.host", "is required on port " + std::to_string(first.port) + ": " +
                              l->second->source + " serves HTTP there, so a TCPMapping can only " +
                              "take TLS connections by SNI");
        continue;
      }

      std::vector<std::optional<uint32_t>> weights;
      for (const TcpMappingSpec* m : g.members) weights.push_back(m->weight);
      std::vector<std::pair<size_t, uint32_t>> cumulative;
      std::string why;
      size_t culprit = 0;
      if (!normalize_weight_list(weights, &cumulative, &why, &culprit, "TCPMapping")) {
        for (size_t i = 0; i < g.members.size(); ++i) {
          const TcpMappingSpec* m = g.members[i];
          error(m->origin, m->source, i == culprit ? "spec.weight" : "",
                i == culprit
                    ? why + "; the group is dropped"
                    : "dropped with its canary group: " + g.members[culprit]->source + ": " + why);
        }
        continue;
      }
      // A connection has no later route to fall through to: shares that add up to less than
      // 100 are scaled up, as Envoy's tcp_proxy treats weights as relative.
      uint32_t total = cumulative.empty() ? 0 : cumulative.back().second;
      if (total == 0) {
        fail("spec.weight", "every TCPMapping of the canary group has weight 0");
        continue;
      }
      TcpRoute route;
      route.sni = first.host.value_or("");
      route.passthrough = first.tls_passthrough;
      if (first.host && !first.tls_passthrough) {
        std::optional<uint32_t> cert = tcp_certificate(*first.host);
        if (!cert) {
          fail("spec.host", "no Host with TLS has hostname " + *first.host +
                                " and no TLSContext lists it in hosts: there is no certificate " +
                                "to terminate TLS with");
          continue;
        }
        route.tls = cert;
      }
      for (const auto& [member, weight] : cumulative) {
        const TcpMappingSpec& m = *g.members[member];
        TcpTarget target;
        target.cluster = cluster_for(m);
        target.cumulative_weight =
            static_cast<uint32_t>((static_cast<uint64_t>(weight) * 100 + total / 2) / total);
        target.source = m.source;
        route.targets.push_back(std::move(target));
      }
      route.targets.back().cumulative_weight = 100;
      // Envoy's tcp_proxy default idle timeout is one hour; 0 turns it off.
      route.idle_timeout_ms = first.idle_timeout_ms.value_or(3600 * 1000);
      route.source = first.source + " (" + first.origin.to_string() + ")";
      TcpBinding& b = out[bind];
      b.address = first.address;
      b.port = first.port;
      b.routes.push_back(std::move(route));
      for (const TcpMappingSpec* m : g.members) b.sources.push_back(m->source);
    }
    for (auto& [bind, b] : out) {
      std::stable_sort(b.routes.begin(), b.routes.end(), [](const TcpRoute& a, const TcpRoute& c) {
        auto rank = [](const TcpRoute& r) {
          return r.sni.empty() ? std::pair<int, int>{4, 0} : sni_rank(r.sni);
        };
        return rank(a) < rank(c);
      });
    }
    return out;
  }

  // spec README: a TLSContext nothing uses is ignored, with a warning that says so.
  void warn_unused_tls_contexts() {
    for (const TlsContextSpec& c : tls_contexts_) {
      if (tls_->used(c) || external_tls_refs_.count(c.name) != 0) continue;
      if (!c.hosts.empty()) {
        warning(c.origin, c.source, "spec.hosts",
                "no Host uses this TLSContext (link it with the Host's spec.tlsContext, or name "
                "it <Host name>-context beside spec.tlsSecret) and no TCPMapping's host is in "
                "its hosts, so it terminates nothing");
      } else {
        warning(c.origin, c.source, "",
                "nothing uses this TLSContext: no Host links it and no Mapping or TCPMapping "
                "names it in spec.tls");
      }
    }
  }

  // --- listeners and hosts ---------------------------------------------------------------------
  void build_listeners() {
    // Global route order: descending key; ties in reverse insertion order, as Emissary's
    // reversed(sorted(...)) yields them.
    std::vector<Group*> ordered;
    ordered.reserve(groups_.size());
    for (Group& g : groups_) ordered.push_back(&g);
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const Group* a, const Group* b) { return a->key < b->key; });
    std::reverse(ordered.begin(), ordered.end());

    struct Built {
      const Group* group;
      std::shared_ptr<const router::Route> route;
      std::string host_glob;
      bool host_regex;
    };
    std::vector<Built> routes;
    routes.reserve(ordered.size());
    for (Group* g : ordered) {
      std::shared_ptr<const router::Route> route = make_route(*g);
      if (!route) continue;
      const MappingSpec& rep = g->redirect ? *g->redirect : *g->members.front();
      routes.push_back({g, route, mapping_host_glob(rep), rep.host_regex});
    }

    // Mappings that can never be served are reported by name.
    for (const Built& b : routes) {
      bool attached = std::any_of(hosts_.begin(), hosts_.end(), [&](const HostSpec& h) {
        return host_accepts_mapping(h, b.host_glob, b.host_regex, b.group->labels);
      });
      if (attached) continue;
      std::vector<const MappingSpec*> all = b.group->members;
      if (b.group->redirect) all.push_back(b.group->redirect);
      if (b.group->shadow) all.push_back(b.group->shadow);
      for (const MappingSpec* m : all) {
        warning(m->origin, m->source, "",
                "attaches to no Host, so it serves nothing (give it a hostname, or labels that "
                "a Host's mappingSelector selects)");
      }
    }

    // TCPMappings go to the Listener opened on their address and port (the first one there).
    std::map<std::string, const ListenerSpec*> tcp_listeners;
    for (const ListenerSpec& l : listeners_) {
      if (!l.udp) tcp_listeners.emplace(l.bind_address + ":" + std::to_string(l.port), &l);
    }
    std::map<std::string, TcpBinding> tcp = build_tcp_routes(tcp_listeners);

    std::set<std::string> bound_hosts;
    std::map<std::string, const ListenerSpec*> bound_ports;
    for (const ListenerSpec& l : listeners_) {
      std::string where = std::string(l.udp ? "udp" : "tcp") + "://" + l.bind_address + ":" +
                          std::to_string(l.port);
      auto [it, inserted] = bound_ports.emplace(where, &l);
      if (!inserted) {
        error(l.origin, l.source, "spec.port",
              where + " is already used by " + it->second->source + " (" +
                  it->second->origin.to_string() + "); ignored");
        continue;
      }
      if (l.udp) {
        warning(l.origin, l.source, "spec.protocolStack",
                "UDP (HTTP/3) Listeners are not supported in this release; not opened");
        continue;
      }
      ListenerSnapshot ls;
      ls.name = l.source;
      ls.bind_address = l.bind_address;
      ls.port = l.port;
      ls.protocol = l.protocol;
      ls.security_model = l.security_model;
      ls.l7_depth = l.l7_depth;
      ls.stats_prefix = l.stats_prefix;
      if (l.http2_max_concurrent_streams) {
        ls.http2_max_concurrent_streams = *l.http2_max_concurrent_streams;
      }
      if (auto it = tcp.find(l.bind_address + ":" + std::to_string(l.port)); it != tcp.end()) {
        ls.tcp = std::move(it->second.routes);
        tcp.erase(it);
      }
      if (!l.serves_http()) {
        if (ls.tcp.empty()) {
          note(ls.name + ": " + protocol_name(l.protocol) +
               " Listener has no TCPMapping on its port, so it serves nothing");
        }
        snap_.listeners.push_back(std::move(ls));
        continue;
      }

      // Hosts in hostname order (v3listener.py compute_httpchains); a later Host with the same
      // hostname replaces an earlier one on this Listener, as Envoy's chain map does there.
      std::vector<const HostSpec*> hosts;
      for (const HostSpec& h : hosts_) hosts.push_back(&h);
      std::stable_sort(hosts.begin(), hosts.end(), [](const HostSpec* a, const HostSpec* b) {
        return a->hostname < b->hostname;
      });
      std::vector<router::VirtualHostSpec> vhosts;
      std::vector<const HostSpec*> vhost_owner;
      for (const HostSpec* h : hosts) {
        if (!l.binds_host(*h)) continue;
        bound_hosts.insert(h->source);
        if (l.security_model == SecurityModel::kInsecure &&
            h->insecure_action == router::InsecureAction::kReject) {
          continue;  // every request here would be rejected
        }
        router::VirtualHostSpec v;
        v.hostname = h->hostname;
        v.source = h->source;
        v.insecure_action = h->insecure_action;
        for (const Built& b : routes) {
          if (host_accepts_mapping(*h, b.host_glob, b.host_regex, b.group->labels)) {
            v.routes.push_back(b.route);
          }
        }
        auto same = std::find_if(vhosts.begin(), vhosts.end(), [&](const auto& x) {
          return lower(x.hostname) == lower(v.hostname);
        });
        if (same != vhosts.end()) {
          const HostSpec* loser = vhost_owner[static_cast<size_t>(same - vhosts.begin())];
          warning(loser->origin, loser->source, "spec.hostname",
                  "not served on " + ls.name + ": " + h->source +
                      " has the same hostname and replaces it");
          *same = std::move(v);
          vhost_owner[static_cast<size_t>(same - vhosts.begin())] = h;
          continue;
        }
        vhosts.push_back(std::move(v));
        vhost_owner.push_back(h);
      }
      // TLS termination (spec §2.6.2): one certificate per bound Host with TLS, by SNI.
      const bool terminates = std::find(l.protocol_stack.begin(), l.protocol_stack.end(), "TLS") !=
                              l.protocol_stack.end();
      if (terminates) {
        for (const HostSpec* h : vhost_owner) {
          auto st = host_tls_.find(h->source);
          if (st == host_tls_.end()) continue;
          std::string name = sni_name(h->hostname);
          // A TCPMapping with this exact name takes its TLS connections (spec §2.6.7).
          bool taken = std::any_of(ls.tcp.begin(), ls.tcp.end(),
                                   [&](const TcpRoute& r) { return r.sni == name; });
          if (taken) {
            note(ls.name + ": TLS for " + name + " goes to the TCPMapping with that host, not " +
                 h->source);
            continue;
          }
          ls.sni.push_back({name, tls_index(st->second, TlsPurpose::kHttp)});
        }
        std::stable_sort(ls.sni.begin(), ls.sni.end(),
                         [](const SniCertificate& a, const SniCertificate& b) {
                           return sni_rank(a.hostname) < sni_rank(b.hostname);
                         });
        // Clients without SNI (or with a name nothing matches) get the wildcard Host's
        // certificate, else the first.
        for (const SniCertificate& c : ls.sni) {
          if (c.hostname == "*") ls.default_tls = c.tls;
        }
        if (!ls.default_tls && !ls.sni.empty()) ls.default_tls = ls.sni.front().tls;
      }
      ls.routes = router::RouteTable::build(std::move(vhosts));
      snap_.listeners.push_back(std::move(ls));
    }

    // Ports with TCPMappings and no Listener get one (irlistener.py ListenerFactory.finalize):
    // TLS when a TCPMapping there sets `host`, raw TCP otherwise.
    for (auto& [bind, b] : tcp) {
      ListenerSnapshot ls;
      bool sni = std::any_of(b.routes.begin(), b.routes.end(),
                             [](const TcpRoute& r) { return !r.sni.empty(); });
      ls.name = "listener-" + b.address + "-" + std::to_string(b.port);
      ls.bind_address = b.address;
      ls.port = b.port;
      ls.protocol = sni ? ListenerProtocol::kTls : ListenerProtocol::kTcp;
      ls.security_model = SecurityModel::kSecure;
      ls.stats_prefix = std::string(sni ? "ingress_tls_" : "ingress_tcp_") + std::to_string(b.port);
      ls.tcp = std::move(b.routes);
      note("no Listener on " + bind + ": synthesized a " + (sni ? "TLS" : "TCP") + " Listener " +
           ls.name + " for " + join(b.sources));
      snap_.listeners.push_back(std::move(ls));
    }
    warn_unused_tls_contexts();

    for (const HostSpec& h : hosts_) {
      if (bound_hosts.count(h.source) == 0) {
        warning(h.origin, h.source, "",
                "is bound to no Listener (check the Listeners' hostBinding), so it serves "
                "nothing");
      }
    }
  }

  const CompileOptions& options_;
  CompileResult& result_;
  Snapshot& snap_;

  std::vector<const Resource*> mappings_in_, hosts_in_, listeners_in_, modules_in_;
  std::vector<const Resource*> tls_contexts_in_, tcp_mappings_in_, secrets_in_;
  static constexpr const char* kDefaultResolver = "kubernetes-service";
  std::map<std::string, ResolverKind> resolvers_;
  std::optional<std::string> default_resolver_;  // Module `resolver`
  std::set<std::string> external_tls_refs_;   // TLSContext names used by kinds compiled elsewhere
  std::vector<TlsContextSpec> tls_contexts_;  // stable once decoded: the resolver points into it
  std::vector<TcpMappingSpec> tcp_mappings_;
  std::unique_ptr<TlsResolver> tls_;
  std::map<std::string, ServerTls> host_tls_;  // Host source -> its termination settings
  std::unordered_map<std::string, std::vector<uint32_t>>
      tls_index_;  // content hash -> Snapshot::tls
  MappingDefaults defaults_;
  std::vector<ListenerSpec> listeners_;
  std::vector<HostSpec> hosts_;
  std::vector<MappingSpec> mappings_;  // stable: groups point into it
  std::vector<Group> groups_;
  std::map<std::string, std::pair<std::string, size_t>> cluster_index_;
  std::unordered_map<std::string, uint32_t> route_stats_index_;
};

}  // namespace

CompileResult compile(const std::vector<Resource>& resources, const CompileOptions& options) {
  CompileResult result;
  auto snapshot = std::make_shared<Snapshot>();
  try {
    Compiler compiler(options, result, *snapshot);
    compiler.run(resources);
  } catch (const std::exception& e) {
    // A bug in the compiler must not take the control thread down; the snapshot still applies
    // whatever was built before the failure.
    Diagnostic d;
    d.message = std::string("internal error while compiling the configuration: ") + e.what();
    result.diagnostics.push_back(std::move(d));
  }
  result.snapshot = std::move(snapshot);
  return result;
}

}  // namespace proxenos::config
