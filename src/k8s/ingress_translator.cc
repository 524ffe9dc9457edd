#include "k8s/ingress_translator.h"

#include <re2/re2.h>

#include <cctype>
#include <set>

#include "config/decode.h"
#include "config/file_source.h"
#include "config/label_selector.h"
#include "k8s/object_fields.h"
#include "k8s/service_annotations.h"

namespace proxenos::k8s {

namespace {

constexpr const char* kIngressLabel = "a10r-k8s-ingress";

std::string annotation(const config::Resource& r, const std::string& key) {
  auto it = r.annotations.find(key);
  return it == r.annotations.end() ? std::string() : it->second;
}

std::string ambassador_id_of(const config::Resource& r) {
  std::string id = annotation(r, "getambassador.io/ambassador-id");
  return id.empty() ? "default" : id;
}

class IngressTranslator {
 public:
  IngressTranslator(const IngressInputs& in, Translation& out) : in_(in), out_(out) {}

  void run() {
    if (!in_.single_namespace) {
      for (const auto& c : in_.ingress_classes) {
        if (!c) continue;
        if (lower(scalar(c->spec, "controller")) != kIngressController) continue;
        if (ambassador_id_of(*c) != in_.ambassador_id) continue;
        classes_.insert(c->name);
      }
    }
    for (const auto& ing : in_.ingresses) {
      if (ing && ours(*ing)) translate(*ing);
    }
  }

 private:
  bool ours(const config::Resource& ing) const {
    std::string cls = scalar(ing.spec, "ingressClassName");
    bool by_class = !cls.empty() && classes_.count(cls) != 0;
    bool by_annotation = lower(annotation(ing, "kubernetes.io/ingress.class")) == "ambassador";
    if (!by_class && !by_annotation) return false;
    return ambassador_id_of(ing) == in_.ambassador_id;
  }

  void report(const config::Resource& ing, config::Severity severity, std::string field,
              std::string message) {
    out_.diagnostics.push_back(
        source_diagnostic(ing, severity, std::move(field), std::move(message)));
  }

  void emit(const config::Resource& ing, const std::string& kind, const std::string& name,
            const config::Labels& labels, YAML::Node spec) {
    out_.resources.push_back(
        translated_resource(ing, kind, name, ing.namespace_, labels, in_.ambassador_id, spec));
  }

  // "name.namespace:port" for a v1 IngressServiceBackend; nullopt (reported) when it cannot be
  // resolved. `field` names the backend for diagnostics.
  std::optional<std::string> service_of(const config::Resource& ing, const YAML::Node& backend,
                                        const std::string& field) {
    const YAML::Node service = config::child(backend, "service");
    if (!service.IsDefined() || !service.IsMap()) {
      if (config::child(backend, "resource").IsDefined()) {
        report(ing, config::Severity::kError, field + ".resource",
               "resource backends are not supported (use a Service backend); ignored");
      } else {
        report(ing, config::Severity::kError, field + ".service", "is required; ignored");
      }
      return std::nullopt;
    }
    std::string name = scalar(service, "name");
    if (name.empty()) {
      report(ing, config::Severity::kError, field + ".service.name", "is required; ignored");
      return std::nullopt;
    }
    const YAML::Node port = config::child(service, "port");
    std::string number = scalar(port, "number");
    std::string port_name = scalar(port, "name");
    if (number.empty() && !port_name.empty()) {
      number = named_port(ing.namespace_, name, port_name);
      if (number.empty()) {
        report(ing, config::Severity::kError, field + ".service.port.name",
               "Service " + ing.namespace_ + "/" + name + " has no port named \"" + port_name +
                   "\" (or does not exist); ignored");
        return std::nullopt;
      }
    }
    if (number.empty()) {
      report(ing, config::Severity::kError, field + ".service.port",
             "needs a number or a name; ignored");
      return std::nullopt;
    }
    return name + "." + ing.namespace_ + ":" + number;
  }

  std::string named_port(const std::string& ns, const std::string& service,
                         const std::string& port_name) const {
    for (const auto& s : in_.services) {
      if (!s || s->namespace_ != ns || s->name != service) continue;
      const YAML::Node ports = config::child(s->spec, "ports");
      if (!ports.IsSequence()) return "";
      for (const YAML::Node& p : ports) {
        if (scalar(p, "name") == port_name) return scalar(p, "port");
      }
    }
    return "";
  }

