// Handler::on_request_rejected: a peer stream the server session resets for its request head
// before on_request_head is reported once, with what was received of the head, so the proxy can
// log it (edge-hardening.md §7 case 17: code 0, DPE). Refused streams, known streams and the
// client role are never reported.

#include <gtest/gtest.h>

#include <string>

#include "http/http2_session.h"
#include "http2_test_util.h"

namespace proxenos::http {
namespace {

using namespace h2test;  // NOLINT: frame builders

Fields request_fields(Fields extra, std::string path = "/r?q=1") {
  Fields f = {{":method", "POST"},         {":scheme", "http"},    {":path", std::move(path)},
              {":authority", "a.example"}, {"user-agent", "ua/1"}, {"x-request-id", "rid-7"}};
  for (auto& field : extra) f.push_back(std::move(field));
  return f;
}

// The stream is reset (PROTOCOL_ERROR), reported once, never delivered nor closed to the
// handler, and the connection serves the next stream without a second report.
const Rejection& expect_rejected_once(RawServer& s, int32_t stream = 1) {
  const Frame* rst = s.find(kRstStream, stream);
  EXPECT_NE(rst, nullptr);
  if (rst != nullptr) {
    EXPECT_EQ(rst->rst_code(), kH2ProtocolError);
  }
  EXPECT_FALSE(s.handler.streams[stream].has_request);
  EXPECT_FALSE(s.handler.streams[stream].closed);
  EXPECT_TRUE(s.send(headers_frame(static_cast<uint32_t>(stream) + 2, get_fields("/next"))));
  EXPECT_TRUE(s.handler.streams[stream + 2].has_request);
  EXPECT_EQ(s.find(kGoaway), nullptr);
  EXPECT_EQ(s.handler.rejections.size(), 1u);
  static const Rejection kNone;
  return s.handler.rejections.empty() ? kNone : s.handler.rejections[0];
}

TEST(Http2Rejected, ConnectionSpecificHeaderCarriesThePartialHead) {
  RawServer s;
  ASSERT_TRUE(
      s.send(headers_frame(1, request_fields({{"connection", "close"}, {"x-late", "1"}}), false)));
  const Rejection& r = expect_rejected_once(s);
  EXPECT_EQ(r.stream, 1);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/r?q=1");
  EXPECT_EQ(r.path, "/r");
  EXPECT_EQ(r.authority, "a.example");
  // The fields before the refused one; nothing after it was decoded for us.
  EXPECT_EQ(r.headers, (Fields{{"user-agent", "ua/1"}, {"x-request-id", "rid-7"}}));
  EXPECT_EQ(r.reason, "connection-specific header field");
  EXPECT_EQ(s.session.stats().messaging_errors, 1u);
}

TEST(Http2Rejected, HeaderListTooLarge) {
  Http2Options o;
  o.max_header_list_bytes = 1024;
  RawServer s(o);
  ASSERT_TRUE(s.send(
      headers_frame(1, request_fields({{"x-big", std::string(2000, 'v')}, {"x-after", "1"}}))));
  const Rejection& r = expect_rejected_once(s);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/r?q=1");
  EXPECT_EQ(r.authority, "a.example");
  EXPECT_EQ(r.headers, (Fields{{"user-agent", "ua/1"}, {"x-request-id", "rid-7"}}));
  EXPECT_EQ(r.reason, "header list too large");
  EXPECT_EQ(s.session.stats().header_overflows, 1u);
}

TEST(Http2Rejected, TooManyHeaders) {
  Http2Options o;
  o.max_header_count = 3;
  RawServer s(o);
  ASSERT_TRUE(s.send(headers_frame(1, request_fields({{"x-3", "3"}, {"x-4", "4"}}))));
  const Rejection& r = expect_rejected_once(s);
  EXPECT_EQ(r.headers, (Fields{{"user-agent", "ua/1"}, {"x-request-id", "rid-7"}, {"x-3", "3"}}));
  EXPECT_EQ(r.reason, "too many headers");
  EXPECT_EQ(s.session.stats().header_overflows, 1u);
}

// Our own check after the whole head arrived: the head as built, with the reason.
TEST(Http2Rejected, InvalidPath) {
  RawServer s;
  ASSERT_TRUE(
      s.send(headers_frame(1, request_fields({{"cookie", "a=1"}, {"cookie", "b=2"}}, "/a#frag"))));
  const Rejection& r = expect_rejected_once(s);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/a#frag");
  EXPECT_EQ(r.authority, "a.example");
  EXPECT_EQ(r.headers,
            (Fields{{"user-agent", "ua/1"}, {"x-request-id", "rid-7"}, {"cookie", "a=1; b=2"}}));
  EXPECT_EQ(r.reason, "invalid :path");
}

TEST(Http2Rejected, UnderscoreNameUnderReject) {
  RawServer s;  // kReject is the edge default
  // A second bad field after the underscore one must not make a second report.
  ASSERT_TRUE(s.send(headers_frame(
      1, request_fields({{"x_user", "admin"}, {"connection", "close"}, {"x-after", "1"}}))));
  const Rejection& r = expect_rejected_once(s);
  EXPECT_EQ(r.headers, (Fields{{"user-agent", "ua/1"}, {"x-request-id", "rid-7"}}));
  EXPECT_EQ(r.reason, "underscore in header name");
}

// nghttp2 refuses a pseudo-header after a regular one: what came before is all there is.
TEST(Http2Rejected, PseudoAfterRegularHasNoPath) {
  RawServer s;
  ASSERT_TRUE(s.send(headers_frame(
      1, {{":method", "GET"}, {":scheme", "http"}, {"host", "h.example"}, {":path", "/p"}})));
  const Rejection& r = expect_rejected_once(s);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "");
  EXPECT_EQ(r.authority, "h.example");  // Host stands in for the missing :authority
  EXPECT_EQ(r.headers, (Fields{{"host", "h.example"}}));
}

// Missing :path is found when the block ends (the head as a whole, not a field).
TEST(Http2Rejected, MissingPseudoHeader) {
  RawServer s;
  ASSERT_TRUE(s.send(headers_frame(
      1, {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {"x-marker", "m"}})));
  const Rejection& r = expect_rejected_once(s);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.authority, "a");
  EXPECT_EQ(r.headers, (Fields{{"x-marker", "m"}}));
  EXPECT_EQ(r.reason, "missing :scheme or :path");
}

