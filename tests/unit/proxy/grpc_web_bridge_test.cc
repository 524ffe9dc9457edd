#include "proxy/grpc_web_bridge.h"

#include <gtest/gtest.h>

#include <string>

namespace proxenos::proxy {
namespace {

using http::HeaderList;

TEST(GrpcWebBridge, InactiveWhenDisabledOrNotGrpcWeb) {
  GrpcWebBridge b;
  HeaderList web{{"content-type", "application/grpc-web+proto"}};
  EXPECT_FALSE(b.start(false, web));
  EXPECT_FALSE(b.active());
  HeaderList grpc{{"content-type", "application/grpc"}};
  EXPECT_FALSE(b.start(true, grpc));
  EXPECT_FALSE(b.active());
  EXPECT_TRUE(b.start(true, web));
  EXPECT_TRUE(b.active());
}

TEST(GrpcWebBridge, RequestFieldsBecomeGrpc) {
  GrpcWebBridge b;
  HeaderList request{{"content-type", "application/grpc-web-text+proto"}};
  ASSERT_TRUE(b.start(true, request));
  HeaderList fields{{"Content-Type", "application/grpc-web-text+proto"},
                    {"content-length", "12"},
                    {"x-grpc-web", "1"},
                    {"te", "trailers"}};
  b.rewrite_request_fields(fields);
  EXPECT_EQ(http::find_header(fields, "content-type"), "application/grpc+proto");
  EXPECT_EQ(http::find_header(fields, "content-length"), "");  // -text: decoded length differs
  EXPECT_EQ(http::find_header(fields, "x-grpc-web"), "1");
  size_t te = 0;
  for (const auto& f : fields) te += http::iequals(f.name, "te") ? 1 : 0;
  EXPECT_EQ(te, 1u);
  EXPECT_EQ(http::find_header(fields, "te"), "trailers");
}

TEST(GrpcWebBridge, BinaryKeepsContentLength) {
  GrpcWebBridge b;
  ASSERT_TRUE(b.start(true, {{"content-type", "application/grpc-web"}}));
  HeaderList fields{{"content-type", "application/grpc-web"}, {"content-length", "7"}};
  b.rewrite_request_fields(fields);
  EXPECT_EQ(http::find_header(fields, "content-type"), "application/grpc");
  EXPECT_EQ(http::find_header(fields, "content-length"), "7");
}

TEST(GrpcWebBridge, TextBodyDecodesAcrossChunks) {
  GrpcWebBridge b;
  ASSERT_TRUE(b.start(true, {{"content-type", "application/grpc-web-text"}}));
  std::string out;
  // base64("\0\0\0\0\x02hi") = "AAAAAAJoaQ=="
  EXPECT_TRUE(b.decode("AAAAA", out));
  EXPECT_FALSE(b.finish());  // a partial group pending
  EXPECT_TRUE(b.decode("AJoaQ==", out));
  EXPECT_TRUE(b.finish());
  EXPECT_EQ(out, std::string("\0\0\0\0\x02hi", 7));
  EXPECT_FALSE(b.decode("!!", out));
}

TEST(GrpcWebBridge, PlainAnswerBecomesAStatus) {
  GrpcWebBridge b;
  ASSERT_TRUE(b.start(true, {{"content-type", "application/grpc-web+proto"}}));
  http::ResponseHead plain;
  plain.status = 503;
  plain.headers = {{"content-type", "text/plain"}, {"content-length", "20"}, {"x-kept", "1"}};
  plain.framing = http::BodyFraming::kContentLength;
  EXPECT_FALSE(b.rewrite_response(plain, false));
  EXPECT_FALSE(b.translating());
  ASSERT_TRUE(b.holding());  // the body becomes the message
  b.hold_data("no healthy ");
  b.hold_data("upstream\n%");
  b.finish_hold(plain);
  EXPECT_FALSE(b.holding());
  EXPECT_EQ(plain.status, 503);  // the HTTP status stays, as Envoy's filter keeps it
  EXPECT_EQ(http::find_header(plain.headers, "content-type"), "application/grpc-web+proto");
  EXPECT_EQ(http::find_header(plain.headers, "grpc-status"), "14");  // 503: UNAVAILABLE
  EXPECT_EQ(http::find_header(plain.headers, "grpc-message"), "no healthy upstream%0A%25");
  EXPECT_EQ(http::find_header(plain.headers, "content-length"), "0");
  EXPECT_EQ(http::find_header(plain.headers, "x-kept"), "1");

  // A body past 16 KiB is cut there.
  http::ResponseHead big;
  big.status = 404;
  ASSERT_TRUE(b.start(true, {{"content-type", "application/grpc-web"}}));
  EXPECT_FALSE(b.rewrite_response(big, false));
  b.hold_data(std::string(10000, 'a'));
  b.hold_data(std::string(10000, 'b'));
  b.finish_hold(big);
  EXPECT_EQ(http::find_header(big.headers, "grpc-status"), "12");  // 404: UNIMPLEMENTED
  EXPECT_EQ(http::find_header(big.headers, "grpc-message"),
            std::string(10000, 'a') + std::string(16384 - 10000, 'b'));

  // A plain answer ended by its head passes with the gRPC-Web content-type only.
  http::ResponseHead bare;
  bare.status = 502;
  ASSERT_TRUE(b.start(true, {{"content-type", "application/grpc-web"}}));
  EXPECT_FALSE(b.rewrite_response(bare, true));
  EXPECT_FALSE(b.holding());
  EXPECT_EQ(http::find_header(bare.headers, "content-type"), "application/grpc-web+proto");
  EXPECT_EQ(http::find_header(bare.headers, "grpc-status"), "");
}

TEST(GrpcWebBridge, GrpcResponseTranslated) {
  GrpcWebBridge b;
  ASSERT_TRUE(b.start(
      true, {{"content-type", "application/grpc-web"}, {"accept", "application/grpc-web-text"}}));
  http::ResponseHead grpc;
  grpc.headers = {{"content-type", "application/grpc"}, {"content-length", "10"}};
  grpc.framing = http::BodyFraming::kContentLength;
  ASSERT_TRUE(b.rewrite_response(grpc, false));
  EXPECT_TRUE(b.translating());
  // Accept asked for text.
  EXPECT_EQ(http::find_header(grpc.headers, "content-type"), "application/grpc-web-text+proto");
  EXPECT_EQ(http::find_header(grpc.headers, "content-length"), "");
  EXPECT_EQ(grpc.framing, http::BodyFraming::kChunked);

  std::string body;
  b.encode_data(std::string("\0\0\0\0\x01z", 6), body);
  EXPECT_EQ(body, "AAAAAAF6");
  body.clear();
  b.encode_trailers({{"Grpc-Status", "0"}}, body);
  std::string frame("\x80\0\0\0\x10grpc-status: 0\r\n", 21);
  std::string expected;
  http::base64_encode(frame, expected);
  EXPECT_EQ(body, expected);
}

}  // namespace
}  // namespace proxenos::proxy
