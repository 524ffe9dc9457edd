#include <gtest/gtest.h>

#include <algorithm>

#include "config/host.h"
#include "config/label_selector.h"
#include "config/mapping.h"
#include "test_util.h"

namespace proxenos::config {
namespace {

using testing::compile_text;
using testing::Compiled;
using testing::errors;
using testing::kBase;
using testing::route_sources;
using testing::vhost;

std::string doc(const std::string& kind, const std::string& name, const std::string& spec,
                const std::string& metadata_extra = "") {
  return "---\napiVersion: getambassador.io/v3alpha1\nkind: " + kind +
         "\nmetadata: {name: " + name + metadata_extra + "}\nspec: " + spec + "\n";
}

bool all_of_warnings_absent(const Compiled& c, const std::string& field) {
  return testing::diags_for(c, field).empty();
}

bool has_note(const Compiled& c, const std::string& prefix) {
  return std::any_of(c.result.notes.begin(), c.result.notes.end(),
                     [&](const std::string& n) { return n.starts_with(prefix); });
}

const router::Route* only_route(const Compiled& c, const std::string& host = "*") {
  const router::VirtualHostSpec* h = vhost(c.snap(), 8080, host);
  if (h == nullptr || h->routes.size() != 1) return nullptr;
  return h->routes[0].get();
}

// --- listeners and hosts ----------------------------------------------------------------------

TEST(CompilerTest, DefaultListenersAndSyntheticHost) {
  Compiled c = compile_text(doc("Mapping", "m", "{prefix: /m/, service: svc, hostname: '*'}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  ASSERT_EQ(c.snap().listeners.size(), 2u);
  const ListenerSnapshot& http = c.snap().listeners[0];
  EXPECT_EQ(http.port, 8080);
  EXPECT_EQ(http.protocol, ListenerProtocol::kHttp);
  EXPECT_EQ(http.security_model, SecurityModel::kXfp);
  EXPECT_EQ(http.stats_prefix, "ingress_http");
  EXPECT_EQ(http.name, "default-8080");
  const ListenerSnapshot& https = c.snap().listeners[1];
  EXPECT_EQ(https.port, 8443);
  EXPECT_EQ(https.protocol, ListenerProtocol::kHttps);
  EXPECT_EQ(https.stats_prefix, "ingress_https");
  EXPECT_EQ(http.http2_max_concurrent_streams, 100u);
  EXPECT_EQ(https.http2_max_concurrent_streams, 100u);
  EXPECT_TRUE(has_note(c, "no Listener resources: opened the default Listeners"));
  EXPECT_TRUE(has_note(c, "no Host resources: serving every hostname"));

  // The synthesized Host routes cleartext requests (it has no TLS to redirect to).
  const router::VirtualHostSpec* h = vhost(c.snap(), 8080, "*");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->insecure_action, router::InsecureAction::kRoute);
  EXPECT_EQ(route_sources(h), std::vector<std::string>{"Mapping/default/m"});
  EXPECT_NE(vhost(c.snap(), 8443, "*"), nullptr);
  EXPECT_EQ(c.snap().generation, 1u);
}

TEST(CompilerTest, UserHostDefaultsToRedirectAsEmissary) {
  Compiled c = compile_text(doc("Host", "h", "{hostname: a.example.com}"));
  const router::VirtualHostSpec* h = vhost(c.snap(), 8080, "a.example.com");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->insecure_action, router::InsecureAction::kRedirect);
  EXPECT_EQ(h->source, "Host/default/h");
  EXPECT_FALSE(has_note(c, "no Host resources"));
  EXPECT_EQ(vhost(c.snap(), 8080, "*"), nullptr);  // no wildcard added beside user Hosts
}

TEST(CompilerTest, ListenerFieldsAndStatsPrefixes) {
  Compiled c = compile_text(
      doc("Listener", "a",
          "{port: 8080, protocol: HTTPPROXY, securityModel: SECURE, l7Depth: 2, "
          "http2MaxConcurrentStreams: 7, hostBinding: {namespace: {from: ALL}}}") +
      doc("Listener", "b",
          "{port: 9000, protocolStack: [TLS, TCP], securityModel: XFP, "
          "hostBinding: {namespace: {from: ALL}}}") +
      doc("Listener", "c",
          "{port: 9001, protocol: TCP, securityModel: XFP, statsPrefix: mine, "
          "hostBinding: {namespace: {from: ALL}}}") +
      doc("Listener", "d",
          "{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: "
          "ALL}}}"));
  ASSERT_EQ(c.snap().listeners.size(), 3u);
  const ListenerSnapshot& a = c.snap().listeners[0];
  EXPECT_EQ(a.name, "Listener/default/a");
  EXPECT_EQ(a.protocol, ListenerProtocol::kHttpProxy);
  EXPECT_EQ(a.security_model, SecurityModel::kSecure);
  EXPECT_EQ(a.l7_depth, 2u);
  EXPECT_EQ(a.http2_max_concurrent_streams, 7u);
  EXPECT_EQ(c.snap().listeners[2].http2_max_concurrent_streams, 100u);
  EXPECT_EQ(a.stats_prefix, "ingress_http");
  EXPECT_TRUE(a.routes);
  EXPECT_EQ(c.snap().listeners[1].protocol, ListenerProtocol::kTls);
  EXPECT_EQ(c.snap().listeners[1].stats_prefix, "ingress_tls_9000");
  EXPECT_FALSE(c.snap().listeners[1].routes);
  EXPECT_EQ(c.snap().listeners[2].stats_prefix, "mine");
  // The second Listener on 8080 is an error on itself.
  std::vector<std::string> e = errors(c);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("Listener/default/d: spec.port: tcp://0.0.0.0:8080 is already used by "
                      "Listener/default/a"),
            std::string::npos)
      << e[0];
}

TEST(CompilerTest, HostBindingNamespaceAndSelector) {
  std::string yaml =
      doc("Listener", "self",
          "{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: "
          "SELF}}}",
          ", namespace: edge") +
      doc("Listener", "sel",
          "{port: 8081, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}, "
          "selector: {matchLabels: {tier: edge}, matchExpressions: [{key: env, operator: NotIn, "
          "values: [dev]}]}}}") +
      doc("Host", "in-edge", "{hostname: a.example.com}", ", namespace: edge") +
      doc("Host", "labelled", "{hostname: b.example.com}",
          ", namespace: other, labels: {tier: edge, env: prod}") +
      doc("Host", "dev", "{hostname: c.example.com}",
          ", namespace: other, labels: {tier: edge, env: dev}") +
      doc("Host", "nowhere", "{hostname: d.example.com}", ", namespace: other");
  Compiled c = compile_text(yaml);
  auto names = [&](uint16_t port) {
    std::vector<std::string> out;
    for (const auto& h : testing::listener(c.snap(), port)->routes->hosts()) {
      out.push_back(h.hostname);
    }
    return out;
  };
  EXPECT_EQ(names(8080), std::vector<std::string>{"a.example.com"});
  EXPECT_EQ(names(8081), std::vector<std::string>{"b.example.com"});
  std::vector<std::string> nowhere = testing::diags_for(c, "");
  EXPECT_NE(std::find_if(nowhere.begin(), nowhere.end(),
                         [](const std::string& s) {
                           return s.find("Host/other/nowhere: is bound to no Listener") !=
                                  std::string::npos;
                         }),
            nowhere.end());
}

TEST(CompilerTest, InsecureListenerDropsRejectingHosts) {
  Compiled c = compile_text(
      doc("Listener", "l",
          "{port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: "
          "ALL}}}") +
      doc("Host", "r", "{hostname: r.example.com, requestPolicy: {insecure: {action: Reject}}}") +
      doc("Host", "ok", "{hostname: ok.example.com, requestPolicy: {insecure: {action: Route}}}"));
  EXPECT_EQ(vhost(c.snap(), 8080, "r.example.com"), nullptr);
  EXPECT_NE(vhost(c.snap(), 8080, "ok.example.com"), nullptr);
}

// --- Host <-> Mapping (spec §2.5) -------------------------------------------------------------

TEST(CompilerTest, AttachmentTable) {
  std::string yaml =
      doc("Listener", "l",
          "{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: "
          "ALL}}}") +
      doc("Host", "sel", "{hostname: a.example.com, mappingSelector: {matchLabels: {team: a}}}") +
      doc("Host", "plain", "{hostname: b.example.com}") +
      // Row 1: selector and hostname: both must match.
      doc("Mapping", "both-ok", "{prefix: /1/, service: s, hostname: a.example.com}",
          ", labels: {team: a}") +
      doc("Mapping", "both-wrong-host", "{prefix: /2/, service: s, hostname: x.example.com}",
          ", labels: {team: a}") +
      doc("Mapping", "both-wrong-label", "{prefix: /3/, service: s, hostname: a.example.com}",
          ", labels: {team: b}") +
      // Row 2: selector, no hostname: labels decide.
      doc("Mapping", "labels-only", "{prefix: /4/, service: s}", ", labels: {team: a}") +
      // Row 3: no selector, hostname: glob decides.
      doc("Mapping", "glob", "{prefix: /5/, service: s, hostname: '*.example.com'}") +
      // Row 4: neither: never.
      doc("Mapping", "neither", "{prefix: /6/, service: s}") +
      // host_regex attaches everywhere.
      doc("Mapping", "regex", "{prefix: /7/, service: s, host: '.*', host_regex: true}",
          ", labels: {team: a}");
  Compiled c = compile_text(yaml);
  auto attached = [&](const std::string& host) {
    std::vector<std::string> out = route_sources(vhost(c.snap(), 8080, host));
    std::sort(out.begin(), out.end());
    return out;
  };
  // "glob" matches a.example.com by name, but that Host's selector wants team=a: strict AND.
  EXPECT_EQ(attached("a.example.com"),
            (std::vector<std::string>{"Mapping/default/both-ok", "Mapping/default/labels-only",
                                      "Mapping/default/regex"}));
  EXPECT_EQ(attached("b.example.com"),
            (std::vector<std::string>{"Mapping/default/glob", "Mapping/default/regex"}));
  std::vector<std::string> d = testing::all_diags(c);
  for (const char* name : {"both-wrong-host", "both-wrong-label", "neither"}) {
    std::string want = std::string("warning: Mapping/default/") + name + ": attaches to no Host";
    EXPECT_TRUE(std::any_of(d.begin(), d.end(), [&](const std::string& s) {
      return s.find(want) != std::string::npos;
    })) << want;
  }
}

TEST(CompilerTest, HostAcceptsMappingRules) {
  HostSpec host;
  host.hostname = "*.example.com";
  EXPECT_TRUE(host_accepts_mapping(host, "a.example.com", false, {}));
  EXPECT_FALSE(host_accepts_mapping(host, "a.other.com", false, {}));
  EXPECT_FALSE(host_accepts_mapping(host, "", false, {{"x", "y"}}));
  EXPECT_TRUE(host_accepts_mapping(host, "", true, {}));
  host.mapping_selector = LabelSelector{{{"x", "y"}}, {}};
  EXPECT_TRUE(host_accepts_mapping(host, "", false, {{"x", "y"}, {"z", "w"}}));
  EXPECT_FALSE(host_accepts_mapping(host, "a.example.com", false, {{"x", "n"}}));
  EXPECT_TRUE(host_accepts_mapping(host, "a.example.com", false, {{"x", "y"}}));
  EXPECT_FALSE(host_accepts_mapping(host, "a.other.com", false, {{"x", "y"}}));
}

// --- route order (spec §2.1) ------------------------------------------------------------------

TEST(CompilerTest, RouteOrderPrecedencePrefixHeaders) {
  std::string yaml =
      std::string(kBase) + doc("Mapping", "short", "{prefix: /api/, service: s, hostname: '*'}") +
      doc("Mapping", "long", "{prefix: /api/v1/, service: s, hostname: '*'}") +
      doc("Mapping", "header",
          "{prefix: /api/, service: s, hostname: '*', headers: {x-canary: '1'}}") +
      doc("Mapping", "method", "{prefix: /api/, service: s, hostname: '*', method: POST}") +
      doc("Mapping", "host", "{prefix: /api/, service: s, hostname: 'api.example.com'}") +
      doc("Mapping", "first", "{prefix: /, service: s, hostname: '*', precedence: 10}") +
      doc("Mapping", "last", "{prefix: /api/v1/long/, service: s, hostname: '*', precedence: -1}");
  Compiled c = compile_text(yaml);
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  // header: len("x-canary")+len("1") + :authority(1+10) = 20; host: 10 + 15 = 25;
  // method: 10 + (7+4) = 21; short: 10 + 1 = 11 (":authority" "*").
  EXPECT_EQ(route_sources(vhost(c.snap(), 8080, "*")),
            (std::vector<std::string>{"Mapping/default/first", "Mapping/default/long",
                                      "Mapping/default/host", "Mapping/default/method",
                                      "Mapping/default/header", "Mapping/default/short",
                                      "Mapping/default/last"}));
}

TEST(CompilerTest, RouteOrderTiesBreakOnPrefixString) {
  std::string yaml = std::string(kBase) +
                     doc("Mapping", "a", "{prefix: /aaa/, service: s, hostname: '*'}") +
                     doc("Mapping", "b", "{prefix: /bbb/, service: s, hostname: '*'}");
  Compiled c = compile_text(yaml);
  // Same lengths: reverse-lexicographic prefix.
  EXPECT_EQ(route_sources(vhost(c.snap(), 8080, "*")),
            (std::vector<std::string>{"Mapping/default/b", "Mapping/default/a"}));
}

// --- matchers and targets ---------------------------------------------------------------------

TEST(CompilerTest, MatchersFromMappingFields) {
  std::string yaml =
      std::string(kBase) +
      doc("Mapping", "m",
          "{prefix: '/p/[0-9]+', prefix_regex: true, case_sensitive: false, service: s, "
          "hostname: '*.example.com', method: GET, headers: {x-a: 'v', x-present: true}, "
          "regex_headers: {x-r: '^a.*'}, query_parameters: {q: '1', flag: true}, "
          "regex_query_parameters: {r: '[a-z]+'}}");
  Compiled c = compile_text(yaml);
  const router::Route* r = only_route(c);
  ASSERT_NE(r, nullptr) << testing::dump(c.result.diagnostics);
  EXPECT_EQ(r->path.kind, router::PathMatchKind::kRegex);
  EXPECT_FALSE(r->path.case_sensitive);
  ASSERT_TRUE(r->path.regex);
  EXPECT_TRUE(RE2::FullMatch("/P/12", *r->path.regex));
  ASSERT_EQ(r->headers.size(), 5u);
  EXPECT_EQ(r->headers[0].name, "x-a");
  EXPECT_EQ(r->headers[0].match.kind, router::StringMatchKind::kExact);
  EXPECT_EQ(r->headers[1].name, "x-present");
  EXPECT_EQ(r->headers[1].match.kind, router::StringMatchKind::kPresent);
  EXPECT_EQ(r->headers[2].match.kind, router::StringMatchKind::kRegex);
  EXPECT_TRUE(r->headers[2].match.regex);
  EXPECT_EQ(r->headers[3].name, ":authority");
  EXPECT_EQ(r->headers[3].match.kind, router::StringMatchKind::kSuffix);
  EXPECT_EQ(r->headers[3].match.value, ".example.com");
  EXPECT_EQ(r->headers[4].name, ":method");
  EXPECT_EQ(r->headers[4].match.value, "GET");
  ASSERT_EQ(r->query.size(), 3u);
  EXPECT_EQ(r->query[0].match.kind, router::StringMatchKind::kExact);
  EXPECT_EQ(r->query[1].match.kind, router::StringMatchKind::kPresent);
  EXPECT_EQ(r->query[2].match.kind, router::StringMatchKind::kRegex);
  EXPECT_TRUE(r->source.starts_with("Mapping/default/m (test.yaml:"));
}

TEST(CompilerTest, AuthorityHeaderActsAsHostAndStarHostnameAddsNothing) {
  std::string yaml =
      std::string(kBase) +
      doc("Listener", "x",
          "{port: 9090, protocol: HTTP, securityModel: XFP, hostBinding: "
          "{namespace: {from: ALL}}}") +
      doc("Host", "api",
          "{hostname: api.example.com, requestPolicy: {insecure: {action: Route}}}") +
      doc("Mapping", "exact",
          "{prefix: /e/, service: s, headers: {':authority': api.example.com}}") +
      doc("Mapping", "star", "{prefix: /s/, service: s, hostname: '*', prefix_exact: true}");
  Compiled c = compile_text(yaml);
  const router::VirtualHostSpec* api = vhost(c.snap(), 8080, "api.example.com");
  ASSERT_NE(api, nullptr);
  ASSERT_EQ(api->routes.size(), 2u);
  const router::Route& exact = *api->routes[0];
  ASSERT_EQ(exact.headers.size(), 1u);
  EXPECT_EQ(exact.headers[0].name, ":authority");
  EXPECT_EQ(exact.headers[0].match.kind, router::StringMatchKind::kExact);
  EXPECT_EQ(exact.headers[0].match.value, "api.example.com");
  const router::Route& star = *api->routes[1];
  EXPECT_TRUE(star.headers.empty());
  EXPECT_EQ(star.path.kind, router::PathMatchKind::kExact);
  // The Host `*` glob-matches every Mapping hostname, so "exact" is there too.
  EXPECT_EQ(route_sources(vhost(c.snap(), 8080, "*")),
            (std::vector<std::string>{"Mapping/default/exact", "Mapping/default/star"}));
}

TEST(CompilerTest, TargetFields) {
  std::string yaml =
      std::string(kBase) +
      doc("Mapping", "m",
          "{prefix: /m/, service: 'https://backend.example.com', hostname: '*', rewrite: /x/, "
          "host_rewrite: h.example.com, auto_host_rewrite: true, timeout_ms: 0, "
          "idle_timeout_ms: 500, connect_timeout_ms: 250, cluster_idle_timeout_ms: 9000, "
          "add_linkerd_headers: true, stats_name: mystats}") +
      doc("Mapping", "rr",
          "{prefix: /rr/, service: 'svc:8080', hostname: '*', rewrite: '', "
          "regex_rewrite: {pattern: '^/rr/(.*)$', substitution: '/\\1'}}") +
      doc("Mapping", "plain",
          "{prefix: /plain/, service: svc:8080, hostname: '*', rewrite: '', idle_timeout_ms: 0}");
  Compiled c = compile_text(yaml);
  ASSERT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const router::VirtualHostSpec* h = vhost(c.snap(), 8080, "*");
  ASSERT_EQ(h->routes.size(), 3u);
  const router::RouteTarget* m = nullptr;
  const router::RouteTarget* rr = nullptr;
  const router::RouteTarget* plain = nullptr;
  for (const auto& r : h->routes) {
    if (r->targets[0].source == "Mapping/default/m") m = &r->targets[0];
    if (r->targets[0].source == "Mapping/default/rr") rr = &r->targets[0];
    if (r->targets[0].source == "Mapping/default/plain") plain = &r->targets[0];
  }
  ASSERT_TRUE(m && rr && plain);
  EXPECT_EQ(m->prefix_rewrite, std::optional<std::string>("/x/"));
  EXPECT_EQ(m->host_rewrite, std::optional<std::string>("h.example.com"));
  EXPECT_TRUE(m->auto_host_rewrite);
  EXPECT_EQ(m->timeout_ms, 0u);
  EXPECT_EQ(m->idle_timeout_ms, 500u);
  EXPECT_TRUE(m->add_linkerd_headers);
  const upstream::ClusterSpec& mc = c.snap().clusters[m->cluster];
  EXPECT_EQ(mc.name, m->cluster_name);
  // ircluster.py names a TLS cluster with its host_rewrite too.
  EXPECT_EQ(mc.name, "cluster_https___backend_example_com_otls_hr_h_example_com_default");
  EXPECT_EQ(mc.host, "backend.example.com");
  EXPECT_EQ(mc.port, 443);
  EXPECT_TRUE(mc.tls);
  EXPECT_EQ(mc.connect_timeout_ms, 250u);
  EXPECT_EQ(mc.idle_timeout_ms, 9000u);
  EXPECT_EQ(mc.stats_name, "mystats");
  EXPECT_EQ(plain->idle_timeout_ms, 0u);  // 0 turns the stream idle timeout off

  EXPECT_FALSE(rr->prefix_rewrite);
  ASSERT_TRUE(rr->regex_rewrite);
  EXPECT_EQ(rr->regex_rewrite->substitution, "/\\1");
  EXPECT_EQ(rr->timeout_ms, 3000u);
  // No idle_timeout_ms: Envoy's 5 min stream_idle_timeout, as under Emissary.
  EXPECT_EQ(rr->idle_timeout_ms, 300000u);
  EXPECT_FALSE(plain->prefix_rewrite);
  // Same service and settings: one cluster.
  EXPECT_EQ(rr->cluster, plain->cluster);
  EXPECT_EQ(c.snap().clusters[rr->cluster].name, "cluster_svc_8080_default");
  EXPECT_EQ(c.snap().clusters[rr->cluster].port, 8080);
  EXPECT_EQ(c.snap().clusters.size(), 2u);
}

TEST(CompilerTest, DefaultRewriteAndClusterSettingsSplit) {
  std::string yaml =
      std::string(kBase) + doc("Mapping", "a", "{prefix: /a/, service: svc, hostname: '*'}") +
      doc("Mapping", "b", "{prefix: /b/, service: svc, hostname: '*', connect_timeout_ms: 100}");
  Compiled c = compile_text(yaml);
  const router::VirtualHostSpec* h = vhost(c.snap(), 8080, "*");
  ASSERT_EQ(h->routes.size(), 2u);
  EXPECT_EQ(h->routes[0]->targets[0].prefix_rewrite, std::optional<std::string>("/"));
  ASSERT_EQ(c.snap().clusters.size(), 2u);
  EXPECT_EQ(c.snap().clusters[0].name, "cluster_svc_default");
  EXPECT_EQ(c.snap().clusters[0].port, 80);
  EXPECT_TRUE(c.snap().clusters[1].name.starts_with("cluster_svc_default_"));
  EXPECT_EQ(c.snap().clusters[1].name.size(), std::string("cluster_svc_default_").size() + 8);
}

TEST(CompilerTest, HostRedirect) {
  std::string yaml =
      std::string(kBase) +
      doc("Mapping", "r",
          "{prefix: /old/, service: 'https://new.example.com:8443', hostname: '*', "
          "host_redirect: true, prefix_redirect: /new/, redirect_response_code: 308}");
  Compiled c = compile_text(yaml);
  const router::Route* r = only_route(c);
  ASSERT_NE(r, nullptr) << testing::dump(c.result.diagnostics);
  ASSERT_EQ(r->targets.size(), 1u);
  ASSERT_TRUE(r->targets[0].redirect);
  const router::Redirect& rd = *r->targets[0].redirect;
  EXPECT_EQ(rd.host, "new.example.com:8443");
  EXPECT_TRUE(rd.https);
  EXPECT_EQ(rd.prefix, std::optional<std::string>("/new/"));
  EXPECT_EQ(rd.status, 308);
  EXPECT_TRUE(c.snap().clusters.empty());
}

TEST(CompilerTest, V2BooleanHeadersMeanPresence) {
  std::string yaml = std::string(kBase) +
                     "---\napiVersion: getambassador.io/v2\nkind: Mapping\nmetadata: {name: v2}\n"
                     "spec: {prefix: /v2/, service: s, host: h.example.com, tls: true, "
                     "headers: {x-debug: true}}\n" +
                     doc("Host", "h", "{hostname: h.example.com}");
  Compiled c = compile_text(yaml);
  const router::Route* r = only_route(c, "h.example.com");
  ASSERT_NE(r, nullptr) << testing::dump(c.result.diagnostics);
  EXPECT_EQ(r->headers[0].name, "x-debug");
  EXPECT_EQ(r->headers[0].match.kind, router::StringMatchKind::kPresent);
  EXPECT_TRUE(c.snap().clusters[r->targets[0].cluster].tls);
  EXPECT_EQ(c.snap().clusters[r->targets[0].cluster].port, 443);
}

// --- canary groups (spec §2.2) and shadows (§2.3) ---------------------------------------------

std::vector<std::pair<std::string, uint32_t>> weights(const router::Route* r) {
  std::vector<std::pair<std::string, uint32_t>> out;
  if (r == nullptr) return out;
  for (const auto& t : r->targets) out.emplace_back(t.source, t.cumulative_weight);
  return out;
}

TEST(CompilerTest, CanaryUnweightedPlusWeighted) {
  Compiled c = compile_text(std::string(kBase) +
                            doc("Mapping", "a", "{prefix: /c/, service: a, hostname: '*'}") +
                            doc("Mapping", "b",
                                "{prefix: /c/, service: b, hostname: '*', "
                                "weight: 10}"));
  EXPECT_EQ(weights(only_route(c)), (std::vector<std::pair<std::string, uint32_t>>{
                                        {"Mapping/default/b", 10}, {"Mapping/default/a", 100}}));
}

TEST(CompilerTest, CanaryWeightsBelowHundredAreNotRescaled) {
  Compiled c = compile_text(std::string(kBase) +
                            doc("Mapping", "a",
                                "{prefix: /c/, service: a, hostname: '*', "
                                "weight: 30}") +
                            doc("Mapping", "b",
                                "{prefix: /c/, service: b, hostname: '*', "
                                "weight: 30}"));
  EXPECT_EQ(weights(only_route(c)), (std::vector<std::pair<std::string, uint32_t>>{
                                        {"Mapping/default/a", 30}, {"Mapping/default/b", 60}}));
}

TEST(CompilerTest, CanaryOverHundredIsAnError) {
  Compiled c = compile_text(std::string(kBase) +
                            doc("Mapping", "a",
                                "{prefix: /c/, service: a, hostname: '*', "
                                "weight: 60}") +
                            doc("Mapping", "b",
                                "{prefix: /c/, service: b, hostname: '*', "
                                "weight: 50}") +
                            doc("Mapping", "other", "{prefix: /o/, service: o, hostname: '*'}"));
  std::vector<std::string> b = testing::diags_for(c, "spec.weight");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_NE(b[0].find("Mapping/default/b: spec.weight: the weights of the canary group add up to "
                      "more than 100 (110 after this Mapping)"),
            std::string::npos)
      << b[0];
  EXPECT_EQ(errors(c).size(), 2u);  // b, and a dropped with the group
  EXPECT_EQ(route_sources(vhost(c.snap(), 8080, "*")),
            std::vector<std::string>{"Mapping/default/other"});
}

TEST(CompilerTest, CanaryEvenSplitWithPythonRounding) {
  Compiled c = compile_text(std::string(kBase) +
                            doc("Mapping", "w",
                                "{prefix: /c/, service: w, hostname: '*', "
                                "weight: 50}") +
                            doc("Mapping", "x", "{prefix: /c/, service: x, hostname: '*'}") +
                            doc("Mapping", "y", "{prefix: /c/, service: y, hostname: '*'}") +
                            doc("Mapping", "z", "{prefix: /c/, service: z, hostname: '*'}") +
                            doc("Mapping", "v", "{prefix: /c/, service: v, hostname: '*'}"));
  // 50 left over 4: round(12.5) = 12 (half to even); the last is pinned to 100.
  EXPECT_EQ(weights(only_route(c)),
            (std::vector<std::pair<std::string, uint32_t>>{{"Mapping/default/w", 50},
                                                           {"Mapping/default/x", 62},
                                                           {"Mapping/default/y", 74},
                                                           {"Mapping/default/z", 86},
                                                           {"Mapping/default/v", 100}}));
}

TEST(CompilerTest, SingleMemberIsAlwaysHundred) {
  Compiled c = compile_text(std::string(kBase) + doc("Mapping", "a",
                                                     "{prefix: /c/, service: a, hostname: '*', "
                                                     "weight: 10}"));
  EXPECT_EQ(weights(only_route(c)),
            (std::vector<std::pair<std::string, uint32_t>>{{"Mapping/default/a", 100}}));
}

TEST(CompilerTest, GroupCoreKeysMustAgree) {
  Compiled c = compile_text(std::string(kBase) +
                            doc("Mapping", "a", "{prefix: /c/, service: a, hostname: '*'}") +
                            doc("Mapping", "b",
                                "{prefix: /c/, service: b, hostname: '*', "
                                "connect_timeout_ms: 100, timeout_ms: 1}"));
  std::vector<std::string> e = errors(c);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("Mapping/default/b: cannot join the canary group of Mapping/default/a: "
                      "connect_timeout_ms must be set to the same values"),
            std::string::npos)
      << e[0];
  EXPECT_EQ(weights(only_route(c)),
            (std::vector<std::pair<std::string, uint32_t>>{{"Mapping/default/a", 100}}));
}