  void translate(const config::Resource& ing) {
    const YAML::Node spec = ing.spec;
    std::string ingress_id;
    const YAML::Node tls = config::child(spec, "tls");
    if (tls.IsSequence() && tls.size() > 0) {
      // Emissary links an Ingress's Mappings to its own Hosts by this label.
      ingress_id = "a10r-ingress-" + ing.name + "-" + ing.namespace_;
    }
    if (tls.IsSequence()) {
      for (size_t i = 0; i < tls.size(); ++i) {
        std::string secret = scalar(tls[i], "secretName");
        if (secret.empty()) continue;
        std::vector<std::string> hosts;
        const YAML::Node list = config::child(tls[i], "hosts");
        if (list.IsSequence()) {
          for (const YAML::Node& h : list) {
            if (h.IsScalar()) hosts.push_back(h.Scalar());
          }
        }
        if (!list.IsDefined()) hosts.push_back("*");
        for (size_t j = 0; j < hosts.size(); ++j) {
          YAML::Node h(YAML::NodeType::Map);
          h["hostname"] = text(hosts[j]);
          YAML::Node secret_ref(YAML::NodeType::Map);
          secret_ref["name"] = text(secret);
          h["tlsSecret"] = secret_ref;
          YAML::Node selector(YAML::NodeType::Map);
          YAML::Node match(YAML::NodeType::Map);
          match[kIngressLabel] = text(ingress_id);
          selector["matchLabels"] = match;
          h["mappingSelector"] = selector;
          YAML::Node policy(YAML::NodeType::Map);
          YAML::Node insecure(YAML::NodeType::Map);
          insecure["action"] = text("Route");
          policy["insecure"] = insecure;
          h["requestPolicy"] = policy;
          emit(ing, "Host",
               "ingress-" + ing.name + "-tls-" + std::to_string(i) + "-" + std::to_string(j),
               ing.labels, h);
        }
      }
    }

    config::Labels labels = ing.labels;
    if (!ingress_id.empty()) labels[kIngressLabel] = ingress_id;

    // v1 defaultBackend (the v1beta1 `backend` is the same shape once converted).
    YAML::Node backend = config::child(spec, "defaultBackend");
    std::string backend_field = "spec.defaultBackend";
    if (!backend.IsDefined()) {
      backend = config::child(spec, "backend");
      backend_field = "spec.backend";
    }
    if (backend.IsDefined() && backend.IsMap()) {
      if (auto service = service_of(ing, backend, backend_field)) {
        YAML::Node m(YAML::NodeType::Map);
        m["hostname"] = text("*");
        m["prefix"] = text("/");
        m["rewrite"] = text("");
        m["service"] = text(*service);
        emit(ing, "Mapping", "ingress-" + ing.name + "-default-backend", labels, m);
      }
    }

    rules(ing, ingress_id, labels);

    if (ing.annotations.count(std::string(kConfigAnnotation)) != 0) {
      config::LoadResult embedded;
      annotation_resources(ing, embedded);
      for (config::Resource& r : embedded.resources) out_.resources.push_back(std::move(r));
      for (config::Diagnostic& d : embedded.diagnostics) out_.diagnostics.push_back(std::move(d));
    }

    if (!in_.load_balancer.is_null()) {
      StatusUpdate s;
      s.kind = ingress_kind();
      s.namespace_ = ing.namespace_;
      s.name = ing.name;
      s.status = nlohmann::json::object();
      s.status["loadBalancer"] = in_.load_balancer;
      out_.statuses.push_back(std::move(s));
    }
  }

  void rules(const config::Resource& ing, const std::string& ingress_id,
             const config::Labels& labels) {
    const YAML::Node rules = config::child(ing.spec, "rules");
    if (!rules.IsSequence()) return;
    for (size_t i = 0; i < rules.size(); ++i) {
      const YAML::Node rule = rules[i];
      std::string host = scalar(rule, "host");
      const YAML::Node paths = config::child(config::child(rule, "http"), "paths");
      if (!paths.IsSequence()) continue;
      for (size_t j = 0; j < paths.size(); ++j) {
        const YAML::Node path = paths[j];
        std::string field =
            "spec.rules[" + std::to_string(i) + "].http.paths[" + std::to_string(j) + "]";
        std::string location = scalar(path, "path");
        if (location.empty()) location = "/";
        std::string type = scalar(path, "pathType");
        if (type.empty()) type = "ImplementationSpecific";
        if (type != "Exact" && type != "Prefix" && type != "ImplementationSpecific") {
          report(ing, config::Severity::kError, field + ".pathType",
                 "\"" + type + "\" is not Exact, Prefix or ImplementationSpecific; ignored");
          continue;
        }
        if (location.front() != '/') {
          report(ing, config::Severity::kError, field + ".path",
                 "\"" + location + "\" must start with /; ignored");
          continue;
        }
        std::optional<std::string> service =
            service_of(ing, config::child(path, "backend"), field + ".backend");
        if (!service) continue;
        std::string base =
            "ingress-" + ing.name + "-" + std::to_string(i) + "-" + std::to_string(j);
        auto mapping = [&](const std::string& name, const std::string& prefix, bool exact,
                           int precedence) {
          YAML::Node m(YAML::NodeType::Map);
          m["prefix"] = text(prefix);
          if (exact) m["prefix_exact"] = true;
          if (precedence != 0) m["precedence"] = precedence;
          m["rewrite"] = text("");
          m["service"] = text(*service);
          if (host.starts_with("*.")) {
            // One label only (Ingress wildcards never span dots), ASCII case-insensitively.
            m["host"] = text("(?i)[a-z0-9]([-a-z0-9]*[a-z0-9])?" + RE2::QuoteMeta(host.substr(1)));
            m["host_regex"] = true;
          } else if (!host.empty()) {
            m["hostname"] = text(host);
          } else if (ingress_id.empty()) {
            m["hostname"] = text("*");
          }
          emit(ing, "Mapping", name, labels, m);
        };
        if (type == "Exact") {
          mapping(base, location, true, 1);
        } else if (type == "Prefix") {
          // Element-wise: `/foo` (or `/foo/`) matches /foo, /foo/ and /foo/bar, not /foobar.
          std::string p = location;
          while (p.size() > 1 && p.back() == '/') p.pop_back();
          if (p == "/") {
            mapping(base, "/", false, 0);
          } else {
            mapping(base, p, true, 0);
            mapping(base + "-sub", p + "/", false, 0);
          }
        } else {
          mapping(base, location, false, 0);
        }
      }
    }
  }

  const IngressInputs& in_;
  Translation& out_;
  std::set<std::string> classes_;
};

}  // namespace

ResourceKind ingress_kind() {
  return {"networking.k8s.io", "v1", "ingresses", "Ingress", true};
}

Translation translate_ingresses(const IngressInputs& inputs) {
  Translation out;
  IngressTranslator(inputs, out).run();
  return out;
}

}  // namespace proxenos::k8s
