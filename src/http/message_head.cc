#include "http/message_head.h"

namespace proxenos::http {

// Resets every field but keeps the capacity of `headers` and `storage`, so a head reused across a
// connection's requests stops allocating after the first one.
void RequestHead::clear() {
  method = {};
  target = {};
  path = {};
  query = {};
  has_query = false;
  version_minor = 1;
  version_major = 1;
  headers.clear();
  authority = {};
  framing = BodyFraming::kNone;
  content_length = 0;
  keep_alive = true;
  expect_continue = false;
  upgrade = false;
  upgrade_protocol = {};
  storage.clear();
}

void ResponseHead::clear() {
  status = 0;
  reason = {};
  version_minor = 1;
  headers.clear();
  framing = BodyFraming::kNone;
  content_length = 0;
  keep_alive = true;
  storage.clear();
}

void RequestHead::take(RequestHead& from) {
  method = from.method;
  target = from.target;
  path = from.path;
  query = from.query;
  has_query = from.has_query;
  version_minor = from.version_minor;
  version_major = from.version_major;
  headers.swap(from.headers);
  authority = from.authority;
  framing = from.framing;
  content_length = from.content_length;
  keep_alive = from.keep_alive;
  expect_continue = from.expect_continue;
  upgrade = from.upgrade;
  upgrade_protocol = from.upgrade_protocol;
  storage.swap(from.storage);
}

void ResponseHead::take(ResponseHead& from) {
  status = from.status;
  reason = from.reason;
  version_minor = from.version_minor;
  headers.swap(from.headers);
  framing = from.framing;
  content_length = from.content_length;
  keep_alive = from.keep_alive;
  storage.swap(from.storage);
}

}  // namespace proxenos::http
