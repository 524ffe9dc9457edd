// Lease leader election against tests/e2e/fake_kube_api.py (the real wire protocol).
#include "k8s/leader_election.h"

#include <gtest/gtest.h>

#include <re2/re2.h>
#include <chrono>
#include <memory>

#include <nlohmann/json.hpp>

#include "fake_kube_api_fixture.h"

namespace proxenos::k8s {
namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

// One candidate and what its callbacks saw (touched only on the loop thread).
struct Candidate {
  std::unique_ptr<LeaderElector> elector;
  int started = 0;
  int stopped = 0;
  Clock::time_point started_at;
  Clock::time_point stopped_at;
};

class LeaderElection : public testing::FakeKubeApiTest {
 protected:
  void TearDown() override {
    lt_.call([&] {
      a_.elector.reset();
      b_.elector.reset();
    });
    FakeKubeApiTest::TearDown();
  }

  // Short timings: the Lease says 1 s (whole seconds on the wire), renew deadline 600 ms.
  static LeaderElectorOptions fast(const std::string& identity, uint64_t lease_ms = 1000,
                                   uint64_t renew_ms = 600) {
    LeaderElectorOptions o;
    o.namespace_ = "default";
    o.identity = identity;
    o.lease_duration_ms = lease_ms;
    o.renew_deadline_ms = renew_ms;
    o.retry_period_ms = 100;
    o.seed = 11;
    return o;
  }

  void make(Candidate& c, LeaderElectorOptions options) {
    lt_.call([&] {
      LeaderElectorCallbacks cb;
      cb.on_started_leading = [this, &c] {
        ++c.started;
        c.started_at = Clock::now();
        max_leaders_ = std::max(max_leaders_, ++leaders_);
      };
      cb.on_stopped_leading = [this, &c] {
        ++c.stopped;
        c.stopped_at = Clock::now();
        --leaders_;
      };
      c.elector = std::make_unique<LeaderElector>(*client_, std::move(options), std::move(cb));
    });
  }
  void start(Candidate& c) {
    lt_.call([&] { c.elector->start(); });
  }
  bool leads(Candidate& c) {
    bool yes = false;
    lt_.call([&] { yes = c.elector && c.elector->is_leader(); });
    return yes;
  }
  LeaderElectorStats stats(Candidate& c) {
    LeaderElectorStats s;
    lt_.call([&] { s = c.elector->stats(); });
    return s;
  }
  nlohmann::json lease() {
    std::string body =
        fake_.object("coordination.k8s.io", "v1", "leases", "default", "proxenos-status");
    return body.empty() ? nlohmann::json() : nlohmann::json::parse(body);
  }

