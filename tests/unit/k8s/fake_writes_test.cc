// The write side of tests/e2e/fake_kube_api.py (../shared/spec/kubernetes-api.md §3): the test
// double must reject what the real API server rejects, or the clients' tests prove nothing.
#include <gtest/gtest.h>

#include <memory>

#include <nlohmann/json.hpp>

#include "fake_kube_api.h"
#include "k8s/api_client.h"
#include "k8s/reflector.h"

namespace proxenos::k8s {
namespace {

using nlohmann::json;
using testing::FakeKubeApi;
using testing::LoopThread;

constexpr const char* kMappings = "/apis/getambassador.io/v3alpha1/namespaces/ns1/mappings";
constexpr const char* kLeases = "/apis/coordination.k8s.io/v1/namespaces/ns1/leases";

class FakeWrites : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fake_.ok());
    fake_.control("register", R"({"group":"getambassador.io","version":"v3alpha1",)"
                              R"("resource":"mappings","kind":"Mapping"})");
  }
  json call(const std::string& method, const std::string& path, const json& body = nullptr,
            int* status = nullptr, const std::string& type = "application/json") {
    FakeKubeApi::HttpResult r =
        fake_.request(method, path, body.is_null() ? "" : body.dump(), type);
    if (status != nullptr) *status = r.status;
    return json::parse(r.body);
  }
  json create_mapping(const std::string& name) {
    int status = 0;
    json obj = call("POST", kMappings,
                    {{"apiVersion", "getambassador.io/v3alpha1"},
                     {"kind", "Mapping"},
                     {"metadata", {{"name", name}}},
                     {"spec", {{"prefix", "/"}}},
                     {"status", {{"state", "ignored on create"}}}},
                    &status);
    EXPECT_EQ(status, 201) << obj.dump();
    return obj;
  }

  FakeKubeApi fake_;
};

