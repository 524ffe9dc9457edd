#include "app/diagnostics.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "admin/diag_page.h"
#include "config/compiler.h"
#include "config/file_source.h"

namespace proxenos::app {
namespace {

using nlohmann::json;

// A Listener and a Host, a canary pair (70/30, the 30 with a rewrite), a shadow, a Mapping with
// method/header/query matchers and precedence, and one with a regex that does not compile.
const char* kConfig = R"(apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: any}
spec: {hostname: "*", requestPolicy: {insecure: {action: Route}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: stable}
spec: {prefix: /echo/, service: "127.0.0.1:9001", hostname: "*"}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: canary}
spec: {prefix: /echo/, service: "127.0.0.1:9002", hostname: "*", weight: 30, rewrite: /v2/}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: mirror}
spec: {prefix: /echo/, service: "127.0.0.1:9003", hostname: "*", shadow: true, weight: 10}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: api}
spec:
  prefix: /api/
  service: "127.0.0.1:9004"
  hostname: "*"
  method: POST
  headers: {x-team: a}
  query_parameters: {debug: "1"}
  precedence: 5
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: bad}
spec: {prefix: "/bad/(", prefix_regex: true, service: "127.0.0.1:9005", hostname: "*"}
)";

struct Fixture {
  config::LoadResult loaded;
  config::CompileResult compiled;
  config::Diagnostics diagnostics;
  proxy::EndpointMap endpoints;
  observe::MergedStats stats;
  StatsSampler sampler;

  explicit Fixture(const std::string& yaml) {
    config::parse_documents(yaml, "routes.yaml", loaded);
    config::CompileOptions options;
    options.generation = 7;
    compiled = config::compile(loaded.resources, options);
    diagnostics = loaded.diagnostics;
    diagnostics.insert(diagnostics.end(), compiled.diagnostics.begin(), compiled.diagnostics.end());
  }

  json model(int64_t applied_ms = 1'000'000, int64_t now_ms = 1'012'500) const {
    DiagInputs in;
    in.snapshot = compiled.snapshot.get();
    in.diagnostics = &diagnostics;
    in.endpoints = &endpoints;
    in.stats = &stats;
    in.sampler = &sampler;
    in.generation = compiled.snapshot->generation;
    in.applied_unix_ms = applied_ms;
    in.now_unix_ms = now_ms;
    return build_diag_model(in);
  }
};

const json* find_by(const json& array, const char* key, const std::string& value) {
  for (const json& item : array) {
    if (item.contains(key) && item[key] == value) return &item;
  }
  return nullptr;
}

observe::ClusterValues cluster_values(const std::string& name, uint64_t total, uint64_t errors) {
  observe::ClusterValues v;
  v.name = name;
  v.upstream_rq_total = total;
  v.upstream_rq_xx[2] = total - errors;
  v.upstream_rq_xx[5] = errors;
  return v;
}

TEST(DiagModelTest, SummaryGenerationAndAge) {
  Fixture f(kConfig);
  json m = f.model();
  EXPECT_EQ(m["generation"], 7);
  EXPECT_DOUBLE_EQ(m["ageSeconds"].get<double>(), 12.5);
  EXPECT_EQ(m["appliedAt"], "1970-01-01T00:16:40.000Z");
  EXPECT_EQ(m["summary"]["listeners"], 1);
  EXPECT_EQ(m["summary"]["hosts"], 1);
  EXPECT_EQ(m["summary"]["routes"], 2);  // the canary group is one route; `bad` was dropped
  EXPECT_EQ(m["summary"]["errors"], 1);
  EXPECT_EQ(m["summary"]["clusters"], f.compiled.snapshot->clusters.size());
}

