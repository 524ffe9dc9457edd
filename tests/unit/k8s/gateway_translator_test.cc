// Gateway API -> Listeners/Hosts/Mappings/TCPMappings, checked through the real compiler and
// route table (what a request on a port, host and path reaches), and the statuses written back.
#include "k8s/gateway_translator.h"

#include <gtest/gtest.h>

#include "../config/tls_test_data.h"
#include "translation_test_util.h"

namespace proxenos::k8s {
namespace {

constexpr const char* kController = "proxenos.dev/gateway-controller";
constexpr const char* kNow = "2026-01-02T03:04:05Z";

const char* kClasses = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: proxenos, generation: 3}
spec: {controllerName: proxenos.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
)";

// The backends most examples use.
const char* kServices = R"(
apiVersion: v1
kind: Service
metadata: {name: foo-svc, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: bar-svc, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: foo-v1, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: foo-v2, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: mirror-svc, namespace: default}
spec: {ports: [{port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: grpc-svc, namespace: default}
spec: {ports: [{port: 50051, appProtocol: kubernetes.io/h2c}]}
)";

struct World {
  GatewayInputs in;
  std::vector<config::Resource> extra;  // compiled as they are (Secrets, user resources)
};

World world(const std::string& yaml) {
  World w;
  w.in.now = kNow;
  w.in.secrets = ObjectList{};
  for (const YAML::Node& doc :
       YAML::LoadAll(std::string(kClasses) + "\n---\n" + kServices + "\n---\n" + yaml)) {
    if (!doc.IsMap()) continue;
    std::string kind = doc["kind"].as<std::string>();
    ResourceKind rk = kind == "Service"  ? ResourceKind{"", "v1", "services", "Service", true}
                      : kind == "Secret" ? ResourceKind{"", "v1", "secrets", "Secret", true}
                                         : gateway_api_kind(kind);
    std::optional<config::Resource> r = to_resource(doc, rk);
    EXPECT_TRUE(r.has_value());
    if (!r) continue;
    auto p = std::make_shared<config::Resource>(*r);
    if (kind == "GatewayClass") w.in.gateway_classes.push_back(p);
    if (kind == "Gateway") w.in.gateways.push_back(p);
    if (kind == "HTTPRoute") w.in.http_routes.push_back(p);
    if (kind == "GRPCRoute") w.in.grpc_routes.push_back(p);
    if (kind == "TLSRoute") w.in.tls_routes.push_back(p);
    if (kind == "TCPRoute") w.in.tcp_routes.push_back(p);
    if (kind == "ReferenceGrant") w.in.reference_grants.push_back(p);
    if (kind == "Service") w.in.services.push_back(p);
    if (kind == "Secret") w.in.secrets->push_back(p);
    if (kind == "Secret" || r->api_version.starts_with("getambassador.io")) w.extra.push_back(*r);
  }
  return w;
}

using testing::dump;
using testing::Hit;
using testing::hit;
using testing::Request;
using testing::upstream;

struct Compiled : testing::Compiled {
  const StatusUpdate* status(const std::string& kind, const std::string& name) const {
    for (const StatusUpdate& s : t.statuses) {
      if (s.kind.kind == kind && s.name == name) return &s;
    }
    return nullptr;
  }
  // conditions[type] of a route's first parent entry.
  nlohmann::json route_condition(const std::string& kind, const std::string& name,
                                 const std::string& type, size_t parent = 0) const {
    const StatusUpdate* s = status(kind, name);
    if (s == nullptr || s->status["parents"].size() <= parent) return nullptr;
    for (const auto& c : s->status["parents"][parent]["conditions"]) {
      if (c["type"] == type) return c;
    }
    return nullptr;
  }
  nlohmann::json listener_status(const std::string& gateway, const std::string& listener) const {
    const StatusUpdate* s = status("Gateway", gateway);
    if (s == nullptr) return nullptr;
    for (const auto& l : s->status["listeners"]) {
      if (l["name"] == listener) return l;
    }
    return nullptr;
  }
  size_t count(const std::string& kind) const {
    return static_cast<size_t>(
        std::count_if(t.resources.begin(), t.resources.end(),
                      [&](const config::Resource& r) { return r.kind == kind; }));
  }
};

Compiled compile(const World& w) {
  return {testing::compile_translation(translate_gateway_api(w.in), w.extra, w.in.ambassador_id)};
}

Compiled compile(const std::string& yaml) {
  return compile(world(yaml));
}

nlohmann::json condition(const nlohmann::json& conditions, const std::string& type) {
  for (const auto& c : conditions) {
    if (c["type"] == type) return c;
  }
  return nullptr;
}

// gateway-api docs: a Gateway with one HTTP listener and an HTTPRoute with hostnames.
const char* kBasic = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: prod-web, namespace: default, generation: 2}
spec:
  gatewayClassName: proxenos
  listeners:
  - protocol: HTTP
    port: 80
    name: prod-web-gw
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: foo, namespace: default, generation: 7}
spec:
  parentRefs:
  - name: prod-web
  hostnames: [foo.example.com]
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /login
    backendRefs:
    - name: foo-svc
      port: 8080
)";

