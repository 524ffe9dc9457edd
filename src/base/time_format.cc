#include "base/time_format.h"

#include <ctime>

namespace proxenos::base {

void append_rfc3339_ms(int64_t unix_ms, std::string& out) {
  thread_local int64_t cached_sec = -1;
  thread_local char cached[32];
  int64_t sec = unix_ms / 1000;
  if (sec != cached_sec) {
    time_t t = static_cast<time_t>(sec);
    tm tm_utc{};
    gmtime_r(&t, &tm_utc);
    strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm_utc);
    cached_sec = sec;
  }
  out.append(cached);
  int m = static_cast<int>(unix_ms % 1000);
  char ms[5] = {'.', static_cast<char>('0' + m / 100), static_cast<char>('0' + (m / 10) % 10),
                static_cast<char>('0' + m % 10), 'Z'};
  out.append(ms, sizeof ms);
}

}  // namespace proxenos::base
