// HTTP/2 codec: a server session and a client session talking to each other in memory.

#include "http/http2_session.h"

#include <gtest/gtest.h>

#include <string>

#include "http2_test_util.h"

namespace proxenos::http {
namespace {

using h2test::Fields;
using h2test::get_request;
using h2test::OwnedHeaders;
using h2test::Pair;

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

TEST(Http2Session, GetRoundTrip) {
  Pair p;
  OwnedHeaders req({{"User-Agent", "t/1"}, {"Accept", "*/*"}});
  p.server_handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    OwnedHeaders resp({{"Content-Type", "text/plain"}, {"content-length", "5"}});
    ASSERT_TRUE(p.server.submit_response(id, 200, resp.list, false));
    ASSERT_EQ(p.server.submit_data(id, "hello", true), SubmitResult::kOk);
  };
  const int32_t id = p.client.submit_request(get_request("/a/b?x=1&y=2", &req.list), true);
  ASSERT_EQ(id, 1);
  p.pump();

  const h2test::StreamLog& s = p.server_handler.streams[id];
  ASSERT_TRUE(s.has_request);
  EXPECT_TRUE(s.request_end);
  EXPECT_EQ(s.request.method, "GET");
  EXPECT_EQ(s.request.target, "/a/b?x=1&y=2");
  EXPECT_EQ(s.request.path, "/a/b");
  EXPECT_TRUE(s.request.has_query);
  EXPECT_EQ(s.request.query, "x=1&y=2");
  EXPECT_EQ(s.request.authority, "example.com");
  EXPECT_EQ(s.request.framing, BodyFraming::kNone);
  // Regular fields only, lowercased (the head moved into the log kept its views valid).
  EXPECT_EQ(h2test::to_fields(s.request.headers),
            (Fields{{"user-agent", "t/1"}, {"accept", "*/*"}}));
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.close_code, kH2NoError);

  const h2test::StreamLog& c = p.client_handler.streams[id];
  ASSERT_EQ(c.responses.size(), 1u);
  EXPECT_EQ(c.responses[0].status, 200);
  EXPECT_EQ(c.responses[0].framing, BodyFraming::kContentLength);
  EXPECT_EQ(c.responses[0].content_length, 5u);
  EXPECT_EQ(find_header(c.responses[0].headers, "content-type"), "text/plain");
  EXPECT_EQ(c.body, "hello");
  EXPECT_TRUE(c.body_end);
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.close_code, kH2NoError);
  EXPECT_EQ(p.server.open_streams(), 0u);
  EXPECT_EQ(p.client.open_streams(), 0u);
  EXPECT_EQ(p.server.stats().streams_opened, 1u);
  EXPECT_EQ(p.client.stats().streams_opened, 1u);
  EXPECT_TRUE(p.server.want_read());
  EXPECT_EQ(p.server.close_reason(), "");
}

TEST(Http2Session, ManyStreamsAnsweredOutOfOrderKeepTheirOwnHeads) {
  // Streams close in a scrambled order (closed slots left among open ones, then compacted), and
  // every head block is sent from storage its stream owns: each answer must reach its own
  // stream with its own fields, also when later blocks are submitted before earlier ones left.
  Pair p;
  std::vector<int32_t> pending;
  p.server_handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    pending.push_back(id);
  };
  constexpr int kStreams = 90;
  std::vector<int32_t> ids;
  for (int i = 0; i < kStreams; ++i) {
    OwnedHeaders req({{"X-Index", std::to_string(i)}});
    ids.push_back(p.client.submit_request(get_request("/s/" + std::to_string(i), &req.list), true));
  }
  p.pump();
  ASSERT_EQ(pending.size(), static_cast<size_t>(kStreams));
  for (int round = 0; round < 3; ++round) {
    // Every third stream from `round` on, newest first within the round.
    for (int i = kStreams - 1 - round; i >= 0; i -= 3) {
      const int32_t id = pending[static_cast<size_t>(i)];
      const std::string index =
          h2test::to_fields(p.server_handler.streams[id].request.headers)[0].second;
      OwnedHeaders resp({{"X-Answer-To", index},
                         {"X-Path", std::string(p.server_handler.streams[id].request.path)}});
      ASSERT_TRUE(p.server.submit_response(id, 200, resp.list, true));
    }
    p.pump();
  }
  for (int i = 0; i < kStreams; ++i) {
    const h2test::StreamLog& c = p.client_handler.streams[ids[static_cast<size_t>(i)]];
    ASSERT_EQ(c.responses.size(), 1u) << i;
    EXPECT_EQ(find_header(c.responses[0].headers, "x-answer-to"), std::to_string(i));
    EXPECT_EQ(find_header(c.responses[0].headers, "x-path"), "/s/" + std::to_string(i));
    EXPECT_TRUE(c.closed);
  }
  EXPECT_EQ(p.server.open_streams(), 0u);
  EXPECT_EQ(p.client.open_streams(), 0u);
  // The session goes on opening and finding streams after all that.
  const int32_t last = p.client.submit_request(get_request("/after", nullptr), true);
  p.pump();
  EXPECT_TRUE(p.server_handler.streams[last].has_request);
}