TEST(CompilerTest, ShadowRules) {
  Compiled c = compile_text(
      std::string(kBase) + doc("Mapping", "main", "{prefix: /s/, service: main, hostname: '*'}") +
      doc("Mapping", "sh1",
          "{prefix: /s/, service: mirror, hostname: '*', shadow: true, "
          "weight: 25}") +
      doc("Mapping", "sh2", "{prefix: /s/, service: other, hostname: '*', shadow: true}") +
      doc("Mapping", "lonely", "{prefix: /lonely/, service: x, hostname: '*', shadow: true}"));
  const router::VirtualHostSpec* h = vhost(c.snap(), 8080, "*");
  ASSERT_EQ(h->routes.size(), 1u);
  const router::Route& r = *h->routes[0];
  EXPECT_EQ(weights(&r),
            (std::vector<std::pair<std::string, uint32_t>>{{"Mapping/default/main", 100}}));
  ASSERT_TRUE(r.shadow);
  EXPECT_EQ(r.shadow->source, "Mapping/default/sh1");
  EXPECT_EQ(r.shadow->cumulative_weight, 25u);
  EXPECT_EQ(c.snap().clusters[r.shadow->cluster].name, "cluster_shadow_mirror_default");
  std::vector<std::string> e = errors(c);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("Mapping/default/sh2: spec.shadow: a canary group takes one shadow, and "
                      "Mapping/default/sh1 already is"),
            std::string::npos)
      << e[0];
  std::vector<std::string> lonely = testing::diags_for(c, "spec.shadow");
  EXPECT_TRUE(std::any_of(lonely.begin(), lonely.end(), [](const std::string& s) {
    return s.find("warning: Mapping/default/lonely: spec.shadow: no Mapping") != std::string::npos;
  }));
}

