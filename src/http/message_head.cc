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

}  // namespace proxenos::http