TEST(Http2Session, PostBodiesBothWays) {
  Pair p;
  p.server_handler.on_body = [&](int32_t id, std::string_view bytes, bool end) {
    if (!bytes.empty()) p.server.submit_data(id, bytes, false);  // echo as it arrives
    if (end) p.server.submit_data(id, "", true);
  };
  p.server_handler.on_request = [&](int32_t id, const RequestHead& head, bool) {
    EXPECT_EQ(head.framing, BodyFraming::kContentLength);
    EXPECT_EQ(head.content_length, 11u);
    OwnedHeaders resp({{"content-type", "application/octet-stream"}});
    p.server.submit_response(id, 200, resp.list, false);
  };
  OwnedHeaders req({{"content-length", "11"}});
  const int32_t id = p.client.submit_request(get_request("/echo", &req.list, "POST"), false);
  EXPECT_EQ(p.client.submit_data(id, "hello ", false), SubmitResult::kOk);
  p.pump();
  EXPECT_EQ(p.server_handler.streams[id].body, "hello ");
  EXPECT_FALSE(p.server_handler.streams[id].body_end);
  EXPECT_EQ(p.client.submit_data(id, "world", true), SubmitResult::kOk);
  p.pump();
  EXPECT_EQ(p.server_handler.streams[id].body, "hello world");
  EXPECT_TRUE(p.server_handler.streams[id].body_end);
  const h2test::StreamLog& c = p.client_handler.streams[id];
  ASSERT_EQ(c.responses.size(), 1u);
  EXPECT_EQ(c.responses[0].framing, BodyFraming::kChunked);  // no content-length: unknown length
  EXPECT_EQ(c.body, "hello world");
  EXPECT_TRUE(c.body_end);
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.close_code, kH2NoError);
  // A request body submitted after end_stream is refused.
  EXPECT_EQ(p.client.submit_data(id, "late", false), SubmitResult::kClosed);
}

TEST(Http2Session, RequestWithoutContentLengthIsChunkedFraming) {
  Pair p;
  const int32_t id = p.client.submit_request(get_request("/up", nullptr, "PUT"), false);
  p.client.submit_data(id, "abc", true);
  p.pump();
  const h2test::StreamLog& s = p.server_handler.streams[id];
  ASSERT_TRUE(s.has_request);
  EXPECT_FALSE(s.request_end);
  EXPECT_EQ(s.request.framing, BodyFraming::kChunked);
  EXPECT_EQ(s.body, "abc");
  EXPECT_TRUE(s.body_end);
}