TEST(DiagModelTest, ListenersHostsAndRoutesInMatchOrder) {
  Fixture f(kConfig);
  json m = f.model();
  ASSERT_EQ(m["listeners"].size(), 1u);
  const json& l = m["listeners"][0];
  EXPECT_EQ(l["name"], "Listener/default/http");
  EXPECT_EQ(l["address"], "0.0.0.0");
  EXPECT_EQ(l["port"], 8080);
  EXPECT_EQ(l["protocol"], "HTTP");
  EXPECT_EQ(l["securityModel"], "XFP");
  ASSERT_EQ(l["hosts"].size(), 1u);
  const json& h = l["hosts"][0];
  EXPECT_EQ(h["hostname"], "*");
  EXPECT_EQ(h["source"], "Host/default/any");
  EXPECT_EQ(h["origin"], "routes.yaml:6");
  const json& routes = h["routes"];
  ASSERT_EQ(routes.size(), 2u);

  // Precedence 5 sorts first.
  const json& api = routes[0];
  EXPECT_EQ(api["index"], 1);
  EXPECT_EQ(api["precedence"], 5);
  EXPECT_EQ(api["match"]["kind"], "prefix");
  EXPECT_EQ(api["match"]["path"], "/api/");
  EXPECT_EQ(api["match"]["method"]["value"], "POST");
  ASSERT_EQ(api["match"]["headers"].size(), 1u);
  EXPECT_EQ(api["match"]["headers"][0]["name"], "x-team");
  EXPECT_EQ(api["match"]["headers"][0]["value"], "a");
  ASSERT_EQ(api["match"]["query"].size(), 1u);
  EXPECT_EQ(api["match"]["query"][0]["name"], "debug");
  EXPECT_EQ(api["source"], "Mapping/default/api");
  EXPECT_EQ(api["origin"], "routes.yaml:26");
  EXPECT_TRUE(api["shadow"].is_null());

  const json& echo = routes[1];
  EXPECT_EQ(echo["index"], 2);
  EXPECT_EQ(echo["match"]["path"], "/echo/");
  ASSERT_EQ(echo["targets"].size(), 2u);
  const json* stable = find_by(echo["targets"], "source", "Mapping/default/stable");
  const json* canary = find_by(echo["targets"], "source", "Mapping/default/canary");
  ASSERT_NE(stable, nullptr);
  ASSERT_NE(canary, nullptr);
  EXPECT_EQ((*stable)["weight"], 70);
  EXPECT_EQ((*canary)["weight"], 30);
  EXPECT_EQ((*canary)["rewrite"], "/v2/");
  EXPECT_EQ((*canary)["service"], "127.0.0.1:9002");
  EXPECT_EQ((*canary)["origin"], "routes.yaml:16");
  EXPECT_EQ((*stable)["origin"], "routes.yaml:11");
  ASSERT_TRUE(echo["shadow"].is_object());
  EXPECT_EQ(echo["shadow"]["weight"], 10);
  EXPECT_EQ(echo["shadow"]["source"], "Mapping/default/mirror");
  EXPECT_EQ(echo["shadow"]["service"], "127.0.0.1:9003");
}

TEST(DiagModelTest, ResourcesCarryTheirErrorsAndComeFirstWhenBroken) {
  Fixture f(kConfig);
  json m = f.model();
  const json& resources = m["resources"];
  ASSERT_FALSE(resources.empty());
  const json& bad = resources[0];
  EXPECT_EQ(bad["resource"], "Mapping/default/bad");
  EXPECT_EQ(bad["kind"], "Mapping");
  EXPECT_EQ(bad["namespace"], "default");
  EXPECT_EQ(bad["name"], "bad");
  EXPECT_EQ(bad["status"], "error");
  EXPECT_FALSE(bad["applied"].get<bool>());
  EXPECT_EQ(bad["origin"].get<std::string>().rfind("routes.yaml:", 0), 0u);
  ASSERT_EQ(bad["errors"].size(), 1u);
  EXPECT_EQ(bad["errors"][0]["field"], "spec.prefix");
  EXPECT_FALSE(bad["errors"][0]["message"].get<std::string>().empty());

  const json* stable = find_by(resources, "resource", "Mapping/default/stable");
  ASSERT_NE(stable, nullptr);
  EXPECT_EQ((*stable)["status"], "ok");
  EXPECT_TRUE((*stable)["applied"].get<bool>());
  EXPECT_EQ((*stable)["origin"], "routes.yaml:11");
  EXPECT_NE(find_by(resources, "resource", "Listener/default/http"), nullptr);
  EXPECT_NE(find_by(resources, "resource", "Host/default/any"), nullptr);
  EXPECT_TRUE(m["fileErrors"].empty());

  // Each resource once, in trouble-first order.
  std::set<std::string> seen;
  int last_rank = 0;
  for (const json& r : resources) {
    EXPECT_TRUE(seen.insert(r["resource"].get<std::string>()).second) << r["resource"];
    int rank = r["status"] == "error" ? 0 : r["status"] == "warning" ? 1 : 2;
    EXPECT_GE(rank, last_rank);
    last_rank = rank;
  }
  EXPECT_EQ(seen.size(), f.compiled.snapshot->resource_origins.size() + 1);  // + the dropped one
}

TEST(DiagModelTest, FileLevelErrorsAreListedByFile) {
  Fixture f(std::string(kConfig) + "---\nkind: Mapping\n  bad: [indent\n");
  json m = f.model();
  ASSERT_EQ(m["fileErrors"].size(), 1u) << m["fileErrors"].dump();
  EXPECT_EQ(m["fileErrors"][0]["file"], "routes.yaml");
  EXPECT_EQ(m["fileErrors"][0]["severity"], "error");
  EXPECT_GT(m["fileErrors"][0]["line"].get<int>(), 0);
}

