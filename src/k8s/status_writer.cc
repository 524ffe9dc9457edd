#include "k8s/status_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace proxenos::k8s {

namespace {

constexpr const char* kTransitionTime = "lastTransitionTime";
constexpr const char* kDefaultParentGroup = "gateway.networking.k8s.io";
constexpr const char* kDefaultParentKind = "Gateway";

std::string string_at(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

// A parentRef with the API server's defaults applied (group, kind) and the route's namespace
// for an omitted one, so a translator's sparse ref matches the stored, defaulted one.
std::string parent_ref_key(const nlohmann::json& ref, const std::string& route_namespace) {
  if (!ref.is_object()) return ref.dump();
  std::string group = ref.contains("group") ? string_at(ref, "group") : kDefaultParentGroup;
  std::string kind = string_at(ref, "kind");
  std::string ns = string_at(ref, "namespace");
  std::string port;
  if (auto it = ref.find("port"); it != ref.end() && !it->is_null()) port = it->dump();
  return group + "/" + (kind.empty() ? kDefaultParentKind : kind) + "/" +
         (ns.empty() ? route_namespace : ns) + "/" + string_at(ref, "name") + "/" +
         string_at(ref, "sectionName") + "/" + port;
}

bool is_condition(const nlohmann::json& j) {
  return j.is_object() && j.contains("type") && j.contains("status");
}

// How an array element is recognised across versions of a status: route parents by parentRef
// and controller, conditions by type, listeners (and anything named) by name; "" = by position.
std::string identity_of(const nlohmann::json& j, const std::string& route_namespace) {
  if (!j.is_object()) return "";
  if (auto it = j.find("parentRef"); it != j.end()) {
    return "parent:" + parent_ref_key(*it, route_namespace) + "|" + string_at(j, "controllerName");
  }
  if (is_condition(j)) return "type:" + string_at(j, "type");
  if (j.contains("name")) return "name:" + string_at(j, "name");
  return "";
}

// Copies the stored lastTransitionTime into every condition of `now` whose status equals the
// stored one (metav1.Condition: the time changes only when the status flips).
void carry_transition_times(nlohmann::json& now, const nlohmann::json& before,
                            const std::string& route_namespace) {
  if (now.is_object() && before.is_object()) {
    if (is_condition(now) && is_condition(before)) {
      auto stored = before.find(kTransitionTime);
      if (now["status"] == before["status"] && stored != before.end()) {
        now[kTransitionTime] = *stored;
      }
      return;
    }
    for (auto& [key, value] : now.items()) {
      auto it = before.find(key);
      if (it != before.end()) carry_transition_times(value, *it, route_namespace);
    }
    return;
  }
  if (!now.is_array() || !before.is_array()) return;
  for (size_t i = 0; i < now.size(); ++i) {
    nlohmann::json& element = now[i];
    std::string id = identity_of(element, route_namespace);
    if (id.empty()) {
      if (i < before.size()) carry_transition_times(element, before[i], route_namespace);
      continue;
    }
    for (const nlohmann::json& old : before) {
      if (identity_of(old, route_namespace) == id) {
        carry_transition_times(element, old, route_namespace);
        break;
      }
    }
  }
}

nlohmann::json without_transition_times(const nlohmann::json& j) {
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : j.items()) {
      if (key != kTransitionTime) out[key] = without_transition_times(value);
    }
    return out;
  }
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const nlohmann::json& v : j) out.push_back(without_transition_times(v));
    return out;
  }
  return j;
}

std::string summary(const ApiResponse& r) {
  if (r.status == 0) return r.error;
  std::string out = std::to_string(r.status);
  nlohmann::json status = nlohmann::json::parse(r.body, nullptr, false);
  std::string message = string_at(status, "message");
  if (!message.empty()) out += ": " + message;
  if (!r.error.empty()) out += " (" + r.error + ")";
  return out;
}

}  // namespace

