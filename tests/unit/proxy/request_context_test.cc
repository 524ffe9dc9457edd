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

http::ValueTemplate tmpl(std::string_view text) {
  std::string error;
  std::optional<http::ValueTemplate> t = http::parse_value_template(text, &error);
  EXPECT_TRUE(t) << error;
  return t ? *t : http::ValueTemplate{};
}

TEST(BuildUpstreamHead, IndexNamesTheFieldsAnHttp2UpstreamGets) {
  Fixture fx;
  fx.request.method = "POST";
  fx.request.path = "/api/v1/items";
  fx.request.has_query = true;
  fx.request.query = "a=1";
  fx.request.framing = http::BodyFraming::kContentLength;
  fx.request.content_length = 42;
  fx.request.headers = {{"Host", "example.com"}, {"Content-Type", "application/grpc"},
                        {"TE", "trailers"},      {"Connection", "x-hop"},
                        {"x-hop", "dropped"},    {"X-Forwarded-For", "10.0.0.1"},
                        {"x-keep", "kept"},      {"Content-Length", "42"}};
  fx.context.forwarded_proto = "http";
  fx.context.request_id = "rid-1";
  router::Route route;
  route.path.value = "/api/";
  router::RouteTarget target;
  target.prefix_rewrite = "/v2/";
  target.request_headers.add.push_back({"x-added", tmpl("via %PROTOCOL%"), true});
  target.request_headers.add.push_back({"connection", tmpl("x-keep"), true});
  target.request_headers.add.push_back({"Host", tmpl("added.example"), true});
  upstream::ClusterSpec cluster;
  cluster.host = "svc";
  std::string text;
  std::string original_path;
  UpstreamHeadIndex index;
  build_upstream_head(fx.context, route, target, cluster, fx.request.path, text, original_path,
                      &index);

  EXPECT_EQ(index.target.in(text), "/v2/v1/items?a=1");
  EXPECT_EQ(text.substr(0, text.find("\r\n")), "POST /v2/v1/items?a=1 HTTP/1.1");
  EXPECT_EQ(index.host.in(text), "added.example");  // an added Host wins, as the last one
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  for (const auto& f : index.fields) fields.emplace_back(f.name.in(text), f.value.in(text));
  const std::vector<std::pair<std::string_view, std::string_view>> want = {
      {"Content-Type", "application/grpc"},
      {"te", "trailers"},  // all that is kept of the client's hop-by-hop TE
      {"x-keep", "kept"},
      {"x-forwarded-for", "10.0.0.1, 192.168.1.2"},
      {"x-forwarded-proto", "http"},
      {"x-request-id", "rid-1"},
      {"x-envoy-original-path", "/api/v1/items?a=1"},
      {"x-added", "via HTTP/1.1"},
      {"content-length", "42"},
  };
  EXPECT_EQ(fields, want);
  // Every indexed field is a line of the text, as an HTTP/1.1 upstream gets it.
  for (const auto& [name, value] : want) {
    EXPECT_NE(text.find(std::string(name) + ": " + std::string(value) + "\r\n"), std::string::npos)
        << name;
  }

  // Without the text (an HTTP/2-only head) the index names the same parts: views of the
  // request and the route, and what was assembled.
  std::string assembled;
  UpstreamHeadIndex only;
  build_upstream_head(fx.context, route, target, cluster, fx.request.path, assembled, original_path,
                      &only, /*text=*/false);
  EXPECT_EQ(assembled.find("\r\n"), std::string::npos);  // no HTTP/1.1 lines
  EXPECT_LT(assembled.size(), text.size() / 2);
  EXPECT_EQ(only.target.in(assembled), "/v2/v1/items?a=1");
  EXPECT_EQ(only.host.in(assembled), "added.example");
  std::vector<std::pair<std::string_view, std::string_view>> same;
  for (const auto& f : only.fields) same.emplace_back(f.name.in(assembled), f.value.in(assembled));
  EXPECT_EQ(same, want);
  EXPECT_EQ(only.in_h2_form, 0u);  // an HTTP/1.1 request's fields are checked on the way out

  // From an HTTP/2 client, its fields and the forwarding ones made of them are in HTTP/2 form
  // already; the route's edits that follow are not.
  fx.request.version_major = 2;
  fx.request.headers = {{"content-type", "application/grpc"}, {"x-keep", "kept"}};
  UpstreamHeadIndex h2;
  build_upstream_head(fx.context, route, target, cluster, fx.request.path, assembled, original_path,
                      &h2, /*text=*/false);
  ASSERT_EQ(h2.in_h2_form, 6u);
  EXPECT_EQ(h2.fields[5].name.in(assembled), "x-envoy-original-path");
  EXPECT_EQ(h2.fields[6].name.in(assembled), "x-added");
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
