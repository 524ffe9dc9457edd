#include "k8s/reflector.h"

#include "config/resource_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace proxenos::k8s {

namespace {

std::string scalar_of(const YAML::Node& map, const char* key) {
  if (!map.IsMap()) return "";
  const YAML::Node v = map[key];
  return v.IsDefined() && v.IsScalar() ? v.Scalar() : "";
}

void read_string_map(const YAML::Node& map, std::map<std::string, std::string>* out) {
  if (!map.IsDefined() || !map.IsMap()) return;
  for (const auto& kv : map) {
    if (kv.first.IsScalar() && kv.second.IsScalar()) {
      (*out)[kv.first.Scalar()] = kv.second.Scalar();
    }
  }
}

// The Status object's reason and message for a log line.
std::string status_summary(const ApiResponse& r) {
  std::string out = std::to_string(r.status);
  try {
    YAML::Node status = YAML::Load(r.body);
    std::string reason = scalar_of(status, "reason");
    std::string message = scalar_of(status, "message");
    if (!reason.empty()) out += " " + reason;
    if (!message.empty()) out += ": " + message;
  } catch (const YAML::Exception&) {
  }
  return out;
}

}  // namespace

std::string collection_path(const ResourceKind& kind, const std::string& namespace_) {
  std::string path =
      kind.group.empty() ? "/api/" + kind.version : "/apis/" + kind.group + "/" + kind.version;
  if (kind.namespaced && !namespace_.empty()) path += "/namespaces/" + url_encode(namespace_);
  return path + "/" + kind.resource;
}

std::string url_encode(std::string_view value) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<config::Resource> to_resource(const YAML::Node& object, const ResourceKind& kind) {
  if (!object.IsDefined() || !object.IsMap()) return std::nullopt;
  const YAML::Node meta = object["metadata"];
  std::string name = scalar_of(meta, "name");
  if (name.empty()) return std::nullopt;
  config::Resource r;
  YAML::Node obj = object;
  r.api_version = scalar_of(object, "apiVersion");
  r.kind = scalar_of(object, "kind");
  // Built-in list items come without these; consumers read them from the object too.
  if (r.api_version.empty()) {
    r.api_version = kind.api_version();
    obj["apiVersion"] = r.api_version;
  }
  if (r.kind.empty()) {
    r.kind = kind.kind;
    obj["kind"] = r.kind;
  }
  r.name = name;
  std::string ns = scalar_of(meta, "namespace");
  r.namespace_ = ns.empty() && !kind.namespaced ? "" : (ns.empty() ? "default" : ns);
  read_string_map(meta["labels"], &r.labels);
  read_string_map(meta["annotations"], &r.annotations);
  const YAML::Node spec = object["spec"];
  if (spec.IsDefined()) {
    r.spec = spec;
    if (spec.IsMap()) {
      const YAML::Node id = spec["ambassador_id"];
      if (id.IsDefined() && id.IsScalar()) {
        r.ambassador_id.push_back(id.Scalar());
      } else if (id.IsDefined() && id.IsSequence()) {
        for (const YAML::Node& item : id) {
          if (item.IsScalar()) r.ambassador_id.push_back(item.Scalar());
        }
      }
    }
  }
  r.object = obj;
  r.origin.object = ns.empty() ? name : ns + "/" + name;
  r.origin.resource_version = scalar_of(meta, "resourceVersion");
  r.source_id = "k8s";
  return r;
}

