#include "k8s/leader_election.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace proxenos::k8s {

namespace {

constexpr const char* kJson = "application/json";

int64_t wall_clock_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string string_at(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t int_at(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return 0;
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

// "409 Conflict: the object has been modified..." for a log line.
std::string summary(const ApiResponse& r) {
  if (r.status == 0) return r.error;
  std::string out = std::to_string(r.status);
  nlohmann::json status = nlohmann::json::parse(r.body, nullptr, false);
  std::string reason = string_at(status, "reason");
  std::string message = string_at(status, "message");
  if (!reason.empty()) out += " " + reason;
  if (!message.empty()) out += ": " + message;
  if (!r.error.empty()) out += " (" + r.error + ")";
  return out;
}

}  // namespace

const ResourceKind& lease_kind() {
  static const ResourceKind kind{"coordination.k8s.io", "v1", "leases", "Lease", true};
  return kind;
}

std::string default_identity() {
  std::string base;
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') {
    base = pod;
  } else {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) base = host;
    if (base.empty()) base = "proxenos";
  }
  return base + "_" + std::to_string(getpid());
}

std::string format_micro_time(int64_t unix_us) {
  int64_t secs = unix_us / 1'000'000;
  int64_t micros = unix_us % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    --secs;
  }
  time_t t = static_cast<time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(micros));
  return buf;
}

LeaderElector::LeaderElector(ApiClient& client, LeaderElectorOptions options,
                             LeaderElectorCallbacks callbacks)
    : client_(client),
      loop_(client.loop()),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      rng_(options_.seed ? options_.seed : std::random_device{}()),
      retry_timer_(client.loop(), [this] { attempt(); }),
      deadline_timer_(client.loop(), [this] { on_renew_deadline(); }) {}

LeaderElector::~LeaderElector() {
  running_ = false;
  call_.reset();
  release_call_.reset();
}

std::string LeaderElector::lease_path() const {
  return collection_path(lease_kind(), options_.namespace_) + "/" + url_encode(options_.name);
}

int64_t LeaderElector::lease_duration_s() const {
  return std::max<int64_t>(1, static_cast<int64_t>((options_.lease_duration_ms + 999) / 1000));
}

void LeaderElector::start() {
  if (running_) return;
  running_ = true;
  attempt();
}

void LeaderElector::stop(std::function<void()> done) {
  running_ = false;
  retry_timer_.cancel();
  deadline_timer_.cancel();
  call_.reset();
  renew_round_ = false;
  bool was_leading = leading_;
  if (leading_) {
    leading_ = false;
    spdlog::info("kubernetes: {} stops leading (Lease {}/{} released)", options_.identity,
                 options_.namespace_, options_.name);
    if (callbacks_.on_stopped_leading) callbacks_.on_stopped_leading();
  }
  if (!was_leading || !lease_.is_object()) {
    if (done) done();
    return;
  }
  release_done_ = std::move(done);
  // client-go's release(): no holder and a 1 s duration, so candidates need not wait out ours.
  release_record_ = Record{};
  release_record_.duration_s = 1;
  release_record_.acquire_time = release_record_.renew_time = format_micro_time(wall_clock_us());
  release_record_.transitions = observed_.transitions;
  send_release(false);
}

void LeaderElector::send_release(bool retried) {
  nlohmann::json body = lease_;
  put_record(body, release_record_);
  ApiRequest req;
  req.method = "PUT";
  req.path = lease_path();
  req.body = body.dump();
  req.content_type = kJson;
  req.timeout_ms = options_.renew_deadline_ms;
  release_call_ = client_.request(std::move(req), [this, retried](ApiResponse r) {
    if (r.ok()) {
      nlohmann::json lease = nlohmann::json::parse(r.body, nullptr, false);
      if (lease.is_object()) lease_ = std::move(lease);
      observe(release_record_, loop_.refresh_now(), true);
      release_finished();
      return;
    }
    if (r.status != 409 || retried) {
      spdlog::warn("kubernetes: releasing Lease {}/{} failed: {}", options_.namespace_,
                   options_.name, summary(r));
      release_finished();
      return;
    }
    // A renewal cancelled in flight may still have been applied: re-read, and release only if
    // the lease is still ours.
    ApiRequest get;
    get.path = lease_path();
    get.timeout_ms = options_.renew_deadline_ms;
    release_call_ = client_.request(std::move(get), [this](ApiResponse g) {
      nlohmann::json lease = g.ok() ? nlohmann::json::parse(g.body, nullptr, false) : nullptr;
      if (lease.is_object() && parse_record(lease).holder == options_.identity) {
        lease_ = std::move(lease);
        send_release(true);
        return;
      }
      release_finished();
    });
  });
}