// The receiver does not consume: the sender stalls at the stream window, and consuming resumes it.
TEST(Http2Session, LargeRequestBodyWaitsForConsume) {
  Pair p;
  p.server_handler.auto_consume = false;
  const std::string body = pattern(1024 * 1024);
  const int32_t id = p.client.submit_request(get_request("/big", nullptr, "POST"), false);
  EXPECT_EQ(p.client.submit_data(id, body, true), SubmitResult::kFull);
  p.pump();
  h2test::StreamLog& s = p.server_handler.streams[id];
  EXPECT_EQ(s.body.size(), kH2DefaultInitialStreamWindow);
  EXPECT_EQ(p.client.stream_send_window(id), 0);
  EXPECT_EQ(p.client.stream_send_buffered(id), body.size() - kH2DefaultInitialStreamWindow);
  // Nothing moves however often we pump.
  p.pump();
  EXPECT_EQ(s.body.size(), kH2DefaultInitialStreamWindow);

  size_t consumed = 0;
  for (int round = 0; round < 1000 && !s.body_end; ++round) {
    p.server.consume(id, s.body.size() - consumed);
    consumed = s.body.size();
    p.pump();
  }
  EXPECT_TRUE(s.body_end);
  EXPECT_EQ(s.body, body);
  EXPECT_FALSE(p.client_handler.ready.empty());  // kFull was followed by on_send_ready
}

// Sixteen unconsumed streams of 64 KiB fill the 1 MiB connection window; the seventeenth gets
// nothing until bytes are consumed or streams closed.
TEST(Http2Session, ConnectionWindowBoundsUnconsumedData) {
  Pair p;
  p.server_handler.auto_consume = false;
  const std::string body = pattern(100 * 1024);
  std::vector<int32_t> ids;
  for (int i = 0; i < 17; ++i) {
    ids.push_back(p.client.submit_request(get_request("/b", nullptr, "POST"), false));
    p.client.submit_data(ids.back(), body, true);
  }
  p.pump();
  size_t total = 0;
  for (int32_t id : ids) total += p.server_handler.streams[id].body.size();
  EXPECT_EQ(total, kH2DefaultConnectionWindow);

  // Resetting unconsumed streams returns their bytes to the connection window (nghttp2 sends the
  // WINDOW_UPDATE once half the window is free again).
  for (int i = 0; i < 8; ++i) p.server.reset_stream(ids[i], kH2Cancel);
  p.pump();
  size_t after = 0;
  for (int32_t id : ids) after += p.server_handler.streams[id].body.size();
  EXPECT_GT(after, total);
  EXPECT_TRUE(p.client_handler.streams[ids[0]].closed);
  EXPECT_EQ(p.client_handler.streams[ids[0]].close_code, kH2Cancel);
  EXPECT_EQ(p.server.stats().resets_sent, 8u);
  // consume() for a closed stream is ignored (its window was already returned).
  p.server.consume(ids[0], 1000);
}

// A client that does not consume holds back the server's response: submit_data says kFull, the
// queue stops growing on the wire side, and on_send_ready comes once the client consumes.
TEST(Http2Session, ResponseBackPressure) {
  Pair p;
  p.client_handler.auto_consume = false;
  const int32_t id = p.client.submit_request(get_request("/big"), true);
  p.pump();
  ASSERT_TRUE(p.server_handler.streams[id].has_request);
  ASSERT_TRUE(p.server.submit_response(id, 200, {}, false));
  const std::string chunk = pattern(16 * 1024);
  int chunks = 0;
  SubmitResult r = SubmitResult::kOk;
  while (r == SubmitResult::kOk && chunks < 1000) {
    r = p.server.submit_data(id, chunk, false);
    ++chunks;
    p.pump();
  }
  EXPECT_EQ(r, SubmitResult::kFull);
  h2test::StreamLog& c = p.client_handler.streams[id];
  EXPECT_EQ(c.body.size(), kH2DefaultInitialStreamWindow);
  EXPECT_GE(p.server.stream_send_buffered(id), kH2DefaultStreamSendBuffer);
  EXPECT_TRUE(p.server_handler.ready.empty());

  p.client.consume(id, c.body.size());
  p.pump();
  EXPECT_EQ(p.server_handler.ready, std::vector<int32_t>{id});
}

