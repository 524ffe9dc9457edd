#include "k8s/backoff.h"

#include <algorithm>

namespace proxenos::k8s {

uint64_t Backoff::next(uint64_t now_ms) {
  if (any_ && now_ms - last_ms_ > policy_.reset_after_ms) step_ms_ = policy_.initial_ms;
  any_ = true;
  last_ms_ = now_ms;
  uint64_t wait = step_ms_;
  if (policy_.jitter > 0) {
    std::uniform_real_distribution<double> extra(0.0, policy_.jitter);
    wait += static_cast<uint64_t>(extra(rng_) * static_cast<double>(step_ms_));
  }
  step_ms_ = std::min(step_ms_ * 2, policy_.max_ms);
  return wait;
}

}  // namespace proxenos::k8s