TEST(GatewayTranslator, HttpRouteOnHttpListenerRoutesAndReportsStatus) {
  Compiled c = compile(kBasic);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_TRUE(c.t.diagnostics.empty()) << dump(c.t.diagnostics);
  for (const config::Resource& r : c.t.resources) {
    EXPECT_EQ(r.api_version, "getambassador.io/v3alpha1");
    EXPECT_FALSE(r.origin.object.empty()) << r.key();
  }
  const config::Snapshot& s = c.snap();
  EXPECT_EQ(upstream(s, 80, "foo.example.com", "/login"), "foo-svc.default:8080");
  EXPECT_EQ(upstream(s, 80, "foo.example.com", "/login/form"), "foo-svc.default:8080");
  EXPECT_EQ(upstream(s, 80, "FOO.example.com:80", "/login"), "foo-svc.default:8080");
  EXPECT_EQ(upstream(s, 80, "foo.example.com", "/loginx"), "");
  EXPECT_EQ(upstream(s, 80, "bar.example.com", "/login"), "");
  // The path reaches the backend unchanged.
  Request r;
  r.authority = "foo.example.com";
  r.path = "/login/x";
  Hit h = hit(s, r);
  ASSERT_NE(h.target, nullptr);
  EXPECT_FALSE(h.target->prefix_rewrite.has_value());
  EXPECT_FALSE(h.target->regex_rewrite.has_value());

  // GatewayClass: ours accepted with features; the other untouched.
  const StatusUpdate* gc = c.status("GatewayClass", "proxenos");
  ASSERT_NE(gc, nullptr);
  EXPECT_EQ(gc->key(), "gatewayclasses.gateway.networking.k8s.io//proxenos");
  nlohmann::json accepted = condition(gc->status["conditions"], "Accepted");
  EXPECT_EQ(accepted["status"], "True");
  EXPECT_EQ(accepted["observedGeneration"], 3);
  EXPECT_EQ(accepted["lastTransitionTime"], kNow);
  EXPECT_FALSE(gc->status["supportedFeatures"].empty());
  EXPECT_EQ(c.status("GatewayClass", "other"), nullptr);

  // Gateway and its listener.
  const StatusUpdate* gw = c.status("Gateway", "prod-web");
  ASSERT_NE(gw, nullptr);
  EXPECT_EQ(condition(gw->status["conditions"], "Accepted")["status"], "True");
  EXPECT_EQ(condition(gw->status["conditions"], "Programmed")["status"], "True");
  EXPECT_EQ(condition(gw->status["conditions"], "Programmed")["observedGeneration"], 2);
  nlohmann::json l = c.listener_status("prod-web", "prod-web-gw");
  EXPECT_EQ(l["attachedRoutes"], 1);
  EXPECT_EQ(l["supportedKinds"], nlohmann::json::parse(
                                     R"([{"group":"gateway.networking.k8s.io","kind":"HTTPRoute"},
                                         {"group":"gateway.networking.k8s.io","kind":"GRPCRoute"}])"));
  EXPECT_EQ(condition(l["conditions"], "Accepted")["status"], "True");
  EXPECT_EQ(condition(l["conditions"], "Conflicted")["status"], "False");
  EXPECT_EQ(condition(l["conditions"], "ResolvedRefs")["status"], "True");
  EXPECT_EQ(condition(l["conditions"], "Programmed")["status"], "True");

  // The route: our entry only, for the parentRef as written.
  const StatusUpdate* hr = c.status("HTTPRoute", "foo");
  ASSERT_NE(hr, nullptr);
  EXPECT_EQ(hr->parents_controller, kController);
  EXPECT_EQ(hr->key(), "httproutes.gateway.networking.k8s.io/default/foo");
  ASSERT_EQ(hr->status["parents"].size(), 1u);
  EXPECT_EQ(hr->status["parents"][0]["controllerName"], kController);
  EXPECT_EQ(hr->status["parents"][0]["parentRef"], nlohmann::json::parse(R"({"name":"prod-web"})"));
  nlohmann::json ra = c.route_condition("HTTPRoute", "foo", "Accepted");
  EXPECT_EQ(ra["status"], "True");
  EXPECT_EQ(ra["reason"], "Accepted");
  EXPECT_EQ(ra["observedGeneration"], 7);
  EXPECT_EQ(c.route_condition("HTTPRoute", "foo", "ResolvedRefs")["status"], "True");
}

