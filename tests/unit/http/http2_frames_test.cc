// HTTP/2 server session against hand-built frames: the bad-input cases 17–25 of
// ../shared/spec/edge-hardening.md §7, each named after its number.

#include <gtest/gtest.h>

#include <string>

#include "http/http2_session.h"
#include "http2_test_util.h"

namespace proxenos::http {
namespace {

using namespace h2test;  // NOLINT: frame builders

// After a stream-level rejection the connection must keep serving: a good request on the next
// stream id is delivered.
void expect_still_serving(RawServer& s, uint32_t next_stream) {
  ASSERT_TRUE(s.send(headers_frame(next_stream, get_fields("/ok"))));
  ASSERT_TRUE(s.handler.streams[static_cast<int32_t>(next_stream)].has_request);
  EXPECT_EQ(s.handler.streams[static_cast<int32_t>(next_stream)].request.path, "/ok");
}

TEST(Http2Frames, ServerSettingsOnTheWire) {
  RawServer s;
  ASSERT_FALSE(s.received.empty());
  const Frame& f = s.received[0];
  ASSERT_EQ(f.type, kSettings);
  std::map<uint16_t, uint32_t> values;
  for (size_t p = 0; p + 6 <= f.payload.size(); p += 6) {
    const uint16_t id = static_cast<uint16_t>((static_cast<unsigned char>(f.payload[p]) << 8) |
                                              static_cast<unsigned char>(f.payload[p + 1]));
    values[id] = f.u32(p + 2);
  }
  EXPECT_EQ(values[0x3], 100u);        // MAX_CONCURRENT_STREAMS
  EXPECT_EQ(values[0x4], 65536u);      // INITIAL_WINDOW_SIZE
  EXPECT_EQ(values[0x6], 60u * 1024);  // MAX_HEADER_LIST_SIZE
  EXPECT_EQ(values[0x9], 1u);          // NO_RFC7540_PRIORITIES
  const Frame* wu = s.find(kWindowUpdate, 0);
  ASSERT_NE(wu, nullptr);
  EXPECT_EQ(wu->u32(0) + 65535, 1024u * 1024);  // connection window raised to 1 MiB
  EXPECT_NE(s.find(kSettings), nullptr);
}

struct Malformed {
  const char* name;
  Fields fields;
};

// Case 17: malformed request heads are stream errors (RST_STREAM PROTOCOL_ERROR), never delivered
// (so never turned into HTTP/1 bytes), and the connection keeps serving.
TEST(Http2Frames, Case17MalformedRequestHeadsAreReset) {
  const std::vector<Malformed> cases = {
      {"space in :method",
       {{":method", "GET /admin"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a"}}},
      {"CR in value",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"x-a", "1\r\nx-b: 2"}}},
      {"LF in value",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"x-a", "1\nb"}}},
      {"NUL in value",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"x-a", std::string("1\0b", 3)}}},
      {"uppercase name",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"X-A", "1"}}},
      {"pseudo after regular",
       {{":method", "GET"},
        {":scheme", "http"},
        {"x-a", "1"},
        {":path", "/"},
        {":authority", "a"}}},
      {"duplicate :path",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":path", "/x"},
        {":authority", "a"}}},
      {"missing :path", {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}}},
      {"missing :method", {{":scheme", "http"}, {":path", "/"}, {":authority", "a"}}},
      {"missing :scheme", {{":method", "GET"}, {":path", "/"}, {":authority", "a"}}},
      {"unknown pseudo",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {":foo", "1"}}},
      {"response pseudo in request",
       {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":status", "200"}}},
      {"connection",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"connection", "close"}}},
      {"transfer-encoding",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"transfer-encoding", "chunked"}}},
      {"te gzip",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"te", "gzip"}}},
      {"upgrade",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"upgrade", "websocket"}}},
      {"keep-alive",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"keep-alive", "1"}}},
      {"proxy-connection",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"proxy-connection", "x"}}},
      {"relative :path",
       {{":method", "GET"}, {":scheme", "http"}, {":path", "admin"}, {":authority", "a"}}},
      {"space in :path",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/a HTTP/1.1\r\nX: y"},
        {":authority", "a"}}},
      {"fragment in :path",
       {{":method", "GET"}, {":scheme", "http"}, {":path", "/a#frag"}, {":authority", "a"}}},
      {"asterisk for GET",
       {{":method", "GET"}, {":scheme", "http"}, {":path", "*"}, {":authority", "a"}}},
      {"empty :path",
       {{":method", "GET"}, {":scheme", "http"}, {":path", ""}, {":authority", "a"}}},
      {"userinfo in :authority",
       {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "u@a"}}},
      {"no authority nor host", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}},
      {"host differs from :authority",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"host", "b"}}},
      {"two hosts",
       {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "a"}, {"host", "a"}}},
      {"underscore in name (edge default)",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"x_user", "admin"}}},
      {"content-length not a number",
       {{":method", "POST"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"content-length", "+5"}}},
      {"two content-lengths",
       {{":method", "POST"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"content-length", "1"},
        {"content-length", "2"}}},
      {"leading space in value",
       {{":method", "GET"},
        {":scheme", "http"},
        {":path", "/"},
        {":authority", "a"},
        {"x-a", " 1"}}},
  };
  for (const Malformed& c : cases) {
    SCOPED_TRACE(c.name);
    RawServer s;
    ASSERT_TRUE(s.send(headers_frame(1, c.fields, false)));
    EXPECT_FALSE(s.handler.streams[1].has_request);
    const Frame* rst = s.find(kRstStream, 1);
    ASSERT_NE(rst, nullptr);
    EXPECT_EQ(rst->rst_code(), kH2ProtocolError);
    EXPECT_EQ(s.find(kGoaway), nullptr);
    EXPECT_GE(s.session.stats().messaging_errors, 1u);
    // Reported once to the handler (which logs it), and never closed to it.
    ASSERT_EQ(s.handler.rejections.size(), 1u);
    EXPECT_EQ(s.handler.rejections[0].stream, 1);
    expect_still_serving(s, 3);
    EXPECT_EQ(s.handler.rejections.size(), 1u);
    EXPECT_FALSE(s.handler.streams[1].closed);
  }
}

