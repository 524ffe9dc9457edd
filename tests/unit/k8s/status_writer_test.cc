// The status writer against tests/e2e/fake_kube_api.py (the real wire protocol).
#include "k8s/status_writer.h"

#include <gtest/gtest.h>

#include <memory>

#include <nlohmann/json.hpp>

#include "fake_kube_api_fixture.h"

namespace proxenos::k8s {
namespace {

using nlohmann::json;

const ResourceKind kMappings{"getambassador.io", "v3alpha1", "mappings", "Mapping", true};
const ResourceKind kRoutes{"gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", true};
const ResourceKind kGateways{"gateway.networking.k8s.io", "v1", "gateways", "Gateway", true};
const ResourceKind kIngresses{"networking.k8s.io", "v1", "ingresses", "Ingress", true};
constexpr const char* kUs = "proxenos.dev/gateway";

StatusUpdate update(const ResourceKind& kind, const std::string& ns, const std::string& name,
                    json status, std::string parents_controller = "") {
  StatusUpdate u;
  u.kind = kind;
  u.namespace_ = ns;
  u.name = name;
  u.status = std::move(status);
  u.parents_controller = std::move(parents_controller);
  return u;
}

json condition(const std::string& type, const std::string& status, const std::string& time) {
  return {
      {"type", type},  {"status", status},        {"reason", status == "True" ? type : "Pending"},
      {"message", ""}, {"observedGeneration", 1}, {"lastTransitionTime", time}};
}

class StatusWriterTest : public testing::FakeKubeApiTest {
 protected:
  void TearDown() override {
    lt_.call([&] {
      writer_.reset();
      second_.reset();
    });
    FakeKubeApiTest::TearDown();
  }