TEST(Http2Session, OutputIsBoundedWhenNotWritten) {
  Http2Options o;
  Pair p(o);
  const int32_t id = p.client.submit_request(get_request("/"), true);
  p.pump();
  ASSERT_TRUE(p.server.submit_response(id, 200, {}, false));
  p.server.submit_data(id, pattern(60 * 1024), true);
  std::string_view out = p.server.pending_output();
  EXPECT_GE(out.size(), o.output_buffer_limit / 2);
  EXPECT_LE(out.size(), o.output_buffer_limit + kH2DefaultMaxFrameSize + 9);
  // Asking again without writing adds nothing.
  EXPECT_EQ(p.server.pending_output().size(), out.size());
  p.pump();
  EXPECT_EQ(p.client_handler.streams[id].body.size(), 60u * 1024);
}

TEST(Http2Session, TrailersBothDirections) {
  Pair p;
  p.server_handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    OwnedHeaders resp({{"content-type", "application/grpc"}});
    p.server.submit_response(id, 200, resp.list, false);
    p.server.submit_data(id, std::string("\0\0\0\0\2hi", 7), false);
    OwnedHeaders tr({{"grpc-status", "0"}, {"Grpc-Message", "ok"}});
    EXPECT_TRUE(p.server.submit_trailers(id, tr.list));
    EXPECT_FALSE(p.server.submit_trailers(id, tr.list));  // the stream already ends
  };
  OwnedHeaders req({{"content-type", "application/grpc"}, {"te", "trailers"}});
  const int32_t id =
      p.client.submit_request(get_request("/pkg.Svc/Call", &req.list, "POST"), false);
  p.client.submit_data(id, std::string("\0\0\0\0\1x", 6), false);
  OwnedHeaders rtr({{"x-checksum", "abc"}});
  EXPECT_TRUE(p.client.submit_trailers(id, rtr.list));
  p.pump();

  const h2test::StreamLog& s = p.server_handler.streams[id];
  EXPECT_EQ(find_header(s.request.headers, "te"), "trailers");
  EXPECT_EQ(s.body, std::string("\0\0\0\0\1x", 6));
  EXPECT_FALSE(s.body_end);  // trailers end it instead
  EXPECT_TRUE(s.has_trailers);
  EXPECT_EQ(s.trailers, (Fields{{"x-checksum", "abc"}}));
  EXPECT_EQ(s.close_code, kH2NoError);

  const h2test::StreamLog& c = p.client_handler.streams[id];
  EXPECT_EQ(c.body, std::string("\0\0\0\0\2hi", 7));
  EXPECT_TRUE(c.has_trailers);
  EXPECT_EQ(c.trailers, (Fields{{"grpc-status", "0"}, {"grpc-message", "ok"}}));
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.close_code, kH2NoError);
}

TEST(Http2Session, TrailersOnlyResponse) {
  Pair p;
  p.server_handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    OwnedHeaders resp({{"content-type", "application/grpc"}, {"grpc-status", "12"}});
    p.server.submit_response(id, 200, resp.list, true);
    EXPECT_EQ(p.server.submit_data(id, "x", true), SubmitResult::kClosed);
  };
  const int32_t id = p.client.submit_request(get_request("/x", nullptr, "POST"), true);
  p.pump();
  const h2test::StreamLog& c = p.client_handler.streams[id];
  ASSERT_EQ(c.responses.size(), 1u);
  EXPECT_TRUE(c.response_end);
  EXPECT_EQ(c.responses[0].framing, BodyFraming::kNone);
  EXPECT_EQ(find_header(c.responses[0].headers, "grpc-status"), "12");
  EXPECT_TRUE(c.body.empty());
}

TEST(Http2Session, CookiesSplitOnTheWireAndJoinedOnReceipt) {
  Pair p;
  OwnedHeaders req({{"x-a", "1"}, {"Cookie", "a=1; b=2;c=3"}, {"x-b", "2"}, {"cookie", "d=4"}});
  const int32_t id = p.client.submit_request(get_request("/", &req.list), true);
  p.pump();
  const h2test::StreamLog& s = p.server_handler.streams[id];
  // One cookie field, at the place of the first crumb (RFC 9113 §8.2.3).
  EXPECT_EQ(h2test::to_fields(s.request.headers),
            (Fields{{"x-a", "1"}, {"cookie", "a=1; b=2; c=3; d=4"}, {"x-b", "2"}}));
}

