// HTTP/2 client session (the upstream side) against hand-built server frames: both peers are
// untrusted (edge-hardening.md §1), so a misbehaving upstream must cost one stream or one
// connection, never the process.

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <memory>
#include <string>

#include "http/http2_session.h"
#include "http2_test_util.h"

namespace proxenos::http {
namespace {

using namespace h2test;  // NOLINT: frame builders

struct RawUpstream {
  explicit RawUpstream(const Http2Options& options = {})
      : session(Http2Session::Role::kClient, handler, options) {
    handler.session = &session;
  }
  void start(const std::string& server_settings = settings({})) {
    drain();
    EXPECT_EQ(wire.substr(0, kHttp2Preface.size()), kHttp2Preface);
    parsed = kHttp2Preface.size();
    parse();
    send(server_settings + settings_ack());
  }
  bool send(std::string_view bytes) {
    alive = session.feed(bytes) && alive;
    drain();
    return alive;
  }
  void drain() {
    for (std::string_view out = session.pending_output(); !out.empty();
         out = session.pending_output()) {
      wire.append(out);
      session.consume_output(out.size());
    }
    if (parsed > 0) parse();
  }
  void parse() {
    for (Frame& f : parse_frames(std::string_view(wire).substr(parsed))) {
      parsed += 9 + f.payload.size();
      received.push_back(std::move(f));
    }
  }
  const Frame* find(uint8_t type, int32_t stream = -1) const {
    for (const Frame& f : received) {
      if (f.type == type && (stream < 0 || f.stream == static_cast<uint32_t>(stream))) return &f;
    }
    return nullptr;
  }
  int32_t get(std::string_view path = "/") {
    const int32_t id = session.submit_request(get_request(path), true);
    drain();
    return id;
  }

  RecordingHandler handler;
  Http2Session session;
  bool alive = true;
  std::string wire;
  size_t parsed = 0;
  std::vector<Frame> received;
};

Fields status(std::string code) {
  return {{":status", std::move(code)}};
}

TEST(Http2Client, ConnectionPrefaceAndSettings) {
  RawUpstream u;
  u.start();
  ASSERT_FALSE(u.received.empty());
  EXPECT_EQ(u.received[0].type, kSettings);
  // ENABLE_PUSH=0 is among our settings.
  bool push_off = false;
  const std::string& p = u.received[0].payload;
  for (size_t i = 0; i + 6 <= p.size(); i += 6) {
    if (p[i] == 0 && p[i + 1] == 0x2) push_off = u.received[0].u32(i + 2) == 0;
  }
  EXPECT_TRUE(push_off);
}

// One decoded field of a header block and the bytes its representation took.
struct DecodedField {
  std::string name, value;
  bool never_indexed = false;
  size_t bytes = 0;
};

std::vector<DecodedField> inflate_block(nghttp2_hd_inflater* inflater, std::string_view block) {
  std::vector<DecodedField> out;
  auto in = reinterpret_cast<const uint8_t*>(block.data());
  size_t left = block.size();
  size_t taken = 0;
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t n = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, in, left, 1);
    if (n < 0) {
      ADD_FAILURE() << "undecodable block";
      return out;
    }
    in += n;
    left -= static_cast<size_t>(n);
    taken += static_cast<size_t>(n);
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) != 0) {
      out.push_back({std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                     std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen),
                     (nv.flags & NGHTTP2_NV_FLAG_NO_INDEX) != 0, taken});
      taken = 0;
    }
    if ((flags & NGHTTP2_HD_INFLATE_FINAL) != 0) break;
  }
  nghttp2_hd_inflate_end_headers(inflater);
  return out;
}