TEST(Http2Frames, RequestBodyAndTrailerRulesResetTheStream) {
  // After the head: trailers end the stream and carry no pseudo-header, and the body is as long
  // as the content-length said (RFC 9113 §8.1, §8.1.1).
  Fields post = {{":method", "POST"},
                 {":scheme", "http"},
                 {":path", "/"},
                 {":authority", "a"},
                 {"content-length", "3"}};
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"trailers not ending the stream",
       headers_frame(1, get_fields(), false) + headers_frame(1, {{"x-t", "1"}}, false)},
      {"pseudo-header in trailers",
       headers_frame(1, get_fields(), false) + headers_frame(1, {{":path", "/x"}})},
      {"body shorter, ended by trailers",
       headers_frame(1, post, false) + frame(kData, 0, 1, "ab") + headers_frame(1, {{"x-t", "1"}})},
      {"body shorter, ended by DATA",
       headers_frame(1, post, false) + frame(kData, kEndStream, 1, "ab")},
      {"body longer", headers_frame(1, post, false) + frame(kData, 0, 1, "abcd")},
      {"content-length but no body", headers_frame(1, post, true)},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    RawServer s;
    ASSERT_TRUE(s.send(bytes));
    const Frame* rst = s.find(kRstStream, 1);
    ASSERT_NE(rst, nullptr);
    EXPECT_EQ(rst->rst_code(), kH2ProtocolError);
    EXPECT_FALSE(s.handler.streams[1].body_end);
    EXPECT_FALSE(s.handler.streams[1].has_trailers);
    EXPECT_EQ(s.find(kGoaway), nullptr);
    expect_still_serving(s, 3);
  }
  // The same shapes within the rules pass.
  RawServer s;
  ASSERT_TRUE(s.send(headers_frame(1, post, false) + frame(kData, 0, 1, "ab") +
                     frame(kData, 0, 1, "c") + headers_frame(1, {{"x-t", "1"}})));
  EXPECT_EQ(s.handler.streams[1].body, "abc");
  EXPECT_TRUE(s.handler.streams[1].has_trailers);
  EXPECT_EQ(s.find(kRstStream), nullptr);
}

