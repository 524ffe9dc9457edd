// The API client and the reflector against tests/e2e/fake_kube_api.py (the real wire protocol).
#include "k8s/reflector.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fake_kube_api.h"
#include "k8s/api_client.h"

namespace proxenos::k8s {
namespace {

using testing::FakeKubeApi;
using testing::LoopThread;

const ResourceKind kMappings{"getambassador.io", "v3alpha1", "mappings", "Mapping", true};

ApiRequest get_request(std::string path) {
  ApiRequest r;
  r.path = std::move(path);
  return r;
}

class Fixture : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fake_.ok()) << "fake API server did not start"; }
  void TearDown() override {
    lt_.stop();
    reflector_.reset();
    client_.reset();
    lt_.loop().run_deferred();
  }

  void make_client(KubeConfig config = {}) {
    if (config.server.empty()) {
      std::string e;
      ASSERT_TRUE(parse_server_url(fake_.url(), &config, &e)) << e;
    }
    std::string error;
    client_ = ApiClient::create(lt_.loop(), config, &error);
    ASSERT_TRUE(client_) << error;
  }

  void start(ReflectorOptions options = fast_options(), ResourceKind kind = kMappings) {
    if (!client_) make_client();
    reflector_ = std::make_unique<Reflector>(
        *client_, kind, options,
        ReflectorCallbacks{[this] { ++synced_calls_; }, [this] { ++changed_calls_; }});
    lt_.call([&] { reflector_->start(); });
  }

  static ReflectorOptions fast_options() {
    ReflectorOptions o;
    o.backoff = {.initial_ms = 20, .max_ms = 100, .reset_after_ms = 120'000, .jitter = 0};
    o.seed = 7;
    return o;
  }

  size_t count() {
    size_t n = 0;
    lt_.call([&] { n = reflector_->objects().size(); });
    return n;
  }
  bool has(const std::string& key) {
    bool found = false;
    lt_.call([&] { found = reflector_->objects().count(key) > 0; });
    return found;
  }
  ReflectorStats stats() {
    ReflectorStats s;
    lt_.call([&] { s = reflector_->stats(); });
    return s;
  }
  bool watching() {
    return reflector_->state() == Reflector::State::kWatching &&
           fake_.get("/fake/watchers").find("\"watchers\": 1") != std::string::npos;
  }
  std::string requests() { return fake_.get("/fake/requests"); }

  FakeKubeApi fake_;
  LoopThread lt_;
  std::unique_ptr<ApiClient> client_;
  std::unique_ptr<Reflector> reflector_;
  int synced_calls_ = 0;
  int changed_calls_ = 0;
};

TEST_F(Fixture, ClientGetsWholeResponsesAndStatuses) {
  make_client();
  fake_.apply_mapping("ns1", "a", "/a/");
  ApiResponse got;
  bool done = false;
  ApiCallHandle h;
  lt_.call([&] {
    h = client_->request(get_request("/apis/getambassador.io/v3alpha1/mappings"),
                         [&](ApiResponse r) {
                           got = std::move(r);
                           done = true;
                         });
  });
  ASSERT_TRUE(lt_.wait_for([&] { return done; }));
  EXPECT_TRUE(got.ok()) << got.error;
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.content_type, "application/json");
  EXPECT_NE(got.body.find("\"MappingList\""), std::string::npos);

  done = false;
  lt_.call([&] {
    h = client_->request(get_request("/apis/nope/v1/things"), [&](ApiResponse r) {
      got = std::move(r);
      done = true;
    });
  });
  ASSERT_TRUE(lt_.wait_for([&] { return done; }));
  EXPECT_EQ(got.status, 404);
  EXPECT_FALSE(got.ok());
  EXPECT_NE(got.body.find("NotFound"), std::string::npos);
  lt_.call([&] { h.reset(); });
}

