#pragma once
// A compiled route: what it matches and what it does. Produced by config/compiler, matched by
// router::RouteTable, executed by proxy. Immutable once inside a snapshot.

#include <re2/re2.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/value_template.h"

namespace proxenos::router {

enum class PathMatchKind : uint8_t { kPrefix, kExact, kRegex };
const char* to_string(PathMatchKind k);  // "prefix", "exact", "regex"

struct PathMatch {
  PathMatchKind kind = PathMatchKind::kPrefix;
  std::string value;  // prefix, exact path, or regex source
  bool case_sensitive = true;
  std::shared_ptr<const RE2> regex;  // kRegex only: anchored whole-path pattern
};

enum class StringMatchKind : uint8_t {
  kExact,    // value equals
  kPresent,  // header/parameter present (v2 `true`)
  kRegex,    // RE2 full match
  kPrefix,   // used for hostname globs `x.*`
  kSuffix,   // used for hostname globs `*.x.com`
  kAny,      // `*` hostname: always matches
};

const char* to_string(StringMatchKind k);  // "exact", "present", "regex", ...

struct StringMatcher {
  StringMatchKind kind = StringMatchKind::kExact;
  std::string value;
  bool ignore_case = false;  // authority matching is case-insensitive
  std::shared_ptr<const RE2> regex;
};

// A predicate on a request header. `:authority` and `:method` are pseudo-header names that
// refer to the Host/authority and the method, as in Envoy.
struct HeaderMatcher {
  std::string name;  // lower-case
  StringMatcher match;
};

struct QueryMatcher {
  std::string name;  // exact, case-sensitive
  StringMatcher match;
};

struct HeaderToAdd {
  std::string name;
  http::ValueTemplate value;
  bool append = true;  // false: replace existing values
};

struct HeaderEdits {
  std::vector<HeaderToAdd> add;
  std::vector<std::string> remove;  // lower-case names
};

struct RegexRewrite {
  std::shared_ptr<const RE2> pattern;
  std::string substitution;  // RE2 rewrite string (\1 style)
};

struct Redirect {
  std::string host;                   // host_redirect target ("" = keep request host)
  bool https = false;                 // scheme https (service was https://)
  std::optional<std::string> path;    // path_redirect
  std::optional<std::string> prefix;  // prefix_redirect (replaces the matched prefix)
  std::optional<RegexRewrite> regex;  // regex_redirect
  int status = 301;
};

// A route's CORS policy (Mapping `cors`, else Module `cors`), as Envoy's CorsPolicy: origins
// are exact, case-sensitive matches ("*" matches any origin); the other values are the header
// values sent as they are ("" = not sent), with "*" for methods or headers meaning "echo what the
// preflight asks for".
struct CorsPolicy {
  std::vector<std::string> origins;
  std::string allow_methods;
  std::string allow_headers;
  std::string expose_headers;
  std::string max_age;
  bool allow_credentials = false;
};

// Envoy's default stream_idle_timeout (5 min), which Emissary leaves in place: a request with no
// bytes moving either way for this long ends (408 before the response head, a reset after).
// A Mapping's idle_timeout_ms replaces it; 0 turns it off.
inline constexpr uint32_t kDefaultStreamIdleMs = 300000;

// RouteTarget::cluster of a target that sends nothing upstream.
inline constexpr uint32_t kNoCluster = UINT32_MAX;

// One member of a canary group: where the traffic goes and how it is rewritten.
struct RouteTarget {
  uint32_t cumulative_weight = 100;  // pick this target when draw (0..99) < cumulative_weight
  uint32_t cluster = 0;              // index into Snapshot::clusters
  std::string cluster_name;
  std::optional<std::string> prefix_rewrite;  // replaces the matched prefix ("" = none)
  std::optional<RegexRewrite> regex_rewrite;
  std::optional<std::string> host_rewrite;
  bool auto_host_rewrite = false;
  std::optional<Redirect> redirect;  // host_redirect: answer locally instead of proxying
  // Nonzero: answer locally with this status instead of proxying (a Gateway API backendRef
  // that cannot be resolved takes its share of the traffic as 500s). `cluster` is then
  // kNoCluster.
  int direct_status = 0;
  uint32_t timeout_ms = 3000;                       // 0 = none
  uint32_t idle_timeout_ms = kDefaultStreamIdleMs;  // 0 = none
  HeaderEdits request_headers;
  HeaderEdits response_headers;
  bool add_linkerd_headers = false;
  // Upgrade protocols (lower-case, e.g. "websocket") proxied as a tunnel after the upstream's 101.
  std::vector<std::string> allow_upgrade;
  std::string source;  // "Mapping/ns/name" of this member, for logs and `proxenos routes`
};

struct Route {
  // Match.
  PathMatch path;
  std::vector<HeaderMatcher> headers;  // all must match (includes :authority, :method)
  std::vector<QueryMatcher> query;     // all must match
  // Act: one target per canary member, ordered by cumulative weight. When the draw is above the
  // last target's cumulative weight (explicit weights summing below 100) the route does not match
  // and matching continues with the next route, as Envoy's runtime_fraction does.
  std::vector<RouteTarget> targets;
  std::optional<RouteTarget> shadow;       // mirror target (issue 3); weight = sampled share
  std::shared_ptr<const CorsPolicy> cors;  // null: no CORS processing on this route
  std::string stats_name;                  // the Mapping's stats_name ("" = none)
  uint32_t stats_index = 0;                // index into Snapshot::route_stats_names
  std::string source;  // "Mapping/ns/name (file:line)" of the group's first member
  int precedence = 0;
};

}  // namespace proxenos::router
