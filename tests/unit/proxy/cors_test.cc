#include "proxy/cors.h"

#include <gtest/gtest.h>

#include <string>

#include "proxy/request_router.h"
#include "proxy/response_builder.h"

namespace proxenos::proxy {
namespace {

using http::HeaderList;

// The fields are views into the policy: tests keep it alive in a local.
router::CorsPolicy policy() {
  router::CorsPolicy p;
  p.origins = {"https://app.example.com", "http://localhost:3000"};
  p.allow_methods = "GET, POST";
  p.allow_headers = "content-type, x-grpc-web";
  p.expose_headers = "grpc-status, grpc-message";
  p.max_age = "600";
  p.allow_credentials = true;
  return p;
}

http::RequestHead request(std::string_view method, HeaderList headers) {
  http::RequestHead r;
  r.method = method;
  r.path = "/";
  r.headers = std::move(headers);
  return r;
}

std::string text(const HeaderList& fields) {
  std::string out;
  for (const auto& f : fields) {
    out.append(f.name);
    out.append(": ");
    out.append(f.value);
    out.append("\n");
  }
  return out;
}

TEST(Cors, OriginsMatchExactlyAndCaseSensitively) {
  router::CorsPolicy p = policy();
  EXPECT_TRUE(cors_origin_allowed(p, "https://app.example.com"));
  EXPECT_FALSE(cors_origin_allowed(p, "https://APP.example.com"));
  EXPECT_FALSE(cors_origin_allowed(p, "https://app.example.com:443"));
  EXPECT_FALSE(cors_origin_allowed(p, "https://evil.example.com"));
  EXPECT_FALSE(cors_origin_allowed(p, ""));
  p.origins.push_back("*");
  EXPECT_TRUE(cors_origin_allowed(p, "https://evil.example.com"));
  router::CorsPolicy none;
  EXPECT_FALSE(cors_origin_allowed(none, "https://app.example.com"));
}

TEST(Cors, NoOriginIsNotACorsRequest) {
  const router::CorsPolicy p = policy();
  HeaderList fields;
  EXPECT_EQ(apply_cors(p, request("GET", {}), fields), CorsAction::kNone);
  EXPECT_EQ(apply_cors(p, request("GET", {{"Origin", ""}}), fields), CorsAction::kNone);
  EXPECT_EQ(apply_cors(p, request("OPTIONS", {{"access-control-request-method", "GET"}}), fields),
            CorsAction::kNone);
  EXPECT_TRUE(fields.empty());
}

TEST(Cors, DisallowedOriginGetsNothingAndItsPreflightGoesUpstream) {
  const router::CorsPolicy p = policy();
  HeaderList fields;
  EXPECT_EQ(apply_cors(p, request("GET", {{"origin", "https://evil.example.com"}}), fields),
            CorsAction::kNone);
  EXPECT_EQ(apply_cors(policy(),
                       request("OPTIONS", {{"origin", "https://evil.example.com"},
                                           {"access-control-request-method", "POST"}}),
                       fields),
            CorsAction::kNone);
  EXPECT_TRUE(fields.empty());
}

TEST(Cors, ActualRequestGetsOriginCredentialsAndExposedHeaders) {
  const router::CorsPolicy p = policy();
  HeaderList fields;
  auto req = request("POST", {{"Origin", "https://app.example.com"}});
  EXPECT_EQ(apply_cors(p, req, fields), CorsAction::kRespond);
  EXPECT_EQ(text(fields),
            "access-control-allow-origin: https://app.example.com\n"
            "access-control-allow-credentials: true\n"
            "access-control-expose-headers: grpc-status, grpc-message\n");
}

TEST(Cors, WildcardOriginEchoesTheOriginAndOmitsWhatIsUnset) {
  router::CorsPolicy p;
  p.origins = {"*"};
  HeaderList fields;
  auto req = request("GET", {{"origin", "https://any.example"}});
  EXPECT_EQ(apply_cors(p, req, fields), CorsAction::kRespond);
  EXPECT_EQ(text(fields), "access-control-allow-origin: https://any.example\n");
}

TEST(Cors, PreflightIsAnsweredWithThePolicy) {
  const router::CorsPolicy p = policy();
  HeaderList fields;
  auto req = request("OPTIONS", {{"origin", "http://localhost:3000"},
                                 {"access-control-request-method", "POST"},
                                 {"access-control-request-headers", "content-type"}});
  EXPECT_EQ(apply_cors(p, req, fields), CorsAction::kPreflight);
  EXPECT_EQ(text(fields),
            "access-control-allow-origin: http://localhost:3000\n"
            "access-control-allow-credentials: true\n"
            "access-control-allow-methods: GET, POST\n"
            "access-control-allow-headers: content-type, x-grpc-web\n"
            "access-control-max-age: 600\n"
            "access-control-expose-headers: grpc-status, grpc-message\n");
}

TEST(Cors, PreflightStarMethodsAndHeadersEchoTheRequest) {
  router::CorsPolicy p;
  p.origins = {"https://app.example.com"};
  p.allow_methods = "*";
  p.allow_headers = "*";
  HeaderList fields;
  auto req = request("OPTIONS", {{"origin", "https://app.example.com"},
                                 {"access-control-request-method", "PATCH"},
                                 {"access-control-request-headers", "x-a, x-b"}});
  EXPECT_EQ(apply_cors(p, req, fields), CorsAction::kPreflight);
  EXPECT_EQ(text(fields),
            "access-control-allow-origin: https://app.example.com\n"
            "access-control-allow-methods: PATCH\n"
            "access-control-allow-headers: x-a, x-b\n");
}

TEST(Cors, OptionsWithoutRequestMethodIsAnActualRequest) {
  const router::CorsPolicy p = policy();
  HeaderList fields;
  auto req = request("OPTIONS", {{"origin", "https://app.example.com"}});
  EXPECT_EQ(apply_cors(p, req, fields), CorsAction::kRespond);
  EXPECT_EQ(http::find_header(fields, "access-control-allow-methods"), "");
  EXPECT_EQ(http::find_header(fields, "access-control-allow-origin"), "https://app.example.com");
}

TEST(Cors, ResponseFieldsReplaceTheUpstreamsAndTheRoutesOwn) {
  const router::CorsPolicy p = policy();
  http::ResponseHead upstream;
  upstream.status = 200;
  upstream.headers = {{"Access-Control-Allow-Origin", "*"},
                      {"content-length", "2"},
                      {"access-control-allow-credentials", "false"}};
  router::RouteTarget target;
  router::HeaderToAdd add;
  add.name = "access-control-allow-origin";
  add.value.pieces.push_back({http::TemplateVar::kLiteral, "https://other.example"});
  target.response_headers.add.push_back(add);
  HeaderList fields;
  ASSERT_EQ(apply_cors(p, request("GET", {{"origin", "https://app.example.com"}}), fields),
            CorsAction::kRespond);
  ResponseHeadContext ctx;
  ctx.response = &upstream;
  ctx.target = &target;
  ctx.server_name = "envoy";
  ctx.set_fields = fields;
  std::string head;
  build_response_head(ctx, head);
  EXPECT_EQ(head.find("Access-Control-Allow-Origin: *"), std::string::npos) << head;
  EXPECT_EQ(head.find("other.example"), std::string::npos) << head;
  EXPECT_EQ(head.find("allow-credentials: false"), std::string::npos) << head;
  EXPECT_NE(head.find("access-control-allow-origin: https://app.example.com\r\n"),
            std::string::npos)
      << head;
  EXPECT_NE(head.find("access-control-allow-credentials: true\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("content-length: 2\r\n"), std::string::npos) << head;

  std::string storage;
  HeaderList h2;
  build_response_fields(ctx, storage, h2);
  size_t origins = 0;
  for (const auto& f : h2) origins += http::iequals(f.name, "access-control-allow-origin");
  EXPECT_EQ(origins, 1u);
  EXPECT_EQ(http::find_header(h2, "access-control-allow-origin"), "https://app.example.com");
  EXPECT_EQ(http::find_header(h2, "access-control-allow-credentials"), "true");
}

TEST(Cors, LocalReplyHeadCarriesTheFields) {
  HeaderList fields{{"access-control-allow-origin", "https://app.example.com"}};
  std::string head;
  append_local_reply_head(200, 0, {}, "envoy", false, false, head, fields);
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("access-control-allow-origin: https://app.example.com\r\n"),
            std::string::npos)
      << head;
}

TEST(GrpcLocalReply, StatusFollowsEnvoysMapping) {
  EXPECT_EQ(local_reply_grpc_status(404, "NR"), http::GrpcStatus::kUnimplemented);
  EXPECT_EQ(local_reply_grpc_status(503, "UF"), http::GrpcStatus::kUnavailable);
  EXPECT_EQ(local_reply_grpc_status(503, "UH"), http::GrpcStatus::kUnavailable);
  EXPECT_EQ(local_reply_grpc_status(504, "UT"), http::GrpcStatus::kDeadlineExceeded);
  EXPECT_EQ(local_reply_grpc_status(408, "UT"), http::GrpcStatus::kDeadlineExceeded);
  EXPECT_EQ(local_reply_grpc_status(400, "DPE"), http::GrpcStatus::kInternal);
  EXPECT_EQ(local_reply_grpc_status(500, "-"), http::GrpcStatus::kUnknown);
}

}  // namespace
}  // namespace proxenos::proxy