TEST(Http2Client, RequestIdNameIsIndexedOnceItsValuesNever) {
  RawUpstream u;
  u.start();
  std::vector<std::string> blocks;
  for (const char* id : {"11111111-aaaa", "22222222-bbbb", "33333333-cccc"}) {
    const HeaderList fields = {{"x-request-id", id}, {"accept", "*/*"}};
    const Http2Request request = get_request("/", &fields);
    const int32_t stream = u.session.submit_request(request, true);
    ASSERT_GT(stream, 0);
    u.drain();
    const Frame* f = u.find(kHeaders, stream);
    ASSERT_NE(f, nullptr);
    blocks.push_back(f->payload);
  }
  nghttp2_hd_inflater* raw = nullptr;
  ASSERT_EQ(nghttp2_hd_inflate_new(&raw), 0);
  std::unique_ptr<nghttp2_hd_inflater, decltype(&nghttp2_hd_inflate_del)> inflater(
      raw, &nghttp2_hd_inflate_del);
  std::vector<DecodedField> ids;
  for (const std::string& b : blocks) {
    for (DecodedField& f : inflate_block(inflater.get(), b)) {
      if (f.name == "x-request-id") ids.push_back(std::move(f));
    }
  }
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0].value, "11111111-aaaa");
  EXPECT_EQ(ids[1].value, "22222222-bbbb");
  EXPECT_EQ(ids[2].value, "33333333-cccc");
  // The first goes into the dynamic table (name and value); the later ones stay out of it but
  // name it by index instead of spelling "x-request-id" again.
  EXPECT_FALSE(ids[0].never_indexed);
  EXPECT_TRUE(ids[1].never_indexed);
  EXPECT_TRUE(ids[2].never_indexed);
  EXPECT_LE(ids[1].bytes + 8, ids[0].bytes);
  EXPECT_LE(ids[2].bytes + 8, ids[0].bytes);
  size_t in_table = 0;
  const size_t entries = nghttp2_hd_inflate_get_num_table_entries(inflater.get());
  for (size_t i = 62; i < entries + 62; ++i) {  // dynamic entries follow the 61 static ones
    const nghttp2_nv* e = nghttp2_hd_inflate_get_table_entry(inflater.get(), i);
    if (e != nullptr &&
        std::string_view(reinterpret_cast<const char*>(e->name), e->namelen) == "x-request-id") {
      ++in_table;
    }
  }
  EXPECT_EQ(in_table, 1u);
}

TEST(Http2Client, InformationalFinalAndTrailersFromRawFrames) {
  RawUpstream u;
  u.start();
  const int32_t id = u.get();
  ASSERT_EQ(id, 1);
  ASSERT_TRUE(u.send(frame(kHeaders, kEndHeaders, 1, block(status("103"))) +
                     frame(kHeaders, kEndHeaders, 1,
                           block({{":status", "200"}, {"content-type", "application/grpc"}})) +
                     frame(kData, 0, 1, "payload") +
                     frame(kHeaders, kEndHeaders | kEndStream, 1, block({{"grpc-status", "0"}}))));
  const StreamLog& s = u.handler.streams[1];
  ASSERT_EQ(s.responses.size(), 2u);
  EXPECT_EQ(s.responses[0].status, 103);
  EXPECT_EQ(s.responses[1].status, 200);
  EXPECT_EQ(s.responses[1].framing, BodyFraming::kChunked);
  EXPECT_EQ(s.body, "payload");
  EXPECT_TRUE(s.has_trailers);
  EXPECT_EQ(s.trailers, (Fields{{"grpc-status", "0"}}));
  EXPECT_EQ(s.close_code, kH2NoError);
}