Reflector::Reflector(ApiClient& client, ResourceKind kind, ReflectorOptions options,
                     ReflectorCallbacks callbacks)
    : client_(client),
      loop_(client.loop()),
      kind_(std::move(kind)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      backoff_(options_.backoff, options_.seed ? options_.seed : std::random_device{}()),
      rng_(options_.seed ? options_.seed + 1 : std::random_device{}()),
      retry_timer_(client.loop(),
                   [this] {
                     if (relist_pending_) {
                       list(false);
                     } else {
                       watch();
                     }
                   }),
      changed_timer_(client.loop(), [this] {
        ++stats_.changes;
        if (callbacks_.on_changed) callbacks_.on_changed();
      }) {}

Reflector::~Reflector() {
  stop();
}

void Reflector::start() {
  if (running_) return;
  running_ = true;
  list(false);
}

void Reflector::stop() {
  running_ = false;
  call_.reset();
  retry_timer_.cancel();
  changed_timer_.cancel();
  state_ = State::kIdle;
}

std::vector<config::Resource> Reflector::resources() const {
  std::vector<config::Resource> out;
  out.reserve(objects_.size());
  for (const auto& [key, r] : objects_) out.push_back(*r);
  return out;
}

std::string Reflector::key_of(const config::Resource& r) const {
  return r.origin.object;
}

std::string Reflector::selectors() const {
  std::string q;
  if (!options_.label_selector.empty())
    q += "&labelSelector=" + url_encode(options_.label_selector);
  if (!options_.field_selector.empty())
    q += "&fieldSelector=" + url_encode(options_.field_selector);
  return q;
}

void Reflector::list(bool consistent) {
  if (!running_) return;
  call_.reset();
  state_ = State::kListing;
  listing_.clear();
  list_rv_.clear();
  if (stats_.lists > 0) ++stats_.relists;
  list_page(consistent, "");
}

void Reflector::list_page(bool consistent, const std::string& continue_token) {
  ++stats_.lists;
  std::string query;
  if (options_.page_limit > 0) query += "&limit=" + std::to_string(options_.page_limit);
  if (!continue_token.empty()) {
    // Pages after the first are pinned by the token; client-go's pager drops the RV.
    query += "&continue=" + url_encode(continue_token);
  } else if (!consistent) {
    // The watch cache may answer "0"; after an expired RV the list must be consistent ("").
    query += "&resourceVersion=" + url_encode(resource_version_.empty() ? "0" : resource_version_);
  }
  query += selectors();
  ApiRequest req;
  req.path = collection_path(kind_, options_.namespace_);
  if (!query.empty()) req.path += "?" + query.substr(1);
  req.timeout_ms = options_.request_timeout_ms;
  call_ = client_.request(std::move(req),
                          [this, consistent, continued = !continue_token.empty()](ApiResponse r) {
                            on_list_page(std::move(r), consistent, continued);
                          });
}

void Reflector::on_list_page(ApiResponse r, bool consistent, bool continued) {
  if (!r.error.empty() || r.status == 0) {
    ++stats_.failures;
    spdlog::warn("kubernetes: list {} failed: {}", kind_.name(), r.error);
    retry(true);
    return;
  }
  if (r.status == 410) {
    ++stats_.expired;
    if (!consistent || continued) {
      // Too old an RV, or an expired continue token: start over with a consistent list.
      list(true);
    } else {
      ++stats_.failures;
      retry(true);
    }
    return;
  }
  if (r.status == 404 || r.status == 403) {
    if (!absent_) {
      spdlog::warn("kubernetes: list {} answered {}; treating the kind as empty and retrying",
                   kind_.name(), status_summary(r));
    }
    absent_ = true;
    replace_all({});
    mark_synced();
    retry(true);
    return;
  }
  if (!r.ok()) {
    ++stats_.failures;
    spdlog::warn("kubernetes: list {} answered {}", kind_.name(), status_summary(r));
    retry(true, r.retry_after_s * 1000);
    return;
  }
  YAML::Node doc;
  try {
    doc = YAML::Load(r.body);
  } catch (const YAML::Exception& e) {
    ++stats_.failures;
    spdlog::warn("kubernetes: list {}: unreadable response: {}", kind_.name(), e.what());
    retry(true);
    return;
  }
  if (!doc.IsMap()) {
    ++stats_.failures;
    retry(true);
    return;
  }
  const YAML::Node meta = doc["metadata"];
  if (list_rv_.empty()) list_rv_ = scalar_of(meta, "resourceVersion");
  const YAML::Node items = doc["items"];
  if (items.IsDefined() && items.IsSequence()) {
    for (const YAML::Node& item : items) {
      std::optional<config::Resource> res = to_resource(item, kind_);
      if (!res) continue;
      std::string key = key_of(*res);
      listing_.insert_or_assign(key, std::make_shared<const config::Resource>(std::move(*res)));
    }
  }
  std::string next = scalar_of(meta, "continue");
  if (!next.empty()) {
    list_page(consistent, next);
    return;
  }
  if (absent_) spdlog::info("kubernetes: {} is served again", kind_.name());
  absent_ = false;
  resource_version_ = list_rv_;
  replace_all(std::move(listing_));
  listing_.clear();
  mark_synced();
  watch();
}

void Reflector::watch() {
  if (!running_) return;
  call_.reset();
  state_ = State::kWatching;
  uint32_t lo = options_.min_watch_timeout_s;
  uint32_t hi = std::max(options_.max_watch_timeout_s, lo + 1);
  last_watch_timeout_s_ = std::uniform_int_distribution<uint32_t>(lo, hi - 1)(rng_);
  ApiRequest req;
  req.path = collection_path(kind_, options_.namespace_) +
             "?watch=1&resourceVersion=" + url_encode(resource_version_) +
             "&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(last_watch_timeout_s_) +
             selectors();
  // The server ends the watch at its timeout; ours is the safety net for a silent connection.
  req.timeout_ms = (uint64_t{last_watch_timeout_s_} + 30) * 1000;
  ++stats_.watches;
  watch_started_ms_ = loop_.refresh_now();
  watch_events_ = 0;
  StreamHandlers h;
  h.on_open = [](const ApiResponse&) {};
  h.on_object = [this](std::string_view text) { on_watch_object(text); };
  h.on_end = [this](ApiResponse r) { on_watch_end(std::move(r)); };
  call_ = client_.stream(std::move(req), std::move(h));
}

void Reflector::on_watch_object(std::string_view text) {
  ++watch_events_;
  YAML::Node event;
  try {
    event = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    ++stats_.failures;
    spdlog::warn("kubernetes: watch {}: unreadable event: {}", kind_.name(), e.what());
    relist_after_watch(true);
    return;
  }
  std::string type = scalar_of(event, "type");
  const YAML::Node object = event.IsMap() ? event["object"] : YAML::Node();
  if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
    std::optional<config::Resource> res = to_resource(object, kind_);
    if (!res) return;
    ++stats_.events;
    std::string key = key_of(*res);
    std::string rv = res->origin.resource_version;
    if (type == "DELETED") {
      fingerprints_.erase(key);
      if (objects_.erase(key) > 0) mark_changed();
    } else {
      auto it = objects_.find(key);
      if (it == objects_.end() || it->second->origin.resource_version != rv) {
        // Replace the pointer, never assign into a Resource: YAML nodes share their data.
        if (store(key, std::make_shared<const config::Resource>(std::move(*res)))) mark_changed();
      }
    }
    if (!rv.empty()) resource_version_ = rv;
    return;
  }
  if (type == "BOOKMARK") {
    ++stats_.bookmarks;
    std::string rv = scalar_of(object["metadata"], "resourceVersion");
    if (!rv.empty()) resource_version_ = rv;
    return;
  }
  if (type == "ERROR") {
    std::string code = scalar_of(object, "code");
    if (code == "410") {
      ++stats_.expired;
      spdlog::info("kubernetes: watch {} expired ({}); re-listing", kind_.name(),
                   scalar_of(object, "message"));
      relist_after_watch(false);
      return;
    }
    ++stats_.failures;
    spdlog::warn("kubernetes: watch {} error {}: {}", kind_.name(), code,
                 scalar_of(object, "message"));
    relist_after_watch(true);
    return;
  }
  ++stats_.failures;
  spdlog::warn("kubernetes: watch {}: unknown event type \"{}\"", kind_.name(), type);
  relist_after_watch(true);
}