TEST(Http2Frames, Case17WellFormedVariantsAreAccepted) {
  RawServer s;
  // host alone stands for :authority; OPTIONS * is fine; te: trailers is allowed.
  ASSERT_TRUE(s.send(headers_frame(1, {{":method", "GET"},
                                       {":scheme", "http"},
                                       {":path", "/h"},
                                       {"host", "example.com"},
                                       {"te", "trailers"}})));
  ASSERT_TRUE(s.handler.streams[1].has_request);
  EXPECT_EQ(s.handler.streams[1].request.authority, "example.com");
  ASSERT_TRUE(s.send(headers_frame(
      3, {{":method", "OPTIONS"}, {":scheme", "http"}, {":path", "*"}, {":authority", "a"}})));
  ASSERT_TRUE(s.handler.streams[3].has_request);
  EXPECT_EQ(s.handler.streams[3].request.target, "*");
  // host equal to :authority (any case) is kept.
  ASSERT_TRUE(s.send(headers_frame(5, {{":method", "GET"},
                                       {":scheme", "https"},
                                       {":path", "/"},
                                       {":authority", "Example.com"},
                                       {"host", "example.COM"}})));
  ASSERT_TRUE(s.handler.streams[5].has_request);
  EXPECT_EQ(s.find(kRstStream), nullptr);
}

TEST(Http2Frames, UnderscoreActionsAreConfigurable) {
  Http2Options drop;
  drop.underscores = UnderscoreAction::kDropHeader;
  RawServer s(drop);
  Fields f = get_fields();
  f.emplace_back("x_user", "admin");
  f.emplace_back("x-ok", "1");
  ASSERT_TRUE(s.send(headers_frame(1, f)));
  ASSERT_TRUE(s.handler.streams[1].has_request);
  EXPECT_EQ(to_fields(s.handler.streams[1].request.headers), (Fields{{"x-ok", "1"}}));

  Http2Options allow;
  allow.underscores = UnderscoreAction::kAllow;
  RawServer a(allow);
  ASSERT_TRUE(a.send(headers_frame(1, f)));
  EXPECT_EQ(find_header(a.handler.streams[1].request.headers, "x_user"), "admin");
}

// Case 18: DATA totals that disagree with content-length reset the stream; the handler never
// sees the body end, so the upstream request is aborted, not completed.
TEST(Http2Frames, Case18ContentLengthMismatch) {
  Fields post = get_fields("/up");
  post[0].second = "POST";
  post.emplace_back("content-length", "5");
  {
    RawServer s;
    ASSERT_TRUE(s.send(headers_frame(1, post, false)));
    ASSERT_TRUE(s.handler.streams[1].has_request);
    EXPECT_EQ(s.handler.streams[1].request.framing, BodyFraming::kContentLength);
    ASSERT_TRUE(s.send(frame(kData, kEndStream, 1, "abc")));  // short
    const Frame* rst = s.find(kRstStream, 1);
    ASSERT_NE(rst, nullptr);
    EXPECT_EQ(rst->rst_code(), kH2ProtocolError);
    EXPECT_FALSE(s.handler.streams[1].body_end);
    EXPECT_TRUE(s.handler.streams[1].closed);
    EXPECT_EQ(s.handler.streams[1].close_code, kH2ProtocolError);
    expect_still_serving(s, 3);
  }
  {
    RawServer s;
    ASSERT_TRUE(s.send(headers_frame(1, post, false)));
    ASSERT_TRUE(s.send(frame(kData, 0, 1, "abcdef")));  // long, before any END_STREAM
    ASSERT_NE(s.find(kRstStream, 1), nullptr);
    EXPECT_EQ(s.handler.streams[1].body, "");  // the excess never reaches the handler
    EXPECT_EQ(s.handler.streams[1].close_code, kH2ProtocolError);
  }
  {
    RawServer s;  // exact length passes
    ASSERT_TRUE(s.send(headers_frame(1, post, false)));
    ASSERT_TRUE(s.send(frame(kData, 0, 1, "ab") + frame(kData, kEndStream, 1, "cde")));
    EXPECT_EQ(s.handler.streams[1].body, "abcde");
    EXPECT_TRUE(s.handler.streams[1].body_end);
    EXPECT_EQ(s.find(kRstStream, 1), nullptr);
  }
}