TEST(CompilerTest, HostRedirectDoesNotMixWithProxyingMappings) {
  Compiled c = compile_text(std::string(kBase) +
                            doc("Mapping", "p", "{prefix: /x/, service: p, hostname: '*'}") +
                            doc("Mapping", "r",
                                "{prefix: /x/, service: r.example.com, hostname: '*', "
                                "host_redirect: true}"));
  std::vector<std::string> e = errors(c);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("Mapping/default/r: spec.host_redirect: cannot join the group of "
                      "Mapping/default/p"),
            std::string::npos)
      << e[0];
}

// --- ambassador_id ----------------------------------------------------------------------------

TEST(CompilerTest, AmbassadorIdFiltering) {
  std::string yaml =
      std::string(kBase) + doc("Mapping", "none", "{prefix: /none/, service: s, hostname: '*'}") +
      doc("Mapping", "blue", "{prefix: /blue/, service: s, hostname: '*', ambassador_id: blue}") +
      doc("Mapping", "both",
          "{prefix: /both/, service: s, hostname: '*', "
          "ambassador_id: [red, blue]}") +
      doc("Mapping", "auto",
          "{prefix: /auto/, service: s, hostname: '*', "
          "ambassador_id: [_automatic_]}");
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  Compiled def = compile_text(yaml);
  EXPECT_EQ(sorted(route_sources(vhost(def.snap(), 8080, "*"))),
            (std::vector<std::string>{"Mapping/default/auto", "Mapping/default/none"}));
  EXPECT_TRUE(has_note(def,
                       "ignoring Mapping/default/blue: ambassador_id [blue] does not "
                       "include default"));
  // With another id, even the Listener and Host of kBase (no id) do not apply.
  Compiled blue = compile_text(yaml, "blue");
  EXPECT_EQ(sorted(route_sources(vhost(blue.snap(), 8080, "*"))),
            (std::vector<std::string>{"Mapping/default/auto", "Mapping/default/blue",
                                      "Mapping/default/both"}));
}