void Reflector::relist_after_watch(bool delay) {
  call_.reset();
  if (delay) {
    retry(true);
  } else {
    list(false);
  }
}

void Reflector::on_watch_end(ApiResponse r) {
  if (r.status == 0) {
    // Could not connect (the API server restarting): keep the RV, watch again after backoff.
    ++stats_.failures;
    spdlog::warn("kubernetes: watch {}: {}", kind_.name(), r.error);
    retry(false);
    return;
  }
  if (r.ok() || (r.status >= 200 && r.status < 300)) {
    // Timeout, EOF or an abrupt close mid-stream: all end the watch normally.
    uint64_t lasted = loop_.refresh_now() - watch_started_ms_;
    if (watch_events_ == 0 && lasted < options_.short_watch_ms) {
      ++stats_.failures;
      spdlog::warn("kubernetes: watch {} closed after {} ms with no event; re-listing",
                   kind_.name(), lasted);
      retry(true);
      return;
    }
    watch();
    return;
  }
  if (r.status == 410) {
    ++stats_.expired;
    list(false);
    return;
  }
  ++stats_.failures;
  spdlog::warn("kubernetes: watch {} answered {}", kind_.name(), status_summary(r));
  // 429: the server is busy, the RV is still good; anything else: start over from a list.
  retry(r.status != 429, r.retry_after_s * 1000);
}