// Case 19: HEADERS + RST_STREAM in a loop. The guard trips at half of the 500-stream budget:
// GOAWAY(ENHANCE_YOUR_CALM), the session closes, the counter is set.
TEST(Http2Frames, Case19RapidResetLoop) {
  RawServer s;
  uint32_t id = 1;
  int rounds = 0;
  for (; rounds < 1000 && s.alive; ++rounds, id += 2) {
    s.send(headers_frame(id, get_fields()) + rst_stream(id, kH2Cancel), false);
  }
  s.drain();
  EXPECT_FALSE(s.alive);
  EXPECT_EQ(rounds, 250);
  EXPECT_EQ(s.session.premature_resets(), 250u);
  EXPECT_EQ(s.session.stats().too_many_premature_resets, 1u);
  const Frame* goaway = s.find(kGoaway);
  ASSERT_NE(goaway, nullptr);
  EXPECT_EQ(goaway->goaway_code(), kH2EnhanceYourCalm);
  EXPECT_FALSE(s.session.want_read());
  EXPECT_FALSE(s.session.feed(headers_frame(id, get_fields())));
}

// The variant without client resets: HEADERS built to be reset by the server.
TEST(Http2Frames, Case19ServerResetVariant) {
  RawServer s;
  uint32_t id = 1;
  int rounds = 0;
  Fields bad = get_fields();
  bad.emplace_back("connection", "close");
  for (; rounds < 1000 && s.alive; ++rounds, id += 2) s.send(headers_frame(id, bad));
  EXPECT_FALSE(s.alive);
  EXPECT_LE(rounds, 251);
  EXPECT_EQ(s.session.stats().too_many_premature_resets, 1u);
  ASSERT_NE(s.find(kGoaway), nullptr);
  EXPECT_EQ(s.find(kGoaway)->goaway_code(), kH2EnhanceYourCalm);
}

TEST(Http2Frames, Case19AGuardOfZeroIsOff) {
  Http2Options o;
  o.premature_reset_total_streams = 0;
  RawServer s(o);
  uint32_t id = 1;
  for (int i = 0; i < 300; ++i, id += 2) {
    ASSERT_TRUE(s.send(headers_frame(id, get_fields()) + rst_stream(id, kH2Cancel)));
  }
  EXPECT_EQ(s.session.premature_resets(), 0u);
}

// Case 20: CONTINUATION without END_HEADERS is capped (connection error), a CONTINUATION
// sequence interrupted by another frame is a protocol error, and decoded header bytes are
// bounded whatever the encoding (HPACK bomb, cookie crumbs).
TEST(Http2Frames, Case20ContinuationFlood) {
  RawServer s;
  std::string bytes = frame(kHeaders, kEndStream, 1, block(get_fields()));
  for (int i = 0; i < 20; ++i) bytes += frame(kContinuation, 0, 1, lit("x-c", "v"));
  EXPECT_FALSE(s.send(bytes));
  const Frame* goaway = s.find(kGoaway);
  ASSERT_NE(goaway, nullptr);
  EXPECT_NE(goaway->goaway_code(), kH2NoError);
  EXPECT_FALSE(s.handler.streams[1].has_request);
  EXPECT_FALSE(s.session.want_read());
}

TEST(Http2Frames, Case20InterruptedContinuation) {
  RawServer s;
  EXPECT_FALSE(
      s.send(frame(kHeaders, kEndStream, 1, block(get_fields())) + frame(kData, 0, 3, "x")));
  const Frame* goaway = s.find(kGoaway);
  ASSERT_NE(goaway, nullptr);
  EXPECT_EQ(goaway->goaway_code(), kH2ProtocolError);
}

TEST(Http2Frames, Case20HpackBomb) {
  RawServer s;
  // One 4000-byte value enters the dynamic table (index 62); 20 one-byte references to it would
  // decode to 80 KB of headers.
  std::string b = block(get_fields()) + lit_indexed("x-bomb", std::string(4000, 'b'));
  for (int i = 0; i < 20; ++i) b += indexed(62);
  ASSERT_TRUE(s.send(frame(kHeaders, kEndHeaders | kEndStream, 1, b)));
  EXPECT_FALSE(s.handler.streams[1].has_request);
  ASSERT_NE(s.find(kRstStream, 1), nullptr);
  EXPECT_EQ(s.session.stats().header_overflows, 1u);
  // HPACK state stayed in sync: the next block, referring to the same entry once, decodes.
  ASSERT_TRUE(
      s.send(frame(kHeaders, kEndHeaders | kEndStream, 3, block(get_fields()) + indexed(62))));
  ASSERT_TRUE(s.handler.streams[3].has_request);
  EXPECT_EQ(find_header(s.handler.streams[3].request.headers, "x-bomb").size(), 4000u);
}