TEST(DiagModelTest, ClustersShowEndpointsCountsAndRecentErrorRate) {
  Fixture f(kConfig);
  const config::Snapshot& snap = *f.compiled.snapshot;
  const upstream::ClusterSpec* stable = nullptr;
  for (const auto& c : snap.clusters) {
    if (c.port == 9001) stable = &c;
  }
  ASSERT_NE(stable, nullptr);
  f.endpoints[stable->name] = {*net::Address::parse("127.0.0.1:9001", 80)};

  observe::MergedStats before;
  f.sampler.record(0, before);  // nothing yet: the baseline
  f.stats.clusters.push_back(cluster_values(stable->stats_name, 10, 3));
  f.sampler.record(20'000, f.stats);

  json m = f.model();
  const json* c = find_by(m["clusters"], "name", stable->name);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["service"], "127.0.0.1:9001");
  EXPECT_EQ((*c)["endpoints"], json::array({"127.0.0.1:9001"}));
  EXPECT_EQ((*c)["requestsTotal"], 10);
  EXPECT_EQ((*c)["responses5xx"], 3);
  EXPECT_EQ((*c)["responses"]["2xx"], 7);
  EXPECT_DOUBLE_EQ((*c)["recentErrorRate"].get<double>(), 0.3);
  EXPECT_EQ((*c)["recent"]["requests"], 10);
  EXPECT_DOUBLE_EQ((*c)["recent"]["windowSeconds"].get<double>(), 20.0);
  EXPECT_EQ((*c)["mappings"], json::array({"Mapping/default/stable"}));

  // A cluster without stats or endpoints: zeros, no rate.
  const json* other = find_by(m["clusters"], "service", "127.0.0.1:9004");
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE((*other)["endpoints"].empty());
  EXPECT_EQ((*other)["requestsTotal"], 0);
  EXPECT_TRUE((*other)["recentErrorRate"].is_null());
}

TEST(DiagModelTest, NoSnapshotYet) {
  config::Diagnostics none;
  DiagInputs in;
  in.diagnostics = &none;
  in.now_unix_ms = 5000;
  json m = build_diag_model(in);
  EXPECT_TRUE(m["listeners"].empty());
  EXPECT_TRUE(m["clusters"].empty());
  EXPECT_EQ(m["summary"]["routes"], 0);
  EXPECT_FALSE(admin::render_diag_html(m).empty());
}

// --- StatsSampler ------------------------------------------------------------------------------

TEST(StatsSamplerTest, RateCoversTheLastMinute) {
  StatsSampler s;
  observe::MergedStats m;
  m.clusters.push_back(cluster_values("c", 100, 50));  // an old burst of errors
  s.record(0, m);
  for (uint64_t t = 10'000; t <= 120'000; t += 10'000) {
    m.clusters[0] = cluster_values("c", 100 + t / 1000, 50);  // 1 ok request per second since
    s.record(t, m);
  }
  auto r = s.recent("c");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->window_ms, 60'000u);
  EXPECT_EQ(r->requests, 60u);
  EXPECT_EQ(r->errors_5xx, 0u);
  ASSERT_TRUE(r->rate.has_value());
  EXPECT_DOUBLE_EQ(*r->rate, 0.0);
  EXPECT_FALSE(s.recent("unknown").has_value());
}

TEST(StatsSamplerTest, NoRequestsMeansNoRate) {
  StatsSampler s;
  observe::MergedStats m;
  m.clusters.push_back(cluster_values("c", 5, 5));
  s.record(0, m);
  s.record(30'000, m);
  auto r = s.recent("c");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->requests, 0u);
  EXPECT_FALSE(r->rate.has_value());
}

TEST(StatsSamplerTest, CloseSamplesReplaceTheNewestButKeepTheBaseline) {
  StatsSampler s;
  observe::MergedStats m;
  m.clusters.push_back(cluster_values("c", 0, 0));
  s.record(0, m);
  for (uint64_t t = 1; t <= 50; ++t) {
    m.clusters[0] = cluster_values("c", t * 2, t);
    s.record(10'000 + t * 10, m);
  }
  auto r = s.recent("c");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->requests, 100u);
  EXPECT_EQ(r->errors_5xx, 50u);
  EXPECT_EQ(r->window_ms, 10'500u);
  EXPECT_DOUBLE_EQ(*r->rate, 0.5);
}

TEST(StatsSamplerTest, CounterRestartStartsAFreshHistory) {
  StatsSampler s;
  observe::MergedStats m;
  m.clusters.push_back(cluster_values("c", 1000, 10));
  s.record(0, m);
  m.clusters[0] = cluster_values("c", 4, 2);  // the cluster was removed and added again
  s.record(10'000, m);
  auto r = s.recent("c");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->requests, 4u);
  EXPECT_EQ(r->errors_5xx, 2u);
  EXPECT_DOUBLE_EQ(*r->rate, 0.5);
}

// --- config dump and redaction -----------------------------------------------------------------

TEST(ConfigDumpTest, HasModuleListenersRoutesAndClusters) {
  Fixture f(kConfig);
  json d = config_dump(*f.compiled.snapshot);
  EXPECT_EQ(d["generation"], 7);
  EXPECT_EQ(d["module"]["server_name"], "envoy");
  ASSERT_EQ(d["listeners"].size(), 1u);
  const json& routes = d["listeners"][0]["hosts"][0]["routes"];
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[1]["match"]["path"], "/echo/");
  EXPECT_EQ(routes[1]["targets"][0]["timeoutMs"], 3000);
  EXPECT_EQ(d["clusters"].size(), f.compiled.snapshot->clusters.size());
  EXPECT_EQ(d["resourceOrigins"]["Mapping/default/api"], "routes.yaml:26");
  // Nothing in it looks like a secret today, so redaction leaves it unchanged.
  EXPECT_EQ(d.dump().find("[redacted]"), std::string::npos);
}