// --- Module -----------------------------------------------------------------------------------

TEST(CompilerTest, ModuleSettings) {
  Compiled c = compile_text(
      doc("Module", "ambassador",
          "{config: {server_name: proxenos-test, enable_http10: true, max_request_headers_kb: 30, "
          "merge_slashes: true, use_remote_address: false, xff_num_trusted_hops: 2, "
          "headers_with_underscores_action: ALLOW, listener_idle_timeout_ms: 1000, "
          "strip_matching_host_port: true, preserve_external_request_id: true, "
          "envoy_log_type: json, envoy_log_format: {method: '%REQ(:METHOD)%'}, envoy_log_path: "
          "/tmp/x, cluster_request_timeout_ms: 5000, cluster_idle_timeout_ms: 7000, "
          "add_linkerd_headers: true, enable_ipv6: true, enable_grpc_web: true}}"));
  ASSERT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const ModuleSettings& m = c.snap().module;
  EXPECT_EQ(m.server_name, "proxenos-test");
  EXPECT_TRUE(m.enable_http10);
  EXPECT_EQ(m.max_request_headers_kb, 30u);
  EXPECT_TRUE(m.merge_slashes);
  EXPECT_FALSE(m.use_remote_address);
  EXPECT_EQ(m.xff_num_trusted_hops, 2u);
  EXPECT_EQ(m.headers_with_underscores, http::UnderscoreAction::kAllow);
  EXPECT_EQ(m.listener_idle_timeout_ms, 1000u);
  EXPECT_TRUE(m.strip_matching_host_port);
  EXPECT_TRUE(m.preserve_external_request_id);
  EXPECT_TRUE(m.enable_grpc_web);
  EXPECT_EQ(m.log_type, "json");
  EXPECT_EQ(m.log_format, R"({"method":"%REQ(:METHOD)%"})");
  EXPECT_EQ(m.log_path, "/tmp/x");
  EXPECT_EQ(m.cluster_request_timeout_ms, 5000u);
  EXPECT_EQ(m.source, "Module/default/ambassador");
}

