#pragma once
// Reason phrases for the status codes the proxy produces or commonly forwards.

#include <string_view>

namespace proxenos::http {

// The RFC 9110 reason phrase for `status`, or "Unknown" for a code not in the table (any phrase is
// valid on the wire; clients must not rely on it).
std::string_view reason_phrase(int status);

}  // namespace proxenos::http
