#include "proxy/request_context.h"

#include <gtest/gtest.h>

#include <string>

#include "proxy/request_router.h"

namespace proxenos::proxy {
namespace {

std::string expand(std::string_view text, const RequestContext& c) {
  std::string error;
  std::optional<http::ValueTemplate> t = http::parse_value_template(text, &error);
  EXPECT_TRUE(t) << error;
  std::string out;
  if (t) expand_template(*t, c, out);
  return out;
}

struct Fixture {
  http::RequestHead request;
  config::ModuleSettings module;
  RequestContext context;
  Fixture() {
    request.method = "GET";
    request.authority = "example.com";
    context.request = &request;
    context.module = &module;
    context.peer_address = "192.168.1.2:5555";
  }
};

TEST(ExpandTemplate, ProtocolNamesTheClientsVersion) {
  Fixture fx;
  EXPECT_EQ(expand("%PROTOCOL%", fx.context), "HTTP/1.1");
  fx.request.version_minor = 0;
  EXPECT_EQ(expand("%PROTOCOL%", fx.context), "HTTP/1.0");
  fx.request.version_minor = 1;
  fx.request.version_major = 2;
  EXPECT_EQ(expand("via %PROTOCOL%", fx.context), "via HTTP/2");
}

TEST(ExpandTemplate, ForwardedForIsTheValueSentUpstream) {
  Fixture fx;
  // We are the edge (use_remote_address): the peer is appended, as Envoy's header shows it.
  EXPECT_EQ(expand("%REQ(X-FORWARDED-FOR)%", fx.context), "192.168.1.2");
  fx.request.headers = {{"X-Forwarded-For", "10.0.0.1"}};
  EXPECT_EQ(expand("[%REQ(X-FORWARDED-FOR)%]", fx.context), "[10.0.0.1, 192.168.1.2]");
  fx.module.use_remote_address = false;
  EXPECT_EQ(expand("[%REQ(X-FORWARDED-FOR)%]", fx.context), "[10.0.0.1]");
  fx.request.headers.clear();
  EXPECT_EQ(expand("[%REQ(X-FORWARDED-FOR)%]", fx.context), "[]");
}

TEST(AppendForwardedFor, AppendsThePeerAtTheEdge) {
  std::string out;
  EXPECT_TRUE(append_forwarded_for({{"x-forwarded-for", "1.1.1.1, 2.2.2.2"}}, true,
                                   "[2001:db8::1]:443", out));
  EXPECT_EQ(out, "1.1.1.1, 2.2.2.2, 2001:db8::1");
  out.clear();
  EXPECT_TRUE(append_forwarded_for({{"x-forwarded-for", ""}}, true, "10.1.2.3:80", out));
  EXPECT_EQ(out, "10.1.2.3");
  out.clear();
  EXPECT_FALSE(append_forwarded_for({}, false, "10.1.2.3:80", out));
  EXPECT_EQ(out, "");
}

TEST(GrpcLocalReplyContentType, GrpcAndEnabledGrpcWebOnly) {
  using H = http::HeaderList;
  EXPECT_EQ(grpc_local_reply_content_type(H{{"content-type", "application/grpc"}}, false),
            "application/grpc");
  EXPECT_EQ(grpc_local_reply_content_type(H{{"content-type", "application/grpc+proto"}}, true),
            "application/grpc");
  EXPECT_EQ(grpc_local_reply_content_type(H{{"content-type", "text/plain"}}, true), "");
  EXPECT_EQ(grpc_local_reply_content_type(H{}, true), "");
  // gRPC-Web only when the Module enables it (without the filter Envoy answers plain HTTP).
  H web{{"content-type", "application/grpc-web+proto"}};
  EXPECT_EQ(grpc_local_reply_content_type(web, false), "");
  EXPECT_EQ(grpc_local_reply_content_type(web, true), "application/grpc-web+proto");
  EXPECT_EQ(grpc_local_reply_content_type(H{{"content-type", "application/grpc-web"}}, true),
            "application/grpc-web+proto");
  EXPECT_EQ(grpc_local_reply_content_type(
                H{{"content-type", "application/grpc-web-text"}, {"accept", "*/*"}}, true),
            "application/grpc-web-text+proto");
  // A binary request that accepts -text gets -text back, as its answer would be.
  EXPECT_EQ(grpc_local_reply_content_type(H{{"content-type", "application/grpc-web+json"},
                                            {"accept", "application/grpc-web-text"}},
                                          true),
            "application/grpc-web-text+json");
}

}  // namespace
}  // namespace proxenos::proxy
