#pragma once
// Wall-clock formatting shared by access logs and header substitutions.

#include <cstddef>
#include <cstdint>
#include <string>

namespace proxenos::base {

// Appends "2026-11-28T20:54:48.710Z" (RFC 3339, UTC, milliseconds). The formatted second is cached
// per thread, since many log lines share it.
void append_rfc3339_ms(int64_t unix_ms, std::string& out);
// The same into `out` (room for kRfc3339MsMax bytes); returns the length written.
inline constexpr size_t kRfc3339MsMax = 32;
size_t format_rfc3339_ms(int64_t unix_ms, char* out);

}  // namespace proxenos::base
