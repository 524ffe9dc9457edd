#pragma once
// Writes the `.status` the gateway wants (StatusUpdate, from the translations) back to the
// cluster, the way Emissary's kubestatus does (../shared/spec/kubernetes-api.md §3): GET the
// object, build the new status, and PUT /status with the resourceVersion just read, so a
// concurrent writer makes ours fail (409) instead of being overwritten; then re-read and retry.
//  - Only while enabled (the leader); a newly enabled writer re-checks every object, as a former
//    leader may have left something else behind.
//  - publish() replaces the desired set; only objects whose desired status differs from what
//    was last written (or read back equal) are touched, repeated calls coalesce (latest wins).
//  - Conditions keep their stored lastTransitionTime unless their status flips, and statuses are
//    compared without those times, so an unchanged status is never rewritten.
//  - Gateway API routes: only status.parents entries with our controllerName are replaced; the
//    others stay as read, in order.
//  - 404 drops the update; other failures retry with backoff. A bounded number of requests run
//    at once. Runs on one event loop (the control thread).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "k8s/api_client.h"
#include "k8s/backoff.h"
#include "k8s/status_update.h"
#include "net/event_loop.h"

namespace proxenos::k8s {

struct StatusWriterOptions {
  size_t max_in_flight = 4;
  uint32_t max_conflict_retries = 5;  // consecutive 409s re-read at once (after a short delay)
  uint64_t conflict_delay_ms = 50;    // doubled per consecutive conflict
  BackoffPolicy backoff;              // other failures (and conflicts beyond the bound)
  uint64_t request_timeout_ms = 10'000;
  uint64_t seed = 0;  // jitter; 0 = random
};

struct StatusWriterStats {
  uint64_t reads = 0;              // GETs
  uint64_t writes = 0;             // successful PUTs of /status
  uint64_t conflicts = 0;          // 409s
  uint64_t failures = 0;           // other failed requests (404 excluded)
  uint64_t skipped_unchanged = 0;  // read back equal: nothing to write
  uint64_t not_found = 0;          // object gone: update dropped
  uint64_t peak_in_flight = 0;
};

// The status to store, given the stored one (null when none) and the update: the whole status,
// or for routes the stored one with only our parents entries replaced; conditions whose status
// did not change keep the stored lastTransitionTime.
nlohmann::json merge_status(const nlohmann::json& stored, const StatusUpdate& update);
// Equality with every "lastTransitionTime" member left out.
bool same_status(const nlohmann::json& a, const nlohmann::json& b);

class StatusWriter {
 public:
  explicit StatusWriter(ApiClient& client, StatusWriterOptions options = {});
  ~StatusWriter();
  StatusWriter(const StatusWriter&) = delete;
  StatusWriter& operator=(const StatusWriter&) = delete;

  void publish(std::vector<StatusUpdate> desired);
  // Driven by leadership. Disabling cancels what is in flight (the desired set is kept).
  void set_enabled(bool enabled);
  bool enabled() const { return enabled_; }

  size_t in_flight() const { return in_flight_; }
  // Updates not yet known to be on the server (queued, waiting to retry or in flight); 0 when
  // disabled with nothing running.
  size_t pending() const;
  bool idle() const { return pending() == 0; }
  const StatusWriterStats& stats() const { return stats_; }

 private:
  struct Entry {
    StatusUpdate desired;
    nlohmann::json desired_norm;           // what `synced` is compared with
    std::optional<nlohmann::json> synced;  // desired_norm last confirmed on the server
    uint64_t version = 0;                  // bumped when the desired status changes
    uint64_t attempt_version = 0;          // the version the running attempt writes
    bool dirty = false;                    // must be checked against the server
    bool queued = false;
    bool in_flight = false;
    uint64_t due_ms = 0;  // waiting to retry until then (0 = not waiting)
    uint32_t conflicts = 0;
    uint32_t failures = 0;
    ApiCallHandle call;
  };
  enum class Outcome : uint8_t { kDone, kDropped, kConflict, kRetryLater };

  static std::string object_path(const StatusUpdate& u);
  void enqueue(const std::string& key, Entry& e);
  void pump();
  void start(const std::string& key, Entry& e);
  void on_read(const std::string& key, ApiResponse response);
  void on_written(const std::string& key, ApiResponse response);
  void finish(const std::string& key, Entry& e, Outcome outcome);
  void on_timer();
  void arm_timer();
  uint64_t backoff_ms(uint32_t failures);

  ApiClient& client_;
  net::EventLoop& loop_;
  StatusWriterOptions options_;
  std::mt19937_64 rng_;
  net::Timer timer_;
  bool enabled_ = false;
  std::map<std::string, Entry> entries_;
  std::deque<std::string> queue_;
  size_t in_flight_ = 0;
  StatusWriterStats stats_;
};

}  // namespace proxenos::k8s
