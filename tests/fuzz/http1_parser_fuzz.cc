// libFuzzer target for the HTTP/1 codec: request and response heads, then their bodies, over a
// pipeline of messages. Besides memory errors (run it with ASan/UBSan) it traps on broken
// invariants: views outside the head's storage, a decoder overrunning its input, and any
// difference between parsing the input whole and parsing it trickled in small pieces.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/body_decoder.h"
#include "http/http1_parser.h"

namespace {

using proxenos::http::BodyDecoder;
using proxenos::http::BodyFraming;
using proxenos::http::DecodeResult;
using proxenos::http::ParseResult;
using proxenos::http::ParserLimits;
using proxenos::http::ParseStatus;
using proxenos::http::RequestHead;
using proxenos::http::RequestParser;
using proxenos::http::ResponseHead;
using proxenos::http::ResponseParser;
using proxenos::http::UnderscoreAction;

constexpr int kMaxMessages = 8;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_inside(std::string_view v, const std::string& storage) {
  if (v.empty()) return;
  check(v.data() >= storage.data() && v.data() + v.size() <= storage.data() + storage.size());
}

bool same(const ParseResult& a, const ParseResult& b) {
  return a.status == b.status && a.consumed == b.consumed && a.error_status == b.error_status &&
         a.error == b.error;
}

// Decodes a body two ways (all at once, then one byte per call) and checks they agree.
// Returns the bytes the body took from `in`, or npos when the body did not end (or failed).
size_t run_body(BodyFraming framing, uint64_t content_length, std::string_view in) {
  BodyDecoder whole;
  whole.reset(framing, content_length);
  std::string body;
  size_t used = 0;
  bool done = whole.done();
  bool error = false;
  while (!done && !error) {
    std::string_view rest = in.substr(used);
    DecodeResult r = whole.decode(rest);
    check(r.consumed <= rest.size());
    if (!r.data.empty()) {
      check(r.data.data() >= rest.data() &&
            r.data.data() + r.data.size() <= rest.data() + r.consumed);
    }
    body.append(r.data);
    used += r.consumed;
    done = r.done;
    error = r.error;
    if (r.consumed == 0) break;
  }

  BodyDecoder bytes;
  bytes.reset(framing, content_length);
  std::string body2;
  size_t used2 = 0;
  bool done2 = bytes.done();
  bool error2 = false;
  while (!done2 && !error2 && used2 < in.size()) {
    DecodeResult r = bytes.decode(in.substr(used2, 1));
    check(r.consumed <= 1);
    body2.append(r.data);
    used2 += r.consumed;
    done2 = r.done;
    error2 = r.error;
    if (r.consumed == 0 && !r.done && !r.error) break;
  }
  check(done == done2 && error == error2);
  if (!error) check(body == body2 && used == used2);
  if (framing == BodyFraming::kContentLength && done) check(body.size() == content_length);
  return done ? used : std::string_view::npos;
}

ParseResult parse_request_trickled(RequestParser& parser, std::string_view in, RequestHead& head,
                                   size_t step) {
  ParseResult r;
  for (size_t n = std::min(step, in.size());; n = std::min(n + step, in.size())) {
    r = parser.parse(in.substr(0, n), head);
    if (r.status != ParseStatus::kIncomplete || n == in.size()) return r;
  }
}

ParseResult parse_response_trickled(ResponseParser& parser, std::string_view in, bool head_req,
                                    ResponseHead& head, size_t step) {
  ParseResult r;
  for (size_t n = std::min(step, in.size());; n = std::min(n + step, in.size())) {
    r = parser.parse(in.substr(0, n), head_req, head);
    if (r.status != ParseStatus::kIncomplete || n == in.size()) return r;
  }
}

void fuzz_requests(std::string_view in, const ParserLimits& limits, size_t step) {
  RequestParser parser(limits);
  RequestParser trickle_parser(limits);
  RequestHead head;
  RequestHead trickle_head;
  for (int i = 0; i < kMaxMessages && !in.empty(); ++i) {
    ParseResult r = parser.parse(in, head);
    ParseResult t = parse_request_trickled(trickle_parser, in, trickle_head, step);
    parser.reset();
    trickle_parser.reset();
    check(same(r, t));
    if (r.status != ParseStatus::kComplete) return;
    check(r.error_status == 0 && r.consumed <= in.size() && head.storage.size() <= r.consumed);
    check(head.storage == in.substr(r.consumed - head.storage.size(), head.storage.size()));
    check(trickle_head.storage == head.storage);
    check(!head.method.empty() && !head.target.empty());
    for (std::string_view v :
         {head.method, head.target, head.query, head.authority, head.upgrade_protocol}) {
      check_inside(v, head.storage);
    }
    if (head.path != "/") check_inside(head.path, head.storage);
    for (const auto& f : head.headers) {
      check(!f.name.empty());
      check_inside(f.name, head.storage);
      check_inside(f.value, head.storage);
    }
    check(head.headers.size() <= limits.max_header_count);
    check(head.framing != BodyFraming::kUntilClose);
    in.remove_prefix(r.consumed);
    const size_t body = run_body(head.framing, head.content_length, in);
    if (body == std::string_view::npos) return;
    in.remove_prefix(body);
  }
}

void fuzz_responses(std::string_view in, bool head_request, size_t step) {
  ResponseParser parser;
  ResponseParser trickle_parser;
  ResponseHead head;
  ResponseHead trickle_head;
  for (int i = 0; i < kMaxMessages && !in.empty(); ++i) {
    ParseResult r = parser.parse(in, head_request, head);
    ParseResult t = parse_response_trickled(trickle_parser, in, head_request, trickle_head, step);
    parser.reset();
    trickle_parser.reset();
    check(same(r, t));
    if (r.status == ParseStatus::kError) check(r.error_status == 502);
    if (r.status != ParseStatus::kComplete) return;
    check(r.consumed <= in.size() && head.storage.size() == r.consumed);
    check(head.status >= 100 && head.status <= 599);
    check_inside(head.reason, head.storage);
    for (const auto& f : head.headers) {
      check_inside(f.name, head.storage);
      check_inside(f.value, head.storage);
    }
    if (head.framing == BodyFraming::kUntilClose) check(!head.keep_alive);
    in.remove_prefix(r.consumed);
    const size_t body = run_body(head.framing, head.content_length, in);
    if (body == std::string_view::npos) return;
    in.remove_prefix(body);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  // The options come from the input's length and last byte, so seeds stay plain HTTP text.
  const uint8_t salt = size ? data[size - 1] : 0;
  const size_t step = 1 + salt % 13;

  ParserLimits strict;  // edge defaults
  fuzz_requests(in, strict, step);

  ParserLimits lax;
  lax.allow_http10 = true;
  lax.underscores = (salt & 1) ? UnderscoreAction::kAllow : UnderscoreAction::kDropHeader;
  lax.max_header_count = 8 + salt % 8;
  lax.max_header_bytes = 256 + salt;
  lax.max_request_line_bytes = 64 + salt;
  fuzz_requests(in, lax, step);

  fuzz_responses(in, (salt & 2) != 0, step);
  return 0;
}
