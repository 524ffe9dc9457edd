#include "proxy/cors.h"

namespace proxenos::proxy {

bool cors_origin_allowed(const router::CorsPolicy& policy, std::string_view origin) {
  for (const std::string& allowed : policy.origins) {
    if (allowed == "*" || allowed == origin) return true;
  }
  return false;
}

CorsAction apply_cors(const router::CorsPolicy& policy, const http::RequestHead& request,
                      http::HeaderList& fields) {
  std::string_view origin = http::find_header(request.headers, "origin");
  if (origin.empty() || !cors_origin_allowed(policy, origin)) return CorsAction::kNone;
  std::string_view requested_method =
      http::find_header(request.headers, "access-control-request-method");
  bool preflight = request.method == "OPTIONS" && !requested_method.empty();
  fields.push_back({"access-control-allow-origin", origin});
  if (policy.allow_credentials) fields.push_back({"access-control-allow-credentials", "true"});
  if (preflight) {
    // "*" echoes what the browser asks for (Envoy does the same).
    if (policy.allow_methods == "*") {
      fields.push_back({"access-control-allow-methods", requested_method});
    } else if (!policy.allow_methods.empty()) {
      fields.push_back({"access-control-allow-methods", policy.allow_methods});
    }
    if (policy.allow_headers == "*") {
      std::string_view requested =
          http::find_header(request.headers, "access-control-request-headers");
      if (!requested.empty()) fields.push_back({"access-control-allow-headers", requested});
    } else if (!policy.allow_headers.empty()) {
      fields.push_back({"access-control-allow-headers", policy.allow_headers});
    }
    if (!policy.max_age.empty()) fields.push_back({"access-control-max-age", policy.max_age});
  }
  // Envoy's local preflight answer passes the filter's response side too, so it carries
  // expose-headers as well.
  if (!policy.expose_headers.empty()) {
    fields.push_back({"access-control-expose-headers", policy.expose_headers});
  }
  return preflight ? CorsAction::kPreflight : CorsAction::kRespond;
}

}  // namespace proxenos::proxy
