#pragma once
// CORS as Envoy's cors filter does it, on header lists only (the connection codecs call it;
// the policy comes compiled on the route). A request with an allowed Origin gets
// access-control-allow-origin (the origin itself, never "*"), -allow-credentials and
// -expose-headers on its response, whatever produced it (upstream or a local failure); a
// preflight from an allowed origin (OPTIONS with Origin and Access-Control-Request-Method) is
// answered here with 200 and the -allow-methods/-headers/-max-age fields too. A preflight from an
// origin not allowed goes upstream untouched (Envoy's forward_not_matching_preflights default),
// and any response to a disallowed origin carries no CORS field.

#include <cstdint>
#include <string_view>

#include "http/header.h"
#include "http/message_head.h"
#include "router/route.h"

namespace proxenos::proxy {

enum class CorsAction : uint8_t {
  kNone,       // not a CORS request, or its origin is not allowed: the response is left alone
  kRespond,    // proxy it; its response gets the fields
  kPreflight,  // answer here: 200, no body, with the fields
};

// Exact, case-sensitive match against the policy's origins; an origin "*" allows any.
bool cors_origin_allowed(const router::CorsPolicy& policy, std::string_view origin);

// What `policy` makes of `request`, with the fields the response gets appended to `fields`
// (views into the policy and the request head: valid while both are).
CorsAction apply_cors(const router::CorsPolicy& policy, const http::RequestHead& request,
                      http::HeaderList& fields);

}  // namespace proxenos::proxy
