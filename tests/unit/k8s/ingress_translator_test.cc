// Ingress -> Mappings/Hosts, checked through the real compiler and route table: what a request
// for a host and path reaches.
#include "k8s/ingress_translator.h"

#include <gtest/gtest.h>

#include "../config/tls_test_data.h"
#include "translation_test_util.h"

namespace proxenos::k8s {
namespace {

const ResourceKind kIngressClass{"networking.k8s.io", "v1", "ingressclasses", "IngressClass",
                                 false};
const ResourceKind kService{"", "v1", "services", "Service", true};
const ResourceKind kSecret{"", "v1", "secrets", "Secret", true};

std::shared_ptr<const config::Resource> object(const std::string& yaml, const ResourceKind& kind) {
  std::optional<config::Resource> r = to_resource(YAML::Load(yaml), kind);
  EXPECT_TRUE(r.has_value()) << yaml;
  return std::make_shared<config::Resource>(r.value_or(config::Resource{}));
}

using testing::Compiled;
using testing::dump;

Compiled compile(const IngressInputs& in, const std::vector<std::string>& extra_yaml = {}) {
  std::vector<config::Resource> extra;
  for (const std::string& y : extra_yaml) {
    YAML::Node node = YAML::Load(y);
    std::string kind = node["kind"].as<std::string>();
    extra.push_back(*object(y, kind == "Secret" ? kSecret : kService));
  }
  return testing::compile_translation(translate_ingresses(in), extra, in.ambassador_id);
}

// Where a request goes: "host:port" of the upstream, "" (404) or "no listener".
std::string route(const config::Snapshot& s, uint16_t port, const std::string& authority,
                  const std::string& path, std::string* rewritten = nullptr) {
  testing::Request r;
  r.port = port;
  r.authority = authority;
  r.path = path;
  testing::Hit h = testing::hit(s, r);
  if (!h.listener) return "no listener";
  if (h.target != nullptr && rewritten != nullptr) {
    *rewritten = h.target->prefix_rewrite.value_or("(none)");
  }
  return h.upstream;
}

TEST(IngressTranslator, SimpleFanoutIsElementWisePrefix) {
  // kubernetes.io "Simple fanout" example, claimed with the class annotation.
  IngressInputs in;
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: simple-fanout-example
  namespace: shop
  annotations:
    kubernetes.io/ingress.class: ambassador
spec:
  rules:
  - host: foo.bar.com
    http:
      paths:
      - path: /foo
        pathType: Prefix
        backend:
          service:
            name: service1
            port:
              number: 4200
      - path: /bar/
        pathType: Prefix
        backend:
          service:
            name: service2
            port:
              number: 8080
)",
                                ingress_kind()));
  Compiled c = compile(in);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_TRUE(c.t.diagnostics.empty()) << dump(c.t.diagnostics);
  for (const config::Resource& r : c.t.resources) {
    EXPECT_EQ(r.api_version, "getambassador.io/v3alpha1");
    EXPECT_EQ(r.namespace_, "shop");
    EXPECT_EQ(r.origin.object, "shop/simple-fanout-example");
    EXPECT_TRUE(r.name.starts_with("ingress-simple-fanout-example-")) << r.name;
  }
  const config::Snapshot& s = c.snap();
  std::string rewritten;
  EXPECT_EQ(route(s, 8080, "foo.bar.com", "/foo", &rewritten), "service1.shop:4200");
  EXPECT_EQ(rewritten, "(none)");  // Ingress paths reach the backend unchanged
  EXPECT_EQ(route(s, 8080, "foo.bar.com", "/foo/", &rewritten), "service1.shop:4200");
  EXPECT_EQ(rewritten, "(none)");
  EXPECT_EQ(route(s, 8080, "FOO.bar.com:8080", "/foo/x/y"), "service1.shop:4200");
  EXPECT_EQ(route(s, 8080, "foo.bar.com", "/foobar"), "");
  EXPECT_EQ(route(s, 8080, "foo.bar.com", "/bar"), "service2.shop:8080");  // trailing / ignored
  EXPECT_EQ(route(s, 8080, "foo.bar.com", "/bar/baz"), "service2.shop:8080");
  EXPECT_EQ(route(s, 8080, "foo.bar.com", "/"), "");
  EXPECT_EQ(route(s, 8080, "other.com", "/foo"), "");
  // No load balancer known: no status.
  EXPECT_TRUE(c.t.statuses.empty());
}

