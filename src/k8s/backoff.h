#pragma once
// client-go's reflector backoff (wait.NewExponentialBackoffManager(800ms, 30s, 2min, 2.0, 1.0)):
// each failure waits the current step plus up to one step of jitter, the step doubles up to the
// cap, and a failure more than `reset_after_ms` after the previous one starts over.

#include <cstdint>
#include <random>

namespace proxenos::k8s {

struct BackoffPolicy {
  uint64_t initial_ms = 800;
  uint64_t max_ms = 30'000;
  uint64_t reset_after_ms = 120'000;
  double jitter = 1.0;  // extra random wait, as a fraction of the step
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}, uint64_t seed = std::random_device{}())
      : policy_(policy), step_ms_(policy.initial_ms), rng_(seed) {}

  // The wait before the next attempt, for a failure at `now_ms`.
  uint64_t next(uint64_t now_ms);
  void reset() { step_ms_ = policy_.initial_ms; }
  uint64_t step_ms() const { return step_ms_; }

 private:
  BackoffPolicy policy_;
  uint64_t step_ms_;
  uint64_t last_ms_ = 0;
  bool any_ = false;
  std::mt19937_64 rng_;
};

}  // namespace proxenos::k8s