TEST_F(Fixture, ClientReportsConnectionFailure) {
  KubeConfig c;
  std::string e;
  ASSERT_TRUE(parse_server_url("http://127.0.0.1:1", &c, &e));
  make_client(c);
  ApiResponse got;
  bool done = false;
  ApiCallHandle h;
  lt_.call([&] {
    h = client_->request(get_request("/api/v1/services"), [&](ApiResponse r) {
      got = std::move(r);
      done = true;
    });
  });
  ASSERT_TRUE(lt_.wait_for([&] { return done; }));
  EXPECT_EQ(got.status, 0);
  EXPECT_NE(got.error.find("cannot connect"), std::string::npos) << got.error;
  lt_.call([&] { h.reset(); });
}

TEST_F(Fixture, ListsInPagesThenFollowsTheWatch) {
  for (int i = 0; i < 5; ++i) fake_.apply_mapping("ns1", "m" + std::to_string(i), "/p/");
  ReflectorOptions o = fast_options();
  o.page_limit = 2;
  start(o);
  ASSERT_TRUE(lt_.wait_for([&] { return reflector_->synced() && watching(); }));
  EXPECT_EQ(synced_calls_, 1);
  EXPECT_EQ(count(), 5u);
  EXPECT_EQ(stats().lists, 3u);  // 2 + 2 + 1
  std::string log = requests();
  EXPECT_NE(log.find("mappings?limit=2&resourceVersion=0"), std::string::npos) << log;
  EXPECT_NE(log.find("limit=2&continue="), std::string::npos) << log;
  EXPECT_NE(log.find("watch=1&resourceVersion=1005&allowWatchBookmarks=true&timeoutSeconds="),
            std::string::npos)
      << log;
  uint32_t timeout = reflector_->last_watch_timeout_s();
  EXPECT_GE(timeout, 300u);
  EXPECT_LT(timeout, 600u);
  ASSERT_TRUE(lt_.wait_for([&] { return changed_calls_ == 1; }));

  fake_.apply_mapping("ns1", "m5", "/new/");      // ADDED
  fake_.apply_mapping("ns1", "m0", "/changed/");  // MODIFIED
  fake_.delete_mapping("ns1", "m1");              // DELETED
  ASSERT_TRUE(lt_.wait_for([&] { return !has("ns1/m1") && has("ns1/m5"); }));
  std::string prefix;
  std::string origin;
  lt_.call([&] {
    const auto& r = *reflector_->objects().at("ns1/m0");
    prefix = r.spec["prefix"].as<std::string>();
    origin = r.origin.to_string();
  });
  EXPECT_EQ(prefix, "/changed/");
  EXPECT_EQ(origin, "k8s ns1/m0@1007");
  EXPECT_EQ(reflector_->resource_version(), "1008");
  EXPECT_EQ(count(), 5u);
  EXPECT_EQ(stats().events, 3u);
  EXPECT_EQ(stats().relists, 0u);
  // Changes reach the callback through a coalescing timer, after the objects are stored.
  EXPECT_TRUE(lt_.wait_for([&] { return changed_calls_ >= 2; }));
  std::vector<config::Resource> all;
  lt_.call([&] { all = reflector_->resources(); });
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].key(), "Mapping/ns1/m0");
}

TEST_F(Fixture, BookmarksAdvanceTheResourceVersion) {
  fake_.apply_mapping("ns1", "a", "/a/");
  start();
  ASSERT_TRUE(lt_.wait_for([&] { return watching(); }));
  // A change in another collection moves the global RV; the bookmark carries it here.
  fake_.control("apply", R"({"version":"v1","resource":"services","kind":"Service",)"
                         R"("object":{"metadata":{"name":"s"}}})");
  fake_.control("bookmark");
  ASSERT_TRUE(lt_.wait_for([&] { return stats().bookmarks == 1; }));
  EXPECT_EQ(reflector_->resource_version(), "1002");
  EXPECT_EQ(count(), 1u);
}