TEST(Http2Frames, Case20CookieCrumbsCountTowardTheLimit) {
  RawServer s;
  std::string b = block(get_fields());
  for (int i = 0; i < 2000; ++i) b += lit("cookie", "c" + std::to_string(i) + "=xxxxxxxx");
  // Split over HEADERS + CONTINUATIONs, as a client must for a block this size.
  std::string bytes;
  const size_t chunk = 16000;
  for (size_t off = 0; off < b.size(); off += chunk) {
    const bool first = off == 0;
    const bool last = off + chunk >= b.size();
    bytes += frame(first ? kHeaders : kContinuation,
                   (first ? kEndStream : 0) | (last ? kEndHeaders : 0), 1, b.substr(off, chunk));
  }
  ASSERT_TRUE(s.send(bytes));
  EXPECT_FALSE(s.handler.streams[1].has_request);
  ASSERT_NE(s.find(kRstStream, 1), nullptr);
  EXPECT_EQ(s.session.stats().header_overflows, 1u);
  expect_still_serving(s, 3);
}

TEST(Http2Frames, Case20CookieCrumbsUnderTheLimitAreJoined) {
  RawServer s;
  std::string b = block(get_fields());
  b += lit("cookie", "a=1") + lit("x-mid", "m") + lit("cookie", "b=2") + lit("cookie", "c=3");
  ASSERT_TRUE(s.send(frame(kHeaders, kEndHeaders | kEndStream, 1, b)));
  ASSERT_TRUE(s.handler.streams[1].has_request);
  EXPECT_EQ(to_fields(s.handler.streams[1].request.headers),
            (Fields{{"cookie", "a=1; b=2; c=3"}, {"x-mid", "m"}}));
}

// Case 21: a peer that floods PINGs (or SETTINGS) while never reading gets its connection closed
// once 1 000 ACKs are pending; SETTINGS with too many parameters close it too.
TEST(Http2Frames, Case21PingFloodWhileNotReading) {
  RawServer s;
  std::string pings;
  for (int i = 0; i < 100; ++i) pings += ping(static_cast<uint64_t>(i));
  bool alive = true;
  int batches = 0;
  for (; batches < 100 && alive; ++batches) alive = s.send(pings, /*drain_output=*/false);
  EXPECT_FALSE(alive);
  // 1 000 ACKs queued in nghttp2, after those that fit the 32 KiB output buffer (17 bytes each).
  EXPECT_LE(batches, 1 + (1000 + 32 * 1024 / 17) / 100 + 1);
  EXPECT_EQ(s.session.stats().floods, 1u);
  EXPECT_EQ(s.session.close_reason().substr(0, 6), "flood:");
  EXPECT_FALSE(s.session.want_read());
}

TEST(Http2Frames, Case21SettingsFloodWhileNotReading) {
  RawServer s;
  std::string many;
  for (int i = 0; i < 100; ++i) many += settings({{0x4, 65536}});
  bool alive = true;
  for (int i = 0; i < 100 && alive; ++i) alive = s.send(many, false);
  EXPECT_FALSE(alive);
  EXPECT_EQ(s.session.stats().floods, 1u);
}

TEST(Http2Frames, Case21PingsFromAReadingPeerAreFine) {
  RawServer s;
  for (int i = 0; i < 30; ++i) {
    std::string pings;
    for (int j = 0; j < 100; ++j) pings += ping(static_cast<uint64_t>(j));
    ASSERT_TRUE(s.send(pings));  // drained each time
  }
  EXPECT_EQ(s.count(kPing), 3000u);
}

TEST(Http2Frames, Case21OversizedSettings) {
  RawServer s;
  std::vector<std::pair<uint16_t, uint32_t>> entries;
  for (int i = 0; i < 1000; ++i) entries.emplace_back(static_cast<uint16_t>(0x100 + i), 1);
  EXPECT_FALSE(s.send(settings(entries)));
  const Frame* goaway = s.find(kGoaway);
  ASSERT_NE(goaway, nullptr);
  EXPECT_EQ(goaway->goaway_code(), kH2EnhanceYourCalm);
}

