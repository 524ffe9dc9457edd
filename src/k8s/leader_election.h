#pragma once
// Leader election on a coordination.k8s.io/v1 Lease, as client-go's tools/leaderelection does it
// (../shared/spec/kubernetes-api.md §6), on the control thread's event loop:
//  - a candidate GETs the Lease every retry period (jittered ×[1, 2.2)); 404 → create it with
//    our identity; held by another → take it over (PUT with the RV just read, our identity,
//    leaseTransitions+1) only once the record has not changed for its leaseDurationSeconds,
//    measured on our own monotonic clock from when we last saw it change (immune to skew); a 409
//    means someone else won;
//  - the leader renews every retry period (a PUT of renewTime on the last RV it knows, falling
//    back to GET + PUT); a renewal round that has not succeeded within renew_deadline ends the
//    leadership at once, as does seeing another holder; it then becomes a candidate again;
//  - stop() releases a held lease (holderIdentity "", leaseDurationSeconds 1) so a peer takes
//    over within about a second instead of a whole lease duration.
// Only the leader writes status; a brief double leader is harmless as status writes are
// idempotent.

#include <cstdint>
#include <functional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "k8s/api_client.h"
#include "k8s/reflector.h"
#include "net/event_loop.h"

namespace proxenos::k8s {

// coordination.k8s.io/v1 leases.
const ResourceKind& lease_kind();

// $POD_NAME when set, else the host name; then "_" and the process id, so two processes on one
// host (tests, a restart overlapping its predecessor) never share an identity.
std::string default_identity();

// A wall-clock time as a Kubernetes MicroTime: "2026-11-28T18:31:00.123456Z".
std::string format_micro_time(int64_t unix_us);

struct LeaderElectorOptions {
  std::string namespace_ = "default";
  std::string name = "proxenos-status";
  std::string identity = default_identity();
  // Written to the Lease as whole seconds (rounded up, at least 1): candidates honour the
  // holder's leaseDurationSeconds, not their own setting, as client-go does.
  uint64_t lease_duration_ms = 15'000;
  uint64_t renew_deadline_ms = 10'000;
  uint64_t retry_period_ms = 2'000;
  uint64_t seed = 0;  // jitter; 0 = random
};

struct LeaderElectorCallbacks {
  std::function<void()> on_started_leading;
  std::function<void()> on_stopped_leading;
};

struct LeaderElectorStats {
  uint64_t attempts = 0;     // tryAcquireOrRenew rounds
  uint64_t acquired = 0;     // times we became leader
  uint64_t lost = 0;         // leaderships ended other than by stop()
  uint64_t renewals = 0;     // successful renewals
  uint64_t failures = 0;     // failed requests (409 included)
  uint64_t transitions = 0;  // leaseTransitions last seen
};

class LeaderElector {
 public:
  LeaderElector(ApiClient& client, LeaderElectorOptions options, LeaderElectorCallbacks callbacks);
  // Abandons the lease without releasing it (no callbacks): peers take over after it expires.
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  void start();
  // Stops campaigning. A leader calls on_stopped_leading at once and releases the lease; `done`
  // runs when the release is answered (or at once when there is nothing to release). Keep the
  // elector and the loop alive until then: destroying it cancels the release.
  void stop(std::function<void()> done = {});

  bool is_leader() const { return leading_; }
  bool running() const { return running_; }
  bool releasing() const { return release_call_.active(); }
  // The holder in the last record seen ("" = none or released).
  const std::string& observed_holder() const { return observed_holder_; }
  const LeaderElectorOptions& options() const { return options_; }
  const LeaderElectorStats& stats() const { return stats_; }

 private:
  // The part of the Lease spec that client-go's LeaderElectionRecord holds.
  struct Record {
    std::string holder;
    int64_t duration_s = 0;
    std::string acquire_time;
    std::string renew_time;
    int64_t transitions = 0;
    bool operator==(const Record&) const = default;
  };

  std::string lease_path() const;
  void attempt();
  void fast_renew();
  void slow_path();
  void on_get(ApiResponse response);
  void write(const Record& record, bool create, bool fast);
  void on_write(ApiResponse response, Record record, bool create, bool fast);
  void send_release(bool retried);
  void release_finished();
  void finish_attempt(bool success);
  void on_renew_deadline();
  void become_leader();
  void lose_leadership(const char* why);
  void schedule_attempt(uint64_t delay_ms);
  bool lease_valid(uint64_t now_ms) const;
  void observe(const Record& record, uint64_t now_ms, bool force);
  Record record_now(const std::string& holder) const;
  static Record parse_record(const nlohmann::json& lease);
  static void put_record(nlohmann::json& lease, const Record& record);
  int64_t lease_duration_s() const;

  ApiClient& client_;
  net::EventLoop& loop_;
  LeaderElectorOptions options_;
  LeaderElectorCallbacks callbacks_;
  std::mt19937_64 rng_;
  net::Timer retry_timer_;
  net::Timer deadline_timer_;
  ApiCallHandle call_;
  ApiCallHandle release_call_;
  std::function<void()> release_done_;
  Record release_record_;
  bool running_ = false;
  bool leading_ = false;
  bool renew_round_ = false;  // a renewal round (with its deadline) is under way
  // The last Lease object read or written (its RV is what the next PUT is conditional on).
  nlohmann::json lease_;
  Record observed_;
  bool observed_any_ = false;
  uint64_t observed_ms_ = 0;  // our monotonic clock when observed_ last changed
  std::string observed_holder_;
  LeaderElectorStats stats_;
};

}  // namespace proxenos::k8s