TEST(Http2Rejected, GoodStreamsAreNotReported) {
  RawServer s;
  ASSERT_TRUE(s.send(headers_frame(1, request_fields({}), false)));
  ASSERT_TRUE(s.handler.streams[1].has_request);
  // Bad trailers and a content-length mismatch on a known stream close it to the handler
  // instead (it logs them itself).
  ASSERT_TRUE(s.send(frame(kHeaders, kEndHeaders | kEndStream, 1, block({{"connection", "x"}}))));
  ASSERT_TRUE(s.send(headers_frame(3, request_fields({{"content-length", "5"}}), false)));
  ASSERT_TRUE(s.send(frame(kData, kEndStream, 3, "abc")));
  EXPECT_TRUE(s.handler.streams[1].closed);
  EXPECT_EQ(s.handler.streams[1].close_code, kH2ProtocolError);
  EXPECT_TRUE(s.handler.streams[3].closed);
  EXPECT_EQ(s.handler.streams[3].close_code, kH2ProtocolError);
  EXPECT_TRUE(s.handler.rejections.empty());
}

TEST(Http2Rejected, RefusedStreamsAreNotReported) {
  Http2Options o;
  o.max_concurrent_streams = 1;
  RawServer s(o);
  // Refused even with a malformed head: REFUSED_STREAM wins, nothing is reported.
  ASSERT_TRUE(s.send(headers_frame(1, get_fields(), false) + headers_frame(3, get_fields(), false) +
                     headers_frame(5, request_fields({{"connection", "close"}}), false)));
  ASSERT_NE(s.find(kRstStream, 3), nullptr);
  EXPECT_EQ(s.find(kRstStream, 3)->rst_code(), kH2RefusedStream);
  ASSERT_NE(s.find(kRstStream, 5), nullptr);
  EXPECT_EQ(s.find(kRstStream, 5)->rst_code(), kH2RefusedStream);
  EXPECT_EQ(s.session.stats().streams_refused, 2u);
  EXPECT_TRUE(s.handler.rejections.empty());
}

// The client role never reports (a bad response head closes the stream it knows).
TEST(Http2Rejected, ClientRoleNeverReports) {
  Pair p;
  const int32_t id = p.client.submit_request(get_request("/"), true);
  p.pump();
  ASSERT_TRUE(p.server_handler.streams[id].has_request);
  // submit_response drops connection-specific fields: send the bad head raw instead.
  std::string raw = frame(kHeaders, kEndHeaders | kEndStream, static_cast<uint32_t>(id),
                          block({{":status", "200"}, {"connection", "close"}}));
  ASSERT_TRUE(p.client.feed(raw));
  p.pump();
  EXPECT_TRUE(p.client_handler.rejections.empty());
  EXPECT_TRUE(p.client_handler.streams[id].closed);
  EXPECT_EQ(p.client_handler.streams[id].close_code, kH2ProtocolError);
}

}  // namespace
}  // namespace proxenos::http