nlohmann::json merge_status(const nlohmann::json& stored, const StatusUpdate& update) {
  nlohmann::json result;
  const std::string& controller = update.parents_controller;
  if (controller.empty()) {
    result = update.status;
  } else {
    result = stored.is_object() ? stored : nlohmann::json::object();
    if (update.status.is_object()) {
      for (const auto& [key, value] : update.status.items()) {
        if (key != "parents") result[key] = value;
      }
    }
    nlohmann::json ours = nlohmann::json::array();
    if (update.status.is_object()) {
      auto it = update.status.find("parents");
      if (it != update.status.end() && it->is_array()) ours = *it;
    }
    for (nlohmann::json& p : ours) {
      if (p.is_object() && !p.contains("controllerName")) p["controllerName"] = controller;
    }
    std::vector<bool> placed(ours.size(), false);
    nlohmann::json parents = nlohmann::json::array();
    auto stored_parents = result.find("parents");
    if (stored_parents != result.end() && stored_parents->is_array()) {
      // Others' entries stay where they are; ours are replaced in place (same parentRef) or
      // dropped, and new ones go at the end, so nothing moves without a reason.
      for (const nlohmann::json& p : *stored_parents) {
        if (string_at(p, "controllerName") != controller) {
          parents.push_back(p);
          continue;
        }
        std::string ref = p.is_object() && p.contains("parentRef")
                              ? parent_ref_key(p["parentRef"], update.namespace_)
                              : "";
        for (size_t i = 0; i < ours.size(); ++i) {
          if (!placed[i] && ours[i].is_object() && ours[i].contains("parentRef") &&
              parent_ref_key(ours[i]["parentRef"], update.namespace_) == ref) {
            parents.push_back(ours[i]);
            placed[i] = true;
            break;
          }
        }
      }
    }
    for (size_t i = 0; i < ours.size(); ++i) {
      if (!placed[i]) parents.push_back(ours[i]);
    }
    result["parents"] = std::move(parents);
  }
  carry_transition_times(result, stored, update.namespace_);
  return result;
}

bool same_status(const nlohmann::json& a, const nlohmann::json& b) {
  return without_transition_times(a) == without_transition_times(b);
}

StatusWriter::StatusWriter(ApiClient& client, StatusWriterOptions options)
    : client_(client),
      loop_(client.loop()),
      options_(std::move(options)),
      rng_(options_.seed ? options_.seed : std::random_device{}()),
      timer_(client.loop(), [this] { on_timer(); }) {
  options_.max_in_flight = std::max<size_t>(1, options_.max_in_flight);
}

StatusWriter::~StatusWriter() = default;

std::string StatusWriter::object_path(const StatusUpdate& u) {
  return collection_path(u.kind, u.namespace_) + "/" + url_encode(u.name);
}

size_t StatusWriter::pending() const {
  size_t n = 0;
  for (const auto& [key, e] : entries_) {
    if (e.in_flight || (enabled_ && e.dirty)) ++n;
  }
  return n;
}

void StatusWriter::publish(std::vector<StatusUpdate> desired) {
  std::map<std::string, StatusUpdate> next;
  for (StatusUpdate& u : desired) {
    std::string key = u.key();
    next.insert_or_assign(std::move(key), std::move(u));
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (next.count(it->first) > 0) {
      ++it;
      continue;
    }
    // No longer wanted: the object left the translation. Its status is left as it is.
    if (it->second.in_flight) --in_flight_;
    it = entries_.erase(it);  // cancels its request; stale queue slots are skipped
  }
  for (auto& [key, u] : next) {
    Entry& e = entries_[key];
    nlohmann::json norm = {{"controller", u.parents_controller},
                           {"status", without_transition_times(u.status)}};
    if (e.version == 0 || norm != e.desired_norm) {
      ++e.version;
      e.desired_norm = std::move(norm);
      if (e.due_ms != 0 && !e.in_flight) {
        // Something new to say: no reason to sit out the backoff of the previous attempt.
        e.due_ms = 0;
        e.failures = 0;
        e.conflicts = 0;
      }
    }
    e.desired = std::move(u);
    if (e.synced && *e.synced == e.desired_norm) continue;
    e.dirty = true;
    enqueue(key, e);
  }
  arm_timer();
  pump();
}

void StatusWriter::set_enabled(bool enabled) {
  if (enabled == enabled_) return;
  enabled_ = enabled;
  if (!enabled) {
    for (auto& [key, e] : entries_) {
      e.call.reset();
      e.in_flight = false;
      e.queued = false;
      e.due_ms = 0;
      e.conflicts = 0;
    }
    in_flight_ = 0;
    queue_.clear();
    timer_.cancel();
    return;
  }
  for (auto& [key, e] : entries_) {
    e.dirty = true;
    e.failures = 0;
    enqueue(key, e);
  }
  pump();
}

void StatusWriter::enqueue(const std::string& key, Entry& e) {
  if (!enabled_ || !e.dirty || e.queued || e.in_flight || e.due_ms != 0) return;
  e.queued = true;
  queue_.push_back(key);
}

void StatusWriter::pump() {
  while (enabled_ && in_flight_ < options_.max_in_flight && !queue_.empty()) {
    std::string key = std::move(queue_.front());
    queue_.pop_front();
    auto it = entries_.find(key);
    if (it == entries_.end() || !it->second.queued) continue;
    it->second.queued = false;
    if (!it->second.dirty || it->second.in_flight) continue;
    start(key, it->second);
  }
}

void StatusWriter::start(const std::string& key, Entry& e) {
  e.in_flight = true;
  e.attempt_version = e.version;
  ++in_flight_;
  stats_.peak_in_flight = std::max<uint64_t>(stats_.peak_in_flight, in_flight_);
  ++stats_.reads;
  ApiRequest req;
  req.path = object_path(e.desired);
  req.timeout_ms = options_.request_timeout_ms;
  e.call =
      client_.request(std::move(req), [this, key](ApiResponse r) { on_read(key, std::move(r)); });
}

