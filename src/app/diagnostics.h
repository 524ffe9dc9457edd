#pragma once
// What the admin port's diagnostics page (`/ambassador/v0/diag/`, `?json=true`) and
// `/config_dump` show, built as JSON on the control thread from the active snapshot, the last
// load's diagnostics, the resolved endpoints and the merged worker stats. The HTML rendering of
// the same model lives in admin/diag_page.h.

#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"
#include "config/snapshot.h"
#include "observe/stats.h"
#include "proxy/worker.h"

namespace proxenos::app {

// A cluster's 5xx share over the recent window (see StatsSampler).
struct RecentErrorRate {
  uint64_t requests = 0;       // upstream_rq_total increase within the window
  uint64_t errors_5xx = 0;     // upstream_rq_5xx increase within the window
  uint64_t window_ms = 0;      // span actually covered (between kWindowMs and kWindowMs + interval)
  std::optional<double> rate;  // errors_5xx / requests; none when there were no requests
};

// Keeps, per cluster stats name, the (time, upstream_rq_total, upstream_rq_5xx) samples of the
// last minute, taken every kIntervalMs by a control-loop timer and on every /metrics scrape and
// diagnostics request. "Recent" is the increase between the newest sample and the newest sample at
// least kWindowMs older (or the oldest one kept, when the process or the cluster is younger), so
// it covers the last 60 to 70 seconds.
class StatsSampler {
 public:
  static constexpr uint64_t kWindowMs = 60 * 1000;
  static constexpr uint64_t kIntervalMs = 10 * 1000;

  // Records a collection (a timer's, a scrape's or the diagnostics page's; monotonic `now_ms`).
  void record(uint64_t now_ms, const observe::MergedStats& merged);

  // Between the oldest and the newest sample kept; none for a cluster never collected.
  std::optional<RecentErrorRate> recent(const std::string& stats_name) const;

 private:
  struct Sample {
    uint64_t at_ms = 0;
    uint64_t total = 0;
    uint64_t errors_5xx = 0;
  };
  std::map<std::string, std::deque<Sample>> samples_;  // by cluster stats name
  std::optional<uint64_t> last_record_ms_;
};

struct DiagInputs {
  const config::Snapshot* snapshot = nullptr;  // null before the first load
  const config::Diagnostics* diagnostics = nullptr;
  const proxy::EndpointMap* endpoints = nullptr;
  const observe::MergedStats* stats = nullptr;
  const StatsSampler* sampler = nullptr;
  uint64_t generation = 0;
  int64_t applied_unix_ms = 0;  // when the active snapshot was compiled (wall clock)
  int64_t now_unix_ms = 0;
};

// The diagnostics page's model: summary, listeners with their hosts and routes in match order,
// resources with their errors and warnings, clusters with endpoints and error rates. The JSON
// shape is described in docs/observability.md.
nlohmann::json build_diag_model(const DiagInputs& inputs);

// The active snapshot as JSON (module settings, listeners, hosts, routes, clusters, generation),
// passed through redact_secrets.
nlohmann::json config_dump(const config::Snapshot& snapshot);

// Replaces, at any depth, the value of every key that names secret material (key, tls.key,
// private_key, password, token, secret, api_key, ...; `data`/`stringData` of a Kubernetes Secret)
// with "[redacted]". Null and empty values stay as they are: they reveal nothing.
nlohmann::json redact_secrets(nlohmann::json value);
// Compared lower-cased with punctuation removed, so `tls.key`, `private-key` and `privateKey` are
// one name: exactly key/tlskey/pass/passwd, or ending in privatekey, apikey, password, token,
// secret, credentials or signingkey.
bool is_secret_key(std::string_view key);

// True when the query string has `name` with a value other than "", "0", "false", "no"
// (`?json=true`, `?json=1`).
bool query_flag(std::string_view query, std::string_view name);

}  // namespace proxenos::app
