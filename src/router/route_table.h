#pragma once
// The route table of one listener: virtual hosts selected by authority, then routes in
// Emissary's order. Lookup cost does not grow with the number of routes: prefix paths come from
// radix trees, exact paths from hash maps, regex paths from a trie of their leading literals or
// one RE2::Set pass, and only those candidates are checked against their header/query
// predicates, in route order.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/header.h"
#include "router/route.h"

namespace proxenos::router {

// What the router looks at. Views stay valid for the duration of the match call.
struct RequestView {
  std::string_view method;
  std::string_view path;       // without query
  std::string_view query;      // raw query string, without '?'
  std::string_view authority;  // Host header (may include :port)
  const http::HeaderList* headers = nullptr;
};

// Host requestPolicy.insecure.action: what happens to a request judged insecure (cleartext).
enum class InsecureAction : uint8_t { kRoute, kRedirect, kReject };
const char* to_string(InsecureAction a);  // "Route", "Redirect", "Reject" as Hosts spell them

struct VirtualHostSpec {
  std::string hostname;  // Host glob: "*", "*.example.com", "foo.*", "exact.example.com[:port]"
  std::string source;    // "Host/ns/name"
  // Applied by the proxy after matching: Redirect answers insecure requests with a 301 to https
  // (before auth), Reject makes them 404; `/.well-known/acme-challenge/` is always routed.
  InsecureAction insecure_action = InsecureAction::kRoute;
  // Routes in match order (already sorted by the compiler). Shared so many hosts can hold the
  // same compiled route without copying regexes.
  std::vector<std::shared_ptr<const Route>> routes;
};

class RouteTable {
 public:
  // Builds the indexes. Virtual hosts are looked up like Envoy's domains: exact, then the longest
  // suffix wildcard, then the longest prefix wildcard, then "*".
  static std::shared_ptr<const RouteTable> build(std::vector<VirtualHostSpec> hosts);
  virtual ~RouteTable() = default;

  struct Match {
    const Route* route = nullptr;
    const RouteTarget* target = nullptr;
    const VirtualHostSpec* host = nullptr;
  };
  // `draw` is a uniform number in [0, 100) used for canary weights. No matching route (whether
  // or not a virtual host matched) returns an all-null Match: the caller answers 404.
  // Thread-safe; allocation-free unless a regex set matches or a matched header is repeated.
  virtual Match match(const RequestView& request, uint32_t draw) const = 0;

  virtual const std::vector<VirtualHostSpec>& hosts() const = 0;
};

// Emissary's host glob compatibility (irutils.py hostglob_matches), ASCII case-insensitive:
// true when some hostname could match both `glob` (a Mapping hostname) and `hostname` (a Host's
// hostname, itself possibly a glob). Only a leading or a trailing `*` is a wildcard, it never
// matches the empty string, and `*` alone matches anything. Ports are compared literally.
bool glob_matches_host(std::string_view glob, std::string_view hostname);

// The `:authority` predicate for a Mapping `hostname` glob: `*` -> kAny, `*.x.com` / `*x.com` ->
// kSuffix, `x.*` -> kPrefix, anything else kExact; always ignore_case. When the glob carries no
// port, the router compares it with the request authority stripped of its `:port`.
StringMatcher host_glob_matcher(std::string_view glob);

}  // namespace proxenos::router