  static StatusWriterOptions fast() {
    StatusWriterOptions o;
    o.backoff = {.initial_ms = 20, .max_ms = 100, .reset_after_ms = 120'000, .jitter = 0};
    o.conflict_delay_ms = 5;
    o.seed = 3;
    return o;
  }
  std::unique_ptr<StatusWriter> make(bool enabled = true, StatusWriterOptions o = fast()) {
    std::unique_ptr<StatusWriter> w;
    lt_.call([&] {
      w = std::make_unique<StatusWriter>(*client_, o);
      w->set_enabled(enabled);
    });
    return w;
  }
  void publish(StatusWriter& w, std::vector<StatusUpdate> updates) {
    lt_.call([&] { w.publish(std::move(updates)); });
  }
  bool idle(StatusWriter& w) {
    return lt_.wait_for([&] { return w.idle(); });
  }
  StatusWriterStats stats(StatusWriter& w) {
    StatusWriterStats s;
    lt_.call([&] { s = w.stats(); });
    return s;
  }

  void apply(const ResourceKind& k, json object) {
    json body = {{"group", k.group},
                 {"version", k.version},
                 {"resource", k.resource},
                 {"kind", k.kind},
                 {"object", std::move(object)}};
    ASSERT_FALSE(fake_.control("apply", body.dump()).empty());
  }
  void apply_mapping(const std::string& ns, const std::string& name, json status = nullptr) {
    json obj = {{"metadata", {{"name", name}, {"namespace", ns}}},
                {"spec", {{"prefix", "/" + name + "/"}, {"service", "svc"}}}};
    if (!status.is_null()) obj["status"] = std::move(status);
    apply(kMappings, obj);
  }
  json stored(const ResourceKind& k, const std::string& ns, const std::string& name) {
    std::string body = fake_.object(k.group, k.version, k.resource, ns, name);
    return body.empty() ? json() : json::parse(body);
  }
  std::string rv(const ResourceKind& k, const std::string& ns, const std::string& name) {
    return stored(k, ns, name)["metadata"]["resourceVersion"].get<std::string>();
  }

  std::unique_ptr<StatusWriter> writer_;
  std::unique_ptr<StatusWriter> second_;
};

TEST_F(StatusWriterTest, WritesOnceAndSkipsWhatIsAlreadyThere) {
  apply_mapping("ns1", "a");
  writer_ = make();
  publish(*writer_, {update(kMappings, "ns1", "a", {{"state", "Running"}})});
  ASSERT_TRUE(idle(*writer_));
  json obj = stored(kMappings, "ns1", "a");
  EXPECT_EQ(obj["status"], json({{"state", "Running"}}));
  EXPECT_EQ(obj["spec"]["prefix"], "/a/");
  StatusWriterStats s = stats(*writer_);
  EXPECT_EQ(s.reads, 1u);
  EXPECT_EQ(s.writes, 1u);
  EXPECT_EQ(count_requests("PUT", "/namespaces/ns1/mappings/a/status"), 1);
  std::string written_rv = rv(kMappings, "ns1", "a");

  // The same desired status again: known to be there, no request at all.
  publish(*writer_, {update(kMappings, "ns1", "a", {{"state", "Running"}})});
  ASSERT_TRUE(idle(*writer_));
  EXPECT_EQ(stats(*writer_).reads, 1u);

  // A fresh writer (a new leader) reads it back equal and writes nothing.
  second_ = make();
  publish(*second_, {update(kMappings, "ns1", "a", {{"state", "Running"}})});
  ASSERT_TRUE(idle(*second_));
  s = stats(*second_);
  EXPECT_EQ(s.reads, 1u);
  EXPECT_EQ(s.skipped_unchanged, 1u);
  EXPECT_EQ(s.writes, 0u);
  EXPECT_EQ(rv(kMappings, "ns1", "a"), written_rv);

  // A change is written, replacing the whole status.
  publish(*writer_, {update(kMappings, "ns1", "a", {{"state", "Inactive"}, {"reason", "x"}})});
  ASSERT_TRUE(idle(*writer_));
  EXPECT_EQ(stored(kMappings, "ns1", "a")["status"],
            json({{"state", "Inactive"}, {"reason", "x"}}));
  EXPECT_EQ(stats(*writer_).writes, 2u);
}

TEST_F(StatusWriterTest, WritesOnlyWhileEnabled) {
  apply_mapping("ns1", "a");
  writer_ = make(false);
  publish(*writer_, {update(kMappings, "ns1", "a", {{"state", "Running"}})});
  size_t pending = 1;
  size_t in_flight = 1;
  lt_.call([&] {
    pending = writer_->pending();
    in_flight = writer_->in_flight();
  });
  EXPECT_EQ(pending, 0u);
  EXPECT_EQ(in_flight, 0u);
  lt_.call([&] { writer_->set_enabled(true); });
  ASSERT_TRUE(idle(*writer_));
  EXPECT_EQ(stored(kMappings, "ns1", "a")["status"]["state"], "Running");

  // Disabled again: a new desired status waits for the next leadership; the re-enabled writer
  // re-checks everything it wants.
  lt_.call([&] { writer_->set_enabled(false); });
  publish(*writer_, {update(kMappings, "ns1", "a", {{"state", "Inactive"}})});
  lt_.call([&] { in_flight = writer_->in_flight(); });
  EXPECT_EQ(in_flight, 0u);
  EXPECT_EQ(stored(kMappings, "ns1", "a")["status"]["state"], "Running");
  lt_.call([&] { writer_->set_enabled(true); });
  ASSERT_TRUE(idle(*writer_));
  EXPECT_EQ(stored(kMappings, "ns1", "a")["status"]["state"], "Inactive");
  EXPECT_EQ(stats(*writer_).writes, 2u);
}

TEST_F(StatusWriterTest, InjectedConflictsAreReReadAndRetried) {
  apply_mapping("ns1", "a");
  fake_.control("fault", R"({"match":"/mappings/a/status","method":"PUT","status":409,"count":2})");
  writer_ = make();
  publish(*writer_, {update(kMappings, "ns1", "a", {{"state", "Running"}})});
  ASSERT_TRUE(idle(*writer_));
  StatusWriterStats s = stats(*writer_);
  EXPECT_EQ(s.conflicts, 2u);
  EXPECT_EQ(s.writes, 1u);
  EXPECT_EQ(s.reads, 3u);  // each conflict re-reads
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(stored(kMappings, "ns1", "a")["status"]["state"], "Running");
}

TEST_F(StatusWriterTest, ARealConcurrentWriteConflictsAndIsNotClobbered) {
  apply_mapping("ns1", "a");
  // Hold our PUT at the server while someone else changes the object.
  fake_.control("fault", R"({"match":"/mappings/a/status","method":"PUT","mode":"delay",)"
                         R"("delay_ms":500,"count":1})");
  writer_ = make();
  publish(*writer_, {update(kMappings, "ns1", "a", {{"state", "Running"}})});
  ASSERT_TRUE(lt_.wait_for([&] { return count_requests("PUT", "/mappings/a/status") == 1; }));
  apply(kMappings, {{"metadata", {{"name", "a"}, {"namespace", "ns1"}}},
                    {"spec", {{"prefix", "/moved/"}, {"service", "svc"}}},
                    {"status", {{"state", "Inactive"}, {"by", "someone"}}}});
  ASSERT_TRUE(idle(*writer_));
  StatusWriterStats s = stats(*writer_);
  EXPECT_EQ(s.conflicts, 1u);  // the fake's own 409 for the stale resourceVersion
  EXPECT_EQ(s.writes, 1u);
  json obj = stored(kMappings, "ns1", "a");
  EXPECT_EQ(obj["status"], json({{"state", "Running"}}));
  EXPECT_EQ(obj["spec"]["prefix"], "/moved/");  // a status write never touches the spec
}

TEST_F(StatusWriterTest, RouteParentsOfOtherControllersStayInOrder) {
  json gw_b_ref = {{"group", "gateway.networking.k8s.io"}, {"kind", "Gateway"}, {"name", "gw-b"}};
  apply(kRoutes,
        {{"metadata", {{"name", "r"}, {"namespace", "ns1"}}},
         {"spec", {{"parentRefs", json::array()}}},
         {"status",
          {{"parents",
            {{{"parentRef", {{"name", "other-gw"}}},
              {"controllerName", "example.com/other"},
              {"conditions", {condition("Accepted", "True", "2020-01-01T00:00:00Z")}}},
             {{"parentRef", gw_b_ref},
              {"controllerName", kUs},
              {"conditions", {condition("Accepted", "True", "2021-01-01T00:00:00Z")}}},
             {{"parentRef", {{"name", "stale-gw"}}},
              {"controllerName", kUs},
              {"conditions", {condition("Accepted", "True", "2021-01-01T00:00:00Z")}}},
             {{"parentRef", {{"name", "third"}}},
              {"controllerName", "example.com/third"},
              {"conditions", {condition("Accepted", "False", "2019-01-01T00:00:00Z")}}}}}}}});
  writer_ = make();
  const std::string now = "2026-01-01T00:00:00Z";
  // Ours: gw-c is new, gw-b (sparse ref: group and kind defaulted) gains a condition, stale-gw
  // is gone.
  json desired = {
      {"parents",
       {{{"parentRef", {{"name", "gw-c"}}},
         {"controllerName", kUs},
         {"conditions", {condition("Accepted", "True", now)}}},
        {{"parentRef", {{"name", "gw-b"}}},
         {"controllerName", kUs},
         {"conditions",
          {condition("Accepted", "True", now), condition("ResolvedRefs", "False", now)}}}}}};
  publish(*writer_, {update(kRoutes, "ns1", "r", desired, kUs)});
  ASSERT_TRUE(idle(*writer_));
  EXPECT_EQ(stats(*writer_).writes, 1u);
  json parents = stored(kRoutes, "ns1", "r")["status"]["parents"];
  ASSERT_EQ(parents.size(), 4u) << parents.dump();
  EXPECT_EQ(parents[0]["parentRef"]["name"], "other-gw");
  EXPECT_EQ(parents[0]["conditions"][0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
  EXPECT_EQ(parents[1]["parentRef"]["name"], "gw-b");  // replaced in place
  EXPECT_EQ(parents[1]["conditions"][0]["type"], "Accepted");
  EXPECT_EQ(parents[1]["conditions"][0]["lastTransitionTime"], "2021-01-01T00:00:00Z");
  EXPECT_EQ(parents[1]["conditions"][1]["type"], "ResolvedRefs");
  EXPECT_EQ(parents[1]["conditions"][1]["lastTransitionTime"], now);
  EXPECT_EQ(parents[2]["parentRef"]["name"], "third");
  EXPECT_EQ(parents[2]["controllerName"], "example.com/third");
  EXPECT_EQ(parents[3]["parentRef"]["name"], "gw-c");
  EXPECT_EQ(parents[3]["controllerName"], kUs);

  // Nothing of ours any more: only the others' entries remain, in their order.
  publish(*writer_, {update(kRoutes, "ns1", "r", {{"parents", json::array()}}, kUs)});
  ASSERT_TRUE(idle(*writer_));
  parents = stored(kRoutes, "ns1", "r")["status"]["parents"];
  ASSERT_EQ(parents.size(), 2u) << parents.dump();
  EXPECT_EQ(parents[0]["controllerName"], "example.com/other");
  EXPECT_EQ(parents[1]["controllerName"], "example.com/third");
}

TEST_F(StatusWriterTest, UnchangedConditionsKeepTheirTransitionTime) {
  const std::string t0 = "2020-01-01T00:00:00Z";
  apply(
      kGateways,
      {{"metadata", {{"name", "gw"}, {"namespace", "ns1"}}},
       {"spec", {{"gatewayClassName", "proxenos"}}},
       {"status",
        {{"conditions", {condition("Accepted", "True", t0), condition("Programmed", "False", t0)}},
         {"listeners",
          {{{"name", "http"},
            {"attachedRoutes", 0},
            {"conditions", {condition("Accepted", "True", t0)}}}}}}}});
  auto desired = [](const std::string& t, int routes) {
    return json{
        {"conditions", {condition("Accepted", "True", t), condition("Programmed", "True", t)}},
        {"listeners",
         {{{"name", "http"},
           {"attachedRoutes", routes},
           {"conditions", {condition("Accepted", "True", t)}}}}}};
  };
  writer_ = make();
  const std::string t1 = "2026-01-01T00:00:00Z";
  publish(*writer_, {update(kGateways, "ns1", "gw", desired(t1, 2))});
  ASSERT_TRUE(idle(*writer_));
  json status = stored(kGateways, "ns1", "gw")["status"];
  EXPECT_EQ(status["conditions"][0]["lastTransitionTime"], t0);  // Accepted stayed True
  EXPECT_EQ(status["conditions"][1]["lastTransitionTime"], t1);  // Programmed flipped
  EXPECT_EQ(status["conditions"][1]["status"], "True");
  EXPECT_EQ(status["listeners"][0]["conditions"][0]["lastTransitionTime"], t0);
  EXPECT_EQ(status["listeners"][0]["attachedRoutes"], 2);
  std::string written_rv = rv(kGateways, "ns1", "gw");

  // Only the times differ: nothing to write, even for a writer that never saw it.
  second_ = make();
  publish(*second_, {update(kGateways, "ns1", "gw", desired("2027-01-01T00:00:00Z", 2))});
  ASSERT_TRUE(idle(*second_));
  EXPECT_EQ(stats(*second_).skipped_unchanged, 1u);
  EXPECT_EQ(stats(*second_).writes, 0u);
  EXPECT_EQ(rv(kGateways, "ns1", "gw"), written_rv);
}

TEST_F(StatusWriterTest, MissingObjectIsDroppedThenWrittenOnceItExists) {
  fake_.control("register", R"({"group":"getambassador.io","version":"v3alpha1",)"
                            R"("resource":"mappings","kind":"Mapping"})");
  writer_ = make();
  publish(*writer_, {update(kMappings, "ns1", "late", {{"state", "Running"}})});
  ASSERT_TRUE(idle(*writer_));
  StatusWriterStats s = stats(*writer_);
  EXPECT_EQ(s.not_found, 1u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.reads, 1u);
  apply_mapping("ns1", "late");
  publish(*writer_, {update(kMappings, "ns1", "late", {{"state", "Running"}})});
  ASSERT_TRUE(idle(*writer_));
  EXPECT_EQ(stats(*writer_).writes, 1u);
  EXPECT_EQ(stored(kMappings, "ns1", "late")["status"]["state"], "Running");
}

TEST_F(StatusWriterTest, ServerErrorsAreRetriedWithBackoff) {
  apply_mapping("ns1", "a");
  fake_.control("fault", R"({"match":"/mappings/a","status":500,"count":3})");
  writer_ = make();
  publish(*writer_, {update(kMappings, "ns1", "a", {{"state", "Running"}})});
  ASSERT_TRUE(idle(*writer_));
  StatusWriterStats s = stats(*writer_);
  EXPECT_EQ(s.failures, 3u);
  EXPECT_EQ(s.writes, 1u);
  EXPECT_EQ(stored(kMappings, "ns1", "a")["status"]["state"], "Running");
}

TEST_F(StatusWriterTest, BoundedConcurrencyAndLatestDesiredWins) {
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) {
    names.push_back("m" + std::to_string(i));
    apply_mapping("ns1", names.back());
  }
  // Slow reads so that requests overlap.
  fake_.control(
      "fault", R"({"match":"/mappings/m","method":"GET","mode":"delay","delay_ms":50,"count":-1})");
  auto all = [&](const std::string& state) {
    std::vector<StatusUpdate> v;
    for (const auto& n : names) v.push_back(update(kMappings, "ns1", n, {{"state", state}}));
    return v;
  };
  writer_ = make();
  lt_.call([&] {
    writer_->publish(all("v1"));
    writer_->publish(all("v2"));  // coalesced: v1 is never written
  });
  ASSERT_TRUE(lt_.wait_for([&] { return writer_->in_flight() > 0; }));
  publish(*writer_, all("v3"));  // while the first ones are in flight
  ASSERT_TRUE(idle(*writer_));
  for (const auto& n : names) EXPECT_EQ(stored(kMappings, "ns1", n)["status"]["state"], "v3") << n;
  StatusWriterStats s = stats(*writer_);
  EXPECT_EQ(s.peak_in_flight, 4u);
  EXPECT_GE(s.writes, 12u);
  EXPECT_LE(s.writes, 16u);  // at most the 4 first in flight wrote v2 before v3
  EXPECT_EQ(s.failures, 0u);
}

TEST_F(StatusWriterTest, IngressStatusOfABuiltinKind) {
  fake_.control("apply",
                R"({"group":"networking.k8s.io","version":"v1","resource":"ingresses",)"
                R"("kind":"Ingress","object":{"metadata":{"name":"web","namespace":"ns1"},)"
                R"("spec":{"ingressClassName":"ambassador"}}})");
  writer_ = make();
  json lb = {{"loadBalancer", {{"ingress", {{{"ip", "10.0.0.7"}}}}}}};
  publish(*writer_, {update(kIngresses, "ns1", "web", lb)});
  ASSERT_TRUE(idle(*writer_));
  json obj = stored(kIngresses, "ns1", "web");
  EXPECT_EQ(obj["status"], lb);
  EXPECT_EQ(obj["metadata"]["generation"], 1);  // status writes leave generation alone
  EXPECT_EQ(count_requests("PUT", "/apis/networking.k8s.io/v1/namespaces/ns1/ingresses/web/status"),
            1);
}

TEST(MergeStatus, ParentsWithoutStoredStatusAndEquality) {
  StatusUpdate u = update(kRoutes, "ns1", "r",
                          {{"parents",
                            {{{"parentRef", {{"name", "gw"}}},
                              {"conditions", {condition("Accepted", "True", "t1")}}}}}},
                          kUs);
  json merged = merge_status(nullptr, u);
  ASSERT_EQ(merged["parents"].size(), 1u);
  EXPECT_EQ(merged["parents"][0]["controllerName"], kUs);  // filled in
  EXPECT_TRUE(same_status(json{{"c", {condition("A", "True", "t1")}}},
                          json{{"c", {condition("A", "True", "t2")}}}));
  EXPECT_FALSE(same_status(json{{"c", {condition("A", "True", "t1")}}},
                           json{{"c", {condition("A", "False", "t1")}}}));
  // A parentRef in another namespace is another parent.
  json stored = {{"parents",
                  {{{"parentRef", {{"name", "gw"}, {"namespace", "other"}}},
                    {"controllerName", kUs},
                    {"conditions", {condition("Accepted", "True", "t0")}}}}}};
  merged = merge_status(stored, u);
  ASSERT_EQ(merged["parents"].size(), 1u);
  EXPECT_FALSE(merged["parents"][0]["parentRef"].contains("namespace"));
  EXPECT_EQ(merged["parents"][0]["conditions"][0]["lastTransitionTime"], "t1");
}

}  // namespace
}  // namespace proxenos::k8s