TEST(Http2Session, ConnectionSpecificHeadersAreDroppedOnSend) {
  Pair p;
  p.server_handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    OwnedHeaders resp({{"Connection", "keep-alive, X-Hop"},
                       {"Keep-Alive", "timeout=5"},
                       {"Transfer-Encoding", "chunked"},
                       {"Upgrade", "h2c"},
                       {"Proxy-Connection", "x"},
                       {"X-Hop", "1"},
                       {"TE", "trailers"},
                       {"X-Kept", "yes"},
                       {"X-Bad", "a\r\nb"}});
    p.server.submit_response(id, 204, resp.list, true);
  };
  OwnedHeaders req({{"Host", "example.com"},
                    {"Connection", "close"},
                    {"TE", "trailers, deflate"},
                    {"X-Up", "1"}});
  const int32_t id = p.client.submit_request(get_request("/", &req.list), true);
  p.pump();
  // Request: Host dropped (carried by :authority), te narrowed to "trailers".
  EXPECT_EQ(h2test::to_fields(p.server_handler.streams[id].request.headers),
            (Fields{{"te", "trailers"}, {"x-up", "1"}}));
  const h2test::StreamLog& c = p.client_handler.streams[id];
  ASSERT_EQ(c.responses.size(), 1u);
  EXPECT_EQ(c.responses[0].status, 204);
  EXPECT_EQ(h2test::to_fields(c.responses[0].headers), (Fields{{"x-kept", "yes"}}));
}

TEST(Http2Session, ClientResetReachesServer) {
  Pair p;
  const int32_t id = p.client.submit_request(get_request("/slow"), true);
  p.pump();
  ASSERT_TRUE(p.server_handler.streams[id].has_request);
  p.client.reset_stream(id, kH2Cancel);
  p.pump();
  const h2test::StreamLog& s = p.server_handler.streams[id];
  EXPECT_TRUE(s.reset_received);
  EXPECT_EQ(s.reset_code, kH2Cancel);
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.close_code, kH2Cancel);
  EXPECT_TRUE(p.client_handler.streams[id].closed);
  EXPECT_EQ(p.server.stats().resets_received, 1u);
  EXPECT_EQ(p.client.stats().resets_sent, 1u);
  // The stream is gone: submitting to it is refused.
  EXPECT_FALSE(p.server.submit_response(id, 200, {}, true));
  EXPECT_EQ(p.server.submit_data(id, "x", true), SubmitResult::kClosed);
}

// An early answer while the client is still uploading: the whole response arrives first, then
// RST_STREAM(NO_ERROR) stops the upload; nothing more of it reaches the server's handler.
TEST(Http2Session, EarlyResponseThenStopTheUpload) {
  Pair p;
  const std::string reply = pattern(100 * 1024);  // more than one window: must not be cut
  p.server_handler.on_request = [&](int32_t id, const RequestHead&, bool end) {
    EXPECT_FALSE(end);
    p.server.submit_response(id, 413, {}, false);
    p.server.submit_data(id, reply, true);
    p.server.reset_stream(id, kH2NoError);
  };
  const int32_t id = p.client.submit_request(get_request("/upload", nullptr, "POST"), false);
  p.client.submit_data(id, "first", false);
  p.pump();
  const size_t seen = p.server_handler.streams[id].body.size();
  p.client.submit_data(id, "more", false);
  p.pump();
  const h2test::StreamLog& c = p.client_handler.streams[id];
  ASSERT_EQ(c.responses.size(), 1u);
  EXPECT_EQ(c.responses[0].status, 413);
  EXPECT_EQ(c.body, reply);
  EXPECT_TRUE(c.body_end);
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.close_code, kH2NoError);
  EXPECT_TRUE(c.reset_received);
  EXPECT_EQ(p.server_handler.streams[id].body.size(), seen);
  EXPECT_TRUE(p.server_handler.streams[id].closed);
  EXPECT_EQ(p.server.stats().resets_sent, 1u);
}