TEST(RedactionTest, SecretKeysAreRedactedAtAnyDepth) {
  json in = {
      {"name", "tls"},
      {"tls", {{"key", "-----BEGIN PRIVATE KEY-----"}, {"crt", "-----BEGIN CERTIFICATE-----"}}},
      {"private_key", "pk"},
      {"privateKey", {{"inline", "pk2"}}},
      {"client", {{"password", "hunter2"}, {"user", "bob"}}},
      {"auth", json::array({{{"token", "t1"}}, {{"bearer_token", "t2"}, {"header", "x"}}})},
      {"oauth", {{"clientSecret", "cs"}, {"secretName", "kept"}}},
      {"tls.key", "raw"},
      {"apiKey", "ak"},
      {"keyword", "kept"},
      {"empty_password", ""},
      {"null_token", nullptr},
  };
  json out = redact_secrets(in);
  EXPECT_EQ(out["name"], "tls");
  EXPECT_EQ(out["tls"]["key"], "[redacted]");
  EXPECT_EQ(out["tls"]["crt"], "-----BEGIN CERTIFICATE-----");
  EXPECT_EQ(out["private_key"], "[redacted]");
  EXPECT_EQ(out["privateKey"], "[redacted]");
  EXPECT_EQ(out["client"]["password"], "[redacted]");
  EXPECT_EQ(out["client"]["user"], "bob");
  EXPECT_EQ(out["auth"][0]["token"], "[redacted]");
  EXPECT_EQ(out["auth"][1]["bearer_token"], "[redacted]");
  EXPECT_EQ(out["auth"][1]["header"], "x");
  EXPECT_EQ(out["oauth"]["clientSecret"], "[redacted]");
  EXPECT_EQ(out["oauth"]["secretName"], "kept");
  EXPECT_EQ(out["tls.key"], "[redacted]");
  EXPECT_EQ(out["apiKey"], "[redacted]");
  EXPECT_EQ(out["keyword"], "kept");
  EXPECT_EQ(out["empty_password"], "");
  EXPECT_TRUE(out["null_token"].is_null());
  EXPECT_EQ(out.dump().find("hunter2"), std::string::npos);
  EXPECT_EQ(out.dump().find("pk2"), std::string::npos);
}

TEST(RedactionTest, KubernetesSecretDataIsRedacted) {
  json secret = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"metadata", {{"name", "tls-cert"}}},
                 {"type", "kubernetes.io/tls"},
                 {"data", {{"tls.crt", "Y3J0"}, {"tls.key", "a2V5"}}},
                 {"stringData", {{"note", "plain"}}}};
  json configmap = {{"kind", "ConfigMap"}, {"data", {{"note", "plain"}}}};
  json out = redact_secrets(json::array({secret, configmap}));
  EXPECT_EQ(out[0]["data"], "[redacted]");
  EXPECT_EQ(out[0]["stringData"], "[redacted]");
  EXPECT_EQ(out[0]["metadata"]["name"], "tls-cert");
  EXPECT_EQ(out[0]["type"], "kubernetes.io/tls");
  EXPECT_EQ(out[1]["data"]["note"], "plain");
}

TEST(QueryFlagTest, JsonFlag) {
  EXPECT_TRUE(query_flag("json=true", "json"));
  EXPECT_TRUE(query_flag("a=b&json=1", "json"));
  EXPECT_FALSE(query_flag("json=false", "json"));
  EXPECT_FALSE(query_flag("json=", "json"));
  EXPECT_FALSE(query_flag("json", "json"));
  EXPECT_FALSE(query_flag("jsonx=true", "json"));
  EXPECT_FALSE(query_flag("", "json"));
}

}  // namespace
}  // namespace proxenos::app
