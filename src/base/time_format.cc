#include "base/time_format.h"

#include <cstring>
#include <ctime>

namespace proxenos::base {

size_t format_rfc3339_ms(int64_t unix_ms, char* out) {
  thread_local int64_t cached_sec = -1;
  thread_local char cached[32];
  thread_local size_t cached_len = 0;
  int64_t sec = unix_ms / 1000;
  if (sec != cached_sec) {
    time_t t = static_cast<time_t>(sec);
    tm tm_utc{};
    gmtime_r(&t, &tm_utc);
    cached_len = strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm_utc);
    cached_sec = sec;
  }
  std::memcpy(out, cached, cached_len);
  int m = static_cast<int>(unix_ms % 1000);
  char* p = out + cached_len;
  *p++ = '.';
  *p++ = static_cast<char>('0' + m / 100);
  *p++ = static_cast<char>('0' + (m / 10) % 10);
  *p++ = static_cast<char>('0' + m % 10);
  *p++ = 'Z';
  return static_cast<size_t>(p - out);
}

void append_rfc3339_ms(int64_t unix_ms, std::string& out) {
  char buf[kRfc3339MsMax];
  out.append(buf, format_rfc3339_ms(unix_ms, buf));
}

}  // namespace proxenos::base