TEST(Http2Session, GracefulGoaway) {
  Pair p;
  const int32_t first = p.client.submit_request(get_request("/1"), true);
  p.pump();
  ASSERT_TRUE(p.server_handler.streams[first].has_request);
  p.server.submit_shutdown_notice();
  p.pump();
  EXPECT_EQ(p.client_handler.goaways, 1);
  EXPECT_TRUE(p.client.goaway_received());
  EXPECT_FALSE(p.client.can_open_stream());
  EXPECT_EQ(p.client.submit_request(get_request("/2"), true), -1);

  p.server.submit_goaway();
  p.pump();
  EXPECT_EQ(p.client_handler.goaways, 2);
  EXPECT_EQ(p.client_handler.goaway_last, first);
  EXPECT_EQ(p.client_handler.goaway_code, kH2NoError);
  // The in-flight stream still completes.
  EXPECT_TRUE(p.server.submit_response(first, 200, {}, false));
  p.server.submit_data(first, "bye", true);
  p.pump();
  EXPECT_EQ(p.client_handler.streams[first].body, "bye");
  EXPECT_EQ(p.client_handler.streams[first].close_code, kH2NoError);
  EXPECT_FALSE(p.server.want_read());
  EXPECT_FALSE(p.server.want_write());
  EXPECT_EQ(p.server.stats().goaways_sent, 2u);
  EXPECT_EQ(p.client.stats().goaways_received, 2u);
}

// A request the server never processed (above GOAWAY's last stream id) closes with
// REFUSED_STREAM on the client: safe to retry elsewhere.
TEST(Http2Session, GoawayRefusesUnprocessedStreams) {
  Pair p;
  const int32_t first = p.client.submit_request(get_request("/1"), true);
  p.pump();
  p.server.submit_goaway();
  std::string_view goaway = p.server.pending_output();
  std::string server_bytes(goaway);
  p.server.consume_output(goaway.size());
  const int32_t second = p.client.submit_request(get_request("/2"), true);
  std::string_view req = p.client.pending_output();
  p.server.feed(req);
  p.client.consume_output(req.size());
  p.client.feed(server_bytes);
  p.pump();
  EXPECT_FALSE(p.server_handler.streams.count(second));
  EXPECT_TRUE(p.client_handler.streams[second].closed);
  EXPECT_EQ(p.client_handler.streams[second].close_code, kH2RefusedStream);
  EXPECT_FALSE(p.client_handler.streams[first].closed);
}

TEST(Http2Session, AdvertisesMaxConcurrentStreamsAndClientHonoursIt) {
  Http2Options so;
  so.max_concurrent_streams = 5;
  Pair p(so);
  EXPECT_TRUE(p.client.can_open_stream());
  p.pump();
  EXPECT_EQ(p.client.remote_max_concurrent_streams(), 5u);
  std::vector<int32_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(p.client.submit_request(get_request("/"), true));
  EXPECT_FALSE(p.client.can_open_stream());
  // A sixth waits inside nghttp2 rather than being refused.
  const int32_t sixth = p.client.submit_request(get_request("/6"), true);
  p.pump();
  EXPECT_EQ(p.server_handler.streams.size(), 5u);
  EXPECT_EQ(p.server.stats().streams_refused, 0u);
  p.server.submit_response(ids[0], 200, {}, true);
  p.pump();
  EXPECT_TRUE(p.server_handler.streams[sixth].has_request);
}

TEST(Http2Session, HeaderListTooLargeResetsTheStream) {
  Pair p;
  Fields big;
  for (int i = 0; i < 70; ++i) big.emplace_back("x-h" + std::to_string(i), std::string(900, 'v'));
  OwnedHeaders req(big);
  const int32_t id = p.client.submit_request(get_request("/", &req.list), true);
  const int32_t ok = p.client.submit_request(get_request("/fine"), true);
  p.pump();
  EXPECT_FALSE(p.server_handler.streams[id].has_request);
  EXPECT_EQ(p.client_handler.streams[id].close_code, kH2ProtocolError);
  EXPECT_EQ(p.server.stats().header_overflows, 1u);
  EXPECT_TRUE(p.server_handler.streams[ok].has_request);  // the connection lives on
  EXPECT_TRUE(p.server_ok);
}