// Case 22: empty frames, WINDOW_UPDATE and PRIORITY floods close at their limits.
TEST(Http2Frames, Case22EmptyDataFrames) {
  RawServer s;
  Fields post = get_fields();
  post[0].second = "POST";
  ASSERT_TRUE(s.send(headers_frame(1, post, false)));
  ASSERT_TRUE(s.send(frame(kData, 0, 1, "")));   // one is tolerated
  ASSERT_TRUE(s.send(frame(kData, 0, 1, "x")));  // and the count restarts after a real frame
  ASSERT_TRUE(s.send(frame(kData, 0, 1, "")));
  EXPECT_FALSE(s.send(frame(kData, 0, 1, "")));
  EXPECT_EQ(s.session.stats().floods, 1u);
  ASSERT_NE(s.find(kGoaway), nullptr);
  EXPECT_EQ(s.find(kGoaway)->goaway_code(), kH2EnhanceYourCalm);
}

TEST(Http2Frames, Case22WindowUpdateFlood) {
  RawServer s;
  std::string wus;
  for (int i = 0; i < 10; ++i) wus += window_update(0, 1);
  bool alive = true;
  int batches = 0;
  for (; batches < 100 && alive; ++batches) alive = s.send(wus);
  EXPECT_FALSE(alive);
  EXPECT_EQ(batches, 1);  // 5 + 2 * (0 streams + 10 * 0 DATA frames sent) = 5 allowed
  EXPECT_EQ(s.session.stats().floods, 1u);
}

TEST(Http2Frames, Case22WindowUpdatesScaleWithDataSent) {
  RawServer s;
  s.handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    s.session.submit_response(id, 200, {}, false);
    s.session.submit_data(id, std::string(40000, 'x'), true);
  };
  ASSERT_TRUE(s.send(headers_frame(1, get_fields())));
  ASSERT_EQ(s.data_bytes(1), 40000u);  // 3 DATA frames: 5 + 2 * (1 + 10 * 3) = 67 allowed
  std::string wus;
  for (int i = 0; i < 60; ++i) wus += window_update(0, 1);
  EXPECT_TRUE(s.send(wus));
  EXPECT_FALSE(s.send(wus));
}

TEST(Http2Frames, Case22PriorityFlood) {
  RawServer s;
  std::string prios;
  for (int i = 0; i < 50; ++i) prios += priority(3, 0);
  EXPECT_TRUE(s.send(prios + prios));  // 100 per (1 + streams opened)
  EXPECT_FALSE(s.send(priority(3, 0)));
  EXPECT_EQ(s.session.stats().floods, 1u);
}

// Case 23: streams over max_concurrent_streams are refused one by one; compliant streams are
// unaffected and a freed slot can be used again.
TEST(Http2Frames, Case23MaxConcurrentStreams) {
  RawServer s;
  s.handler.auto_consume = true;
  Fields post = get_fields();
  post[0].second = "POST";
  std::string bytes;
  for (uint32_t i = 0; i < 101; ++i) bytes += headers_frame(1 + 2 * i, post, false);
  ASSERT_TRUE(s.send(bytes));
  EXPECT_EQ(s.handler.streams.size(), 100u);
  EXPECT_FALSE(s.handler.streams.count(201));
  const Frame* rst = s.find(kRstStream, 201);
  ASSERT_NE(rst, nullptr);
  EXPECT_EQ(rst->rst_code(), kH2RefusedStream);
  EXPECT_EQ(s.count(kRstStream), 1u);
  EXPECT_EQ(s.session.stats().streams_refused, 1u);
  EXPECT_EQ(s.find(kGoaway), nullptr);

  // Stream 1 completes normally; then a new stream fits again.
  ASSERT_TRUE(s.send(frame(kData, kEndStream, 1, "body")));
  EXPECT_EQ(s.handler.streams[1].body, "body");
  ASSERT_TRUE(s.session.submit_response(1, 200, {}, true));
  s.drain();
  EXPECT_TRUE(s.handler.streams[1].closed);
  ASSERT_TRUE(s.send(headers_frame(203, get_fields())));
  EXPECT_TRUE(s.handler.streams[203].has_request);
  ASSERT_TRUE(s.send(headers_frame(205, get_fields())));
  EXPECT_FALSE(s.handler.streams.count(205));
  EXPECT_EQ(s.session.stats().streams_refused, 2u);
}

