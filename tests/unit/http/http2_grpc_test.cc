// gRPC and gRPC-Web helpers, checked byte for byte.

#include <gtest/gtest.h>

#include <string>

#include "http/grpc.h"
#include "http/http2_session.h"
#include "http2_test_util.h"

namespace proxenos::http {
namespace {

using h2test::Fields;
using h2test::OwnedHeaders;

TEST(Grpc, StatusNamesAndHttpMapping) {
  EXPECT_EQ(grpc_status_name(GrpcStatus::kOk), "OK");
  EXPECT_EQ(grpc_status_name(GrpcStatus::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(grpc_status_name(GrpcStatus::kUnimplemented), "UNIMPLEMENTED");
  EXPECT_EQ(grpc_status_name(GrpcStatus::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(grpc_status_name(static_cast<GrpcStatus>(99)), "UNKNOWN");
  EXPECT_EQ(static_cast<int>(GrpcStatus::kUnavailable), 14);
  EXPECT_EQ(grpc_status_from_http(400), GrpcStatus::kInternal);
  EXPECT_EQ(grpc_status_from_http(401), GrpcStatus::kUnauthenticated);
  EXPECT_EQ(grpc_status_from_http(403), GrpcStatus::kPermissionDenied);
  EXPECT_EQ(grpc_status_from_http(404), GrpcStatus::kUnimplemented);
  for (int s : {429, 502, 503, 504}) EXPECT_EQ(grpc_status_from_http(s), GrpcStatus::kUnavailable);
  EXPECT_EQ(grpc_status_from_http(500), GrpcStatus::kUnknown);
}

TEST(Grpc, ContentTypes) {
  EXPECT_TRUE(is_grpc_content_type("application/grpc"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc+proto"));
  EXPECT_TRUE(is_grpc_content_type("Application/GRPC; charset=utf-8"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc-web"));
  EXPECT_FALSE(is_grpc_content_type("application/grpcx"));
  EXPECT_FALSE(is_grpc_content_type("application/json"));
  EXPECT_FALSE(is_grpc_content_type(""));
}

TEST(Grpc, TimeoutParsing) {
  EXPECT_EQ(parse_grpc_timeout_ms("1H"), 3600000u);
  EXPECT_EQ(parse_grpc_timeout_ms("2M"), 120000u);
  EXPECT_EQ(parse_grpc_timeout_ms("3S"), 3000u);
  EXPECT_EQ(parse_grpc_timeout_ms("250m"), 250u);
  EXPECT_EQ(parse_grpc_timeout_ms("1500u"), 2u);  // rounded up
  EXPECT_EQ(parse_grpc_timeout_ms("1u"), 1u);
  EXPECT_EQ(parse_grpc_timeout_ms("1000000n"), 1u);
  EXPECT_EQ(parse_grpc_timeout_ms("1000001n"), 2u);
  EXPECT_EQ(parse_grpc_timeout_ms("0m"), 0u);
  EXPECT_EQ(parse_grpc_timeout_ms("99999999H"), 99999999ull * 3600000);  // 8 digits, no overflow
  for (std::string_view bad :
       {"", "m", "5", "5x", "123456789m", "-5m", "5 m", " 5m", "5mm", "1.5S"}) {
    EXPECT_EQ(parse_grpc_timeout_ms(bad), std::nullopt) << bad;
  }
}

TEST(Grpc, TimeoutFormatting) {
  EXPECT_EQ(format_grpc_timeout(0), "0m");
  EXPECT_EQ(format_grpc_timeout(1500), "1500m");
  EXPECT_EQ(format_grpc_timeout(99999999), "99999999m");
  EXPECT_EQ(format_grpc_timeout(100000000), "100000S");
  for (uint64_t ms : {uint64_t{1}, uint64_t{999}, uint64_t{123456789}, uint64_t{1} << 40}) {
    const auto back = parse_grpc_timeout_ms(format_grpc_timeout(ms));
    ASSERT_TRUE(back.has_value());
    EXPECT_GE(*back, ms);  // never shorter than asked
  }
}

TEST(Grpc, PercentEncoding) {
  EXPECT_EQ(grpc_percent_encode("no route"), "no route");
  EXPECT_EQ(grpc_percent_encode("50% off\n"), "50%25 off%0A");
  EXPECT_EQ(grpc_percent_encode("\xc3\xa9t\xc3\xa9"), "%C3%A9t%C3%A9");
  EXPECT_EQ(grpc_percent_encode(std::string("a\0b", 3)), "a%00b");
  EXPECT_EQ(grpc_percent_decode("50%25 off%0A"), "50% off\n");
  EXPECT_EQ(grpc_percent_decode("%C3%A9t%c3%a9"), "\xc3\xa9t\xc3\xa9");
  EXPECT_EQ(grpc_percent_decode("bad %G1 and trailing %4"), "bad %G1 and trailing %4");
  EXPECT_EQ(grpc_percent_decode("%"), "%");
}

TEST(Grpc, LocalReplyIsTrailersOnly) {
  ResponseHead h;
  make_grpc_local_reply(GrpcStatus::kUnavailable, "upstream connect error\n", "application/grpc",
                        h);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.framing, BodyFraming::kNone);
  EXPECT_EQ(h2test::to_fields(h.headers), (Fields{{"content-type", "application/grpc"},
                                                  {"grpc-status", "14"},
                                                  {"grpc-message", "upstream connect error%0A"}}));
  // Views survive moving the head.
  ResponseHead moved = std::move(h);
  EXPECT_EQ(find_header(moved.headers, "grpc-status"), "14");

  make_grpc_local_reply(GrpcStatus::kUnimplemented, "", "application/grpc-web-text+proto", moved);
  EXPECT_EQ(h2test::to_fields(moved.headers),
            (Fields{{"content-type", "application/grpc-web-text+proto"}, {"grpc-status", "12"}}));
}

// A local reply sent through the server session reaches a gRPC client as one HEADERS frame with
// END_STREAM.
TEST(Grpc, LocalReplyOverHttp2) {
  h2test::Pair p;
  p.server_handler.on_request = [&](int32_t id, const RequestHead&, bool) {
    ResponseHead h;
    make_grpc_local_reply(GrpcStatus::kDeadlineExceeded, "timeout", "application/grpc", h);
    EXPECT_TRUE(p.server.submit_response(id, h.status, h.headers, true));
  };
  OwnedHeaders req(
      {{"content-type", "application/grpc"}, {"te", "trailers"}, {"grpc-timeout", "100m"}});
  const int32_t id =
      p.client.submit_request(h2test::get_request("/pkg.Svc/M", &req.list, "POST"), true);
  p.pump();
  const h2test::StreamLog& c = p.client_handler.streams[id];
  ASSERT_EQ(c.responses.size(), 1u);
  EXPECT_TRUE(c.response_end);
  EXPECT_EQ(find_header(c.responses[0].headers, "grpc-status"), "4");
  EXPECT_EQ(find_header(c.responses[0].headers, "grpc-message"), "timeout");
}

TEST(GrpcWeb, Formats) {
  EXPECT_EQ(grpc_web_format("application/grpc-web"), GrpcWebFormat::kBinary);
  EXPECT_EQ(grpc_web_format("application/grpc-web+proto"), GrpcWebFormat::kBinary);
  EXPECT_EQ(grpc_web_format("application/grpc-web-text"), GrpcWebFormat::kText);
  EXPECT_EQ(grpc_web_format("application/grpc-web-text+proto; charset=x"), GrpcWebFormat::kText);
  EXPECT_EQ(grpc_web_format("application/grpc"), GrpcWebFormat::kNone);
  EXPECT_EQ(grpc_web_format("application/grpc-webx"), GrpcWebFormat::kNone);
  EXPECT_EQ(grpc_web_response_format("application/grpc-web+proto", "*/*"), GrpcWebFormat::kBinary);
  EXPECT_EQ(grpc_web_response_format("application/grpc-web+proto",
                                     "application/json, application/grpc-web-text"),
            GrpcWebFormat::kText);
  EXPECT_EQ(grpc_web_response_format("application/grpc-web-text", ""), GrpcWebFormat::kText);
  EXPECT_EQ(grpc_web_response_format("application/json", "application/grpc-web-text"),
            GrpcWebFormat::kNone);
}

TEST(GrpcWeb, ContentTypeTranslation) {
  EXPECT_EQ(grpc_web_to_grpc_content_type("application/grpc-web"), "application/grpc");
  EXPECT_EQ(grpc_web_to_grpc_content_type("application/grpc-web+proto"), "application/grpc+proto");
  EXPECT_EQ(grpc_web_to_grpc_content_type("application/grpc-web-text+proto"),
            "application/grpc+proto");
  EXPECT_EQ(grpc_web_to_grpc_content_type("application/grpc-web+JSON; x=1"),
            "application/grpc+json");
  EXPECT_EQ(grpc_to_grpc_web_content_type("application/grpc", GrpcWebFormat::kBinary),
            "application/grpc-web+proto");
  EXPECT_EQ(grpc_to_grpc_web_content_type("application/grpc", GrpcWebFormat::kText),
            "application/grpc-web-text+proto");
  EXPECT_EQ(grpc_to_grpc_web_content_type("application/grpc+json", GrpcWebFormat::kBinary),
            "application/grpc-web+json");
}

TEST(GrpcWeb, Base64EncodeVectors) {
  // RFC 4648 §10.
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (auto [in, want] : vectors) {
    std::string out;
    base64_encode(in, out);
    EXPECT_EQ(out, want);
    Base64StreamDecoder d;
    std::string back;
    ASSERT_TRUE(d.decode(want, back));
    EXPECT_EQ(back, in);
    EXPECT_TRUE(d.at_boundary());
  }
}

TEST(GrpcWeb, TextRequestDecodesAcrossArbitraryChunkBoundaries) {
  // Two messages, each base64-encoded and padded on its own, as a browser sends them.
  const std::string wire =
      "AAAAAANhYmM="
      "AAAAAAVoZWxsbw==";
  const std::string want = std::string(
                               "\0\0\0\0\x03"
                               "abc",
                               8) +
                           std::string(
                               "\0\0\0\0\x05"
                               "hello",
                               10);
  for (size_t a = 0; a <= wire.size(); ++a) {
    for (size_t b = a; b <= wire.size(); ++b) {
      GrpcWebRequestDecoder d(GrpcWebFormat::kText);
      std::string out;
      ASSERT_TRUE(d.decode(std::string_view(wire).substr(0, a), out));
      ASSERT_TRUE(d.decode(std::string_view(wire).substr(a, b - a), out));
      ASSERT_TRUE(d.decode(std::string_view(wire).substr(b), out));
      ASSERT_EQ(out, want) << a << "," << b;
      EXPECT_TRUE(d.finish());
    }
  }
}

TEST(GrpcWeb, TextRequestErrors) {
  for (std::string_view bad : {"A===", "AB=C", "=AAA", "AB*D", "AAAA\r\n", "AA==A==="}) {
    GrpcWebRequestDecoder d(GrpcWebFormat::kText);
    std::string out;
    EXPECT_FALSE(d.decode(bad, out)) << bad;
    EXPECT_FALSE(d.decode("AAAA", out));  // stays failed
    EXPECT_FALSE(d.finish());
  }
  GrpcWebRequestDecoder partial(GrpcWebFormat::kText);
  std::string out;
  ASSERT_TRUE(partial.decode("AAAAAAN", out));
  EXPECT_FALSE(partial.finish());  // the body ended inside a group
}

TEST(GrpcWeb, BinaryRequestPassesThrough) {
  GrpcWebRequestDecoder d(GrpcWebFormat::kBinary);
  EXPECT_FALSE(d.needs_decoding());
  std::string out;
  const std::string frame("\0\0\0\0\x02hi", 7);
  ASSERT_TRUE(d.decode(frame, out));
  EXPECT_EQ(out, frame);
  EXPECT_TRUE(d.finish());
}

TEST(GrpcWeb, BinaryResponseTrailerFrame) {
  GrpcWebResponseEncoder e(GrpcWebFormat::kBinary);
  std::string out;
  e.encode_data(std::string("\0\0\0\0\x03"
                            "abc",
                            8),
                out);
  OwnedHeaders trailers({{"grpc-status", "0"}, {"Grpc-Message", "OK"}});
  e.encode_trailers(trailers.list, out);
  const std::string want = std::string(
                               "\0\0\0\0\x03"
                               "abc",
                               8) +
                           std::string("\x80\x00\x00\x00\x22", 5) +
                           "grpc-status: 0\r\ngrpc-message: OK\r\n";
  EXPECT_EQ(out, want);
}

TEST(GrpcWeb, TextResponseIsBase64PerChunk) {
  GrpcWebResponseEncoder e(GrpcWebFormat::kText);
  std::string out;
  e.encode_data(std::string("\0\0\0\0\x03"
                            "abc",
                            8),
                out);
  EXPECT_EQ(out, "AAAAAANhYmM=");  // this message is complete on the wire at once
  OwnedHeaders trailers({{"grpc-status", "0"}, {"grpc-message", "OK"}});
  e.encode_trailers(trailers.list, out);
  EXPECT_EQ(out, "AAAAAANhYmM=gAAAACJncnBjLXN0YXR1czogMA0KZ3JwYy1tZXNzYWdlOiBPSw0K");
  // And a gRPC-Web text client decodes it all back in one stream.
  GrpcWebRequestDecoder d(GrpcWebFormat::kText);
  std::string back;
  ASSERT_TRUE(d.decode(out, back));
  EXPECT_EQ(back.substr(0, 8), std::string("\0\0\0\0\x03"
                                           "abc",
                                           8));
  EXPECT_EQ(static_cast<unsigned char>(back[8]), 0x80u);
  EXPECT_EQ(back.substr(13), "grpc-status: 0\r\ngrpc-message: OK\r\n");
}

TEST(GrpcWeb, EmptyTrailers) {
  GrpcWebResponseEncoder e(GrpcWebFormat::kBinary);
  std::string out;
  e.encode_trailers({}, out);
  EXPECT_EQ(out, std::string("\x80\0\0\0\0", 5));
}

}  // namespace
}  // namespace proxenos::http
