#include "config/host.h"

#include "config/decode.h"

namespace proxenos::config {

std::optional<HostSpec> decode_host(const Resource& resource, Diagnostics* diagnostics) {
  Reporter r(resource, diagnostics);
  HostSpec h;
  h.name = resource.name;
  h.namespace_ = resource.namespace_;
  h.labels = resource.labels;
  h.source = resource.key();
  h.origin = resource.origin;

  MapReader spec(r, resource.spec, "spec", resource.object);
  if (spec.present() && !spec.is_map()) return std::nullopt;
  spec.ignore("ambassador_id");

  if (auto v = spec.string("hostname"); v && !v->empty()) h.hostname = *v;

  // `selector` is the deprecated alias; `mappingSelector` wins when both are set.
  std::optional<LabelSelector> selector = decode_label_selector(spec, "mappingSelector");
  if (spec.has("selector")) {
    std::optional<LabelSelector> alias = decode_label_selector(spec, "selector");
    if (selector && !selector->empty()) {
      r.warning(spec.where("selector"), "spec.selector",
                "ignored: spec.mappingSelector is also set");
    } else {
      selector = alias;
    }
  }
  // An empty selector selects nothing special: the Host behaves as if it had none, as in
  // Emissary (an empty dict is falsy there).
  if (selector && !selector->empty()) h.mapping_selector = selector;

  if (std::optional<MapReader> policy = spec.map("requestPolicy"); policy && policy->present()) {
    if (std::optional<MapReader> insecure = policy->map("insecure");
        insecure && insecure->present()) {
      if (auto action = insecure->one_of("action", {"Redirect", "Reject", "Route"})) {
        h.insecure_action = *action == "Route"    ? router::InsecureAction::kRoute
                            : *action == "Reject" ? router::InsecureAction::kReject
                                                  : router::InsecureAction::kRedirect;
      }
      if (auto port = insecure->integer("additionalPort", 1, 65535)) {
        h.insecure_additional_port = static_cast<uint32_t>(*port);
        r.warning(insecure->where("additionalPort"), "spec.requestPolicy.insecure.additionalPort",
                  "has no effect: open the port with a Listener");
      }
      insecure->finish();
    }
    policy->finish();
  }

  // TLS (irhost.py setup): tlsSecret names the certificate; tlsContext links a TLSContext, or
  // spec.tls gives its fields inline (not both). The compiler resolves them.
  // An empty name means no TLS (crd_host.go: "If the value is "", then we do not do TLS").
  if (std::optional<MapReader> ref = spec.map("tlsSecret"); ref && ref->present()) {
    YAML::Node name_at = ref->where("name");
    std::optional<std::string> name = ref->string("name");
    std::optional<std::string> ns = ref->string("namespace");
    ref->finish();
    if (name && !name->empty()) {
      h.wants_tls = true;
      SecretRef secret;
      secret.name = *name;
      secret.namespace_ = ns.value_or("");
      secret.naming = SecretNaming::kLiteralFirst;
      secret.field = "spec.tlsSecret";
      secret.at = r.origin_at(name_at);
      h.tls.tls_secret = std::move(secret);
    } else if (!r.has_error_at("spec.tlsSecret")) {
      r.warning(name_at, "spec.tlsSecret.name", "is empty, so the Host does not terminate TLS");
    }
  }
  if (std::optional<MapReader> ref = spec.map("tlsContext"); ref && ref->present()) {
    YAML::Node name_at = ref->where("name");
    if (auto name = ref->string("name"); name && !name->empty()) {
      h.wants_tls = true;
      h.tls.context = *name;
      h.tls.context_at = r.origin_at(name_at);
    } else if (!r.has_error_at("spec.tlsContext")) {
      r.warning(name_at, "spec.tlsContext.name", "is empty, so no TLSContext is linked");
    }
    ref->finish();
  }
  if (spec.has("tls")) {
    h.wants_tls = true;
    if (spec.has("tlsContext")) {
      r.error(spec.where("tls"), "spec.tls", "must not be set together with spec.tlsContext");
    }
    if (std::optional<MapReader> tls = spec.map("tls"); tls && tls->present()) {
      h.tls.inline_tls = decode_host_inline_tls(*tls, resource);
    }
  }
  spec.not_yet_effective("acmeProvider");
  if (spec.has("previewUrl")) {
    spec.take("previewUrl");
    r.warning(spec.where("previewUrl"), "spec.previewUrl", "is no longer supported; ignored");
  }
  spec.finish();

  if (r.errors() > 0) return std::nullopt;
  return h;
}

HostSpec synthetic_default_host() {
  HostSpec h;
  h.name = "default-host";
  h.namespace_ = "default";
  h.source = "default-host";  // no resource behind it
  h.hostname = "*";
  h.insecure_action = router::InsecureAction::kRoute;
  return h;
}

bool host_accepts_mapping(const HostSpec& host, const std::string& mapping_host, bool host_regex,
                          const Labels& mapping_labels) {
  bool has_hostname = false;
  bool host_match = false;
  if (host_regex) {
    has_hostname = true;
    host_match = true;
  } else if (!mapping_host.empty()) {
    has_hostname = true;
    host_match = router::glob_matches_host(mapping_host, host.hostname);
  }
  if (host.mapping_selector) {
    bool selector_match = host.mapping_selector->matches(mapping_labels);
    return has_hostname ? host_match && selector_match : selector_match;
  }
  return has_hostname && host_match;
}

}  // namespace proxenos::config
