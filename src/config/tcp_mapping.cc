#include "config/tcp_mapping.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>

#include "config/decode.h"

namespace proxenos::config {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_ip_address(const std::string& s) {
  in6_addr v6{};
  in_addr v4{};
  return inet_pton(AF_INET, s.c_str(), &v4) == 1 || inet_pton(AF_INET6, s.c_str(), &v6) == 1;
}

std::string canonical_yaml(const YAML::Node& v) {
  YAML::Emitter e;
  e.SetMapFormat(YAML::Flow);
  e.SetSeqFormat(YAML::Flow);
  e << v;
  return std::string(e.c_str());
}

}  // namespace

std::string TcpMappingSpec::group_key() const {
  // Unlike Emissary's hash (where `host: "*"` and no host collide), a `*` host stays its own
  // group: it terminates TLS, the hostless group does not.
  return address + "\x1f" + std::to_string(port) + "\x1f" + (host ? "=" + *host : "");
}

std::optional<TcpMappingSpec> decode_tcp_mapping(const Resource& resource,
                                                 Diagnostics* diagnostics) {
  Reporter r(resource, diagnostics);
  TcpMappingSpec t;
  t.name = resource.name;
  t.namespace_ = resource.namespace_;
  t.labels = resource.labels;
  t.source = resource.key();
  t.origin = resource.origin;

  MapReader spec(r, resource.spec, "spec", resource.object);
  if (!spec.is_map()) {
    if (!spec.present()) r.error(resource.object, "spec", "is required");
    return std::nullopt;
  }
  spec.ignore("ambassador_id");

  spec.require("port");
  if (auto port = spec.integer("port", 1, 65535)) t.port = static_cast<uint16_t>(*port);
  YAML::Node address_at = spec.where("address");
  if (auto address = spec.string("address"); address && !address->empty()) {
    if (!is_ip_address(*address)) {
      r.error(address_at, "spec.address", "\"" + *address + "\" must be an IP address to bind");
    }
    t.address = *address;
  }
  YAML::Node host_at = spec.where("host");
  if (auto host = spec.string("host"); host && !host->empty()) {
    std::string h = lower(*host);
    if (h.find_first_of(" \t/") != std::string::npos) {
      r.error(host_at, "spec.host", "\"" + *host + "\" is not a host name (SNI)");
    }
    t.host = std::move(h);
  }

  YAML::Node passthrough_at = spec.where("tls_passthrough");
  t.tls_passthrough = spec.boolean("tls_passthrough").value_or(false);
  if (t.tls_passthrough && !t.host) {
    r.error(passthrough_at, "spec.tls_passthrough",
            "needs spec.host: passthrough routes TLS connections by their SNI");
  }

  spec.require("service");
  YAML::Node service_at = spec.where("service");
  if (auto v = spec.string("service")) {
    t.service = *v;
    std::string error;
    if (!parse_service(t.service, &t.upstream, &error)) {
      r.error(service_at, "spec.service", "\"" + t.service + "\" " + error);
    }
  }
  // `tls` names a TLSContext (v3) or is a boolean (v2: originate TLS without one).
  if (spec.has("tls")) {
    YAML::Node at = spec.where("tls");
    YAML::Node v = spec.take("tls");
    if (v.IsScalar() && scalar_kind(v) == ScalarKind::kBool) {
      t.upstream.tls = t.upstream.tls || read_bool(r, v, at, "spec.tls").value_or(false);
    } else if (auto name = read_string(r, v, at, "spec.tls"); name && !name->empty()) {
      t.tls_context = *name;
      t.tls_at = r.origin_at(at);
      if (t.upstream.scheme == "http") {
        r.warning(at, "spec.tls",
                  "TLS is originated because a TLSContext is named, although spec.service says "
                  "http://");
      }
      t.upstream.tls = true;
    }
  }
  if (t.tls_passthrough && t.upstream.tls) {
    r.error(passthrough_at, "spec.tls_passthrough",
            "cannot be combined with TLS origination (spec.tls or an https:// service): the "
            "client's TLS reaches the upstream as it is");
  }
  if (!t.upstream.port_given) t.upstream.port = t.upstream.tls ? 443 : 80;

  if (auto w = spec.integer("weight", 0, 100)) t.weight = static_cast<uint32_t>(*w);
  // The CRD types idle_timeout_ms as a string; Emissary's IR takes either.
  YAML::Node idle_at = spec.where("idle_timeout_ms");
  YAML::Node idle = spec.take("idle_timeout_ms");
  if (idle.IsDefined()) {
    std::optional<uint32_t> ms;
    if (idle.IsScalar()) {
      const std::string& text = idle.Scalar();
      uint32_t value = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) ms = value;
    }
    if (!ms) {
      r.error(idle_at, "spec.idle_timeout_ms",
              "must be a number of milliseconds (0 to 4294967295)");
    }
    t.idle_timeout_ms = ms;
  }
  t.enable_ipv4 = spec.boolean("enable_ipv4");
  t.enable_ipv6 = spec.boolean("enable_ipv6");
  if (spec.has("circuit_breakers")) {
    YAML::Node at = spec.where("circuit_breakers");
    YAML::Node v = spec.take("circuit_breakers");
    if (!v.IsSequence()) {
      r.error(at, "spec.circuit_breakers", "must be a list");
    } else {
      t.circuit_breakers_text = canonical_yaml(v);
      r.warning(at, "spec.circuit_breakers", "is accepted but has no effect in this release");
    }
  } else {
    spec.ignore("circuit_breakers");
  }
  t.resolver = spec.string("resolver");
  t.cluster_tag = spec.string("cluster_tag");
  t.stats_name = spec.string("stats_name");
  spec.ignore("v2ExplicitTLS");  // v2<->v3 round-trip bookkeeping
  spec.finish();

  if (r.errors() > 0) return std::nullopt;
  return t;
}

}  // namespace proxenos::config