TEST_F(FakeWrites, CreateGetAndAlreadyExists) {
  json obj = create_mapping("a");
  EXPECT_EQ(obj["metadata"]["namespace"], "ns1");
  EXPECT_EQ(obj["metadata"]["generation"], 1);
  EXPECT_FALSE(obj.contains("status"));  // the status subresource owns it
  int status = 0;
  json again = call("POST", kMappings, {{"metadata", {{"name", "a"}}}}, &status);
  EXPECT_EQ(status, 409);
  EXPECT_EQ(again["reason"], "AlreadyExists");
  EXPECT_EQ(again["message"], "mappings.getambassador.io \"a\" already exists");
  json got = call("GET", std::string(kMappings) + "/a", nullptr, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(got, obj);
  EXPECT_EQ(call("GET", std::string(kMappings) + "/a/status"), obj);
  json missing = call("GET", std::string(kMappings) + "/zz", nullptr, &status);
  EXPECT_EQ(status, 404);
  EXPECT_EQ(missing["reason"], "NotFound");
  EXPECT_EQ(missing["message"], "mappings.getambassador.io \"zz\" not found");
  call("POST", kMappings, {{"metadata", {{"name", "b"}, {"resourceVersion", "5"}}}}, &status);
  EXPECT_EQ(status, 500);
}

TEST_F(FakeWrites, UpdateRulesOfCustomResources) {
  json obj = create_mapping("a");
  std::string path = std::string(kMappings) + "/a";
  int status = 0;
  // No resourceVersion: custom resources refuse.
  json no_rv = obj;
  no_rv["metadata"].erase("resourceVersion");
  json r = call("PUT", path, no_rv, &status);
  EXPECT_EQ(status, 422);
  EXPECT_NE(r["message"].get<std::string>().find("must be specified for an update"),
            std::string::npos);
  // Spec change: generation bumps; .status in an object write is ignored.
  json next = obj;
  next["spec"]["prefix"] = "/v2/";
  next["status"] = {{"state", "ignored"}};
  json v2 = call("PUT", path, next, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(v2["metadata"]["generation"], 2);
  EXPECT_FALSE(v2.contains("status"));
  EXPECT_NE(v2["metadata"]["resourceVersion"], obj["metadata"]["resourceVersion"]);
  // Stale resourceVersion.
  r = call("PUT", path, next, &status);
  EXPECT_EQ(status, 409);
  EXPECT_EQ(r["reason"], "Conflict");
  EXPECT_EQ(r["message"],
            "Operation cannot be fulfilled on mappings.getambassador.io \"a\": the object has been "
            "modified; please apply your changes to the latest version and try again");
  // /status changes only .status, and not the generation.
  json st = v2;
  st["spec"]["prefix"] = "/ignored/";
  st["status"] = {{"state", "Running"}};
  json v3 = call("PUT", path + "/status", st, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(v3["status"]["state"], "Running");
  EXPECT_EQ(v3["spec"]["prefix"], "/v2/");
  EXPECT_EQ(v3["metadata"]["generation"], 2);
  // Name mismatch.
  json other = v3;
  other["metadata"]["name"] = "b";
  call("PUT", path, other, &status);
  EXPECT_EQ(status, 400);
  call("PUT", std::string(kMappings) + "/nope", json{{"metadata", {{"name", "nope"}}}}, &status);
  EXPECT_EQ(status, 404);
}

TEST_F(FakeWrites, IdenticalWritesAreNotPersistedNorWatched) {
  json obj = create_mapping("a");
  std::string path = std::string(kMappings) + "/a";
  LoopThread lt;
  KubeConfig config;
  std::string e;
  ASSERT_TRUE(parse_server_url(fake_.url(), &config, &e));
  auto client = ApiClient::create(lt.loop(), config, &e);
  ResourceKind kind{"getambassador.io", "v3alpha1", "mappings", "Mapping", true};
  std::unique_ptr<Reflector> reflector;
  lt.call([&] {
    reflector =
        std::make_unique<Reflector>(*client, kind, ReflectorOptions{}, ReflectorCallbacks{});
    reflector->start();
  });
  ASSERT_TRUE(lt.wait_for([&] { return reflector->state() == Reflector::State::kWatching; }));
  ASSERT_TRUE(lt.wait_for(
      [&] { return fake_.get("/fake/watchers").find("\"watchers\": 1") != std::string::npos; }));
  int status = 0;
  json same = call("PUT", path, obj, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(same["metadata"]["resourceVersion"], obj["metadata"]["resourceVersion"]);
  json patched =
      call("PATCH", path, {{"spec", {{"prefix", "/"}}}}, &status, "application/merge-patch+json");
  EXPECT_EQ(patched["metadata"]["resourceVersion"], obj["metadata"]["resourceVersion"]);
  // A real change follows; the watch must deliver it as its only event.
  json changed = call("PATCH", path + "/status", {{"status", {{"state", "Running"}}}}, &status,
                      "application/merge-patch+json");
  EXPECT_EQ(status, 200);
  std::string rv = changed["metadata"]["resourceVersion"];
  ASSERT_TRUE(lt.wait_for([&] { return reflector->resource_version() == rv; }));
  uint64_t events = 0;
  lt.call([&] { events = reflector->stats().events; });
  EXPECT_EQ(events, 1u);
  lt.stop();
  reflector.reset();
  client.reset();
  lt.loop().run_deferred();
}

TEST_F(FakeWrites, PatchesAndLeases) {
  json obj = create_mapping("a");
  std::string path = std::string(kMappings) + "/a";
  int status = 0;
  json p = call("PATCH", path, {{"metadata", {{"labels", {{"x", "y"}}}}}}, &status,
                "application/merge-patch+json");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(p["metadata"]["labels"]["x"], "y");
  EXPECT_EQ(p["metadata"]["generation"], 1);  // metadata only
  call("PATCH", path, {{"metadata", {{"resourceVersion", "1"}}}}, &status,
       "application/merge-patch+json");
  EXPECT_EQ(status, 409);
  json ops = json::array({{{"op", "test"}, {"path", "/spec/prefix"}, {"value", "/no"}}});
  call("PATCH", path, ops, &status, "application/json-patch+json");
  EXPECT_EQ(status, 422);
  ops = json::array({{{"op", "replace"}, {"path", "/spec/prefix"}, {"value", "/yes"}}});
  json jp = call("PATCH", path, ops, &status, "application/json-patch+json");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(jp["spec"]["prefix"], "/yes");
  EXPECT_EQ(jp["metadata"]["generation"], 2);
  call("PATCH", path, json::object(), &status, "application/strategic-merge-patch+json");
  EXPECT_EQ(status, 415);  // custom resources have no strategic merge

  // Leases are built in: no registration, RV-less updates allowed, MicroTime checked.
  json lease = {{"metadata", {{"name", "l"}}},
                {"spec",
                 {{"holderIdentity", "a"},
                  {"leaseDurationSeconds", 15},
                  {"renewTime", "2026-01-01T00:00:00.123456Z"}}}};
  json created = call("POST", kLeases, lease, &status);
  EXPECT_EQ(status, 201);
  EXPECT_EQ(created["kind"], "Lease");
  lease["spec"]["holderIdentity"] = "b";
  json updated = call("PUT", std::string(kLeases) + "/l", lease, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(updated["spec"]["holderIdentity"], "b");
  lease["spec"]["renewTime"] = "2026-01-01T00:00:00.123Z";
  call("PUT", std::string(kLeases) + "/l", lease, &status);
  EXPECT_EQ(status, 400);
  lease["spec"]["renewTime"] = "2026-01-01T00:00:00.123456Z";
  lease["spec"]["leaseDurationSeconds"] = 0;
  call("PUT", std::string(kLeases) + "/l", lease, &status);
  EXPECT_EQ(status, 422);
  call("GET", std::string(kLeases) + "/l/status", nullptr, &status);
  EXPECT_EQ(status, 404);  // leases have no status subresource
}

}  // namespace
}  // namespace proxenos::k8s