TEST(Http2Client, MalformedResponsesResetTheStream) {
  // The session checks these itself (nghttp2's HTTP messaging is off).
  const std::vector<std::pair<const char*, Fields>> cases = {
      {"connection header", {{":status", "200"}, {"connection", "close"}}},
      {"keep-alive header", {{":status", "200"}, {"keep-alive", "timeout=5"}}},
      {"proxy-connection header", {{":status", "200"}, {"proxy-connection", "close"}}},
      {"transfer-encoding header", {{":status", "200"}, {"transfer-encoding", "chunked"}}},
      {"upgrade header", {{":status", "200"}, {"upgrade", "h2c"}}},
      {"te other than trailers", {{":status", "200"}, {"te", "gzip"}}},
      {"missing :status", {{"content-type", "text/plain"}}},
      {"bad :status", {{":status", "2000"}}},
      {"two-digit :status", {{":status", "20"}}},
      {"non-digit :status", {{":status", "2x0"}}},
      {"zero-padded :status", {{":status", "0200"}}},
      {"two :status", {{":status", "200"}, {":status", "204"}}},
      {"pseudo after regular", {{"x-a", "1"}, {":status", "200"}}},
      {"request pseudo", {{":status", "200"}, {":path", "/"}}},
      {"empty pseudo name", {{":status", "200"}, {":", "x"}}},
      {"uppercase name", {{":status", "200"}, {"X-Upper", "1"}}},
      {"space in name", {{":status", "200"}, {"x a", "1"}}},
      {"CRLF in value", {{":status", "200"}, {"x-a", "a\r\nb"}}},
      {"NUL in value", {{":status", "200"}, {"x-a", std::string("a\0b", 3)}}},
      {"DEL in value", {{":status", "200"}, {"x-a", "a\x7f"}}},
      {"101 in HTTP/2", {{":status", "101"}}},
      {"content-length twice",
       {{":status", "200"}, {"content-length", "1"}, {"content-length", "1"}}},
      {"bad content-length", {{":status", "200"}, {"content-length", "1x"}}},
      {"content-length in 1xx", {{":status", "103"}, {"content-length", "0"}}},
      {"content-length 5 in 204", {{":status", "204"}, {"content-length", "5"}}},
  };
  for (const auto& [name, fields] : cases) {
    SCOPED_TRACE(name);
    RawUpstream u;
    u.start();
    const int32_t id = u.get();
    ASSERT_TRUE(u.send(frame(kHeaders, kEndHeaders, static_cast<uint32_t>(id), block(fields))));
    const StreamLog& s = u.handler.streams[id];
    EXPECT_TRUE(s.responses.empty());
    EXPECT_TRUE(s.closed);
    EXPECT_EQ(s.close_code, kH2ProtocolError);
    ASSERT_NE(u.find(kRstStream, id), nullptr);
    // The connection still carries new requests.
    EXPECT_TRUE(u.session.can_open_stream());
  }
}

TEST(Http2Client, ResponseFramingRulesResetTheStream) {
  // Frame sequences HTTP/2 forbids in a response (RFC 9113 §8.1): the stream is reset.
  const Fields ok_head = {{":status", "200"}, {"content-length", "3"}};
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"DATA after an interim head",
       frame(kHeaders, kEndHeaders, 1, block(status("100"))) + frame(kData, kEndStream, 1, "a")},
      {"interim head ending the stream",
       frame(kHeaders, kEndHeaders | kEndStream, 1, block(status("103")))},
      {"body shorter than content-length",
       frame(kHeaders, kEndHeaders, 1, block(ok_head)) + frame(kData, kEndStream, 1, "ab")},
      {"head ending the stream before its body",
       frame(kHeaders, kEndHeaders | kEndStream, 1, block(ok_head))},
      {"trailers before the body is whole",
       frame(kHeaders, kEndHeaders, 1, block(ok_head)) + frame(kData, 0, 1, "a") +
           frame(kHeaders, kEndHeaders | kEndStream, 1, block({{"grpc-status", "0"}}))},
      {"trailers not ending the stream",
       frame(kHeaders, kEndHeaders, 1, block(status("200"))) +
           frame(kHeaders, kEndHeaders, 1, block({{"grpc-status", "0"}}))},
      {"pseudo-header in trailers",
       frame(kHeaders, kEndHeaders, 1, block(status("200"))) +
           frame(kHeaders, kEndHeaders | kEndStream, 1, block({{":status", "200"}}))},
      {"second final head", frame(kHeaders, kEndHeaders, 1, block(status("200"))) +
                                frame(kHeaders, kEndHeaders | kEndStream, 1, block(status("200")))},
      {"body of a 204",
       frame(kHeaders, kEndHeaders, 1, block(status("204"))) + frame(kData, kEndStream, 1, "x")},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    RawUpstream u;
    u.start();
    const int32_t id = u.get();
    ASSERT_EQ(id, 1);
    ASSERT_TRUE(u.send(bytes));
    const StreamLog& s = u.handler.streams[id];
    EXPECT_FALSE(s.body_end);
    EXPECT_TRUE(s.closed);
    EXPECT_EQ(s.close_code, kH2ProtocolError);
    EXPECT_GE(u.session.stats().messaging_errors, 1u);
    EXPECT_TRUE(u.session.can_open_stream());  // one stream lost, not the connection
  }
}