void LeaderElector::release_finished() {
  auto done = std::move(release_done_);
  release_done_ = nullptr;
  if (done) done();
}

void LeaderElector::attempt() {
  if (!running_) return;
  call_.reset();
  ++stats_.attempts;
  uint64_t now = loop_.refresh_now();
  if (leading_ && !renew_round_) {
    // client-go's renew loop: each round has renew_deadline to succeed, retrying every
    // retry_period meanwhile.
    renew_round_ = true;
    deadline_timer_.arm(options_.renew_deadline_ms);
  }
  if (leading_ && lease_valid(now) && lease_.is_object()) {
    // Fast path: assume the lease is as we last wrote it.
    Record record = record_now(options_.identity);
    record.acquire_time = observed_.acquire_time;
    record.transitions = observed_.transitions;
    write(record, false, true);
    return;
  }
  slow_path();
}

void LeaderElector::slow_path() {
  ApiRequest req;
  req.path = lease_path();
  req.timeout_ms = options_.renew_deadline_ms;
  call_ = client_.request(std::move(req), [this](ApiResponse r) { on_get(std::move(r)); });
}

void LeaderElector::on_get(ApiResponse r) {
  if (r.status == 404) {
    Record record = record_now(options_.identity);
    write(record, true, false);
    return;
  }
  nlohmann::json lease = r.ok() ? nlohmann::json::parse(r.body, nullptr, false) : nlohmann::json();
  if (!lease.is_object()) {
    ++stats_.failures;
    spdlog::debug("kubernetes: reading Lease {}/{} failed: {}", options_.namespace_, options_.name,
                  summary(r));
    finish_attempt(false);
    return;
  }
  lease_ = std::move(lease);
  Record seen = parse_record(lease_);
  uint64_t now = loop_.refresh_now();
  observe(seen, now, false);
  if (!seen.holder.empty() && seen.holder != options_.identity && lease_valid(now)) {
    finish_attempt(false);
    return;
  }
  Record record = record_now(options_.identity);
  if (seen.holder == options_.identity) {
    record.acquire_time = seen.acquire_time;
    record.transitions = seen.transitions;
  } else {
    record.transitions = seen.transitions + 1;
  }
  write(record, false, false);
}

void LeaderElector::write(const Record& record, bool create, bool fast) {
  ApiRequest req;
  nlohmann::json body;
  if (create) {
    body = {{"apiVersion", lease_kind().api_version()},
            {"kind", lease_kind().kind},
            {"metadata", {{"name", options_.name}, {"namespace", options_.namespace_}}}};
    req.method = "POST";
    req.path = collection_path(lease_kind(), options_.namespace_);
  } else {
    body = lease_;  // carries the resourceVersion the update is conditional on
    req.method = "PUT";
    req.path = lease_path();
  }
  put_record(body, record);
  req.body = body.dump();
  req.content_type = kJson;
  req.timeout_ms = options_.renew_deadline_ms;
  call_ = client_.request(std::move(req), [this, record, create, fast](ApiResponse r) {
    on_write(std::move(r), record, create, fast);
  });
}

void LeaderElector::on_write(ApiResponse r, Record record, bool create, bool fast) {
  nlohmann::json lease = r.ok() ? nlohmann::json::parse(r.body, nullptr, false) : nlohmann::json();
  if (!lease.is_object()) {
    ++stats_.failures;
    spdlog::debug("kubernetes: {} Lease {}/{} failed: {}", create ? "creating" : "updating",
                  options_.namespace_, options_.name, summary(r));
    if (fast) {
      slow_path();  // client-go falls back to GET + update in the same round
      return;
    }
    finish_attempt(false);
    return;
  }
  lease_ = std::move(lease);
  observe(record, loop_.refresh_now(), true);
  finish_attempt(true);
}