TEST(CompilerTest, ModuleDefaultsApplyToMappings) {
  Compiled c =
      compile_text(std::string(kBase) +
                   doc("Module", "ambassador",
                       "{config: {cluster_request_timeout_ms: 5000, cluster_idle_timeout_ms: 7000, "
                       "defaults: {httpmapping: {add_request_headers: {x-default: d}, "
                       "remove_response_headers: [server]}}}}") +
                   doc("Mapping", "inherits", "{prefix: /i/, service: s, hostname: '*'}") +
                   doc("Mapping", "own",
                       "{prefix: /o/, service: s, hostname: '*', "
                       "add_request_headers: {x-own: {value: o, append: false}}}") +
                   doc("Mapping", "none",
                       "{prefix: /n/, service: s, hostname: '*', "
                       "add_request_headers: {}, remove_response_headers: []}"));
  ASSERT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  std::map<std::string, const router::RouteTarget*> t;
  for (const auto& r : vhost(c.snap(), 8080, "*")->routes) t[r->targets[0].source] = &r->targets[0];
  const router::RouteTarget& inherits = *t["Mapping/default/inherits"];
  ASSERT_EQ(inherits.request_headers.add.size(), 1u);
  EXPECT_EQ(inherits.request_headers.add[0].name, "x-default");
  EXPECT_EQ(inherits.response_headers.remove, std::vector<std::string>{"server"});
  EXPECT_EQ(inherits.timeout_ms, 5000u);
  EXPECT_EQ(c.snap().clusters[inherits.cluster].idle_timeout_ms, 7000u);
  // Its own value replaces the default; it does not merge with it.
  const router::RouteTarget& own = *t["Mapping/default/own"];
  ASSERT_EQ(own.request_headers.add.size(), 1u);
  EXPECT_EQ(own.request_headers.add[0].name, "x-own");
  EXPECT_FALSE(own.request_headers.add[0].append);
  EXPECT_EQ(own.response_headers.remove, std::vector<std::string>{"server"});
  // An explicit empty value suppresses the default.
  const router::RouteTarget& none = *t["Mapping/default/none"];
  EXPECT_TRUE(none.request_headers.add.empty());
  EXPECT_TRUE(none.response_headers.remove.empty());
}