TEST(Http2Client, ResponsesWithinTheRulesPass) {
  struct Case {
    const char* name;
    bool head_request;
    std::string bytes;
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"body as long as content-length", false,
       frame(kHeaders, kEndHeaders, 1, block({{":status", "200"}, {"content-length", "3"}})) +
           frame(kData, 0, 1, "ab") + frame(kData, kEndStream, 1, "c"),
       "abc", 200},
      {"HEAD response with a content-length and no body", true,
       frame(kHeaders, kEndHeaders | kEndStream, 1,
             block({{":status", "200"}, {"content-length", "42"}})),
       "", 200},
      {"304 with a content-length", false,
       frame(kHeaders, kEndHeaders | kEndStream, 1,
             block({{":status", "304"}, {"content-length", "42"}})),
       "", 304},
      {"204 with content-length 0 (dropped)", false,
       frame(kHeaders, kEndHeaders | kEndStream, 1,
             block({{":status", "204"}, {"content-length", "0"}})),
       "", 204},
      {"interim heads, then the final one and trailers", false,
       frame(kHeaders, kEndHeaders, 1, block(status("100"))) +
           frame(kHeaders, kEndHeaders, 1, block(status("103"))) +
           frame(kHeaders, kEndHeaders, 1, block({{":status", "200"}, {"te", "Trailers"}})) +
           frame(kData, 0, 1, "xy") +
           frame(kHeaders, kEndHeaders | kEndStream, 1, block({{"grpc-status", "0"}})),
       "xy", 200},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawUpstream u;
    u.start();
    const int32_t id =
        u.session.submit_request(get_request("/", nullptr, c.head_request ? "HEAD" : "GET"), true);
    u.drain();
    ASSERT_TRUE(u.send(c.bytes));
    const StreamLog& s = u.handler.streams[id];
    ASSERT_FALSE(s.responses.empty());
    EXPECT_EQ(s.responses.back().status, c.status);
    if (c.status == 204) {
      EXPECT_EQ(find_header(s.responses.back().headers, "content-length"), "");
    }
    EXPECT_EQ(s.body, c.body);
    EXPECT_TRUE(s.closed);
    EXPECT_EQ(s.close_code, kH2NoError);
    EXPECT_EQ(u.session.stats().messaging_errors, 0u);
  }
}

TEST(Http2Client, OversizedResponseHeadersResetTheStream) {
  RawUpstream u;
  u.start();
  const int32_t id = u.get();
  std::string b = block(status("200"));
  for (int i = 0; i < 70; ++i) b += lit("x-h" + std::to_string(i), std::string(1000, 'v'));
  std::string bytes;
  for (size_t off = 0; off < b.size(); off += 16000) {
    const bool first = off == 0;
    const bool last = off + 16000 >= b.size();
    bytes +=
        frame(first ? kHeaders : kContinuation, last ? kEndHeaders : 0, 1, b.substr(off, 16000));
  }
  ASSERT_TRUE(u.send(bytes));
  EXPECT_TRUE(u.handler.streams[id].responses.empty());
  EXPECT_EQ(u.handler.streams[id].close_code, kH2ProtocolError);
  EXPECT_EQ(u.session.stats().header_overflows, 1u);
}