// Refusals are also enforced before the client acknowledged our SETTINGS.
TEST(Http2Frames, Case23RefusedBeforeSettingsAck) {
  Http2Options o;
  o.max_concurrent_streams = 2;
  RawServer s(o, /*ack_settings=*/false);
  ASSERT_TRUE(s.send(headers_frame(1, get_fields(), false) + headers_frame(3, get_fields(), false) +
                     headers_frame(5, get_fields(), false)));
  EXPECT_EQ(s.handler.streams.size(), 2u);
  ASSERT_NE(s.find(kRstStream, 5), nullptr);
  EXPECT_EQ(s.find(kRstStream, 5)->rst_code(), kH2RefusedStream);
}

// Case 24: a zero-window reader gets exactly its window of a large response; the rest waits in
// the stream's queue (bounded: submit_data says kFull and the producer, the upstream read, pauses
// until on_send_ready).
TEST(Http2Frames, Case24ZeroWindowReader) {
  RawServer s;
  const size_t total = 1024 * 1024;
  size_t produced = 0;
  SubmitResult last = SubmitResult::kOk;
  auto produce = [&](int32_t id) {
    last = SubmitResult::kOk;
    while (last == SubmitResult::kOk && produced < total) {
      last = s.session.submit_data(id, std::string(16 * 1024, 'z'), produced + 16 * 1024 == total);
      produced += 16 * 1024;
    }
  };
  s.handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    s.session.submit_response(id, 200, {}, false);
    produce(id);
  };
  s.handler.on_ready = produce;
  ASSERT_TRUE(s.send(headers_frame(1, get_fields())));
  for (int i = 0; i < 10; ++i) s.drain();
  EXPECT_EQ(last, SubmitResult::kFull);
  EXPECT_EQ(s.data_bytes(1), 65535u);  // the client's default window, never updated
  const size_t queued = s.session.stream_send_buffered(1);
  // Between the resume point (half) and the limit plus one chunk: never more.
  EXPECT_GT(queued, kH2DefaultStreamSendBuffer / 2);
  EXPECT_LE(queued, kH2DefaultStreamSendBuffer + 16 * 1024);
  EXPECT_LE(produced, 65535 + kH2DefaultStreamSendBuffer + 16 * 1024);
  // Opening the windows lets everything out.
  for (int i = 0; i < 20 && s.data_bytes(1) < total; ++i) {
    ASSERT_TRUE(s.send(window_update(1, 256 * 1024) + window_update(0, 256 * 1024)));
  }
  EXPECT_EQ(s.data_bytes(1), total);
  EXPECT_EQ(s.session.stream_send_buffered(1), 0u);
}

// Case 25: a bad preface or garbage frames end the connection with GOAWAY(PROTOCOL_ERROR).
TEST(Http2Frames, Case25BadPreface) {
  RecordingHandler h;
  Http2Session s(Http2Session::Role::kServer, h);
  EXPECT_FALSE(s.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(s.close_reason(), "bad_preface");
  std::vector<Frame> out = parse_frames(s.pending_output());
  bool goaway = false;
  for (const Frame& f : out) {
    if (f.type == kGoaway) {
      goaway = true;
      EXPECT_EQ(f.goaway_code(), kH2ProtocolError);
    }
  }
  EXPECT_TRUE(goaway);
  EXPECT_FALSE(s.want_read());
}

TEST(Http2Frames, Case25FirstFrameNotSettings) {
  RecordingHandler h;
  Http2Session s(Http2Session::Role::kServer, h);
  EXPECT_FALSE(s.feed(std::string(kHttp2Preface) + ping()));
  std::vector<Frame> out = parse_frames(s.pending_output());
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back().type, kGoaway);
  EXPECT_EQ(out.back().goaway_code(), kH2ProtocolError);
}

