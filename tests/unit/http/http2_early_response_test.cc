// HTTP/2 server session: a response that ends before the request does (a gRPC trailers-only
// answer at the request head, an early 404/413). The rest of the request is still taken and
// acknowledged until the client's END_STREAM, with a frame following that END_STREAM (curl 7.88
// waits for input to notice the stream it closed), and only up to max_drain_after_response.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/http2_session.h"
#include "http2_test_util.h"

namespace proxenos::http {
namespace {

using namespace h2test;  // NOLINT: frame builders

Fields grpc_post(std::string path = "/nowhere.Svc/Call") {
  return {{":method", "POST"},
          {":scheme", "http"},
          {":path", std::move(path)},
          {":authority", "example.com"},
          {"content-type", "application/grpc"},
          {"te", "trailers"}};
}

std::string data_frame(uint32_t stream, size_t n, bool end_stream) {
  return frame(kData, end_stream ? kEndStream : 0, stream, std::string(n, 'x'));
}

// What the server wrote in answer to the last send().
std::vector<Frame> answer(const RawServer& s, size_t before) {
  return {s.received.begin() + static_cast<long>(before), s.received.end()};
}

size_t count(const std::vector<Frame>& frames, uint8_t type, uint32_t stream) {
  size_t n = 0;
  for (const Frame& f : frames) n += f.type == type && f.stream == stream ? 1 : 0;
  return n;
}

// Answers every request at its head with a trailers-only gRPC response (HEADERS + END_STREAM).
void answer_at_head(RawServer& s) {
  s.handler.on_request = [&s](int32_t id, const RequestHead&, bool) {
    OwnedHeaders h({{"content-type", "application/grpc"}, {"grpc-status", "12"}});
    ASSERT_TRUE(s.session.submit_response(id, 200, h.list, true));
  };
}

TEST(Http2EarlyResponse, UploadAfterTheAnswerIsTakenAndItsEndIsFollowedByAFrame) {
  RawServer s;
  answer_at_head(s);
  ASSERT_TRUE(s.send(headers_frame(1, grpc_post(), false)));
  const Frame* head = s.find(kHeaders, 1);
  ASSERT_NE(head, nullptr);
  EXPECT_TRUE(head->flags & kEndStream);

  // The client goes on uploading: delivered (and acknowledged) as usual, no reset.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s.send(data_frame(1, 16 * 1024, false)));
  EXPECT_EQ(s.handler.streams[1].body.size(), 64u * 1024);
  EXPECT_GE(s.count(kWindowUpdate), 2u);  // the stream window reopened as the bytes came
  EXPECT_EQ(s.count(kRstStream), 0u);
  EXPECT_EQ(s.count(kPing), 0u);

  // Its last DATA (END_STREAM, with bytes whose stream WINDOW_UPDATE nghttp2 drops as the stream
  // closes) must still be followed by a frame: here nothing else is due, so a PING.
  const size_t before = s.received.size();
  ASSERT_TRUE(s.send(data_frame(1, 16 * 1024, true)));
  const std::vector<Frame> after = answer(s, before);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].type, kPing);
  EXPECT_EQ(after[0].flags & kAck, 0);
  const StreamLog& log = s.handler.streams[1];
  EXPECT_TRUE(log.body_end);
  EXPECT_TRUE(log.closed);
  EXPECT_EQ(log.close_code, kH2NoError);
  EXPECT_EQ(s.session.stats().resets_sent, 0u);
  EXPECT_EQ(s.session.premature_resets(), 0u);

  // The client's PING ACK is taken quietly; the connection serves on.
  ASSERT_TRUE(s.send(frame(kPing, kAck, 0, std::string(8, '\0'))));
  ASSERT_TRUE(s.send(headers_frame(3, get_fields("/next"))));
  EXPECT_TRUE(s.handler.streams[3].has_request);
}

TEST(Http2EarlyResponse, AnEmptyEndStreamFrameIsFollowedByAPingToo) {
  RawServer s;
  answer_at_head(s);
  ASSERT_TRUE(s.send(headers_frame(1, grpc_post(), false)));
  ASSERT_TRUE(s.send(data_frame(1, 3000, false)));
  const size_t before = s.received.size();
  ASSERT_TRUE(s.send(frame(kData, kEndStream, 1, "")));  // curl -T - ends this way
  const std::vector<Frame> after = answer(s, before);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].type, kPing);
  EXPECT_TRUE(s.handler.streams[1].closed);
}

TEST(Http2EarlyResponse, TrailersEndingTheRequestAfterTheAnswerAreFollowedByAPing) {
  RawServer s;
  answer_at_head(s);
  ASSERT_TRUE(s.send(headers_frame(1, grpc_post(), false)));
  ASSERT_TRUE(s.send(data_frame(1, 100, false)));
  const size_t before = s.received.size();
  ASSERT_TRUE(s.send(headers_frame(1, {{"x-checksum", "1"}}, true)));
  EXPECT_EQ(count(answer(s, before), kPing, 0), 1u);
  EXPECT_TRUE(s.handler.streams[1].closed);
}

TEST(Http2EarlyResponse, NoPingWhenOtherFramesFollowAnyway) {
  Http2Options o;
  o.connection_window = 65535;  // the connection WINDOW_UPDATE comes every 32 KiB
  RawServer s(o);
  answer_at_head(s);
  ASSERT_TRUE(s.send(headers_frame(1, grpc_post(), false)));
  ASSERT_TRUE(s.send(data_frame(1, 16 * 1024, false)));
  ASSERT_TRUE(s.send(data_frame(1, 4 * 1024, false)));
  EXPECT_EQ(s.count(kWindowUpdate), 0u);  // 20 KiB: below half of either window
  const size_t before = s.received.size();
  ASSERT_TRUE(s.send(data_frame(1, 16 * 1024, true)));  // 36 KiB: past half the window
  const std::vector<Frame> after = answer(s, before);
  EXPECT_EQ(count(after, kWindowUpdate, 0), 1u);
  EXPECT_EQ(count(after, kPing, 0), 0u);
  EXPECT_TRUE(s.handler.streams[1].closed);
}