TEST(GatewayTranslator, GatewaysOfOtherControllersAreLeftAlone) {
  Compiled c = compile(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: default}
spec:
  gatewayClassName: other
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: theirs}]
  rules: [{backendRefs: [{name: foo-svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: stale, namespace: default}
spec:
  parentRefs: [{name: theirs}]
status:
  parents:
  - parentRef: {name: gone}
    controllerName: proxenos.dev/gateway-controller
    conditions: []
  - parentRef: {name: theirs}
    controllerName: example.com/other
    conditions: []
)");
  EXPECT_TRUE(c.t.resources.empty());
  EXPECT_EQ(c.status("Gateway", "theirs"), nullptr);
  EXPECT_EQ(c.status("HTTPRoute", "r"), nullptr);
  // A route that still carries an entry of ours gets it removed (the writer keeps the others').
  const StatusUpdate* stale = c.status("HTTPRoute", "stale");
  ASSERT_NE(stale, nullptr);
  EXPECT_EQ(stale->parents_controller, kController);
  EXPECT_EQ(stale->status, nlohmann::json::parse(R"({"parents":[]})"));
}

TEST(GatewayTranslator, TrafficSplittingByWeight) {
  // gateway-api docs "HTTP traffic splitting".
  Compiled c = compile(std::string(kBasic) + R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: foo-route, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [split.example.com]
  rules:
  - backendRefs:
    - name: foo-v1
      port: 8080
      weight: 90
    - name: foo-v2
      port: 8080
      weight: 10
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  Request r;
  r.authority = "split.example.com";
  r.path = "/anything";
  int v1 = 0, v2 = 0;
  for (uint32_t draw = 0; draw < 100; ++draw) {
    r.draw = draw;
    std::string u = hit(c.snap(), r).upstream;
    if (u == "foo-v1.default:8080") ++v1;
    if (u == "foo-v2.default:8080") ++v2;
  }
  EXPECT_EQ(v1, 90);
  EXPECT_EQ(v2, 10);
}

TEST(GatewayTranslator, HeaderQueryAndMethodMatching) {
  // gateway-api docs "HTTP routing": a canary by header, plus method and query matches.
  Compiled c = compile(std::string(kBasic) + R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bar-route, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: ["bar.example.com"]
  rules:
  - matches:
    - headers:
      - type: Exact
        name: env
        value: canary
    backendRefs:
    - name: foo-v2
      port: 8080
  - matches:
    - method: POST
      queryParams:
      - {name: debug, value: "true"}
    backendRefs:
    - name: foo-v1
      port: 8080
  - backendRefs:
    - name: bar-svc
      port: 8080
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  Request r;
  r.authority = "bar.example.com";
  EXPECT_EQ(hit(c.snap(), r).upstream, "bar-svc.default:8080");
  r.headers = {{"Env", "canary"}};
  EXPECT_EQ(hit(c.snap(), r).upstream, "foo-v2.default:8080");
  r.headers = {};
  r.method = "POST";
  EXPECT_EQ(hit(c.snap(), r).upstream, "bar-svc.default:8080");
  r.query = "debug=true";
  EXPECT_EQ(hit(c.snap(), r).upstream, "foo-v1.default:8080");
  r.method = "GET";
  EXPECT_EQ(hit(c.snap(), r).upstream, "bar-svc.default:8080");
}

TEST(GatewayTranslator, FiltersBecomeHeaderEditsRewritesRedirectsMirrorsAndTimeouts) {
  Compiled c = compile(std::string(kBasic) + R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: filters, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [filters.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add: [{name: my-header, value: "50%"}]
        set: [{name: x-set, value: "1"}]
        remove: [x-gone]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-resp, value: hi}]
    backendRefs: [{name: foo-svc, port: 8080}]
    timeouts: {request: 1s500ms}
  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: elsewhere.example.com
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /two}
    backendRefs: [{name: foo-svc, port: 8080}]
  - matches: [{path: {type: Exact, value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplaceFullPath, replaceFullPath: /replaced}
    backendRefs: [{name: foo-svc, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
        statusCode: 301
  - matches: [{path: {type: PathPrefix, value: /mirrored}}]
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: mirror-svc, port: 9000}
        percent: 25
    backendRefs: [{name: foo-svc, port: 8080}]
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_EQ(c.route_condition("HTTPRoute", "filters", "Accepted")["status"], "True");
  const config::Snapshot& s = c.snap();
  Request r;
  r.authority = "filters.example.com";

  r.path = "/headers/x";
  Hit h = hit(s, r);
  ASSERT_NE(h.target, nullptr);
  EXPECT_EQ(h.target->timeout_ms, 1500u);
  ASSERT_EQ(h.target->request_headers.add.size(), 2u);
  std::map<std::string, std::pair<std::string, bool>> added;
  for (const auto& a : h.target->request_headers.add) {
    ASSERT_TRUE(a.value.is_literal());
    added[a.name] = {a.value.pieces.empty() ? "" : a.value.pieces[0].text, a.append};
  }
  EXPECT_EQ(added["my-header"], std::make_pair(std::string("50%"), true));
  EXPECT_EQ(added["x-set"], std::make_pair(std::string("1"), false));
  EXPECT_EQ(h.target->request_headers.remove, std::vector<std::string>{"x-gone"});
  ASSERT_EQ(h.target->response_headers.add.size(), 1u);
  EXPECT_EQ(h.target->response_headers.add[0].name, "x-resp");

  // ReplacePrefixMatch on an element-wise prefix: /prefix/one/x -> /two/x, /prefix/one -> /two.
  r.path = "/prefix/one/x";
  h = hit(s, r);
  ASSERT_NE(h.target, nullptr);
  EXPECT_EQ(h.route->path.value, "/prefix/one/");
  EXPECT_EQ(h.target->prefix_rewrite.value_or(""), "/two/");
  EXPECT_EQ(h.target->host_rewrite.value_or(""), "elsewhere.example.com");
  r.path = "/prefix/one";
  h = hit(s, r);
  ASSERT_NE(h.target, nullptr);
  EXPECT_EQ(h.route->path.kind, router::PathMatchKind::kExact);
  EXPECT_EQ(h.target->prefix_rewrite.value_or(""), "/two");

  r.path = "/full";
  h = hit(s, r);
  ASSERT_NE(h.target, nullptr);
  ASSERT_TRUE(h.target->regex_rewrite.has_value());
  std::string rewritten = "/full";
  RE2::GlobalReplace(&rewritten, *h.target->regex_rewrite->pattern,
                     h.target->regex_rewrite->substitution);
  EXPECT_EQ(rewritten, "/replaced");

  r.path = "/old/page";
  h = hit(s, r);
  ASSERT_NE(h.target, nullptr);
  ASSERT_TRUE(h.target->redirect.has_value());
  EXPECT_EQ(h.target->redirect->status, 301);
  EXPECT_TRUE(h.target->redirect->https);
  EXPECT_EQ(h.target->redirect->host, "filters.example.com");
  EXPECT_EQ(h.target->redirect->prefix.value_or(""), "/new/");

  r.path = "/mirrored/1";
  h = hit(s, r);
  ASSERT_NE(h.route, nullptr);
  EXPECT_EQ(h.upstream, "foo-svc.default:8080");
  ASSERT_TRUE(h.route->shadow.has_value());
  EXPECT_EQ(h.route->shadow->cumulative_weight, 25u);
  EXPECT_EQ(s.clusters[h.route->shadow->cluster].host, "mirror-svc.default");
}

TEST(GatewayTranslator, ListenersOnDifferentPortsDoNotShareRoutes) {
  Compiled c = compile(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: proxenos
  listeners:
  - {name: public, protocol: HTTP, port: 80, hostname: "*.example.com"}
  - {name: internal, protocol: HTTP, port: 8081}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public-route, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: public}]
  hostnames: [shop.example.com, other.org]
  rules: [{backendRefs: [{name: foo-svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: internal-route, namespace: default}
spec:
  parentRefs: [{name: gw, port: 8081}]
  rules: [{backendRefs: [{name: bar-svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-host, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: public}]
  hostnames: [foo.other.org]
  rules: [{backendRefs: [{name: bar-svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-section, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: missing}]
  rules: [{backendRefs: [{name: bar-svc, port: 8080}]}]
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: user, namespace: default}
spec: {hostname: "*", prefix: /user/, service: user-svc}
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::Snapshot& s = c.snap();
  EXPECT_EQ(upstream(s, 80, "shop.example.com", "/"), "foo-svc.default:8080");
  // Only the intersection of the route's and the listener's hostnames is served.
  EXPECT_EQ(upstream(s, 80, "www.example.com", "/"), "");
  EXPECT_EQ(upstream(s, 80, "other.org", "/"), "");
  EXPECT_EQ(upstream(s, 8081, "shop.example.com", "/"), "bar-svc.default:8080");
  EXPECT_EQ(upstream(s, 8081, "anything", "/x"), "bar-svc.default:8080");
  EXPECT_EQ(upstream(s, 80, "anything.example.com", "/x"), "");
  // A user Mapping for hostname * does not reach the Gateway's Hosts.
  EXPECT_EQ(upstream(s, 80, "www.example.com", "/user/"), "");

  EXPECT_EQ(c.listener_status("gw", "public")["attachedRoutes"], 1);
  EXPECT_EQ(c.listener_status("gw", "internal")["attachedRoutes"], 1);
  nlohmann::json wrong = c.route_condition("HTTPRoute", "wrong-host", "Accepted");
  EXPECT_EQ(wrong["status"], "False");
  EXPECT_EQ(wrong["reason"], "NoMatchingListenerHostname");
  nlohmann::json missing = c.route_condition("HTTPRoute", "no-section", "Accepted");
  EXPECT_EQ(missing["status"], "False");
  EXPECT_EQ(missing["reason"], "NoMatchingParent");
}

TEST(GatewayTranslator, AllowedRoutesNamespaces) {
  Compiled c = compile(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: proxenos
  listeners:
  - {name: same, protocol: HTTP, port: 80, hostname: same.example.com}
  - {name: all, protocol: HTTP, port: 80, hostname: all.example.com,
     allowedRoutes: {namespaces: {from: All}}}
  - {name: selector, protocol: HTTP, port: 80, hostname: sel.example.com,
     allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}}
  - {name: tcp-only, protocol: HTTP, port: 80, hostname: kinds.example.com,
     allowedRoutes: {kinds: [{kind: TCPRoute}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs:
  - {name: gw, namespace: infra, sectionName: same}
  - {name: gw, namespace: infra, sectionName: all}
  - {name: gw, namespace: infra, sectionName: selector}
  - {name: gw, namespace: infra, sectionName: tcp-only}
  rules: [{backendRefs: [{name: foo-svc, port: 8080}]}]
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_EQ(upstream(c.snap(), 80, "all.example.com", "/"), "foo-svc.default:8080");
  EXPECT_EQ(upstream(c.snap(), 80, "same.example.com", "/"), "");
  EXPECT_EQ(upstream(c.snap(), 80, "sel.example.com", "/"), "");
  EXPECT_EQ(c.route_condition("HTTPRoute", "app", "Accepted", 0)["reason"],
            "NotAllowedByListeners");
  EXPECT_EQ(c.route_condition("HTTPRoute", "app", "Accepted", 1)["status"], "True");
  nlohmann::json sel = c.route_condition("HTTPRoute", "app", "Accepted", 2);
  EXPECT_EQ(sel["reason"], "NotAllowedByListeners");
  EXPECT_NE(sel["message"].get<std::string>().find("not supported"), std::string::npos);
  EXPECT_EQ(c.route_condition("HTTPRoute", "app", "Accepted", 3)["reason"],
            "NotAllowedByListeners");
  // A route kind the protocol cannot carry: InvalidRouteKinds, and no supported kinds.
  nlohmann::json kinds = c.listener_status("gw", "tcp-only");
  EXPECT_EQ(condition(kinds["conditions"], "ResolvedRefs")["reason"], "InvalidRouteKinds");
  EXPECT_TRUE(kinds["supportedKinds"].empty());
}

TEST(GatewayTranslator, BackendRefsResolveWithReferenceGrants) {
  Compiled c = compile(std::string(kBasic) + R"(
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: bar}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: refgrant, namespace: bar}
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: default
  to:
  - group: ""
    kind: Service
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: granted, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [granted.example.com]
  rules: [{backendRefs: [{name: backend, namespace: bar, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: missing, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [missing.example.com]
  rules: [{backendRefs: [{name: nope, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: badkind, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [badkind.example.com]
  rules: [{backendRefs: [{group: example.com, kind: Bucket, name: b}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: denied, namespace: other}
spec:
  parentRefs: [{name: prod-web, namespace: default}]
  rules: [{backendRefs: [{name: backend, namespace: bar, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: half, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [half.example.com]
  rules: [{backendRefs: [{name: foo-v1, port: 8080}, {name: nope, port: 8080}]}]
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_EQ(upstream(c.snap(), 80, "granted.example.com", "/"), "backend.bar:80");
  EXPECT_EQ(c.route_condition("HTTPRoute", "granted", "ResolvedRefs")["status"], "True");
  EXPECT_EQ(c.route_condition("HTTPRoute", "missing", "ResolvedRefs")["reason"], "BackendNotFound");
  EXPECT_EQ(c.route_condition("HTTPRoute", "missing", "Accepted")["status"], "True");
  // Traffic for a backend that cannot be used is answered with 500, as the Gateway API says.
  EXPECT_EQ(upstream(c.snap(), 80, "missing.example.com", "/"), "direct 500");
  EXPECT_EQ(upstream(c.snap(), 80, "badkind.example.com", "/"), "direct 500");
  EXPECT_EQ(c.route_condition("HTTPRoute", "badkind", "ResolvedRefs")["reason"], "InvalidKind");
  // The Gateway only admits routes of its own namespace; the route in `other` is not allowed
  // there, and its backend is not granted either.
  EXPECT_EQ(c.route_condition("HTTPRoute", "denied", "Accepted")["reason"],
            "NotAllowedByListeners");
  EXPECT_EQ(c.route_condition("HTTPRoute", "denied", "ResolvedRefs")["reason"], "RefNotPermitted");
  // Half of the traffic goes to an unknown Service: that half is answered with 500.
  EXPECT_EQ(c.route_condition("HTTPRoute", "half", "ResolvedRefs")["reason"], "BackendNotFound");
  Request r;
  r.authority = "half.example.com";
  r.draw = 10;
  EXPECT_EQ(hit(c.snap(), r).upstream, "foo-v1.default:8080");
  r.draw = 49;
  EXPECT_EQ(hit(c.snap(), r).upstream, "foo-v1.default:8080");
  r.draw = 50;
  EXPECT_EQ(hit(c.snap(), r).upstream, "direct 500");
  r.draw = 99;
  EXPECT_EQ(hit(c.snap(), r).upstream, "direct 500");
}

TEST(GatewayTranslator, RulesWithoutAUsableBackendAnswer500) {
  Compiled c = compile(std::string(kBasic) + R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: nobackends, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [none.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /edit}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-a, value: b}]}
  - backendRefs: [{name: foo-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: zero, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [zero.example.com]
  rules: [{backendRefs: [{name: foo-v1, port: 8080, weight: 0}, {name: nope, port: 8080, weight: 0}]}]
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_EQ(upstream(c.snap(), 80, "none.example.com", "/edit/x"), "direct 500");
  EXPECT_EQ(upstream(c.snap(), 80, "none.example.com", "/other"), "foo-v1.default:8080");
  EXPECT_EQ(c.route_condition("HTTPRoute", "nobackends", "ResolvedRefs")["status"], "True");
  for (uint32_t draw : {0u, 99u}) {
    Request r;
    r.authority = "zero.example.com";
    r.draw = draw;
    EXPECT_EQ(hit(c.snap(), r).upstream, "direct 500") << draw;
  }
  // `proxenos routes` says what such a route does.
  std::string routes = config::format_routes(c.snap());
  EXPECT_NE(routes.find("-> direct 500 (Mapping/default/httproute-nobackends-"), std::string::npos)
      << routes;
}

TEST(GatewayTranslator, HttpsListenerTerminatesWithItsCertificate) {
  Compiled c = compile(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls-gw, namespace: default}
spec:
  gatewayClassName: proxenos
  listeners:
  - name: https
    protocol: HTTPS
    port: 443
    hostname: secure.example.com
    tls:
      mode: Terminate
      certificateRefs:
      - kind: Secret
        group: ""
        name: example-com-cert
  - name: https-foreign
    protocol: HTTPS
    port: 443
    hostname: foreign.example.com
    tls:
      certificateRefs: [{name: cert, namespace: certs}]
  - name: https-missing
    protocol: HTTPS
    port: 443
    hostname: missing.example.com
    tls:
      certificateRefs: [{name: nothing-here}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: secure, namespace: default}
spec:
  parentRefs: [{name: tls-gw}]
  rules: [{backendRefs: [{name: foo-svc, port: 8080}]}]
)" + config::testing::tls_secret("example-com-cert") +
                       config::testing::tls_secret("cert", "certs"));
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::ListenerSnapshot* l = nullptr;
  for (const auto& x : c.snap().listeners) {
    if (x.port == 443) l = &x;
  }
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->protocol, config::ListenerProtocol::kHttps);
  ASSERT_EQ(l->sni.size(), 1u);
  EXPECT_EQ(l->sni[0].hostname, "secure.example.com");
  EXPECT_EQ(upstream(c.snap(), 443, "secure.example.com", "/a"), "foo-svc.default:8080");
  EXPECT_EQ(upstream(c.snap(), 443, "foreign.example.com", "/a"), "");

  nlohmann::json foreign = c.listener_status("tls-gw", "https-foreign");
  EXPECT_EQ(condition(foreign["conditions"], "ResolvedRefs")["reason"], "RefNotPermitted");
  EXPECT_EQ(condition(foreign["conditions"], "Programmed")["status"], "False");
  nlohmann::json missing = c.listener_status("tls-gw", "https-missing");
  EXPECT_EQ(condition(missing["conditions"], "ResolvedRefs")["reason"], "InvalidCertificateRef");
  const StatusUpdate* gw = c.status("Gateway", "tls-gw");
  nlohmann::json accepted = condition(gw->status["conditions"], "Accepted");
  EXPECT_EQ(accepted["status"], "True");
  EXPECT_EQ(accepted["reason"], "ListenersNotValid");
  EXPECT_EQ(c.listener_status("tls-gw", "https")["attachedRoutes"], 1);
}

TEST(GatewayTranslator, GrpcRouteMatchesServiceAndMethodOverHttp2) {
  // gateway-api docs GRPCRoute example.
  Compiled c = compile(std::string(kBasic) + R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-app, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [grpc.example.com]
  rules:
  - matches:
    - method:
        service: com.example.User
        method: Login
    backendRefs: [{name: foo-svc, port: 8080}]
  - matches:
    - headers:
      - type: Exact
        name: magic
        value: foo
      method:
        service: com.Example.Login
    backendRefs: [{name: grpc-svc, port: 50051}]
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  Request r;
  r.authority = "grpc.example.com";
  r.method = "POST";
  r.path = "/com.example.User/Login";
  Hit h = hit(c.snap(), r);
  EXPECT_EQ(h.upstream, "foo-svc.default:8080");
  ASSERT_NE(h.target, nullptr);
  EXPECT_TRUE(c.snap().clusters[h.target->cluster].http2);
  r.path = "/com.example.User/Logout";
  EXPECT_EQ(hit(c.snap(), r).upstream, "");
  r.path = "/com.Example.Login/Anything";
  EXPECT_EQ(hit(c.snap(), r).upstream, "");
  r.headers = {{"magic", "foo"}};
  EXPECT_EQ(hit(c.snap(), r).upstream, "grpc-svc.default:50051");
  EXPECT_EQ(c.route_condition("GRPCRoute", "grpc-app", "Accepted")["status"], "True");
  EXPECT_EQ(c.status("GRPCRoute", "grpc-app")->kind.resource, "grpcroutes");
}

TEST(GatewayTranslator, TlsAndTcpRoutesBecomeTcpMappings) {
  Compiled c = compile(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: l4, namespace: default}
spec:
  gatewayClassName: proxenos
  listeners:
  - name: tls
    protocol: TLS
    port: 8443
    tls: {mode: Terminate, certificateRefs: [{name: example-com-cert}]}
  - {name: tcp, protocol: TCP, port: 5432}
  - name: passthrough
    protocol: TLS
    port: 9443
    tls: {mode: Passthrough}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: tls-app, namespace: default}
spec:
  parentRefs: [{name: l4, sectionName: tls}]
  hostnames: [db.example.com]
  rules: [{backendRefs: [{name: foo-svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: tcp-app, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: l4, sectionName: tcp}]
  rules: [{backendRefs: [{name: foo-v1, port: 8080, weight: 3}, {name: foo-v2, port: 8080, weight: 1}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: tcp-late, namespace: default, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  parentRefs: [{name: l4, sectionName: tcp}]
  rules: [{backendRefs: [{name: bar-svc, port: 8080}]}]
)" + config::testing::tls_secret("example-com-cert"));
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::ListenerSnapshot* tls = nullptr;
  const config::ListenerSnapshot* tcp = nullptr;
  for (const auto& l : c.snap().listeners) {
    if (l.port == 8443) tls = &l;
    if (l.port == 5432) tcp = &l;
  }
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->protocol, config::ListenerProtocol::kTls);
  ASSERT_EQ(tls->tcp.size(), 1u);
  EXPECT_EQ(tls->tcp[0].sni, "db.example.com");
  EXPECT_TRUE(tls->tcp[0].tls.has_value());
  ASSERT_EQ(tls->tcp[0].targets.size(), 1u);
  EXPECT_EQ(c.snap().clusters[tls->tcp[0].targets[0].cluster].host, "foo-svc.default");

  ASSERT_NE(tcp, nullptr);
  EXPECT_EQ(tcp->protocol, config::ListenerProtocol::kTcp);
  ASSERT_EQ(tcp->tcp.size(), 1u);
  ASSERT_EQ(tcp->tcp[0].targets.size(), 2u);
  EXPECT_EQ(c.snap().clusters[tcp->tcp[0].targets[0].cluster].host, "foo-v1.default");
  EXPECT_EQ(tcp->tcp[0].targets[0].cumulative_weight, 75u);
  EXPECT_EQ(tcp->tcp[0].targets[1].cumulative_weight, 100u);

  EXPECT_EQ(c.route_condition("TLSRoute", "tls-app", "Accepted")["status"], "True");
  EXPECT_EQ(c.route_condition("TCPRoute", "tcp-app", "Accepted")["status"], "True");
  nlohmann::json late = c.route_condition("TCPRoute", "tcp-late", "Accepted");
  EXPECT_EQ(late["status"], "False");
  EXPECT_NE(late["message"].get<std::string>().find("TCPRoute/default/tcp-app"), std::string::npos);
  nlohmann::json pass = c.listener_status("l4", "passthrough");
  EXPECT_EQ(condition(pass["conditions"], "Accepted")["status"], "True");
  EXPECT_EQ(c.listener_status("l4", "tls")["supportedKinds"][0]["kind"], "TLSRoute");
}

TEST(GatewayTranslator, PassthroughTlsRoutesAreRoutedBySniWithoutCertificates) {
  Compiled c = compile(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: proxenos
  listeners:
  - name: pass
    protocol: TLS
    port: 8443
    hostname: "*.pass.example.com"
    tls: {mode: Passthrough}
  - name: term
    protocol: TLS
    port: 8443
    hostname: term.example.com
    tls: {mode: Terminate, certificateRefs: [{name: example-com-cert}]}
  - name: with-cert
    protocol: TLS
    port: 9443
    tls: {mode: Passthrough, certificateRefs: [{name: example-com-cert}]}
  - name: https-pass
    protocol: HTTPS
    port: 10443
    tls: {mode: Passthrough}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: pass-a, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: pass}]
  hostnames: [a.pass.example.com]
  rules: [{backendRefs: [{name: foo-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: pass-b, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: pass}]
  hostnames: [b.pass.example.com, term.example.com]
  rules: [{backendRefs: [{name: foo-v2, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: term-app, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: term}]
  rules: [{backendRefs: [{name: bar-svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: any-name, namespace: default}
spec:
  parentRefs: [{name: edge, sectionName: with-cert}]
  rules: [{backendRefs: [{name: foo-svc, port: 8080}]}]
)" + config::testing::tls_secret("example-com-cert"));
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::ListenerSnapshot* mixed = nullptr;
  const config::ListenerSnapshot* any = nullptr;
  for (const auto& l : c.snap().listeners) {
    if (l.port == 8443) mixed = &l;
    if (l.port == 9443) any = &l;
    EXPECT_NE(l.port, 10443);  // Passthrough on HTTPS is refused
  }
  ASSERT_NE(mixed, nullptr);
  EXPECT_EQ(mixed->protocol, config::ListenerProtocol::kTls);
  auto upstream = [&](const config::TcpRoute& r) {
    return c.snap().clusters[r.targets.at(0).cluster].host;
  };
  // pass-b's term.example.com is outside its listener's *.pass.example.com: not routed.
  ASSERT_EQ(mixed->tcp.size(), 3u);
  std::map<std::string, const config::TcpRoute*> by_sni;
  for (const config::TcpRoute& r : mixed->tcp) by_sni[r.sni] = &r;
  ASSERT_EQ(by_sni.count("a.pass.example.com"), 1u);
  EXPECT_TRUE(by_sni["a.pass.example.com"]->passthrough);
  EXPECT_FALSE(by_sni["a.pass.example.com"]->tls.has_value());
  EXPECT_EQ(upstream(*by_sni["a.pass.example.com"]), "foo-v1.default");
  ASSERT_EQ(by_sni.count("b.pass.example.com"), 1u);
  EXPECT_TRUE(by_sni["b.pass.example.com"]->passthrough);
  EXPECT_EQ(upstream(*by_sni["b.pass.example.com"]), "foo-v2.default");
  ASSERT_EQ(by_sni.count("term.example.com"), 1u);
  EXPECT_FALSE(by_sni["term.example.com"]->passthrough);
  EXPECT_TRUE(by_sni["term.example.com"]->tls.has_value());
  EXPECT_EQ(upstream(*by_sni["term.example.com"]), "bar-svc.default");

  ASSERT_NE(any, nullptr);
  ASSERT_EQ(any->tcp.size(), 1u);
  EXPECT_EQ(any->tcp[0].sni, "*");
  EXPECT_TRUE(any->tcp[0].passthrough);
  // Passthrough TLSRoutes need no TLSContext: only the Terminate listener has one.
  EXPECT_EQ(c.count("TLSContext"), 1u);

  for (const char* route : {"pass-a", "pass-b", "term-app", "any-name"}) {
    EXPECT_EQ(c.route_condition("TLSRoute", route, "Accepted")["status"], "True") << route;
    EXPECT_EQ(c.route_condition("TLSRoute", route, "ResolvedRefs")["status"], "True") << route;
  }
  nlohmann::json pass = c.listener_status("edge", "pass");
  EXPECT_EQ(condition(pass["conditions"], "Accepted")["status"], "True");
  EXPECT_EQ(condition(pass["conditions"], "ResolvedRefs")["status"], "True");
  EXPECT_EQ(condition(pass["conditions"], "Programmed")["status"], "True");
  EXPECT_EQ(pass["attachedRoutes"], 2);
  nlohmann::json https = c.listener_status("edge", "https-pass");
  EXPECT_EQ(condition(https["conditions"], "Accepted")["reason"], "UnsupportedValue");
  bool warned = false;
  for (const config::Diagnostic& d : c.t.diagnostics) {
    if (d.field.find("certificateRefs") != std::string::npos &&
        d.severity == config::Severity::kWarning) {
      warned = true;
    }
  }
  EXPECT_TRUE(warned) << dump(c.t.diagnostics);
}

TEST(GatewayTranslator, PortConflictsBetweenGateways) {
  Compiled c = compile(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: first, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  gatewayClassName: proxenos
  listeners: [{name: web, protocol: HTTP, port: 80, hostname: a.example.com}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: second, namespace: default, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  gatewayClassName: proxenos
  listeners:
  - {name: raw, protocol: TCP, port: 80}
  - {name: same-host, protocol: HTTP, port: 80, hostname: a.example.com}
  - {name: other-host, protocol: HTTP, port: 80, hostname: b.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-second, namespace: default}
spec:
  parentRefs: [{name: second, sectionName: other-host}]
  rules: [{backendRefs: [{name: bar-svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-first, namespace: default}
spec:
  parentRefs: [{name: first}]
  rules: [{backendRefs: [{name: foo-svc, port: 8080}]}]
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_EQ(c.count("Listener"), 1u);
  nlohmann::json raw = c.listener_status("second", "raw");
  EXPECT_EQ(condition(raw["conditions"], "Conflicted")["status"], "True");
  EXPECT_EQ(condition(raw["conditions"], "Conflicted")["reason"], "ProtocolConflict");
  EXPECT_EQ(condition(raw["conditions"], "Programmed")["status"], "False");
  nlohmann::json same = c.listener_status("second", "same-host");
  EXPECT_EQ(condition(same["conditions"], "Conflicted")["reason"], "HostnameConflict");
  nlohmann::json other = c.listener_status("second", "other-host");
  EXPECT_EQ(condition(other["conditions"], "Programmed")["status"], "True");
  // Both Gateways share the port's socket; each hostname reaches its own Gateway's routes.
  EXPECT_EQ(upstream(c.snap(), 80, "a.example.com", "/"), "foo-svc.default:8080");
  EXPECT_EQ(upstream(c.snap(), 80, "b.example.com", "/"), "bar-svc.default:8080");
}

TEST(GatewayTranslator, PrecedenceAcrossRoutes) {
  Compiled c = compile(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: proxenos
  listeners: [{name: web, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: by-host, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [foo.example.com]
  rules: [{backendRefs: [{name: foo-svc, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: by-wildcard, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["*.example.com"]
  rules: [{matches: [{path: {type: PathPrefix, value: /api}}], backendRefs: [{name: foo-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: by-path, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: foo-v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /api/exact}}]
    backendRefs: [{name: mirror-svc, port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: same-match-newer, namespace: default, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /api}}], backendRefs: [{name: bar-svc, port: 8080}]}]
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::Snapshot& s = c.snap();
  // An exact hostname beats a wildcard, which beats none; path length only after that.
  EXPECT_EQ(upstream(s, 80, "foo.example.com", "/api/x"), "foo-svc.default:8080");
  EXPECT_EQ(upstream(s, 80, "bar.example.com", "/api/x"), "foo-v1.default:8080");
  EXPECT_EQ(upstream(s, 80, "bar.example.com", "/other"), "");
  // The same match on two routes: the older route keeps it (no canary mix).
  EXPECT_EQ(upstream(s, 80, "other.org", "/api/x"), "foo-v2.default:8080");
  EXPECT_EQ(upstream(s, 80, "other.org", "/api/exact"), "mirror-svc.default:9000");
}

TEST(GatewayTranslator, ExactAndRegularExpressionPaths) {
  Compiled c = compile(std::string(kBasic) + R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: paths, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [paths.example.com]
  rules:
  - matches: [{path: {type: Exact, value: /exact/}}]
    backendRefs: [{name: foo-v1, port: 8080}]
  - matches: [{path: {type: RegularExpression, value: "/items/[0-9]+"}}]
    backendRefs: [{name: foo-v2, port: 8080}]
)");
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  const config::Snapshot& s = c.snap();
  EXPECT_EQ(upstream(s, 80, "paths.example.com", "/exact/"), "foo-v1.default:8080");
  EXPECT_EQ(upstream(s, 80, "paths.example.com", "/exact"), "");
  EXPECT_EQ(upstream(s, 80, "paths.example.com", "/exact/x"), "");
  EXPECT_EQ(upstream(s, 80, "paths.example.com", "/items/42"), "foo-v2.default:8080");
  EXPECT_EQ(upstream(s, 80, "paths.example.com", "/items/42/x"), "");
  EXPECT_EQ(upstream(s, 80, "paths.example.com", "/items/abc"), "");
}

TEST(GatewayTranslator, UnsupportedFiltersRejectTheRoute) {
  Compiled c = compile(std::string(kBasic) + R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ext, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  hostnames: [ext.example.com]
  rules:
  - filters:
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Magic, name: m}
    backendRefs: [{name: foo-svc, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hostless-redirect, namespace: default}
spec:
  parentRefs: [{name: prod-web}]
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https}
)");
  nlohmann::json ext = c.route_condition("HTTPRoute", "ext", "Accepted");
  EXPECT_EQ(ext["status"], "False");
  EXPECT_EQ(ext["reason"], "UnsupportedValue");
  EXPECT_EQ(upstream(c.snap(), 80, "ext.example.com", "/"), "");
  EXPECT_EQ(c.route_condition("HTTPRoute", "hostless-redirect", "Accepted")["reason"],
            "UnsupportedValue");
  bool reported = false;
  for (const config::Diagnostic& d : c.t.diagnostics) {
    if (d.resource == "HTTPRoute/default/ext") reported = true;
  }
  EXPECT_TRUE(reported) << dump(c.t.diagnostics);
}

TEST(GatewayTranslator, AddressesAndAmbassadorId) {
  World w = world(kBasic);
  w.in.load_balancer =
      nlohmann::json::parse(R"({"ingress":[{"ip":"198.51.100.4"},{"hostname":"lb.example.net"}]})");
  w.in.ambassador_id = "blue";
  Compiled c = compile(w);
  ASSERT_FALSE(config::has_errors(c.result.diagnostics)) << dump(c.result.diagnostics);
  EXPECT_EQ(upstream(c.snap(), 80, "foo.example.com", "/login"), "foo-svc.default:8080");
  for (const config::Resource& r : c.t.resources) {
    EXPECT_EQ(r.ambassador_id, std::vector<std::string>{"blue"});
  }
  EXPECT_EQ(c.status("Gateway", "prod-web")->status["addresses"],
            nlohmann::json::parse(R"([{"type":"IPAddress","value":"198.51.100.4"},
                                      {"type":"Hostname","value":"lb.example.net"}])"));
}

}  // namespace
}  // namespace proxenos::k8s