TEST(Http2Frames, Case25GarbageFrames) {
  struct Garbage {
    const char* name;
    std::string bytes;
    uint32_t code;
  };
  const std::vector<Garbage> cases = {
      {"PING of 7 bytes", frame(kPing, 0, 0, "1234567"), kH2FrameSizeError},
      {"DATA on stream 0", frame(kData, 0, 0, "x"), kH2ProtocolError},
      {"HEADERS on stream 0", headers_frame(0, get_fields()), kH2ProtocolError},
      {"even stream id from client", headers_frame(2, get_fields()), kH2ProtocolError},
      {"frame over max frame size", frame(kData, 0, 1, std::string(20000, 'x')), kH2FrameSizeError},
      {"WINDOW_UPDATE of 0 on the connection", window_update(0, 0), kH2ProtocolError},
      {"SETTINGS on a stream", frame(kSettings, 0, 1, ""), kH2ProtocolError},
      {"PUSH_PROMISE from a client", frame(kPushPromise, kEndHeaders, 1, std::string(4, '\0')),
       kH2ProtocolError},
      {"HPACK garbage", frame(kHeaders, kEndHeaders | kEndStream, 1, "\xff\xff\xff\xff\xff"),
       kH2CompressionError},
      {"DATA on an idle stream", frame(kData, 0, 7, "x"), kH2ProtocolError},
  };
  for (const Garbage& g : cases) {
    SCOPED_TRACE(g.name);
    RawServer s;
    EXPECT_FALSE(s.send(g.bytes));
    const Frame* goaway = s.find(kGoaway);
    ASSERT_NE(goaway, nullptr);
    EXPECT_EQ(goaway->goaway_code(), g.code);
    EXPECT_FALSE(s.session.want_read());
    EXPECT_GE(s.session.stats().protocol_errors, 1u);
    EXPECT_NE(s.session.close_reason(), "");
  }
}

// HEADERS for a stream id below one already used opens nothing (nghttp2 cannot tell it from a
// late frame on a stream it closed, which RFC 9113 §5.1 says to ignore).
TEST(Http2Frames, HeadersForAnOlderStreamIdAreIgnored) {
  RawServer s;
  ASSERT_TRUE(s.send(headers_frame(5, get_fields()) + headers_frame(3, get_fields())));
  EXPECT_TRUE(s.handler.streams[5].has_request);
  EXPECT_FALSE(s.handler.streams.count(3));
  expect_still_serving(s, 7);
}

TEST(Http2Frames, UnknownFrameTypesAreIgnored) {
  RawServer s;
  ASSERT_TRUE(s.send(frame(0xfa, 0, 0, "whatever") + frame(0xfb, 0xff, 1, "")));
  expect_still_serving(s, 1);
}

TEST(Http2Frames, PaddedDataIsDeliveredWithoutPadding) {
  RawServer s;
  s.handler.auto_consume = false;
  Fields post = get_fields();
  post[0].second = "POST";
  ASSERT_TRUE(s.send(headers_frame(1, post, false)));
  std::string padded(1, '\x05');
  padded += "hello";
  padded += std::string(5, '\0');
  ASSERT_TRUE(s.send(frame(kData, kPadded | kEndStream, 1, padded)));
  EXPECT_EQ(s.handler.streams[1].body, "hello");
  EXPECT_TRUE(s.handler.streams[1].body_end);
}

TEST(Http2Frames, ExtendedConnectWhenEnabled) {
  Http2Options o;
  o.enable_connect_protocol = true;
  RawServer s(o);
  ASSERT_TRUE(s.send(headers_frame(1,
                                   {{":method", "CONNECT"},
                                    {":protocol", "websocket"},
                                    {":scheme", "https"},
                                    {":path", "/chat"},
                                    {":authority", "example.com"},
                                    {"sec-websocket-version", "13"}},
                                   false)));
  const StreamLog& log = s.handler.streams[1];
  ASSERT_TRUE(log.has_request);
  EXPECT_EQ(log.request.method, "CONNECT");
  EXPECT_TRUE(log.request.upgrade);
  EXPECT_EQ(log.request.upgrade_protocol, "websocket");
  EXPECT_EQ(log.request.path, "/chat");

  RawServer off;  // not advertised: :protocol is malformed
  ASSERT_TRUE(off.send(headers_frame(1,
                                     {{":method", "CONNECT"},
                                      {":protocol", "websocket"},
                                      {":scheme", "https"},
                                      {":path", "/chat"},
                                      {":authority", "example.com"}},
                                     false)));
  EXPECT_FALSE(off.handler.streams[1].has_request);
}

TEST(Http2Frames, PlainConnectUsesAuthorityAsTarget) {
  RawServer s;
  ASSERT_TRUE(s.send(headers_frame(1, {{":method", "CONNECT"}, {":authority", "db:5432"}}, false)));
  ASSERT_TRUE(s.handler.streams[1].has_request);
  EXPECT_EQ(s.handler.streams[1].request.target, "db:5432");
  EXPECT_EQ(s.handler.streams[1].request.path, "");
}

}  // namespace
}  // namespace proxenos::http
