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

TEST(GrpcWebBridge, ResponseTranslatedOnlyWhenGrpc) {
  GrpcWebBridge b;
  ASSERT_TRUE(b.start(
      true, {{"content-type", "application/grpc-web"}, {"accept", "application/grpc-web-text"}}));
  http::ResponseHead plain;
  plain.headers = {{"content-type", "text/plain"}, {"content-length", "3"}};
  plain.framing = http::BodyFraming::kContentLength;
  EXPECT_FALSE(b.rewrite_response(plain));
  EXPECT_EQ(http::find_header(plain.headers, "content-length"), "3");

  http::ResponseHead grpc;
  grpc.headers = {{"content-type", "application/grpc"}, {"content-length", "10"}};
  grpc.framing = http::BodyFraming::kContentLength;
  ASSERT_TRUE(b.rewrite_response(grpc));
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