TEST(CompilerTest, CanaryMembersMergeAddedHeaders) {
  Compiled c = compile_text(std::string(kBase) +
                            doc("Mapping", "a",
                                "{prefix: /c/, service: a, hostname: '*', "
                                "add_request_headers: {x-a: '1', x-both: a}}") +
                            doc("Mapping", "b",
                                "{prefix: /c/, service: b, hostname: '*', weight: 10, "
                                "add_request_headers: {x-both: b}}"));
  const router::Route* r = only_route(c);
  ASSERT_NE(r, nullptr);
  for (const auto& t : r->targets) {
    ASSERT_EQ(t.request_headers.add.size(), 2u);
    EXPECT_EQ(t.request_headers.add[0].name, "x-a");
    EXPECT_EQ(t.request_headers.add[1].name, "x-both");
    EXPECT_EQ(t.request_headers.add[1].value.pieces[0].text, "b");
  }
}

TEST(CompilerTest, CorsPolicyFromMappingElseModule) {
  Compiled c = compile_text(
      std::string(kBase) +
      doc("Module", "ambassador",
          "{config: {enable_grpc_http11_bridge: true, cors: {origins: 'https://a.example, "
          "https://b.example', methods: [GET, POST], max_age: '60'}}}") +
      doc("Mapping", "inherits", "{prefix: /i/, service: s, hostname: '*'}") +
      doc("Mapping", "own",
          "{prefix: /o/, service: s, hostname: '*', cors: {origins: ['*'], headers: 'x-a,x-b', "
          "exposed_headers: [grpc-status, grpc-message], credentials: true, max_age: 600}}") +
      doc("Mapping", "off", "{prefix: /off/, service: s, hostname: '*', cors: {}}") +
      doc("Mapping", "redirect",
          "{prefix: /r/, service: elsewhere.example, hostname: '*', host_redirect: true}"));
  ASSERT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(all_of_warnings_absent(c, "spec.cors"));
  EXPECT_TRUE(c.snap().module.enable_grpc_http11_bridge);
  std::map<std::string, const router::Route*> r;
  for (const auto& route : vhost(c.snap(), 8080, "*")->routes) {
    r[route->targets[0].source] = route.get();
  }
  const router::CorsPolicy* inherits = r["Mapping/default/inherits"]->cors.get();
  ASSERT_NE(inherits, nullptr);
  EXPECT_EQ(inherits->origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(inherits->allow_methods, "GET, POST");
  EXPECT_EQ(inherits->allow_headers, "");
  EXPECT_EQ(inherits->max_age, "60");
  EXPECT_FALSE(inherits->allow_credentials);
  // A Mapping's own policy replaces the Module's whole, field by field nothing is inherited.
  const router::CorsPolicy* own = r["Mapping/default/own"]->cors.get();
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->origins, std::vector<std::string>{"*"});
  EXPECT_EQ(own->allow_methods, "");
  EXPECT_EQ(own->allow_headers, "x-a, x-b");
  EXPECT_EQ(own->expose_headers, "grpc-status, grpc-message");
  EXPECT_EQ(own->max_age, "600");
  EXPECT_TRUE(own->allow_credentials);
  // An empty policy still overrides the Module's: no origin is allowed.
  const router::CorsPolicy* off = r["Mapping/default/off"]->cors.get();
  ASSERT_NE(off, nullptr);
  EXPECT_TRUE(off->origins.empty());
  // Redirects answer before CORS, as in Emissary.
  EXPECT_EQ(r["Mapping/default/redirect"]->cors, nullptr);
}

