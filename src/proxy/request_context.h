#pragma once
// Per-request facts the header rules and substitutions need, computed once per request.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/snapshot.h"
#include "http/message_head.h"
#include "http/value_template.h"
#include "router/route.h"
#include "upstream/cluster_spec.h"

namespace proxenos::proxy {

// route_exchange sets every field by hand for each request: a new field needs a line there.
struct RequestContext {
  const http::RequestHead* request = nullptr;
  const config::ModuleSettings* module = nullptr;
  const config::ListenerSnapshot* listener = nullptr;
  std::string_view peer_address;     // ip:port of the TCP peer
  std::string_view client_address;   // trusted client ip (XFF rules), without port
  std::string_view local_address;    // ip:port we accepted on
  std::string_view forwarded_proto;  // value sent upstream as x-forwarded-proto
  std::string_view request_id;
  std::string_view upstream_address;  // ip:port of the chosen endpoint
  int64_t start_unix_ms = 0;
  std::string_view upgrade;     // the client's Upgrade value when the route allows the upgrade
  bool xfcc_strip = false;      // drop the client's x-forwarded-client-cert
  std::string_view xfcc_value;  // the x-forwarded-client-cert to send ("" = none of ours)
};

// Appends the expansion of `value` (Envoy %COMMAND% substitutions) to `out`.
void expand_template(const http::ValueTemplate& value, const RequestContext& context,
                     std::string& out);

// Appends the x-forwarded-for value the upstream gets: the client's list, then the peer's
// address when the Module's use_remote_address makes us the edge (Envoy's append). False (and
// nothing appended) when none is sent. %REQ(X-FORWARDED-FOR)% shows this value, as in Envoy.
bool append_forwarded_for(const http::HeaderList& request_headers, bool use_remote_address,
                          std::string_view peer_address, std::string& out);

// Hop-by-hop and proxy-owned request headers never copied from the client to the upstream.
bool is_hop_by_hop(std::string_view name);

// What an HTTP/2 upstream request is made of, from the upstream head: each part a view of where
// it came from (the request, the route) or a span of the head's text (what the head builder
// assembled there).
struct UpstreamHeadIndex {
  struct Part {
    const char* data = nullptr;  // a view when set, else `off` into the head's text
    uint32_t off = 0;
    uint32_t len = 0;
    static Part of(std::string_view view) {
      return {view.data(), 0, static_cast<uint32_t>(view.size())};
    }
    static Part at(size_t offset, size_t length = 0) {
      return {nullptr, static_cast<uint32_t>(offset), static_cast<uint32_t>(length)};
    }
    std::string_view in(std::string_view text) const {
      return data != nullptr ? std::string_view(data, len) : text.substr(off, len);
    }
  };
  struct Field {
    Part name, value;
  };
  Part target;                // path and query
  Part host;                  // the Host value (:authority)
  std::vector<Field> fields;  // all fields but Host and HTTP/1.1 connection and framing ones
  // For an HTTP/2 request: how many leading `fields` are in HTTP/2 form already (the client's,
  // checked on arrival, then the forwarding fields made of them); route edits come after.
  size_t in_h2_form = 0;
  void clear() {
    target = host = {};
    fields.clear();
    in_h2_form = 0;
  }
};

// The upstream request head: method, rewritten path, filtered client headers, forwarding headers,
// the route's header edits and our body framing. Sets `original_path` when the path changed.
// With an `index`, also says where the parts went (for an HTTP/2 upstream); without `text`, only
// the index is made (`out` then holds just what was assembled, for the index's spans).
void build_upstream_head(const RequestContext& context, const router::Route& route,
                         const router::RouteTarget& target, const upstream::ClusterSpec& cluster,
                         std::string_view path, std::string& out, std::string& original_path,
                         UpstreamHeadIndex* index = nullptr, bool text = true);

// The path (without query) after the target's prefix or regex rewrite.
void rewrite_path(const router::Route& route, const router::RouteTarget& target,
                  std::string_view path, std::string& out);

}  // namespace proxenos::proxy
