#pragma once
// A list-then-watch cache of one kind, as client-go's Reflector keeps it
// (../shared/spec/kubernetes-api.md §1.7): list (paged) → the full set and its resourceVersion,
// then watch from there with bookmarks and a random timeout; 410 (in-band or HTTP) → re-list and
// diff, objects missing from the new list become deletions; 429 and connection failures → back
// off and re-watch; other failures → back off and re-list; a kind whose list is 404 (CRD not
// installed) or 403 (forbidden) is treated as empty, logged once, and retried with backoff.
// Runs on one event loop (the control thread); callbacks run there too.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/resource.h"
#include "k8s/api_client.h"
#include "k8s/backoff.h"
#include "net/event_loop.h"

namespace proxenos::k8s {

// What to watch: "getambassador.io" "v3alpha1" "mappings" "Mapping"; the core group is "".
struct ResourceKind {
  std::string group;
  std::string version;
  std::string resource;  // plural, lower case
  std::string kind;
  bool namespaced = true;

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  std::string name() const { return resource + (group.empty() ? "" : "." + group); }
};

// The collection URL: "/apis/G/V/namespaces/NS/R", "/api/v1/R", ... `namespace_` "" = all
// namespaces (and ignored for cluster-scoped kinds).
std::string collection_path(const ResourceKind& kind, const std::string& namespace_);

// Percent-encodes a query parameter value (RFC 3986 unreserved bytes stay).
std::string url_encode(std::string_view value);

// One Kubernetes object (JSON or YAML node) as a configuration resource. Built-in list items
// carry no kind/apiVersion: `kind` fills them in. Origin: object "ns/name" and resourceVersion.
// nullopt when the object has no metadata.name.
std::optional<config::Resource> to_resource(const YAML::Node& object, const ResourceKind& kind);

struct ReflectorOptions {
  std::string namespace_;  // "" = all namespaces
  std::string label_selector;
  std::string field_selector;
  uint32_t page_limit = 500;  // list `limit`; 0 = unpaged
  // Watch timeoutSeconds is drawn from [min, max) as client-go does, so many replicas do not
  // re-watch in lockstep.
  uint32_t min_watch_timeout_s = 300;
  uint32_t max_watch_timeout_s = 600;
  BackoffPolicy backoff;
  uint64_t request_timeout_ms = kDefaultRequestTimeoutMs;  // list pages
  // A watch that ends this quickly with no event is an error (client-go's "very short watch").
  uint64_t short_watch_ms = 1000;
  uint64_t seed = 0;  // 0 = random; fixed in tests
  // False: an update that changes only `status` (and resourceVersion, managedFields,
  // generation) is stored without a change notification, so status the gateway writes itself
  // does not recompile the configuration.
  bool status_changes = true;
};

struct ReflectorCallbacks {
  // Once, after the first full list (or the first 404/403, which counts as an empty list).
  std::function<void()> on_synced;
  // After a batch of changes to the set (coalesced: one call per loop iteration at most).
  std::function<void()> on_changed;
};

struct ReflectorStats {
  uint64_t lists = 0;    // list requests (pages count separately)
  uint64_t relists = 0;  // full lists after the first
  uint64_t watches = 0;
  uint64_t events = 0;  // ADDED/MODIFIED/DELETED applied
  uint64_t bookmarks = 0;
  uint64_t expired = 0;  // 410s seen (in-band or HTTP)
  uint64_t failures = 0;
  uint64_t backoffs = 0;
  uint64_t changes = 0;  // on_changed calls
};

class Reflector {
 public:
  enum class State : uint8_t { kIdle, kListing, kWatching, kWaiting };

  Reflector(ApiClient& client, ResourceKind kind, ReflectorOptions options,
            ReflectorCallbacks callbacks);
  ~Reflector();
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  void start();
  void stop();

  bool synced() const { return synced_; }
  // True while the kind is answered by 404/403 (served as empty).
  bool absent() const { return absent_; }
  State state() const { return state_; }
  const std::string& resource_version() const { return resource_version_; }
  const ResourceKind& kind() const { return kind_; }
  const ReflectorStats& stats() const { return stats_; }
  uint32_t last_watch_timeout_s() const { return last_watch_timeout_s_; }
  // Bumped at every change to the set (before the coalesced on_changed call).
  uint64_t version() const { return version_; }

  // Current objects keyed "namespace/name" ("name" for cluster-scoped kinds).
  const std::map<std::string, std::shared_ptr<const config::Resource>>& objects() const {
    return objects_;
  }
  std::vector<config::Resource> resources() const;

 private:
  void list(bool consistent);
  void list_page(bool consistent, const std::string& continue_token);
  void on_list_page(ApiResponse response, bool consistent, bool continued);
  void watch();
  void on_watch_object(std::string_view text);
  void on_watch_end(ApiResponse response);
  // Ends the current watch and relists (at once, or after backoff when `delay`).
  void relist_after_watch(bool delay);
  void retry(bool relist, uint64_t min_delay_ms = 0);
  void replace_all(std::map<std::string, std::shared_ptr<const config::Resource>> fresh);
  void mark_changed();
  void mark_synced();
  std::string key_of(const config::Resource& r) const;
  std::string selectors() const;

  ApiClient& client_;
  net::EventLoop& loop_;
  ResourceKind kind_;
  ReflectorOptions options_;
  ReflectorCallbacks callbacks_;
  Backoff backoff_;
  std::mt19937_64 rng_;
  net::Timer retry_timer_;
  net::Timer changed_timer_;
  ApiCallHandle call_;
  State state_ = State::kIdle;
  bool running_ = false;
  bool synced_ = false;
  bool absent_ = false;
  bool relist_pending_ = false;  // the retry timer lists (else watches)
  std::string resource_version_;
  std::map<std::string, std::shared_ptr<const config::Resource>> objects_;
  // Content fingerprint of each object (without what status_changes=false ignores).
  std::map<std::string, uint64_t> fingerprints_;
  uint64_t content_fingerprint(const config::Resource& r) const;
  // Stores `res` under `key`; true when its content differs from what was stored.
  bool store(const std::string& key, std::shared_ptr<const config::Resource> res);
  std::map<std::string, std::shared_ptr<const config::Resource>> listing_;  // pages so far
  std::string list_rv_;
  uint64_t watch_started_ms_ = 0;
  uint64_t watch_events_ = 0;  // events of the current watch, bookmarks included
  bool watch_ended_ = false;   // an in-band ERROR already decided what comes next
  uint32_t last_watch_timeout_s_ = 0;
  ReflectorStats stats_;
  uint64_t version_ = 0;
};

}  // namespace proxenos::k8s