TEST(CompilerTest, NoCorsAnywhereMeansNoPolicy) {
  Compiled c = compile_text(std::string(kBase) +
                            doc("Mapping", "m", "{prefix: /m/, service: s, hostname: '*'}"));
  const router::Route* r = only_route(c);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->cors, nullptr);
}

TEST(CompilerTest, CanaryGroupTakesTheLastMembersCors) {
  Compiled c =
      compile_text(std::string(kBase) +
                   doc("Mapping", "a",
                       "{prefix: /c/, service: a, hostname: '*', "
                       "cors: {origins: [https://a.example]}}") +
                   doc("Mapping", "b", "{prefix: /c/, service: b, hostname: '*', weight: 10}"));
  const router::Route* r = only_route(c);
  ASSERT_NE(r, nullptr);
  ASSERT_NE(r->cors, nullptr);
  EXPECT_EQ(r->cors->origins, std::vector<std::string>{"https://a.example"});
}

TEST(CompilerTest, SeveralAmbassadorModules) {
  Compiled c =
      compile_text(doc("Module", "ambassador", "{config: {server_name: one}}", ", namespace: a") +
                   doc("Module", "ambassador", "{config: {server_name: two}}", ", namespace: b") +
                   doc("Module", "tls", "{config: {}}"));
  std::vector<std::string> e = errors(c);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("Module/b/ambassador: only one ambassador Module may exist"),
            std::string::npos);
  EXPECT_EQ(c.snap().module.server_name, "one");
  EXPECT_TRUE(has_note(c, "ignoring Module/default/tls"));
}