void StatusWriter::on_read(const std::string& key, ApiResponse r) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (r.status == 404) {
    ++stats_.not_found;
    spdlog::debug("kubernetes: status of {}: object not found, dropped", key);
    finish(key, e, Outcome::kDropped);
    return;
  }
  nlohmann::json object = r.ok() ? nlohmann::json::parse(r.body, nullptr, false) : nullptr;
  if (!object.is_object()) {
    ++stats_.failures;
    spdlog::debug("kubernetes: status of {}: read failed: {}", key, summary(r));
    finish(key, e, Outcome::kRetryLater);
    return;
  }
  e.attempt_version = e.version;  // the latest desired status is what gets written
  nlohmann::json stored = object.contains("status") ? object["status"] : nlohmann::json();
  nlohmann::json status = merge_status(stored, e.desired);
  if (same_status(status, stored)) {
    ++stats_.skipped_unchanged;
    finish(key, e, Outcome::kDone);
    return;
  }
  // The whole object as read: its resourceVersion makes the write conditional.
  object["status"] = std::move(status);
  ApiRequest req;
  req.method = "PUT";
  req.path = object_path(e.desired) + "/status";
  req.body = object.dump();
  req.content_type = "application/json";
  req.timeout_ms = options_.request_timeout_ms;
  e.call = client_.request(std::move(req),
                           [this, key](ApiResponse w) { on_written(key, std::move(w)); });
}

void StatusWriter::on_written(const std::string& key, ApiResponse r) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (r.ok()) {
    ++stats_.writes;
    finish(key, e, Outcome::kDone);
    return;
  }
  if (r.status == 409) {
    ++stats_.conflicts;
    spdlog::debug("kubernetes: status of {}: {}", key, summary(r));
    finish(key, e, Outcome::kConflict);
    return;
  }
  if (r.status == 404) {
    ++stats_.not_found;
    finish(key, e, Outcome::kDropped);
    return;
  }
  ++stats_.failures;
  spdlog::debug("kubernetes: status of {}: write failed: {}", key, summary(r));
  finish(key, e, Outcome::kRetryLater);
}

void StatusWriter::finish(const std::string& key, Entry& e, Outcome outcome) {
  e.in_flight = false;
  --in_flight_;
  uint64_t now = loop_.refresh_now();
  bool current = e.attempt_version == e.version;
  switch (outcome) {
    case Outcome::kDone:
      e.failures = 0;
      e.conflicts = 0;
      if (current) {
        e.synced = e.desired_norm;
        e.dirty = false;
      }
      break;
    case Outcome::kDropped:
      e.failures = 0;
      e.conflicts = 0;
      e.synced.reset();
      // A later publish re-checks it (the object may come back); a newer desired now.
      e.dirty = !current;
      break;
    case Outcome::kConflict:
      if (e.conflicts < options_.max_conflict_retries) {
        e.due_ms = now + (options_.conflict_delay_ms << std::min<uint32_t>(e.conflicts, 16));
        ++e.conflicts;
        break;
      }
      ++stats_.failures;
      e.conflicts = 0;
      e.due_ms = now + backoff_ms(++e.failures);
      break;
    case Outcome::kRetryLater:
      e.conflicts = 0;
      e.due_ms = now + backoff_ms(++e.failures);
      break;
  }
  enqueue(key, e);
  arm_timer();
  pump();
}

uint64_t StatusWriter::backoff_ms(uint32_t failures) {
  const BackoffPolicy& p = options_.backoff;
  uint64_t step = p.initial_ms;
  for (uint32_t i = 1; i < failures && step < p.max_ms; ++i) step *= 2;
  step = std::min(step, p.max_ms);
  if (p.jitter > 0) {
    std::uniform_real_distribution<double> extra(0.0, p.jitter);
    step += static_cast<uint64_t>(extra(rng_) * static_cast<double>(step));
  }
  return std::max<uint64_t>(step, 1);
}

void StatusWriter::on_timer() {
  uint64_t now = loop_.refresh_now();
  for (auto& [key, e] : entries_) {
    if (e.due_ms != 0 && e.due_ms <= now) {
      e.due_ms = 0;
      enqueue(key, e);
    }
  }
  arm_timer();
  pump();
}

void StatusWriter::arm_timer() {
  if (!enabled_) return;
  uint64_t next = 0;
  for (const auto& [key, e] : entries_) {
    if (e.due_ms != 0 && (next == 0 || e.due_ms < next)) next = e.due_ms;
  }
  if (next == 0) {
    timer_.cancel();
    return;
  }
  uint64_t now = loop_.refresh_now();
  timer_.arm(next > now ? next - now : 0);
}

}  // namespace proxenos::k8s