TEST(Http2Session, TooManyHeaderFieldsResetsTheStream) {
  Pair p;
  Fields many;
  for (int i = 0; i < 101; ++i) many.emplace_back("x-h" + std::to_string(i), "v");
  OwnedHeaders req(many);
  const int32_t id = p.client.submit_request(get_request("/", &req.list), true);
  p.pump();
  EXPECT_FALSE(p.server_handler.streams[id].has_request);
  EXPECT_EQ(p.client_handler.streams[id].close_code, kH2ProtocolError);
  EXPECT_EQ(p.server.stats().header_overflows, 1u);

  many.pop_back();  // exactly 100 is fine
  OwnedHeaders fine(many);
  const int32_t id2 = p.client.submit_request(get_request("/", &fine.list), true);
  p.pump();
  EXPECT_TRUE(p.server_handler.streams[id2].has_request);
}

TEST(Http2Session, RapidResetFloodEndsWithGoaway) {
  Pair p;
  int sent = 0;
  for (; sent < 400 && p.server_ok; ++sent) {
    const int32_t id = p.client.submit_request(get_request("/"), true);
    if (id < 0) break;
    p.pump();
    p.client.reset_stream(id, kH2Cancel);
    p.pump();
  }
  EXPECT_FALSE(p.server_ok);
  EXPECT_EQ(p.server.stats().too_many_premature_resets, 1u);
  EXPECT_EQ(p.server.premature_resets(), 250u);  // half of the 500-stream budget
  EXPECT_EQ(p.server.close_reason(), "too_many_premature_resets");
  EXPECT_EQ(p.client_handler.goaways, 1);
  EXPECT_EQ(p.client_handler.goaway_code, kH2EnhanceYourCalm);
  EXPECT_FALSE(p.server.want_read());
  EXPECT_FALSE(p.server.want_write());
  EXPECT_LE(sent, 251);
}

TEST(Http2Session, ResetsAfterAResponseOrLateInLifeAreNotPremature) {
  auto t = Http2Options::Clock::now();
  Http2Options so;
  so.clock = [&t] { return t; };
  Pair p(so);
  for (int i = 0; i < 600 && p.server_ok; ++i) {
    const int32_t id = p.client.submit_request(get_request("/"), true);
    p.pump();
    if (i % 2 == 0) {
      p.server.submit_response(id, 200, {}, false);  // answered, then cancelled mid-body
    } else {
      t += std::chrono::milliseconds(1500);  // lived longer than the minimum
    }
    p.pump();
    p.client.reset_stream(id, kH2Cancel);
    p.pump();
  }
  EXPECT_TRUE(p.server_ok);
  EXPECT_EQ(p.server.premature_resets(), 0u);
  EXPECT_EQ(p.server.stats().resets_received, 600u);
}

TEST(Http2Session, InformationalThenFinalResponse) {
  Pair p;
  p.server_handler.on_request = [&](int32_t id, const RequestHead& head, bool) {
    EXPECT_TRUE(head.expect_continue);
    EXPECT_FALSE(p.server.submit_response(id, 100, {}, true));   // 1xx cannot end the stream
    EXPECT_FALSE(p.server.submit_response(id, 101, {}, false));  // no 101 in HTTP/2
    EXPECT_TRUE(p.server.submit_response(id, 100, {}, false));
  };
  p.server_handler.on_body = [&](int32_t id, std::string_view, bool end) {
    if (end) p.server.submit_response(id, 201, {}, true);
  };
  OwnedHeaders req({{"expect", "100-continue"}, {"content-length", "2"}});
  const int32_t id = p.client.submit_request(get_request("/u", &req.list, "PUT"), false);
  p.pump();
  ASSERT_EQ(p.client_handler.streams[id].responses.size(), 1u);
  EXPECT_EQ(p.client_handler.streams[id].responses[0].status, 100);
  EXPECT_EQ(p.client_handler.streams[id].responses[0].framing, BodyFraming::kNone);
  p.client.submit_data(id, "ok", true);
  p.pump();
  ASSERT_EQ(p.client_handler.streams[id].responses.size(), 2u);
  EXPECT_EQ(p.client_handler.streams[id].responses[1].status, 201);
  EXPECT_TRUE(p.client_handler.streams[id].response_end);
}

