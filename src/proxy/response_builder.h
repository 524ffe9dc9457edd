#pragma once
// Response heads we send downstream: proxied ones (upstream head, filtered) and local replies.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "http/header.h"
#include "http/message_head.h"
#include "proxy/request_context.h"
#include "router/route.h"

namespace proxenos::proxy {

struct ResponseHeadContext {
  const http::ResponseHead* response = nullptr;
  const router::RouteTarget* target = nullptr;      // response header edits
  const RequestContext* request_context = nullptr;  // for %COMMAND% values in added headers
  std::string_view server_name;
  int64_t upstream_service_ms = -1;
  bool chunked = false;  // we send the body chunked
  bool close = false;    // connection closes after this response
  bool http10 = false;   // the client spoke HTTP/1.0
  bool keep_alive_http10 = false;
  // Fields that replace any field of the same name from the upstream or the route's edits (the
  // CORS fields, which Envoy's cors filter sets after the router's edits).
  std::span<const http::HeaderField> set_fields;
  // A 101 that turns the connection into a tunnel: keeps the upstream's Upgrade header and says
  // `connection: upgrade`.
  std::string_view upgrade;
};

void build_response_head(const ResponseHeadContext& context, std::string& out);

// The same filtering and edits as build_response_head, as header fields for an HTTP/2 response
// (no status line, no framing or connection fields). The views point into `storage` or into
// the response and route: valid until `storage` or those change.
// Returns how many leading fields are the response's own, unchanged (in HTTP/2 form when the
// response came over HTTP/2).
size_t build_response_fields(const ResponseHeadContext& context, std::string& storage,
                             http::HeaderList& out);

// Status line and headers of a response we generate ourselves (errors, redirects).
// `extra` fields go before date and server.
void append_local_reply_head(int status, size_t content_length, std::string_view location,
                             std::string_view server_name, bool close, bool http10,
                             std::string& out, std::span<const http::HeaderField> extra = {});

// "Sat, 28 Nov 2026 20:00:00 GMT", cached per second per thread.
std::string_view http_date();

}  // namespace proxenos::proxy