TEST(IngressTranslator, ExactBeatsPrefixAndImplementationSpecificIsAStringPrefix) {
  IngressInputs in;
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: paths, namespace: default, annotations: {kubernetes.io/ingress.class: Ambassador}}
spec:
  rules:
  - http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: prefix, port: {number: 80}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: exact, port: {number: 80}}}}
      - {path: /static, pathType: ImplementationSpecific,
         backend: {service: {name: impl, port: {number: 81}}}}
      - {path: /api/v2, pathType: Prefix, backend: {service: {name: v2, port: {number: 80}}}}
)",
                                ingress_kind()));
  Compiled c = compile(in);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::Snapshot& s = c.snap();
  EXPECT_EQ(route(s, 8080, "any.host", "/api"), "exact.default:80");
  EXPECT_EQ(route(s, 8080, "any.host", "/api/"), "prefix.default:80");
  EXPECT_EQ(route(s, 8080, "any.host", "/api/v1"), "prefix.default:80");
  EXPECT_EQ(route(s, 8080, "any.host", "/api/v2"), "v2.default:80");
  EXPECT_EQ(route(s, 8080, "any.host", "/api/v2/x"), "v2.default:80");
  EXPECT_EQ(route(s, 8080, "any.host", "/api/v22"), "prefix.default:80");
  EXPECT_EQ(route(s, 8080, "any.host", "/staticfiles"), "impl.default:81");
  EXPECT_EQ(route(s, 8080, "any.host", "/apix"), "");
}

TEST(IngressTranslator, IngressClassSelectsAndAmbassadorIdFilters) {
  IngressInputs in;
  in.ingress_classes.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: ambassador}
spec: {controller: getambassador.io/ingress-controller}
)",
                                      kIngressClass));
  in.ingress_classes.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
)",
                                      kIngressClass));
  auto with_class = [](const std::string& name, const std::string& cls,
                       const std::string& extra = "") {
    return object("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: " + name +
                      ", namespace: default" + extra + "}\nspec:\n  ingressClassName: " + cls +
                      "\n  rules:\n  - host: " + name +
                      ".example.com\n    http: {paths: [{path: /, pathType: Prefix, backend: "
                      "{service: {name: " +
                      name + ", port: {number: 80}}}}]}\n",
                  ingress_kind());
  };
  in.ingresses.push_back(with_class("ours", "ambassador"));
  in.ingresses.push_back(with_class("nginx", "nginx"));
  in.ingresses.push_back(with_class("unknown", "missing"));
  in.ingresses.push_back(
      with_class("otherid", "ambassador", ", annotations: {getambassador.io/ambassador-id: blue}"));
  Compiled c = compile(in);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::Snapshot& s = c.snap();
  EXPECT_EQ(route(s, 8080, "ours.example.com", "/x"), "ours.default:80");
  EXPECT_EQ(route(s, 8080, "nginx.example.com", "/x"), "");
  EXPECT_EQ(route(s, 8080, "unknown.example.com", "/x"), "");
  EXPECT_EQ(route(s, 8080, "otherid.example.com", "/x"), "");

  // With --ambassador-id blue only the annotated one is ours, and its resources carry the id.
  in.ambassador_id = "blue";
  in.ingress_classes.clear();  // the class has the default id: not ours any more
  in.ingresses.push_back(with_class("annotated", "x",
                                    ", annotations: {getambassador.io/ambassador-id: blue, "
                                    "kubernetes.io/ingress.class: ambassador}"));
  Compiled blue = compile(in);
  ASSERT_FALSE(config::has_errors(blue.result.diagnostics)) << dump(blue.result.diagnostics);
  EXPECT_EQ(route(blue.snap(), 8080, "annotated.example.com", "/"), "annotated.default:80");
  EXPECT_EQ(route(blue.snap(), 8080, "otherid.example.com", "/"), "");
  for (const config::Resource& r : blue.t.resources) {
    EXPECT_EQ(r.ambassador_id, std::vector<std::string>{"blue"});
  }

  // Single-namespace mode ignores IngressClasses.
  IngressInputs single;
  single.single_namespace = true;
  single.ingress_classes = {object(R"(
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: ambassador}
spec: {controller: getambassador.io/ingress-controller}
)",
                                   kIngressClass)};
  single.ingresses.push_back(with_class("ours", "ambassador"));
  EXPECT_TRUE(translate_ingresses(single).resources.empty());
}

