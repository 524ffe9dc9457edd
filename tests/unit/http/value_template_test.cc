#include "http/value_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace proxenos::http {
namespace {

ValueTemplate parse_ok(std::string_view in) {
  std::string error;
  std::optional<ValueTemplate> t = parse_value_template(in, &error);
  EXPECT_TRUE(t.has_value()) << in << ": " << error;
  return t.value_or(ValueTemplate{});
}

std::string parse_error(std::string_view in) {
  std::string error;
  std::optional<ValueTemplate> t = parse_value_template(in, &error);
  EXPECT_FALSE(t.has_value()) << in;
  return error;
}

TEST(ValueTemplate, PlainLiteral) {
  ValueTemplate t = parse_ok("hello world");
  ASSERT_EQ(t.pieces.size(), 1u);
  EXPECT_EQ(t.pieces[0].var, TemplateVar::kLiteral);
  EXPECT_EQ(t.pieces[0].text, "hello world");
  EXPECT_TRUE(t.is_literal());
}

TEST(ValueTemplate, EmptyValue) {
  ValueTemplate t = parse_ok("");
  EXPECT_TRUE(t.pieces.empty());
  EXPECT_TRUE(t.is_literal());
}

TEST(ValueTemplate, DoublePercentIsLiteral) {
  ValueTemplate t = parse_ok("100%% sure %%%%");
  ASSERT_EQ(t.pieces.size(), 1u);
  EXPECT_EQ(t.pieces[0].text, "100% sure %%");
  EXPECT_TRUE(t.is_literal());
}

TEST(ValueTemplate, EveryCommand) {
  const std::vector<std::pair<std::string, TemplateVar>> cases = {
      {"DOWNSTREAM_REMOTE_ADDRESS", TemplateVar::kDownstreamRemoteAddress},
      {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", TemplateVar::kDownstreamRemoteAddressWithoutPort},
      {"DOWNSTREAM_LOCAL_ADDRESS", TemplateVar::kDownstreamLocalAddress},
      {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", TemplateVar::kDownstreamLocalAddressWithoutPort},
      {"DOWNSTREAM_LOCAL_PORT", TemplateVar::kDownstreamLocalPort},
      {"UPSTREAM_REMOTE_ADDRESS", TemplateVar::kUpstreamRemoteAddress},
      {"PROTOCOL", TemplateVar::kProtocol},
      {"START_TIME", TemplateVar::kStartTime},
      {"HOSTNAME", TemplateVar::kHostname},
  };
  for (const auto& [name, var] : cases) {
    ValueTemplate t = parse_ok("%" + name + "%");
    ASSERT_EQ(t.pieces.size(), 1u) << name;
    EXPECT_EQ(t.pieces[0].var, var) << name;
    EXPECT_TRUE(t.pieces[0].text.empty());
    EXPECT_FALSE(t.is_literal());
  }
}

TEST(ValueTemplate, RequestHeaderLowerCased) {
  ValueTemplate t = parse_ok("%REQ(X-Request-ID)%");
  ASSERT_EQ(t.pieces.size(), 1u);
  EXPECT_EQ(t.pieces[0].var, TemplateVar::kRequestHeader);
  EXPECT_EQ(t.pieces[0].text, "x-request-id");
}

TEST(ValueTemplate, MixedPieces) {
  ValueTemplate t = parse_ok("for=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%;proto=%PROTOCOL%%%x");
  ASSERT_EQ(t.pieces.size(), 5u);
  EXPECT_EQ(t.pieces[0].var, TemplateVar::kLiteral);
  EXPECT_EQ(t.pieces[0].text, "for=");
  EXPECT_EQ(t.pieces[1].var, TemplateVar::kDownstreamRemoteAddressWithoutPort);
  EXPECT_EQ(t.pieces[2].text, ";proto=");
  EXPECT_EQ(t.pieces[3].var, TemplateVar::kProtocol);
  EXPECT_EQ(t.pieces[4].text, "%x");
  // "%%x" after the command is a literal "%x".
  t = parse_ok("%PROTOCOL%%%x");
  ASSERT_EQ(t.pieces.size(), 2u);
  EXPECT_EQ(t.pieces[1].text, "%x");
}

TEST(ValueTemplate, AdjacentCommands) {
  ValueTemplate t = parse_ok("%HOSTNAME%%REQ(a)%");
  ASSERT_EQ(t.pieces.size(), 2u);
  EXPECT_EQ(t.pieces[0].var, TemplateVar::kHostname);
  EXPECT_EQ(t.pieces[1].var, TemplateVar::kRequestHeader);
  EXPECT_EQ(t.pieces[1].text, "a");
}

TEST(ValueTemplate, UnknownCommand) {
  EXPECT_EQ(parse_error("%FOO%"), "unknown substitution %FOO%");
  EXPECT_EQ(parse_error("x %protocol% y"), "unknown substitution %protocol%");
  EXPECT_EQ(parse_error("%START_TIME(%s)%"), "unknown substitution %START_TIME(%");
}

TEST(ValueTemplate, LonePercent) {
  EXPECT_NE(parse_error("50%").find("unterminated"), std::string::npos);
  EXPECT_NE(parse_error("%PROTOCOL").find("unterminated"), std::string::npos);
  EXPECT_NE(parse_error("%%%").find("unterminated"), std::string::npos);
}

TEST(ValueTemplate, BadRequestHeaderName) {
  EXPECT_NE(parse_error("%REQ()%").find("invalid header name"), std::string::npos);
  EXPECT_NE(parse_error("%REQ(a b)%").find("invalid header name"), std::string::npos);
  EXPECT_EQ(parse_error("%REQ(a%"), "unknown substitution %REQ(a%");
}

TEST(ValueTemplate, ControlCharactersRejected) {
  EXPECT_NE(parse_error("a\r\nX-Injected: 1").find("control character"), std::string::npos);
  EXPECT_NE(parse_error(std::string("a\0b", 3)).find("control character"), std::string::npos);
  parse_ok("tab\tis fine");
}

TEST(ValueTemplate, NullErrorPointerIsAllowed) {
  EXPECT_FALSE(parse_value_template("%NOPE%", nullptr).has_value());
}

}  // namespace
}  // namespace proxenos::http