TEST_F(Fixture, InBandExpiryRelistsAndDiffs) {
  fake_.apply_mapping("ns1", "a", "/a/");
  fake_.apply_mapping("ns1", "b", "/b/");
  ReflectorOptions o = fast_options();
  o.short_watch_ms = 0;  // a cut watch is re-watched, not re-listed
  start(o);
  ASSERT_TRUE(lt_.wait_for([&] { return watching(); }));
  int changes_before = changed_calls_;
  // Keep the reflector away while objects change and history is compacted.
  fake_.control("fault", R"({"match":"mappings","status":429,"count":-1,"retry_after":0})");
  fake_.control("close_watches");
  ASSERT_TRUE(lt_.wait_for([&] { return stats().failures >= 2; }));
  fake_.delete_mapping("ns1", "b");
  fake_.apply_mapping("ns1", "c", "/c/");
  fake_.control("compact");
  fake_.control("clear_faults");
  ASSERT_TRUE(lt_.wait_for([&] { return has("ns1/c") && !has("ns1/b") && watching(); }));
  ReflectorStats s = stats();
  EXPECT_EQ(s.expired, 1u);
  EXPECT_EQ(s.relists, 1u);  // 429 on a watch re-watches; only the 410 re-listed
  EXPECT_TRUE(has("ns1/a"));
  EXPECT_TRUE(lt_.wait_for([&] { return changed_calls_ > changes_before; }));
  EXPECT_EQ(reflector_->resource_version(), "1004");
}

TEST_F(Fixture, HttpGoneOnContinueRestartsWithAConsistentList) {
  for (int i = 0; i < 4; ++i) fake_.apply_mapping("ns1", "m" + std::to_string(i), "/p/");
  fake_.control("fault", R"({"match":"continue=","status":410,"count":1})");
  ReflectorOptions o = fast_options();
  o.page_limit = 3;
  start(o);
  ASSERT_TRUE(lt_.wait_for([&] { return watching(); }));
  EXPECT_EQ(count(), 4u);
  EXPECT_EQ(stats().expired, 1u);
  std::string log = requests();
  // After the 410 the first page is asked without a resourceVersion (a consistent read).
  EXPECT_NE(log.find("\"/apis/getambassador.io/v3alpha1/mappings?limit=3\""), std::string::npos)
      << log;
}

TEST_F(Fixture, MissingKindIsEmptyAndRetried) {
  start();
  ASSERT_TRUE(lt_.wait_for([&] { return reflector_->synced(); }));
  EXPECT_TRUE(reflector_->absent());
  EXPECT_EQ(count(), 0u);
  ASSERT_TRUE(lt_.wait_for([&] { return stats().lists >= 3; }));  // retried with backoff
  fake_.apply_mapping("ns1", "late", "/late/");                   // the CRD appears
  ASSERT_TRUE(lt_.wait_for([&] { return has("ns1/late") && watching(); }));
  EXPECT_FALSE(reflector_->absent());
  EXPECT_EQ(synced_calls_, 1);
}

TEST_F(Fixture, ForbiddenKindIsEmptyAndDropsWhatItHad) {
  fake_.apply_mapping("ns1", "a", "/a/");
  fake_.control("fault", R"({"match":"mappings","status":403,"count":-1})");
  start();
  ASSERT_TRUE(lt_.wait_for([&] { return reflector_->synced(); }));
  EXPECT_TRUE(reflector_->absent());
  EXPECT_EQ(count(), 0u);
  fake_.control("clear_faults");
  ASSERT_TRUE(lt_.wait_for([&] { return has("ns1/a"); }));
  EXPECT_FALSE(reflector_->absent());
}