  Candidate a_;
  Candidate b_;
  int leaders_ = 0;
  int max_leaders_ = 0;
};

TEST(LeaderElectionFormat, MicroTime) {
  EXPECT_EQ(format_micro_time(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_micro_time(1'764'350'000'123'456), "2025-11-28T17:13:20.123456Z");
  EXPECT_EQ(format_micro_time(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(lease_kind().api_version(), "coordination.k8s.io/v1");
  std::string id = default_identity();
  EXPECT_NE(id.find('_'), std::string::npos) << id;
}

TEST_F(LeaderElection, TwoCandidatesExactlyOneLeads) {
  make(a_, fast("elector-a"));
  make(b_, fast("elector-b"));
  lt_.call([&] {
    a_.elector->start();
    b_.elector->start();
  });
  ASSERT_TRUE(lt_.wait_for([&] { return leads(a_) || leads(b_); }));
  Candidate& leader = leads(a_) ? a_ : b_;
  Candidate& other = leads(a_) ? b_ : a_;
  // Several renewals and several failed attempts of the other: still one leader.
  ASSERT_TRUE(
      lt_.wait_for([&] { return stats(leader).renewals >= 5 && stats(other).attempts >= 5; }));
  EXPECT_TRUE(leads(leader));
  EXPECT_FALSE(leads(other));
  EXPECT_EQ(max_leaders_, 1);
  EXPECT_EQ(other.started, 0);
  EXPECT_EQ(stats(other).acquired, 0u);

  nlohmann::json l = lease();
  ASSERT_TRUE(l.is_object());
  const std::string leader_id = leader.elector->options().identity;
  EXPECT_EQ(l["spec"]["holderIdentity"], leader_id);
  EXPECT_EQ(l["spec"]["leaseDurationSeconds"], 1);
  EXPECT_EQ(l["spec"]["leaseTransitions"], 0);
  // RE2, not std::regex: GCC 12 warns inside <regex> under the sanitizer build's -O2.
  const RE2 micro(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)");
  EXPECT_TRUE(RE2::FullMatch(l["spec"]["renewTime"].get<std::string>(), micro)) << l.dump();
  EXPECT_TRUE(RE2::FullMatch(l["spec"]["acquireTime"].get<std::string>(), micro)) << l.dump();
  EXPECT_NE(l["spec"]["renewTime"], l["spec"]["acquireTime"]);  // renewed since acquired
  std::string other_holder;
  lt_.call([&] { other_holder = other.elector->observed_holder(); });
  EXPECT_EQ(other_holder, leader_id);
  // Created once (404 → POST), then only conditional updates.
  EXPECT_GE(count_requests("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases"), 1);
  EXPECT_GE(count_requests("PUT", "/namespaces/default/leases/proxenos-status"), 5);
}

TEST_F(LeaderElection, TakesOverOnlyAfterTheLeaseExpiresWhenTheLeaderVanishes) {
  make(a_, fast("elector-a"));
  start(a_);
  ASSERT_TRUE(lt_.wait_for([&] { return leads(a_); }));
  make(b_, fast("elector-b"));
  start(b_);
  ASSERT_TRUE(lt_.wait_for([&] { return stats(b_).attempts >= 3; }));
  EXPECT_FALSE(leads(b_));
  // The leader disappears without releasing (a crash, a partition).
  Clock::time_point gone = Clock::now();
  lt_.call([&] { a_.elector.reset(); });
  ASSERT_TRUE(lt_.wait_for([&] { return leads(b_); }, 5000));
  // B waits out the 1 s lease from when it last saw the record change (≤ ~150 ms before).
  EXPECT_GE(ms_between(gone, b_.started_at), 700);
  nlohmann::json l = lease();
  EXPECT_EQ(l["spec"]["holderIdentity"], "elector-b");
  EXPECT_EQ(l["spec"]["leaseTransitions"], 1);
  EXPECT_EQ(stats(b_).transitions, 1u);
  EXPECT_EQ(b_.started, 1);
}

TEST_F(LeaderElection, ReleaseHandsOverWithoutWaitingForExpiry) {
  // A 10 s lease: a takeover in well under that can only come from the release.
  make(a_, fast("elector-a", 10'000, 5'000));
  make(b_, fast("elector-b", 10'000, 5'000));
  start(a_);
  ASSERT_TRUE(lt_.wait_for([&] { return leads(a_); }));
  start(b_);
  ASSERT_TRUE(lt_.wait_for([&] { return stats(b_).attempts >= 2; }));
  EXPECT_EQ(lease()["spec"]["leaseDurationSeconds"], 10);
  bool released = false;
  Clock::time_point stop_at = Clock::now();
  lt_.call([&] { a_.elector->stop([&] { released = true; }); });
  EXPECT_EQ(a_.stopped, 1);  // at once, before the release is even answered
  EXPECT_FALSE(leads(a_));
  ASSERT_TRUE(lt_.wait_for([&] { return released; }));
  ASSERT_TRUE(lt_.wait_for([&] { return leads(b_); }, 5000));
  EXPECT_LT(ms_between(stop_at, b_.started_at), 3000);
  nlohmann::json l = lease();
  EXPECT_EQ(l["spec"]["holderIdentity"], "elector-b");
  EXPECT_EQ(l["spec"]["leaseDurationSeconds"], 10);
  EXPECT_EQ(l["spec"]["leaseTransitions"], 1);
  EXPECT_EQ(max_leaders_, 1);
  // Stopping a non-leader has nothing to release.
  bool done = false;
  make(a_, fast("elector-c"));
  lt_.call([&] { a_.elector->stop([&] { done = true; }); });
  EXPECT_TRUE(done);
}

TEST_F(LeaderElection, ReleaseReReadsOnceAfterAConflict) {
  make(a_, fast("elector-a", 10'000, 5'000));
  start(a_);
  ASSERT_TRUE(lt_.wait_for([&] { return leads(a_); }));
  // As if a renewal cancelled by stop() had landed after all: the release's RV is stale.
  fake_.control("fault", R"({"match":"/leases/proxenos-status","method":"PUT",)"
                         R"("body":"\"holderIdentity\":\"\"","status":409,"count":1})");
  bool released = false;
  lt_.call([&] { a_.elector->stop([&] { released = true; }); });
  ASSERT_TRUE(lt_.wait_for([&] { return released; }));
  nlohmann::json l = lease();
  EXPECT_EQ(l["spec"]["holderIdentity"], "");
  EXPECT_EQ(l["spec"]["leaseDurationSeconds"], 1);
  EXPECT_EQ(l["spec"]["leaseTransitions"], 0);
  std::string holder = "x";
  lt_.call([&] { holder = a_.elector->observed_holder(); });
  EXPECT_EQ(holder, "");
}

TEST_F(LeaderElection, StopsLeadingWhenRenewalsFailBeforeAnotherTakesOver) {
  make(a_, fast("elector-a"));
  start(a_);
  ASSERT_TRUE(lt_.wait_for([&] { return leads(a_); }));
  make(b_, fast("elector-b"));
  start(b_);
  ASSERT_TRUE(lt_.wait_for([&] { return stats(b_).attempts >= 2; }));
  // Every write by A now fails; B's writes go through.
  Clock::time_point broken = Clock::now();
  fake_.control("fault",
                R"({"match":"/leases","method":"PUT","body":"\"holderIdentity\":\"elector-a\"",)"
                R"("status":500,"count":-1})");
  ASSERT_TRUE(lt_.wait_for([&] { return !leads(a_); }, 5000));
  ASSERT_TRUE(lt_.wait_for([&] { return leads(b_); }, 5000));
  // A gave up within its renew deadline (600 ms after its last round began), B only after the
  // 1 s lease: never two leaders.
  EXPECT_LE(ms_between(broken, a_.stopped_at), 1500);
  EXPECT_LT(a_.stopped_at, b_.started_at);
  EXPECT_EQ(max_leaders_, 1);
  EXPECT_EQ(stats(a_).lost, 1u);
  EXPECT_GE(stats(a_).failures, 2u);
  // A stays a candidate and sees B hold the lease.
  ASSERT_TRUE(lt_.wait_for([&] {
    bool sees_b = false;
    lt_.call([&] { sees_b = a_.elector->observed_holder() == "elector-b"; });
    return sees_b;
  }));
  EXPECT_FALSE(leads(a_));
  EXPECT_EQ(lease()["spec"]["holderIdentity"], "elector-b");
}

TEST_F(LeaderElection, TakesOverAnExpiredForeignLeaseAndLosesARaceOn409) {
  fake_.control("apply", R"({"group":"coordination.k8s.io","version":"v1","resource":"leases",)"
                         R"("kind":"Lease","object":{"metadata":{"name":"proxenos-status",)"
                         R"("namespace":"default"},"spec":{"holderIdentity":"ghost",)"
                         R"("leaseDurationSeconds":1,"leaseTransitions":4,)"
                         R"("acquireTime":"2020-01-01T00:00:00.000000Z",)"
                         R"("renewTime":"2020-01-01T00:00:00.000000Z"}}})");
  // The first takeover loses to a concurrent writer.
  fake_.control("fault", R"({"match":"/leases/proxenos-status","method":"PUT","status":409,)"
                         R"("message":"Operation cannot be fulfilled","count":1})");
  make(a_, fast("elector-a"));
  Clock::time_point begin = Clock::now();
  start(a_);
  ASSERT_TRUE(lt_.wait_for([&] { return leads(a_); }, 5000));
  // The 2020 renewTime does not matter: the record must stay unchanged for a whole lease
  // duration on our clock first.
  EXPECT_GE(ms_between(begin, a_.started_at), 950);
  LeaderElectorStats s = stats(a_);
  EXPECT_EQ(s.failures, 1u);  // the 409
  EXPECT_EQ(s.transitions, 5u);
  nlohmann::json l = lease();
  EXPECT_EQ(l["spec"]["holderIdentity"], "elector-a");
  EXPECT_EQ(l["spec"]["leaseTransitions"], 5);
  EXPECT_NE(l["spec"]["acquireTime"], "2020-01-01T00:00:00.000000Z");
  EXPECT_EQ(count_requests("POST", "/leases"), 0);
  EXPECT_GE(count_requests("PUT", "/leases/proxenos-status"), 2);
}

}  // namespace
}  // namespace proxenos::k8s
