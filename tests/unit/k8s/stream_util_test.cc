#include <gtest/gtest.h>

#include "k8s/backoff.h"
#include "k8s/json_stream.h"
#include "k8s/reflector.h"

namespace proxenos::k8s {
namespace {

TEST(BackoffTest, DoublesToTheCapWithoutJitter) {
  Backoff b({.initial_ms = 800, .max_ms = 30'000, .reset_after_ms = 120'000, .jitter = 0}, 1);
  std::vector<uint64_t> waits;
  for (int i = 0; i < 8; ++i) waits.push_back(b.next(1000 + i));
  EXPECT_EQ(waits, (std::vector<uint64_t>{800, 1600, 3200, 6400, 12800, 25600, 30000, 30000}));
}

TEST(BackoffTest, JitterAddsUpToOneStep) {
  Backoff b({}, 42);
  uint64_t step = 800;
  bool some_jitter = false;
  for (int i = 0; i < 10; ++i) {
    uint64_t w = b.next(1000 + i);
    EXPECT_GE(w, step);
    EXPECT_LE(w, 2 * step);
    some_jitter |= w != step;
    step = std::min<uint64_t>(step * 2, 30'000);
  }
  EXPECT_TRUE(some_jitter);
}

TEST(BackoffTest, ResetsAfterTwoHealthyMinutes) {
  Backoff b({.jitter = 0}, 1);
  EXPECT_EQ(b.next(0), 800u);
  EXPECT_EQ(b.next(1000), 1600u);
  EXPECT_EQ(b.next(1000 + 120'000), 3200u);  // exactly 2 min: not yet
  EXPECT_EQ(b.next(1000 + 240'001), 800u);
}

TEST(JsonSplitter, SplitsConcatenatedObjectsAcrossChunks) {
  JsonObjectSplitter s;
  std::vector<std::string> out;
  std::string stream = R"({"type":"ADDED","object":{"a":"}{\"x"}})"
                       "\n"
                       R"({"type":"BOOKMARK","object":{"l":[1,{"b":2}]}})"
                       R"(  {"c":"\\"})";
  for (char c : stream) ASSERT_TRUE(s.feed(std::string_view(&c, 1), &out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], R"({"type":"ADDED","object":{"a":"}{\"x"}})");
  EXPECT_EQ(out[1], R"({"type":"BOOKMARK","object":{"l":[1,{"b":2}]}})");
  EXPECT_EQ(out[2], R"({"c":"\\"})");
  EXPECT_EQ(s.pending(), 0u);
  ASSERT_TRUE(s.feed(R"({"partial":)", &out));
  EXPECT_EQ(s.pending(), 11u);
}

TEST(JsonSplitter, RejectsNonObjects) {
  JsonObjectSplitter s;
  std::vector<std::string> out;
  EXPECT_FALSE(s.feed("[1]\n", &out));
  EXPECT_FALSE(s.feed("{}", &out));  // stays failed
  JsonObjectSplitter t;
  EXPECT_FALSE(t.feed("{} x", &out));
}

TEST(Paths, CollectionUrls) {
  ResourceKind mapping{"getambassador.io", "v3alpha1", "mappings", "Mapping", true};
  ResourceKind svc{"", "v1", "services", "Service", true};
  ResourceKind ic{"networking.k8s.io", "v1", "ingressclasses", "IngressClass", false};
  EXPECT_EQ(collection_path(mapping, ""), "/apis/getambassador.io/v3alpha1/mappings");
  EXPECT_EQ(collection_path(mapping, "ns1"),
            "/apis/getambassador.io/v3alpha1/namespaces/ns1/mappings");
  EXPECT_EQ(collection_path(svc, "ns1"), "/api/v1/namespaces/ns1/services");
  EXPECT_EQ(collection_path(ic, "ns1"), "/apis/networking.k8s.io/v1/ingressclasses");
  EXPECT_EQ(mapping.name(), "mappings.getambassador.io");
  EXPECT_EQ(svc.api_version(), "v1");
  EXPECT_EQ(url_encode("a=b,c!=d e/~"), "a%3Db%2Cc%21%3Dd%20e%2F~");
}

TEST(ToResource, CustomResource) {
  ResourceKind mapping{"getambassador.io", "v3alpha1", "mappings", "Mapping", true};
  YAML::Node o = YAML::Load(
      R"({"apiVersion":"getambassador.io/v3alpha1","kind":"Mapping","metadata":{"name":"m",)"
      R"("namespace":"ns1","resourceVersion":"17","labels":{"a":"b"},)"
      R"("annotations":{"n":"v"}},"spec":{"prefix":"/x/","ambassador_id":["one","two"]}})");
  auto r = to_resource(o, mapping);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, "Mapping");
  EXPECT_EQ(r->api_version, "getambassador.io/v3alpha1");
  EXPECT_EQ(r->name, "m");
  EXPECT_EQ(r->namespace_, "ns1");
  EXPECT_EQ(r->labels.at("a"), "b");
  EXPECT_EQ(r->annotations.at("n"), "v");
  EXPECT_EQ(r->spec["prefix"].as<std::string>(), "/x/");
  EXPECT_EQ(r->ambassador_id, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(r->origin.object, "ns1/m");
  EXPECT_EQ(r->origin.resource_version, "17");
  EXPECT_EQ(r->origin.to_string(), "k8s ns1/m@17");
  EXPECT_EQ(r->source_id, "k8s");
  EXPECT_EQ(r->key(), "Mapping/ns1/m");
}

TEST(ToResource, BuiltinListItemAndClusterScoped) {
  ResourceKind svc{"", "v1", "services", "Service", true};
  auto r = to_resource(YAML::Load(R"({"metadata":{"name":"s","namespace":"n"},"spec":{}})"), svc);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, "Service");
  EXPECT_EQ(r->api_version, "v1");
  EXPECT_EQ(r->object["kind"].as<std::string>(), "Service");
  EXPECT_TRUE(r->ambassador_id.empty());
  ResourceKind ic{"networking.k8s.io", "v1", "ingressclasses", "IngressClass", false};
  r = to_resource(YAML::Load(R"({"metadata":{"name":"amb"}})"), ic);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->namespace_, "");
  EXPECT_EQ(r->origin.object, "amb");
  EXPECT_FALSE(to_resource(YAML::Load(R"({"metadata":{}})"), ic));
  EXPECT_FALSE(to_resource(YAML::Load(R"([1])"), ic));
}

}  // namespace
}  // namespace proxenos::k8s