TEST(IngressTranslator, TlsEntriesBecomeHostsWithTheirSecret) {
  // kubernetes.io "TLS" example.
  IngressInputs in;
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: tls-example-ingress
  namespace: default
  annotations: {kubernetes.io/ingress.class: ambassador}
spec:
  tls:
  - hosts:
      - https-example.foo.com
    secretName: testsecret-tls
  rules:
  - host: https-example.foo.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: service1
            port:
              number: 80
  - http:
      paths:
      - path: /nohost
        pathType: Exact
        backend: {service: {name: service2, port: {number: 80}}}
)",
                                ingress_kind()));
  Compiled c = compile(in, {config::testing::tls_secret("testsecret-tls")});
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  size_t hosts = 0;
  for (const config::Resource& r : c.t.resources) {
    if (r.kind != "Host") continue;
    ++hosts;
    EXPECT_EQ(r.name, "ingress-tls-example-ingress-tls-0-0");
    EXPECT_EQ(r.spec["tlsSecret"]["name"].as<std::string>(), "testsecret-tls");
    EXPECT_EQ(r.spec["requestPolicy"]["insecure"]["action"].as<std::string>(), "Route");
  }
  EXPECT_EQ(hosts, 1u);
  const config::Snapshot& s = c.snap();
  const config::ListenerSnapshot* https = nullptr;
  for (const auto& l : s.listeners) {
    if (l.port == 8443) https = &l;
  }
  ASSERT_NE(https, nullptr);
  ASSERT_EQ(https->sni.size(), 1u);
  EXPECT_EQ(https->sni[0].hostname, "https-example.foo.com");
  EXPECT_EQ(route(s, 8443, "https-example.foo.com", "/a"), "service1.default:80");
  // Insecure action Route: cleartext is served too.
  EXPECT_EQ(route(s, 8080, "https-example.foo.com", "/a"), "service1.default:80");
  // Emissary: a rule without host, in an Ingress with TLS, serves through its own Hosts only.
  EXPECT_EQ(route(s, 8080, "https-example.foo.com", "/nohost"), "service2.default:80");
  EXPECT_EQ(route(s, 8080, "elsewhere.com", "/nohost"), "");
}

TEST(IngressTranslator, WildcardHostCoversExactlyOneLabel) {
  IngressInputs in;
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: wild, namespace: default, annotations: {kubernetes.io/ingress.class: ambassador}}
spec:
  rules:
  - host: "*.foo.com"
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: wild, port: {number: 80}}}}]}
)",
                                ingress_kind()));
  Compiled c = compile(in);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::Snapshot& s = c.snap();
  EXPECT_EQ(route(s, 8080, "bar.foo.com", "/"), "wild.default:80");
  EXPECT_EQ(route(s, 8080, "Bar.Foo.com:8080", "/x"), "wild.default:80");
  EXPECT_EQ(route(s, 8080, "baz.bar.foo.com", "/"), "");
  EXPECT_EQ(route(s, 8080, "foo.com", "/"), "");
}