TEST(CompilerTest, DuplicateResourceIsAnError) {
  Compiled c = compile_text(doc("Mapping", "m", "{prefix: /a/, service: s}") +
                            doc("Mapping", "m", "{prefix: /b/, service: s}"));
  std::vector<std::string> e = errors(c);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("Mapping/default/m: duplicates the resource defined at test.yaml:2"),
            std::string::npos)
      << e[0];
}

TEST(CompilerTest, NeverThrowsOnOddInput) {
  std::vector<Resource> resources(3);
  resources[0].kind = "Mapping";
  resources[0].name = "empty";
  resources[0].api_version = "getambassador.io/v3alpha1";
  resources[1].kind = "Host";
  resources[1].name = "scalar-spec";
  resources[1].api_version = "getambassador.io/v3alpha1";
  resources[1].spec = YAML::Node("just a string");
  resources[2].kind = "Listener";
  resources[2].name = "seq";
  resources[2].api_version = "getambassador.io/v3alpha1";
  resources[2].spec = YAML::Load("[1, 2]");
  CompileResult r = compile(resources, CompileOptions{});
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->listeners.size(), 0u);
  EXPECT_TRUE(has_errors(r.diagnostics));
}

TEST(CompilerTest, CompilingLeavesResourcesUntouched) {
  LoadResult loaded = testing::load_text(
      std::string(kBase) +
      doc("Mapping", "m",
          "{prefix: /m/, service: s, hostname: '*', headers: {x-a: '1', x-b: '2'}, "
          "regex_headers: {x-c: '[', x-d: 'ok'}, query_parameters: {q: '1', r: true}}") +
      doc("Mapping", "n", "{prefix: /n/, service: s, hostname: '*', headers: {x-a: '1'}}"));
  std::vector<std::string> before;
  for (const Resource& r : loaded.resources) before.push_back(YAML::Dump(r.object));
  CompileResult first = compile(loaded.resources, CompileOptions{});
  CompileResult second = compile(loaded.resources, CompileOptions{});
  std::vector<std::string> after;
  for (const Resource& r : loaded.resources) after.push_back(YAML::Dump(r.object));
  EXPECT_EQ(before, after);
  EXPECT_EQ(format_routes(*first.snapshot), format_routes(*second.snapshot));
  EXPECT_EQ(testing::dump(first.diagnostics), testing::dump(second.diagnostics));
}

// --- pieces -----------------------------------------------------------------------------------

TEST(LabelSelectorTest, FullKubernetesSemantics) {
  LabelSelector s;
  s.match_labels = {{"app", "web"}};
  s.match_expressions = {{"tier", SelectorOperator::kIn, {"front", "edge"}},
                         {"env", SelectorOperator::kNotIn, {"dev"}},
                         {"owner", SelectorOperator::kExists, {}},
                         {"legacy", SelectorOperator::kDoesNotExist, {}}};
  Labels ok = {{"app", "web"}, {"tier", "edge"}, {"owner", "x"}};
  EXPECT_TRUE(s.matches(ok));
  Labels dev = ok;
  dev["env"] = "dev";
  EXPECT_FALSE(s.matches(dev));
  Labels prod = ok;
  prod["env"] = "prod";
  EXPECT_TRUE(s.matches(prod));
  Labels legacy = ok;
  legacy["legacy"] = "";
  EXPECT_FALSE(s.matches(legacy));
  Labels no_owner = ok;
  no_owner.erase("owner");
  EXPECT_FALSE(s.matches(no_owner));
  Labels wrong_tier = ok;
  wrong_tier["tier"] = "back";
  EXPECT_FALSE(s.matches(wrong_tier));
  EXPECT_TRUE(LabelSelector{}.matches({}));
  EXPECT_EQ(s.to_string(), "app=web,tier in (front,edge),env notin (dev),owner,!legacy");
}

TEST(ServiceTest, ParseAndQualify) {
  ServiceAddress a;
  std::string err;
  ASSERT_TRUE(parse_service("[::1]:9001", &a, &err)) << err;
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 9001);
  ASSERT_TRUE(parse_service("HTTPS://x.y", &a, &err));
  EXPECT_TRUE(a.tls);
  EXPECT_EQ(a.port, 443);
  EXPECT_FALSE(parse_service("::1", &a, &err));
  EXPECT_FALSE(parse_service(":80", &a, &err));
  EXPECT_EQ(qualify_kubernetes_service("echo", "team", "ambassador"), "echo.team");
  EXPECT_EQ(qualify_kubernetes_service("echo", "ambassador", "ambassador"), "echo");
  EXPECT_EQ(qualify_kubernetes_service("echo.other", "team", "ambassador"), "echo.other");
  EXPECT_EQ(qualify_kubernetes_service("10.0.0.1", "team", "ambassador"), "10.0.0.1");
  EXPECT_EQ(qualify_kubernetes_service("localhost", "team", "ambassador"), "localhost");
}

}  // namespace
}  // namespace proxenos::config