void Reflector::retry(bool relist, uint64_t min_delay_ms) {
  call_.reset();
  if (!running_) return;
  state_ = State::kWaiting;
  ++stats_.backoffs;
  relist_pending_ = relist;
  retry_timer_.arm(std::max(backoff_.next(loop_.refresh_now()), min_delay_ms));
}

void Reflector::replace_all(std::map<std::string, std::shared_ptr<const config::Resource>> fresh) {
  bool changed = fresh.size() != objects_.size();
  std::map<std::string, uint64_t> prints;
  for (auto& [key, res] : fresh) {
    auto it = objects_.find(key);
    if (it != objects_.end() &&
        it->second->origin.resource_version == res->origin.resource_version) {
      res = it->second;  // unchanged: keep the object consumers may already hold
      prints[key] = fingerprints_[key];
      continue;
    }
    uint64_t print = content_fingerprint(*res);
    prints[key] = print;
    auto old = fingerprints_.find(key);
    if (it == objects_.end() || old == fingerprints_.end() || old->second != print) changed = true;
  }
  // Objects gone from the list are deletions (client-go's DeletedFinalStateUnknown).
  objects_ = std::move(fresh);
  fingerprints_ = std::move(prints);
  if (changed) mark_changed();
}

bool Reflector::store(const std::string& key, std::shared_ptr<const config::Resource> res) {
  uint64_t print = content_fingerprint(*res);
  objects_.insert_or_assign(key, std::move(res));
  auto [it, inserted] = fingerprints_.try_emplace(key, print);
  if (inserted) return true;
  bool changed = it->second != print;
  it->second = print;
  return changed;
}

uint64_t Reflector::content_fingerprint(const config::Resource& r) const {
  const YAML::Node& object = r.object;
  if (!object.IsMap()) return config::fingerprint(object);
  uint64_t h = 0;
  auto mix = [&h](const std::string& key, const YAML::Node& value) {
    uint64_t k = std::hash<std::string>{}(key);
    h += (k * 0x9e3779b97f4a7c15ull) ^ config::fingerprint(value);
  };
  for (const auto& entry : object) {
    const std::string key = entry.first.Scalar();
    if (key == "metadata") {
      // The parts of metadata that mean something to the gateway.
      for (const char* field :
           {"name", "namespace", "labels", "annotations", "deletionTimestamp"}) {
        const YAML::Node v = entry.second[field];
        if (v.IsDefined()) mix(std::string("metadata.") + field, v);
      }
      if (options_.status_changes) {
        mix("metadata.resourceVersion", entry.second["resourceVersion"]);
      }
    } else if (key != "status" || options_.status_changes) {
      mix(key, entry.second);
    }
  }
  return h;
}

void Reflector::mark_changed() {
  ++version_;
  if (!changed_timer_.armed()) changed_timer_.arm(0);
}

void Reflector::mark_synced() {
  if (synced_) return;
  synced_ = true;
  if (callbacks_.on_synced) callbacks_.on_synced();
}

}  // namespace proxenos::k8s