void LeaderElector::finish_attempt(bool success) {
  if (!running_) return;
  if (leading_) {
    if (success) {
      ++stats_.renewals;
      renew_round_ = false;
      deadline_timer_.cancel();
      schedule_attempt(options_.retry_period_ms);
    } else if (observed_any_ && observed_.holder != options_.identity) {
      lose_leadership("the lease is held by another candidate");
    } else {
      schedule_attempt(options_.retry_period_ms);  // the round's deadline keeps running
    }
    return;
  }
  if (success) {
    become_leader();
    return;
  }
  // client-go's JitterUntil(RetryPeriod, 1.2): candidates spread out their attempts.
  std::uniform_real_distribution<double> jitter(0.0, 1.2);
  schedule_attempt(
      options_.retry_period_ms +
      static_cast<uint64_t>(jitter(rng_) * static_cast<double>(options_.retry_period_ms)));
}

void LeaderElector::on_renew_deadline() {
  call_.reset();
  lose_leadership("failed to renew the lease within the renew deadline");
}

void LeaderElector::become_leader() {
  leading_ = true;
  renew_round_ = false;
  ++stats_.acquired;
  spdlog::info("kubernetes: {} is now the leader (Lease {}/{}, transitions {})", options_.identity,
               options_.namespace_, options_.name, observed_.transitions);
  if (callbacks_.on_started_leading) callbacks_.on_started_leading();
  if (running_ && leading_) schedule_attempt(options_.retry_period_ms);
}

void LeaderElector::lose_leadership(const char* why) {
  if (!leading_) return;
  leading_ = false;
  renew_round_ = false;
  deadline_timer_.cancel();
  ++stats_.lost;
  spdlog::warn("kubernetes: {} stops leading: {}", options_.identity, why);
  if (callbacks_.on_stopped_leading) callbacks_.on_stopped_leading();
  if (running_) finish_attempt(false);
}

void LeaderElector::schedule_attempt(uint64_t delay_ms) {
  retry_timer_.arm(delay_ms);
}

bool LeaderElector::lease_valid(uint64_t now_ms) const {
  if (!observed_any_ || observed_.duration_s <= 0) return false;
  return observed_ms_ + static_cast<uint64_t>(observed_.duration_s) * 1000 > now_ms;
}

void LeaderElector::observe(const Record& record, uint64_t now_ms, bool force) {
  // The expiry clock restarts only when the record changes: a holder that stopped renewing
  // leaves the same bytes behind, however recent its renewTime claims to be.
  if (force || !observed_any_ || !(record == observed_)) {
    observed_ = record;
    observed_ms_ = now_ms;
    observed_any_ = true;
  }
  observed_holder_ = record.holder;
  stats_.transitions = static_cast<uint64_t>(std::max<int64_t>(0, record.transitions));
}

LeaderElector::Record LeaderElector::record_now(const std::string& holder) const {
  Record record;
  record.holder = holder;
  record.duration_s = lease_duration_s();
  record.acquire_time = record.renew_time = format_micro_time(wall_clock_us());
  return record;
}

LeaderElector::Record LeaderElector::parse_record(const nlohmann::json& lease) {
  Record record;
  auto spec = lease.find("spec");
  if (spec == lease.end() || !spec->is_object()) return record;
  record.holder = string_at(*spec, "holderIdentity");
  record.duration_s = int_at(*spec, "leaseDurationSeconds");
  record.acquire_time = string_at(*spec, "acquireTime");
  record.renew_time = string_at(*spec, "renewTime");
  record.transitions = int_at(*spec, "leaseTransitions");
  return record;
}

void LeaderElector::put_record(nlohmann::json& lease, const Record& record) {
  nlohmann::json& spec = lease["spec"];
  if (!spec.is_object()) spec = nlohmann::json::object();
  spec["holderIdentity"] = record.holder;
  spec["leaseDurationSeconds"] = record.duration_s;
  spec["acquireTime"] = record.acquire_time;
  spec["renewTime"] = record.renew_time;
  spec["leaseTransitions"] = record.transitions;
}

}  // namespace proxenos::k8s