TEST(IngressTranslator, DefaultBackendCatchesTheRest) {
  // kubernetes.io "Ingress backed by a single Service" plus a rule.
  IngressInputs in;
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: test-ingress, namespace: web, annotations: {kubernetes.io/ingress.class: ambassador}}
spec:
  defaultBackend:
    service:
      name: test
      port:
        number: 80
  rules:
  - host: api.example.com
    http: {paths: [{path: /v1, pathType: Prefix, backend: {service: {name: api, port: {number: 9000}}}}]}
)",
                                ingress_kind()));
  Compiled c = compile(in);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::Snapshot& s = c.snap();
  EXPECT_EQ(route(s, 8080, "api.example.com", "/v1/users"), "api.web:9000");
  EXPECT_EQ(route(s, 8080, "api.example.com", "/v2"), "test.web:80");
  EXPECT_EQ(route(s, 8080, "random.org", "/anything"), "test.web:80");
}

TEST(IngressTranslator, NamedPortsResolveThroughTheService) {
  IngressInputs in;
  in.services.push_back(object(R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports:
  - {name: metrics, port: 9090}
  - {name: http, port: 8081, targetPort: 80}
)",
                               kService));
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: named, namespace: default, resourceVersion: "42",
           annotations: {kubernetes.io/ingress.class: ambassador}}
spec:
  rules:
  - http:
      paths:
      - {path: /ok, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /bad, pathType: Prefix, backend: {service: {name: web, port: {name: grpc}}}}
      - {path: /res, pathType: Prefix, backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: b}}}
)",
                                ingress_kind()));
  Compiled c = compile(in);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_EQ(route(c.snap(), 8080, "h", "/ok"), "web.default:8081");
  EXPECT_EQ(route(c.snap(), 8080, "h", "/bad"), "");
  const config::Diagnostics& d = c.t.diagnostics;
  ASSERT_EQ(d.size(), 2u) << dump(d);
  EXPECT_EQ(d[0].field, "spec.rules[0].http.paths[1].backend.service.port.name");
  EXPECT_EQ(d[0].resource, "Ingress/default/named");
  EXPECT_EQ(d[0].origin.to_string(), "k8s default/named@42");
  EXPECT_NE(d[0].message.find("no port named \"grpc\""), std::string::npos) << d[0].message;
  EXPECT_EQ(d[1].field, "spec.rules[0].http.paths[2].backend.resource");
}

TEST(IngressTranslator, StatusCopiesThePublishServiceLoadBalancer) {
  IngressInputs in;
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a, namespace: ns1, annotations: {kubernetes.io/ingress.class: ambassador}}
spec: {defaultBackend: {service: {name: s, port: {number: 80}}}}
)",
                                ingress_kind()));
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: theirs, namespace: ns1}
spec: {defaultBackend: {service: {name: s, port: {number: 80}}}}
)",
                                ingress_kind()));
  in.load_balancer = nlohmann::json::parse(R"({"ingress":[{"ip":"203.0.113.7"}]})");
  Translation t = translate_ingresses(in);
  ASSERT_EQ(t.statuses.size(), 1u);
  const StatusUpdate& s = t.statuses[0];
  EXPECT_EQ(s.key(), "ingresses.networking.k8s.io/ns1/a");
  EXPECT_EQ(s.status,
            nlohmann::json::parse(R"({"loadBalancer":{"ingress":[{"ip":"203.0.113.7"}]}})"));
  EXPECT_TRUE(s.parents_controller.empty());
}

TEST(IngressTranslator, ConfigAnnotationResourcesAreIncluded) {
  IngressInputs in;
  in.ingresses.push_back(object(R"(
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: annotated
  namespace: team
  annotations:
    kubernetes.io/ingress.class: ambassador
    getambassador.io/config: |
      apiVersion: getambassador.io/v3alpha1
      kind: Mapping
      name: extra
      hostname: "*"
      prefix: /extra/
      service: extra.team:8080
spec: {}
)",
                                ingress_kind()));
  Compiled c = compile(in);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_EQ(route(c.snap(), 8080, "h", "/extra/x"), "extra.team:8080");
}

}  // namespace
}  // namespace proxenos::k8s