TEST(Http2EarlyResponse, NoPingWhenTheRequestEndedBeforeTheAnswer) {
  RawServer s;
  s.handler.on_body = [&s](int32_t id, std::string_view, bool end) {
    if (end) s.session.submit_response(id, 200, {}, true);
  };
  ASSERT_TRUE(s.send(headers_frame(1, grpc_post(), false)));
  ASSERT_TRUE(s.send(data_frame(1, 3000, true)));
  EXPECT_NE(s.find(kHeaders, 1), nullptr);
  EXPECT_EQ(s.count(kPing), 0u);
  EXPECT_TRUE(s.handler.streams[1].closed);
  EXPECT_EQ(s.handler.streams[1].close_code, kH2NoError);
}

TEST(Http2EarlyResponse, AnUploadGoingOnPastTheDrainLimitIsStopped) {
  Http2Options o;
  o.max_drain_after_response = 40 * 1024;
  RawServer s(o);
  answer_at_head(s);
  ASSERT_TRUE(s.send(headers_frame(1, grpc_post(), false)));
  ASSERT_TRUE(s.send(data_frame(1, 16 * 1024, false)));
  ASSERT_TRUE(s.send(data_frame(1, 16 * 1024, false)));
  EXPECT_EQ(s.count(kRstStream), 0u);
  ASSERT_TRUE(s.send(data_frame(1, 16 * 1024, false)));  // 48 KiB after the answer: too much
  const Frame* rst = s.find(kRstStream, 1);
  ASSERT_NE(rst, nullptr);
  EXPECT_EQ(rst->rst_code(), kH2NoError);  // RFC 9113 §8.1: stop sending, the answer stands
  const StreamLog& log = s.handler.streams[1];
  EXPECT_EQ(log.body.size(), 32u * 1024);  // the bytes past the limit are not delivered
  EXPECT_TRUE(log.closed);
  EXPECT_EQ(log.close_code, kH2NoError);
  EXPECT_EQ(s.session.premature_resets(), 0u);
  // DATA already in flight when the reset crossed it is dropped; the connection stays.
  ASSERT_TRUE(s.send(data_frame(1, 1000, true)));
  EXPECT_EQ(s.count(kGoaway), 0u);
  ASSERT_TRUE(s.send(headers_frame(3, get_fields("/next"))));
  EXPECT_TRUE(s.handler.streams[3].has_request);
}

TEST(Http2EarlyResponse, TunnelBytesAfterOurEndAreNotLimited) {
  Http2Options o;
  o.enable_connect_protocol = true;
  o.max_drain_after_response = 20 * 1024;
  RawServer s(o);
  s.handler.on_request = [&s](int32_t id, const RequestHead&, bool) {
    ASSERT_TRUE(s.session.submit_response(id, 200, {}, false));
    // The upstream half-closed at once: our side ends, the client's goes on.
    ASSERT_EQ(s.session.submit_data(id, "", true), SubmitResult::kOk);
  };
  ASSERT_TRUE(s.send(headers_frame(1,
                                   {{":method", "CONNECT"},
                                    {":protocol", "websocket"},
                                    {":scheme", "http"},
                                    {":path", "/chat"},
                                    {":authority", "example.com"}},
                                   false)));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s.send(data_frame(1, 16 * 1024, false)));
  EXPECT_EQ(s.count(kRstStream), 0u);
  EXPECT_EQ(s.handler.streams[1].body.size(), 64u * 1024);
  ASSERT_TRUE(s.send(frame(kData, kEndStream, 1, "")));
  EXPECT_TRUE(s.handler.streams[1].closed);
  EXPECT_EQ(s.handler.streams[1].close_code, kH2NoError);
}

// Session to session: an nghttp2 client uploading past an early trailers-only answer finishes its
// upload, and both ends close the stream cleanly.
TEST(Http2EarlyResponse, ClientFinishesItsUploadAfterAnEarlyAnswer) {
  Pair p;
  p.server_handler.on_request = [&p](int32_t id, const RequestHead&, bool end) {
    EXPECT_FALSE(end);
    OwnedHeaders h({{"content-type", "application/grpc"}, {"grpc-status", "12"}});
    p.server.submit_response(id, 200, h.list, true);
  };
  OwnedHeaders req({{"content-type", "application/grpc"}});
  const int32_t id =
      p.client.submit_request(get_request("/nowhere.Svc/Call", &req.list, "POST"), false);
  p.pump();
  ASSERT_EQ(p.client_handler.streams[id].responses.size(), 1u);
  const std::string body(200 * 1024, 'y');  // beyond the 64 KiB stream window
  p.client.submit_data(id, body, true);
  p.pump();
  EXPECT_EQ(p.server_handler.streams[id].body.size(), body.size());
  EXPECT_TRUE(p.server_handler.streams[id].closed);
  EXPECT_EQ(p.server_handler.streams[id].close_code, kH2NoError);
  const StreamLog& c = p.client_handler.streams[id];
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.close_code, kH2NoError);
  EXPECT_FALSE(c.reset_received);
  EXPECT_EQ(p.server.stats().resets_sent, 0u);
  EXPECT_TRUE(p.server_ok);
  EXPECT_TRUE(p.client_ok);
}

}  // namespace
}  // namespace proxenos::http