TEST(Http2Client, ResponseLongerThanContentLength) {
  RawUpstream u;
  u.start();
  const int32_t id = u.get();
  ASSERT_TRUE(
      u.send(frame(kHeaders, kEndHeaders, 1, block({{":status", "200"}, {"content-length", "3"}})) +
             frame(kData, kEndStream, 1, "abcd")));
  EXPECT_FALSE(u.handler.streams[id].body_end);
  EXPECT_EQ(u.handler.streams[id].close_code, kH2ProtocolError);
}

// CVE-2021-32780: GOAWAY and SETTINGS(MAX_CONCURRENT_STREAMS=0) in one read.
TEST(Http2Client, Case34GoawayAndZeroStreamsInOneRead) {
  RawUpstream u;
  u.start();
  const int32_t a = u.get("/a");
  const int32_t b = u.get("/b");
  std::string gp;
  put32(gp, static_cast<uint32_t>(a));
  put32(gp, kH2NoError);
  u.send(frame(kGoaway, 0, 0, gp) + settings({{0x3, 0}}));
  EXPECT_EQ(u.handler.goaways, 1);
  EXPECT_EQ(u.handler.goaway_last, a);
  EXPECT_FALSE(u.session.can_open_stream());
  EXPECT_EQ(u.session.submit_request(get_request("/c"), true), -1);
  EXPECT_TRUE(u.handler.streams[b].closed);
  EXPECT_EQ(u.handler.streams[b].close_code, kH2RefusedStream);  // never processed: retryable
  EXPECT_FALSE(u.handler.streams[a].closed);
  // Stream a still completes; then the connection is done.
  u.send(frame(kHeaders, kEndHeaders | kEndStream, static_cast<uint32_t>(a), block(status("204"))));
  EXPECT_EQ(u.handler.streams[a].close_code, kH2NoError);
  EXPECT_FALSE(u.session.want_read());
  EXPECT_FALSE(u.session.want_write());
}

// CVE-2023-35945: RST_STREAM followed by GOAWAY must close the stream exactly once.
TEST(Http2Client, Case34ResetThenGoaway) {
  RawUpstream u;
  u.start();
  const int32_t a = u.get();
  std::string gp;
  put32(gp, 0);
  put32(gp, kH2InternalError);
  u.send(rst_stream(static_cast<uint32_t>(a), kH2InternalError) + frame(kGoaway, 0, 0, gp));
  EXPECT_TRUE(u.handler.streams[a].reset_received);
  EXPECT_EQ(u.handler.streams[a].close_code, kH2InternalError);
  EXPECT_EQ(u.handler.closes, 1);
  EXPECT_EQ(u.session.open_streams(), 0u);
}

TEST(Http2Client, HonoursServerMaxConcurrentStreams) {
  RawUpstream u;
  u.start(settings({{0x3, 1}}));
  EXPECT_EQ(u.session.remote_max_concurrent_streams(), 1u);
  EXPECT_TRUE(u.session.can_open_stream());
  const int32_t a = u.get();
  EXPECT_FALSE(u.session.can_open_stream());
  const int32_t b = u.get();  // queued inside nghttp2, not sent
  EXPECT_EQ(u.find(kHeaders, b), nullptr);
  u.send(frame(kHeaders, kEndHeaders | kEndStream, static_cast<uint32_t>(a), block(status("200"))));
  EXPECT_NE(u.find(kHeaders, b), nullptr);
}