TEST_F(Fixture, ServerErrorsBackOffAndRecover) {
  fake_.apply_mapping("ns1", "a", "/a/");
  fake_.control("fault", R"({"match":"mappings","status":500,"count":3})");
  start();
  ASSERT_TRUE(lt_.wait_for([&] { return watching(); }));
  EXPECT_TRUE(reflector_->synced());
  ReflectorStats s = stats();
  EXPECT_EQ(s.failures, 3u);
  EXPECT_EQ(s.backoffs, 3u);
  EXPECT_EQ(count(), 1u);
}

TEST_F(Fixture, WatchTimeoutReWatchesWithoutRelisting) {
  fake_.apply_mapping("ns1", "a", "/a/");
  ReflectorOptions o = fast_options();
  o.min_watch_timeout_s = 1;
  o.max_watch_timeout_s = 2;
  start(o);
  ASSERT_TRUE(lt_.wait_for([&] { return stats().watches >= 3; }, 15'000));
  ReflectorStats s = stats();
  EXPECT_EQ(s.relists, 0u);
  EXPECT_GE(s.bookmarks, 2u);  // the fake sends one before each timeout close
  EXPECT_EQ(s.failures, 0u);
  EXPECT_NE(requests().find("timeoutSeconds=1"), std::string::npos);
}

TEST_F(Fixture, TokenRotationAfter401) {
  char tmpl[] = "/tmp/k8s-token-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string file = tmpl;
  std::ofstream(file) << "t1\n";
  fake_.control("token", R"({"token":"t1"})");
  KubeConfig c;
  std::string e;
  ASSERT_TRUE(parse_server_url(fake_.url(), &c, &e));
  c.token_file = file;
  make_client(c);
  fake_.apply_mapping("ns1", "a", "/a/");
  ReflectorOptions o = fast_options();
  o.short_watch_ms = 0;
  start(o);
  ASSERT_TRUE(lt_.wait_for([&] { return watching(); }));
  // The server now wants t2, and the kubelet is about to write it.
  fake_.control("token", R"({"token":"t2"})");
  {
    std::string tmp = file + ".new";
    std::ofstream(tmp) << "t2\n";
    std::filesystem::rename(tmp, file);
  }
  fake_.control("close_watches");
  // The cut watch is re-opened with t1, refused, and retried with the token now on disk. (A
  // change applied before the cut lands could still reach the old watch.)
  ASSERT_TRUE(lt_.wait_for([&] { return requests().find("Bearer t2") != std::string::npos; }));
  EXPECT_NE(requests().find("Bearer t1"), std::string::npos);
  ASSERT_TRUE(lt_.wait_for([&] { return watching(); }));
  fake_.apply_mapping("ns1", "b", "/b/");
  ASSERT_TRUE(lt_.wait_for([&] { return has("ns1/b"); }));
  std::filesystem::remove(file);
}

TEST_F(Fixture, BuiltinKindItemsGetKindAndCoalescedChanges) {
  ResourceKind services{"", "v1", "services", "Service", true};
  fake_.control("register", R"({"version":"v1","resource":"services","kind":"Service"})");
  start(fast_options(), services);
  ASSERT_TRUE(lt_.wait_for([&] { return watching(); }));
  ASSERT_TRUE(lt_.wait_for([&] { return changed_calls_ == 0 || changed_calls_ == 1; }));
  int before = changed_calls_;
  for (int i = 0; i < 30; ++i) {
    fake_.control("apply", R"({"version":"v1","resource":"services","object":{"metadata":)"
                           R"({"name":"s)" +
                               std::to_string(i) + R"(","namespace":"n"}}})");
  }
  ASSERT_TRUE(lt_.wait_for([&] { return count() == 30; }));
  std::string kind;
  lt_.call([&] { kind = reflector_->objects().at("n/s0")->kind; });
  EXPECT_EQ(kind, "Service");
  ASSERT_TRUE(lt_.wait_for([&] { return changed_calls_ - before >= 1; }));
  int changes = 0;
  lt_.call([&] { changes = changed_calls_ - before; });
  EXPECT_LE(changes, 30);
}

}  // namespace
}  // namespace proxenos::k8s