TEST(Http2Session, HeadResponseHasNoBodyFraming) {
  Pair p;
  p.server_handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    OwnedHeaders resp({{"content-length", "1234"}});
    p.server.submit_response(id, 200, resp.list, true);
  };
  const int32_t id = p.client.submit_request(get_request("/", nullptr, "HEAD"), true);
  p.pump();
  const h2test::StreamLog& c = p.client_handler.streams[id];
  ASSERT_EQ(c.responses.size(), 1u);
  EXPECT_EQ(c.responses[0].framing, BodyFraming::kNone);
  EXPECT_EQ(c.responses[0].content_length, 1234u);
  EXPECT_EQ(c.close_code, kH2NoError);
}

TEST(Http2Session, RequestFromHttp1Head) {
  RequestHead h;
  h.storage = "GET http://example.com/p?q=1 HTTP/1.1";
  std::string_view s = h.storage;
  h.method = s.substr(0, 3);
  h.target = s.substr(4, 24);
  h.path = s.substr(22, 2);
  h.query = s.substr(25, 3);
  h.has_query = true;
  h.authority = s.substr(11, 11);
  std::string scratch;
  Http2Request r = Http2Request::from_head(h, "https", scratch);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.scheme, "https");
  EXPECT_EQ(r.authority, "example.com");
  EXPECT_EQ(r.path, "/p?q=1");
  EXPECT_EQ(r.headers, &h.headers);

  h.target = s.substr(22, 6);  // origin-form is used as is
  r = Http2Request::from_head(h, "http", scratch);
  EXPECT_EQ(r.path.data(), h.target.data());
}

TEST(Http2Session, ServerCannotSubmitRequestsNorClientResponses) {
  Pair p;
  EXPECT_EQ(p.server.submit_request(get_request("/"), true), -1);
  const int32_t id = p.client.submit_request(get_request("/"), true);
  EXPECT_FALSE(p.client.submit_response(id, 200, {}, true));
  EXPECT_EQ(p.client.submit_data(999, "x", true), SubmitResult::kClosed);
  p.client.reset_stream(999, kH2Cancel);  // unknown: no-op
  p.client.consume(999, 10);
}

TEST(Http2Session, TerminateSendsGoawayAndCloses) {
  Pair p;
  const int32_t id = p.client.submit_request(get_request("/"), true);
  p.pump();
  p.server.terminate(kH2InternalError, "shutting down");
  EXPECT_FALSE(p.server.want_read());
  EXPECT_TRUE(p.server.want_write());
  p.pump();
  EXPECT_FALSE(p.server.want_write());
  EXPECT_EQ(p.server.close_reason(), "shutting down");
  EXPECT_EQ(p.client_handler.goaway_code, kH2InternalError);
  EXPECT_FALSE(p.server.feed("x"));
  // Stream 1 was processed (GOAWAY's last stream id), so it stays open on the client until its
  // owner sees the socket close and says so.
  EXPECT_FALSE(p.client_handler.streams[id].closed);
  p.client.connection_closed(kH2InternalError);
  EXPECT_TRUE(p.client_handler.streams[id].closed);
  EXPECT_EQ(p.client_handler.streams[id].close_code, kH2InternalError);
  EXPECT_EQ(p.client.open_streams(), 0u);
  EXPECT_FALSE(p.client.want_read());
  EXPECT_FALSE(p.client.want_write());
  EXPECT_TRUE(p.client.pending_output().empty());
  EXPECT_FALSE(p.client.feed("x"));
}

}  // namespace
}  // namespace proxenos::http