// The upstream's SETTINGS may reach us in pieces: its stream limit is known only once the
// whole frame was read (Http2Upstream waits for this before submitting any request).
TEST(Http2Client, SettingsSplitAcrossReadsAreKnownOnlyWhenWhole) {
  RawUpstream u;
  u.drain();
  u.parsed = kHttp2Preface.size();
  EXPECT_FALSE(u.session.remote_settings_received());
  const std::string whole = settings({{0x3, 2}, {0x4, 1 << 20}});
  for (size_t i = 0; i + 1 < whole.size(); ++i) {
    ASSERT_TRUE(u.send(whole.substr(i, 1))) << i;
    EXPECT_FALSE(u.session.remote_settings_received()) << i;
  }
  ASSERT_TRUE(u.send(whole.substr(whole.size() - 1)));
  EXPECT_TRUE(u.session.remote_settings_received());
  EXPECT_EQ(u.session.remote_max_concurrent_streams(), 2u);
  // A SETTINGS ACK (of ours) is not the server's SETTINGS.
  RawUpstream v;
  v.drain();
  v.parsed = kHttp2Preface.size();
  v.send(settings_ack());
  EXPECT_FALSE(v.session.remote_settings_received());
}

TEST(Http2Client, PushPromiseIsAConnectionError) {
  RawUpstream u;
  u.start();
  u.get();
  std::string pp;
  put32(pp, 2);
  pp += block(get_fields());
  EXPECT_FALSE(u.send(frame(kPushPromise, kEndHeaders, 1, pp)));
  ASSERT_NE(u.find(kGoaway), nullptr);
  EXPECT_EQ(u.find(kGoaway)->goaway_code(), kH2ProtocolError);
}

TEST(Http2Client, DataBeyondTheStreamWindowResetsTheStream) {
  RawUpstream u;
  u.handler.auto_consume = false;
  u.start();
  const int32_t id = u.get();
  std::string bytes = frame(kHeaders, kEndHeaders, static_cast<uint32_t>(id), block(status("200")));
  for (int i = 0; i < 5; ++i) {
    bytes += frame(kData, 0, static_cast<uint32_t>(id), std::string(16384, 'x'));
  }
  EXPECT_TRUE(u.send(bytes));  // 80 KiB into a 64 KiB stream window
  ASSERT_NE(u.find(kRstStream, id), nullptr);
  EXPECT_EQ(u.find(kRstStream, id)->rst_code(), kH2FlowControlError);
  EXPECT_EQ(u.handler.streams[id].close_code, kH2FlowControlError);
  EXPECT_EQ(u.handler.streams[id].body.size(), 65536u);
}

TEST(Http2Client, DataBeyondTheConnectionWindowIsAConnectionError) {
  Http2Options o;
  o.connection_window = 65535;  // the protocol's initial value: no WINDOW_UPDATE raises it
  RawUpstream u(o);
  u.handler.auto_consume = false;
  u.start();
  std::string bytes;
  for (uint32_t i = 0; i < 2; ++i) {
    const int32_t id = u.get();
    bytes += frame(kHeaders, kEndHeaders, static_cast<uint32_t>(id), block(status("200")));
    bytes += frame(kData, 0, static_cast<uint32_t>(id), std::string(16384, 'x'));
    bytes += frame(kData, 0, static_cast<uint32_t>(id), std::string(16384, 'x'));
    bytes += frame(kData, 0, static_cast<uint32_t>(id), std::string(16384, 'x'));
  }
  EXPECT_FALSE(u.send(bytes));  // 96 KiB into a 64 KiB connection window
  ASSERT_NE(u.find(kGoaway), nullptr);
  EXPECT_EQ(u.find(kGoaway)->goaway_code(), kH2FlowControlError);
}

TEST(Http2Client, ConnectionClosedFailsOpenStreams) {
  RawUpstream u;
  u.start();
  const int32_t a = u.get();
  const int32_t b = u.get();
  u.session.connection_closed();
  EXPECT_EQ(u.handler.streams[a].close_code, kH2Cancel);
  EXPECT_EQ(u.handler.streams[b].close_code, kH2Cancel);
  EXPECT_EQ(u.handler.closes, 2);
  EXPECT_EQ(u.session.close_reason(), "connection closed");
}

}  // namespace
}  // namespace proxenos::http
