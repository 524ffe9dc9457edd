#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/http1_parser.h"

namespace proxenos::http {
namespace {

using namespace std::string_literals;

ParserLimits http10_limits() {
  ParserLimits l;
  l.allow_http10 = true;
  return l;
}

ParseResult parse_once(std::string_view in, RequestHead& head, const ParserLimits& l = {}) {
  RequestParser parser(l);
  return parser.parse(in, head);
}

// ---------------------------------------------------------------------------------------------
// Rejections: every one names its status and a piece of its reason.

struct Reject {
  std::string name;
  std::string input;
  int status;
  std::string reason;  // substring of ParseResult::error
  bool http10 = false;
};

std::ostream& operator<<(std::ostream& os, const Reject& r) {
  return os << r.name;
}

const std::string kH = "Host: a\r\n";

std::vector<Reject> rejections() {
  return {
      // Smuggling: CL/TE (edge-hardening §7 rows 1-3).
      {"ClAndTe",
       "POST / HTTP/1.1\r\n" + kH + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "both Content-Length and Transfer-Encoding"},
      {"TeAndCl",
       "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400,
       "both Content-Length and Transfer-Encoding"},
      {"ClDiffering", "POST / HTTP/1.1\r\n" + kH + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
       400, "conflicting Content-Length"},
      {"ClListDiffering", "POST / HTTP/1.1\r\n" + kH + "Content-Length: 5, 6\r\n\r\n", 400,
       "Content-Length"},
      {"ClListThenDiffering",
       "POST / HTTP/1.1\r\n" + kH + "Content-Length: 5,5\r\nContent-Length: 6\r\n\r\n", 400,
       "conflicting Content-Length"},
      {"ClPlus", "POST / HTTP/1.1\r\n" + kH + "Content-Length: +5\r\n\r\n", 400,
       "invalid Content-Length"},
      {"ClMinus", "POST / HTTP/1.1\r\n" + kH + "Content-Length: -1\r\n\r\n", 400,
       "invalid Content-Length"},
      {"ClHex", "POST / HTTP/1.1\r\n" + kH + "Content-Length: 0x10\r\n\r\n", 400,
       "invalid Content-Length"},
      {"ClSpaceInside", "POST / HTTP/1.1\r\n" + kH + "Content-Length: 5 5\r\n\r\n", 400,
       "invalid Content-Length"},
      {"ClEmpty", "POST / HTTP/1.1\r\n" + kH + "Content-Length:\r\n\r\n", 400,
       "invalid Content-Length"},
      {"ClBlank", "POST / HTTP/1.1\r\n" + kH + "Content-Length:   \r\n\r\n", 400,
       "invalid Content-Length"},
      {"Cl20Digits", "POST / HTTP/1.1\r\n" + kH + "Content-Length: 10000000000000000000\r\n\r\n",
       400, "invalid Content-Length"},
      {"Cl20DigitsLeadingZero",
       "POST / HTTP/1.1\r\n" + kH + "Content-Length: 00000000000000000005\r\n\r\n", 400,
       "invalid Content-Length"},
      {"ClTrailingComma", "POST / HTTP/1.1\r\n" + kH + "Content-Length: 5,\r\n\r\n", 400,
       "invalid Content-Length"},
      {"ClLeadingComma", "POST / HTTP/1.1\r\n" + kH + "Content-Length: ,5\r\n\r\n", 400,
       "invalid Content-Length"},
      {"ClDecimal", "POST / HTTP/1.1\r\n" + kH + "Content-Length: 5.0\r\n\r\n", 400,
       "invalid Content-Length"},
      {"TeGzip", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding: gzip\r\n\r\n", 400,
       "Transfer-Encoding"},
      {"TeChunkedGzip", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding: chunked, gzip\r\n\r\n",
       400, "Transfer-Encoding"},
      {"TeGzipChunked", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding: gzip, chunked\r\n\r\n",
       400, "Transfer-Encoding"},
      {"TeChunkedChunked",
       "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400,
       "Transfer-Encoding"},
      {"TeTwoHeaders",
       "POST / HTTP/1.1\r\n" + kH +
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       400, "Transfer-Encoding"},
      {"TeChunkedThenIdentity",
       "POST / HTTP/1.1\r\n" + kH +
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
       400, "Transfer-Encoding"},
      {"TeIdentity", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding: identity\r\n\r\n", 400,
       "Transfer-Encoding"},
      {"TeXchunked", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding: xchunked\r\n\r\n", 400,
       "Transfer-Encoding"},
      {"TeChunkedParam", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding: chunked;q=1\r\n\r\n", 400,
       "Transfer-Encoding"},
      {"TeEmpty", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding:\r\n\r\n", 400,
       "Transfer-Encoding"},
      {"TeSpaceBeforeColon", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding : chunked\r\n\r\n",
       400, "whitespace between header name and colon"},
      {"TeTabBeforeColon", "POST / HTTP/1.1\r\n" + kH + "Transfer-Encoding\t: chunked\r\n\r\n", 400,
       "whitespace between header name and colon"},
      {"TeInHttp10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "Transfer-Encoding in HTTP/1.0", true},
      // Line syntax (row 5).
      {"ObsFold", "GET / HTTP/1.1\r\n" + kH + "X-A: b\r\n c\r\n\r\n", 400, "obs-fold"},
      {"ObsFoldTab", "GET / HTTP/1.1\r\n" + kH + "X-A: b\r\n\tc\r\n\r\n", 400, "obs-fold"},
      {"ObsFoldFirstLine", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "obs-fold"},
      {"BareCrInValue", "GET / HTTP/1.1\r\n" + kH + "X-A: b\rc\r\n\r\n", 400, "bare CR"},
      {"BareCrAtValueEnd", "GET / HTTP/1.1\r\n" + kH + "X-A: b\r\r\n\r\n", 400, "header value"},
      {"BareCrInRequestLine", "GET /\r HTTP/1.1\r\n" + kH + "\r\n", 400, "bare CR"},
      {"BareCrAfterMethod", "GET\r / HTTP/1.1\r\n" + kH + "\r\n", 400, "bare CR"},
      {"BareLfHeader", "GET / HTTP/1.1\r\n" + kH + "X-A: b\n\r\n", 400, "bare LF"},
      {"BareLfRequestLine", "GET / HTTP/1.1\n" + kH + "\r\n", 400, "bare LF"},
      {"BareLfEndOfHead", "GET / HTTP/1.1\r\n" + kH + "\n", 400, "bare LF"},
      {"LfOnlyRequest", "GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF"},
      {"NulInValue", "GET / HTTP/1.1\r\n" + kH + "X-A: b\0c\r\n\r\n"s, 400, "header value"},
      {"NulInName", "GET / HTTP/1.1\r\n" + kH + "X\0A: b\r\n\r\n"s, 400, "header name"},
      {"CtlInValue", "GET / HTTP/1.1\r\n" + kH + "X-A: b\x01\r\n\r\n", 400, "header value"},
      {"DelInValue", "GET / HTTP/1.1\r\n" + kH + "X-A: b\x7f\r\n\r\n", 400, "header value"},
      {"EscInValue", "GET / HTTP/1.1\r\n" + kH + "X-A: \x1b[31m\r\n\r\n", 400, "header value"},
      {"NulInTarget", "GET /a\0b HTTP/1.1\r\n"s + kH + "\r\n", 400, "request target"},
      {"CtlInTarget", "GET /a\x01 HTTP/1.1\r\n" + kH + "\r\n", 400, "request target"},
      {"TabInTarget", "GET /a\tb HTTP/1.1\r\n" + kH + "\r\n", 400, "request target"},
      {"CtlInMethod", "GE\x01T / HTTP/1.1\r\n" + kH + "\r\n", 400, "method"},
      {"ParenInMethod", "G(T / HTTP/1.1\r\n" + kH + "\r\n", 400, "method"},
      {"SlashInMethod", "GET/ / HTTP/1.1\r\n" + kH + "\r\n", 400, "method"},
      {"ParenInName", "GET / HTTP/1.1\r\n" + kH + "X(A): b\r\n\r\n", 400, "header name"},
      {"BracketName", "GET / HTTP/1.1\r\n" + kH + "[x]: b\r\n\r\n", 400, "header name"},
      {"SpaceInName", "GET / HTTP/1.1\r\n" + kH + "X A: b\r\n\r\n", 400, "whitespace"},
      {"HighByteInName", "GET / HTTP/1.1\r\n" + kH + "X\xc3\xa9: b\r\n\r\n", 400, "header name"},
      {"EmptyName", "GET / HTTP/1.1\r\n" + kH + ": b\r\n\r\n", 400, "empty header name"},
      {"NoColon", "GET / HTTP/1.1\r\n" + kH + "X-A\r\n\r\n", 400, "header name"},
      // Request line (row 6).
      {"TwoSpacesAfterMethod", "GET  / HTTP/1.1\r\n" + kH + "\r\n", 400, "extra space"},
      {"TwoSpacesAfterTarget", "GET /  HTTP/1.1\r\n" + kH + "\r\n", 400, "HTTP version"},
      {"LeadingSpace", " GET / HTTP/1.1\r\n" + kH + "\r\n", 400, "missing method"},
      {"MissingTarget", "GET HTTP/1.1\r\n" + kH + "\r\n", 400, "missing HTTP version"},
      {"MethodOnly", "GET\r\n" + kH + "\r\n", 400, "missing request target"},
      {"MethodSpaceOnly", "GET \r\n" + kH + "\r\n", 400, "missing request target"},
      {"Http09", "GET /\r\n\r\n", 400, "missing HTTP version"},
      {"Http09Explicit", "GET / HTTP/0.9\r\n" + kH + "\r\n", 400, "HTTP/0.9"},
      {"TrailingSpace", "GET / HTTP/1.1 \r\n" + kH + "\r\n", 400, "HTTP version"},
      {"Fragment", "GET /a#frag HTTP/1.1\r\n" + kH + "\r\n", 400, "fragment"},
      {"FragmentOnly", "GET # HTTP/1.1\r\n" + kH + "\r\n", 400, "fragment"},
      {"Http12", "GET / HTTP/1.2\r\n" + kH + "\r\n", 400, "minor version"},
      {"Http20", "GET / HTTP/2.0\r\n" + kH + "\r\n", 505, "not supported"},
      {"Http30", "GET / HTTP/3.0\r\n" + kH + "\r\n", 505, "not supported"},
      {"LowercaseVersion", "GET / http/1.1\r\n" + kH + "\r\n", 400, "HTTP version"},
      {"VersionTooLong", "GET / HTTP/1.10\r\n" + kH + "\r\n", 400, "HTTP version"},
      {"VersionShort", "GET / HTTP/1\r\n" + kH + "\r\n", 400, "HTTP version"},
      {"SpaceInTarget", "GET /a b HTTP/1.1\r\n" + kH + "\r\n", 400, "HTTP version"},
      {"Http10NotEnabled", "GET / HTTP/1.0\r\n\r\n", 426, "HTTP/1.0"},
      // Request-target forms.
      {"RelativeTarget", "GET foo HTTP/1.1\r\n" + kH + "\r\n", 400, "invalid request target"},
      {"AsteriskWithGet", "GET * HTTP/1.1\r\n" + kH + "\r\n", 400, "asterisk"},
      {"Connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405, "CONNECT"},
      {"AbsoluteFtp", "GET ftp://a/ HTTP/1.1\r\n" + kH + "\r\n", 400, "invalid request target"},
      {"AbsoluteNoSlashes", "GET http:a/ HTTP/1.1\r\n" + kH + "\r\n", 400,
       "invalid request target"},
      {"AbsoluteEmptyAuthority", "GET http:///x HTTP/1.1\r\n" + kH + "\r\n", 400, "authority"},
      {"AbsoluteUserinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "authority"},
      {"AbsoluteHostMismatch", "GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "does not match"},
      {"AbsolutePortMismatch", "GET http://a:8080/x HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "does not match"},
      {"AbsoluteWithoutHost11", "GET http://a/x HTTP/1.1\r\n\r\n", 400, "missing Host"},
      // Host (row 7).
      {"MissingHost", "GET / HTTP/1.1\r\n\r\n", 400, "missing Host"},
      {"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "multiple Host"},
      {"TwoHostsDiffering", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "multiple Host"},
      {"HostUserinfo", "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, "invalid Host"},
      {"HostSpace", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"},
      {"HostSlash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"},
      {"HostEmpty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "invalid Host"},
      {"HostHighByte", "GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400, "invalid Host"},
      {"HostList", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400, "invalid Host"},
      // Underscores (row 9): the default is reject.
      {"Underscore", "GET / HTTP/1.1\r\n" + kH + "X_Forwarded: b\r\n\r\n", 400, "underscore"},
  };
}

class RequestRejectTest : public testing::TestWithParam<Reject> {};

TEST_P(RequestRejectTest, RejectsWithStatus) {
  const Reject& c = GetParam();
  ParserLimits limits;
  limits.allow_http10 = c.http10;
  RequestHead head;
  RequestParser parser(limits);
  ParseResult r = parser.parse(c.input, head);
  ASSERT_EQ(r.status, ParseStatus::kError) << "input accepted: " << c.input;
  EXPECT_EQ(r.error_status, c.status) << r.error;
  EXPECT_NE(r.error.find(c.reason), std::string_view::npos) << "reason: " << r.error;

  // Fed one byte at a time, the verdict is the same.
  RequestParser trickle(limits);
  ParseResult t;
  for (size_t i = 1; i <= c.input.size(); ++i) {
    t = trickle.parse(std::string_view(c.input).substr(0, i), head);
    if (t.status != ParseStatus::kIncomplete) break;
  }
  EXPECT_EQ(t.status, ParseStatus::kError);
  EXPECT_EQ(t.error_status, c.status);
  EXPECT_EQ(t.error, r.error);
}

INSTANTIATE_TEST_SUITE_P(All, RequestRejectTest, testing::ValuesIn(rejections()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Accepted heads and the fields derived from them.

TEST(RequestParser, SimpleGet) {
  const std::string in = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nAccept:  */* \r\n\r\n";
  RequestHead h;
  ParseResult r = parse_once(in, h);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/a/b?x=1&y=2");
  EXPECT_EQ(h.path, "/a/b");
  EXPECT_EQ(h.query, "x=1&y=2");
  EXPECT_TRUE(h.has_query);
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.authority, "example.com");
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_EQ(h.headers[0].name, "Host");
  EXPECT_EQ(h.headers[1].name, "Accept");
  EXPECT_EQ(h.headers[1].value, "*/*");  // OWS trimmed on both sides
  EXPECT_EQ(h.framing, BodyFraming::kNone);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.expect_continue);
  EXPECT_FALSE(h.upgrade);
}

TEST(RequestParser, ViewsPointIntoStorageNotInput) {
  std::string in = "GET /p?q HTTP/1.1\r\nHost: h\r\nX-A: v\r\n\r\n";
  RequestHead h;
  ASSERT_EQ(parse_once(in, h).status, ParseStatus::kComplete);
  EXPECT_EQ(h.storage, in);
  auto inside = [&](std::string_view v) {
    return v.data() >= h.storage.data() &&
           v.data() + v.size() <= h.storage.data() + h.storage.size();
  };
  for (std::string_view v :
       {h.method, h.target, h.path, h.query, h.authority, h.headers[1].name, h.headers[1].value}) {
    EXPECT_TRUE(inside(v)) << v;
  }
  std::fill(in.begin(), in.end(), 'z');  // the input buffer is reused by the connection
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.headers[1].value, "v");
}

TEST(RequestParser, EmptyQueryAndNoQuery) {
  RequestHead h;
  ASSERT_EQ(parse_once("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n", h).status, ParseStatus::kComplete);
  EXPECT_EQ(h.path, "/a");
  EXPECT_EQ(h.query, "");
  EXPECT_TRUE(h.has_query);
  ASSERT_EQ(parse_once("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", h).status, ParseStatus::kComplete);
  EXPECT_EQ(h.path, "/a");
  EXPECT_FALSE(h.has_query);
}

TEST(RequestParser, AbsoluteForm) {
  struct Case {
    std::string target, authority, path, query;
    bool has_query;
  };
  for (const Case& c : std::vector<Case>{
           {"http://example.com/a?b", "example.com", "/a", "b", true},
           {"http://example.com", "example.com", "/", "", false},
           {"http://example.com?x=1", "example.com", "/", "x=1", true},
           {"HTTPS://example.com:8443/p", "example.com:8443", "/p", "", false},
           {"http://[::1]:80/", "[::1]:80", "/", "", false},
       }) {
    SCOPED_TRACE(c.target);
    RequestHead h;
    const std::string in = "GET " + c.target + " HTTP/1.1\r\nHost: " + c.authority + "\r\n\r\n";
    ASSERT_EQ(parse_once(in, h).status, ParseStatus::kComplete);
    EXPECT_EQ(h.target, c.target);
    EXPECT_EQ(h.authority, c.authority);
    EXPECT_EQ(h.path, c.path);
    EXPECT_EQ(h.query, c.query);
    EXPECT_EQ(h.has_query, c.has_query);
  }
}

TEST(RequestParser, AbsoluteFormHostComparedCaseInsensitively) {
  RequestHead h;
  ASSERT_EQ(parse_once("GET http://Example.COM/ HTTP/1.1\r\nHost: example.com\r\n\r\n", h).status,
            ParseStatus::kComplete);
  EXPECT_EQ(h.authority, "Example.COM");  // the target's authority wins
}

TEST(RequestParser, AbsoluteFormWithoutHostInHttp10) {
  RequestHead h;
  ASSERT_EQ(parse_once("GET http://a/x HTTP/1.0\r\n\r\n", h, http10_limits()).status,
            ParseStatus::kComplete);
  EXPECT_EQ(h.authority, "a");
  EXPECT_EQ(h.path, "/x");
}

TEST(RequestParser, AsteriskFormWithOptions) {
  RequestHead h;
  ASSERT_EQ(parse_once("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", h).status, ParseStatus::kComplete);
  EXPECT_EQ(h.target, "*");
  EXPECT_EQ(h.path, "*");
}

TEST(RequestParser, HighBytesInTargetAccepted) {
  RequestHead h;
  ASSERT_EQ(parse_once("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", h).status,
            ParseStatus::kComplete);
  EXPECT_EQ(h.path, "/caf\xc3\xa9");
}

TEST(RequestParser, ObsTextAndTabsInValues) {
  RequestHead h;
  ASSERT_EQ(
      parse_once("GET / HTTP/1.1\r\nHost: h\r\nX-A:\t\xff a\tb \t\r\nX-Empty:\r\n\r\n", h).status,
      ParseStatus::kComplete);
  EXPECT_EQ(h.headers[1].value, "\xff a\tb");
  EXPECT_EQ(h.headers[2].name, "X-Empty");
  EXPECT_EQ(h.headers[2].value, "");
}

// Values and targets are scanned in 16-byte blocks with a byte-wise tail: every position of a
// forbidden byte, in both parts, must be caught, and every allowed byte must pass.
TEST(RequestParser, ForbiddenValueByteAtEveryOffset) {
  for (char bad : {'\0', '\x01', '\x1f', '\x7f', '\r', '\x0b'}) {
    for (size_t at = 0; at < 70; ++at) {
      std::string value(70, 'v');
      value[at] = bad;
      RequestHead h;
      ParseResult r = parse_once("GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + value + "\r\n\r\n", h);
      ASSERT_EQ(r.status, ParseStatus::kError) << int(bad) << " at " << at;
      EXPECT_EQ(r.error_status, 400);
    }
  }
}

TEST(RequestParser, AllowedValueBytesAtEveryOffset) {
  for (char ok : {'\t', ' ', '\x80', '\xff', '~', '!', '"'}) {
    for (size_t at = 0; at < 70; ++at) {
      std::string value(70, 'v');
      value[at] = ok;
      RequestHead h;
      ParseResult r = parse_once("GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + value + "\r\n\r\n", h);
      ASSERT_EQ(r.status, ParseStatus::kComplete) << int(ok) << " at " << at << r.error;
      std::string trimmed = value;
      while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t'))
        trimmed.pop_back();
      while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) {
        trimmed.erase(0, 1);
      }
      EXPECT_EQ(h.headers[1].value, trimmed);
    }
  }
}

TEST(RequestParser, ForbiddenTargetByteAtEveryOffset) {
  for (char bad : {'\0', '\x01', '\x7f', '#', ' ', '\t'}) {
    for (size_t at = 1; at < 70; ++at) {
      std::string target = "/" + std::string(69, 't');
      target[at] = bad;
      RequestHead h;
      ParseResult r = parse_once("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n", h);
      ASSERT_EQ(r.status, ParseStatus::kError) << int(bad) << " at " << at;
      EXPECT_EQ(r.error_status, 400);
    }
  }
  std::string target = "/" + std::string(69, 't');
  for (size_t at = 1; at < 70; ++at) {
    std::string t = target;
    t[at] = '\x80';
    RequestHead h;
    ASSERT_EQ(parse_once("GET " + t + " HTTP/1.1\r\nHost: h\r\n\r\n", h).status,
              ParseStatus::kComplete);
    EXPECT_EQ(h.target, t);
  }
}

TEST(RequestParser, TokenCharsInNamesAndMethod) {
  RequestHead h;
  ASSERT_EQ(parse_once("M-SEARCH! / HTTP/1.1\r\nHost: h\r\nX!#$%&'*+-.^`|~9: v\r\n\r\n", h).status,
            ParseStatus::kComplete);
  EXPECT_EQ(h.method, "M-SEARCH!");
  EXPECT_EQ(h.headers[1].name, "X!#$%&'*+-.^`|~9");
}

TEST(RequestParser, HostWithPortAndIpv6) {
  RequestHead h;
  ASSERT_EQ(parse_once("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", h).status,
            ParseStatus::kComplete);
  EXPECT_EQ(h.authority, "[2001:db8::1]:8080");
}

TEST(RequestParser, LeadingEmptyLinesSkipped) {
  const std::string in = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  RequestHead h;
  ParseResult r = parse_once(in, h);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.storage, in.substr(4));
}

TEST(RequestParser, IdenticalContentLengthsFold) {
  for (const char* cl : {"Content-Length: 5\r\nContent-Length: 5\r\n", "Content-Length: 5, 5\r\n",
                         "Content-Length: 5,5,\t5\r\n", "content-length: 005\r\n"}) {
    SCOPED_TRACE(cl);
    RequestHead h;
    ParseResult r = parse_once("POST / HTTP/1.1\r\nHost: h\r\n"s + cl + "\r\n", h);
    ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error;
    EXPECT_EQ(h.framing, BodyFraming::kContentLength);
    EXPECT_EQ(h.content_length, 5u);
  }
}

TEST(RequestParser, ContentLengthNineteenDigits) {
  RequestHead h;
  ASSERT_EQ(
      parse_once("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n", h)
          .status,
      ParseStatus::kComplete);
  EXPECT_EQ(h.content_length, 9999999999999999999ull);
}

// Framing and connection semantics.
struct Derive {
  std::string name;
  std::string head;  // request line + fields, without the final CRLF
  BodyFraming framing;
  uint64_t content_length;
  bool keep_alive;
  bool expect_continue = false;
  bool upgrade = false;
  std::string upgrade_protocol = "";
};

std::ostream& operator<<(std::ostream& os, const Derive& d) {
  return os << d.name;
}

class RequestDeriveTest : public testing::TestWithParam<Derive> {};

TEST_P(RequestDeriveTest, Derives) {
  const Derive& d = GetParam();
  RequestHead h;
  ParseResult r = parse_once(d.head + "\r\n", h, http10_limits());
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error;
  EXPECT_EQ(h.framing, d.framing);
  EXPECT_EQ(h.content_length, d.content_length);
  EXPECT_EQ(h.keep_alive, d.keep_alive);
  EXPECT_EQ(h.expect_continue, d.expect_continue);
  EXPECT_EQ(h.upgrade, d.upgrade);
  EXPECT_EQ(h.upgrade_protocol, d.upgrade_protocol);
}

INSTANTIATE_TEST_SUITE_P(
    All, RequestDeriveTest,
    testing::Values(
        Derive{"GetNoBody", "GET / HTTP/1.1\r\nHost: h\r\n", BodyFraming::kNone, 0, true},
        Derive{"PostCl", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n",
               BodyFraming::kContentLength, 12, true},
        Derive{"PostClZero", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n",
               BodyFraming::kContentLength, 0, true},
        Derive{"Chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n",
               BodyFraming::kChunked, 0, true},
        Derive{"ChunkedUpperCase", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n",
               BodyFraming::kChunked, 0, true},
        Derive{"Close11", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n", BodyFraming::kNone,
               0, false},
        Derive{"CloseInList11", "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n",
               BodyFraming::kNone, 0, false},
        Derive{"CloseSecondHeader11",
               "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n",
               BodyFraming::kNone, 0, false},
        Derive{"Default10", "GET / HTTP/1.0\r\n", BodyFraming::kNone, 0, false},
        Derive{"KeepAlive10", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n", BodyFraming::kNone, 0,
               true},
        Derive{"KeepAliveAndClose10", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n",
               BodyFraming::kNone, 0, false},
        Derive{"Post10Cl", "POST / HTTP/1.0\r\nContent-Length: 3\r\n", BodyFraming::kContentLength,
               3, false},
        Derive{"Expect",
               "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n",
               BodyFraming::kContentLength, 1, true, true},
        Derive{"ExpectOther", "GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n", BodyFraming::kNone,
               0, true, false},
        Derive{"ExpectIgnoredIn10", "GET / HTTP/1.0\r\nExpect: 100-continue\r\n",
               BodyFraming::kNone, 0, false, false},
        Derive{"Upgrade",
               "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n",
               BodyFraming::kNone, 0, true, false, true, "websocket"},
        Derive{"UpgradeTokenInList",
               "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: keep-alive, upgrade\r\n",
               BodyFraming::kNone, 0, true, false, true, "h2c"},
        Derive{"UpgradeHeaderWithoutConnectionToken",
               "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n", BodyFraming::kNone, 0, true,
               false, false, ""},
        Derive{"ConnectionUpgradeWithoutUpgradeHeader",
               "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n", BodyFraming::kNone, 0, true,
               false, false, ""}),
    [](const auto& info) { return info.param.name; });

// Underscore policy (row 9).
TEST(RequestParser, UnderscoreActions) {
  const std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX_A: 1\r\nX-B: 2\r\n\r\n";
  ParserLimits l;
  RequestHead h;
  l.underscores = UnderscoreAction::kReject;
  EXPECT_EQ(parse_once(in, h, l).error_status, 400);

  l.underscores = UnderscoreAction::kDropHeader;
  ASSERT_EQ(parse_once(in, h, l).status, ParseStatus::kComplete);
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_EQ(h.headers[0].name, "Host");
  EXPECT_EQ(h.headers[1].name, "X-B");

  l.underscores = UnderscoreAction::kAllow;
  ASSERT_EQ(parse_once(in, h, l).status, ParseStatus::kComplete);
  ASSERT_EQ(h.headers.size(), 3u);
  EXPECT_EQ(h.headers[1].name, "X_A");
  EXPECT_EQ(h.headers[1].value, "1");
}

TEST(RequestParser, Http10AllowedWhenEnabled) {
  RequestHead h;
  ParseResult r = parse_once("GET / HTTP/1.0\r\n\r\n", h, http10_limits());
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(h.version_minor, 0);
  EXPECT_EQ(h.authority, "");
}

// ---------------------------------------------------------------------------------------------
// Limits: exactly at each limit passes, one over fails, complete or still incomplete.

// A request whose head is exactly `total` bytes (total >= 40).
std::string request_of_size(size_t total) {
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
  const size_t fixed = head.size() + 4;  // + "\r\n\r\n"
  head.append(total - fixed, 'a');
  head += "\r\n\r\n";
  return head;
}

TEST(RequestLimits, HeaderBytesAtLimitPasses) {
  for (size_t max : {size_t{64}, size_t{1000}, kDefaultMaxHeaderBytes}) {
    ParserLimits l;
    l.max_header_bytes = max;
    RequestHead h;
    const std::string in = request_of_size(max);
    ParseResult r = parse_once(in, h, l);
    ASSERT_EQ(r.status, ParseStatus::kComplete) << max << " " << r.error;
    EXPECT_EQ(r.consumed, max);
  }
}

TEST(RequestLimits, HeaderBytesOneOverIs431) {
  for (size_t max : {size_t{64}, size_t{1000}, kDefaultMaxHeaderBytes}) {
    ParserLimits l;
    l.max_header_bytes = max;
    RequestHead h;
    ParseResult r = parse_once(request_of_size(max + 1), h, l);
    ASSERT_EQ(r.status, ParseStatus::kError) << max;
    EXPECT_EQ(r.error_status, 431);
  }
}

TEST(RequestLimits, PartialHeadBytesCount) {
  ParserLimits l;
  l.max_header_bytes = 100;
  RequestHead h;
  std::string partial = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
  partial.resize(100, 'a');  // exactly at the limit, no end of head yet: keep waiting
  RequestParser p(l);
  EXPECT_EQ(p.parse(partial, h).status, ParseStatus::kIncomplete);
  partial += 'a';
  ParseResult r = p.parse(partial, h);
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 431);
}

TEST(RequestLimits, PartialBytesTrickledAtDefaultLimit) {
  // A slow client that never finishes its head is refused at the limit, not buffered further.
  RequestParser p;
  RequestHead h;
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
  in.resize(kDefaultMaxHeaderBytes + 1, 'a');
  ParseResult r;
  for (size_t fed = 1024; fed < in.size(); fed += 1024) {
    r = p.parse(std::string_view(in).substr(0, fed), h);
    ASSERT_EQ(r.status, ParseStatus::kIncomplete) << fed;
  }
  r = p.parse(std::string_view(in).substr(0, kDefaultMaxHeaderBytes), h);
  ASSERT_EQ(r.status, ParseStatus::kIncomplete);
  r = p.parse(in, h);
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 431);
}

TEST(RequestLimits, BytesLimitIncludesLeadingEmptyLines) {
  ParserLimits l;
  l.max_header_bytes = 64;
  RequestHead h;
  std::string in = std::string(70, '\0');
  for (size_t i = 0; i < 35; ++i) in.replace(2 * i, 2, "\r\n");
  ParseResult r = parse_once(in, h, l);
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 431);
}

TEST(RequestLimits, HeaderCount) {
  for (size_t max : {size_t{1}, size_t{4}, kDefaultMaxHeaderCount}) {
    SCOPED_TRACE(max);
    ParserLimits l;
    l.max_header_count = max;
    std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (size_t i = 1; i < max; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
    RequestHead h;
    ParseResult at = parse_once(head + "\r\n", h, l);
    ASSERT_EQ(at.status, ParseStatus::kComplete) << at.error;
    EXPECT_EQ(h.headers.size(), max);

    head += "X-Over: v\r\n";
    ParseResult over = parse_once(head + "\r\n", h, l);
    ASSERT_EQ(over.status, ParseStatus::kError);
    EXPECT_EQ(over.error_status, 431);

    // Detected while the head is still incomplete.
    RequestParser p(l);
    ParseResult partial = p.parse(head, h);
    ASSERT_EQ(partial.status, ParseStatus::kError);
    EXPECT_EQ(partial.error_status, 431);
  }
}

TEST(RequestLimits, DroppedHeadersStillCount) {
  ParserLimits l;
  l.max_header_count = 2;
  l.underscores = UnderscoreAction::kDropHeader;
  RequestHead h;
  ParseResult r = parse_once("GET / HTTP/1.1\r\nHost: h\r\nX_A: 1\r\nX_B: 2\r\n\r\n", h, l);
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 431);
}

// Request line of exactly `len` bytes without its CRLF.
std::string request_line_of(size_t len) {
  std::string line = "GET /";
  line.append(len - line.size() - 9, 'a');
  line += " HTTP/1.1";
  return line;
}

TEST(RequestLimits, RequestLineAtAndOverLimit) {
  for (size_t max : {size_t{32}, size_t{100}, kDefaultMaxRequestLineBytes}) {
    SCOPED_TRACE(max);
    ParserLimits l;
    l.max_request_line_bytes = max;
    RequestHead h;
    const std::string at = request_line_of(max);
    ASSERT_EQ(at.size(), max);
    ParseResult ok = parse_once(at + "\r\nHost: h\r\n\r\n", h, l);
    ASSERT_EQ(ok.status, ParseStatus::kComplete) << ok.error;

    ParseResult over = parse_once(request_line_of(max + 1) + "\r\nHost: h\r\n\r\n", h, l);
    ASSERT_EQ(over.status, ParseStatus::kError);
    EXPECT_EQ(over.error_status, 414);
  }
}

TEST(RequestLimits, RequestLineDetectedBeforeItEnds) {
  ParserLimits l;
  l.max_request_line_bytes = 32;
  RequestHead h;
  RequestParser p(l);
  std::string in = "GET /" + std::string(27, 'a');  // 32 bytes, no CRLF: may still be fine
  EXPECT_EQ(p.parse(in, h).status, ParseStatus::kIncomplete);
  EXPECT_EQ(p.parse(in + "\r", h).status, ParseStatus::kIncomplete);  // CR of a 32-byte line
  ParseResult r = p.parse(in + "a", h);
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 414);

  RequestParser q;
  std::string huge = "GET /" + std::string(kDefaultMaxRequestLineBytes, 'a');
  ParseResult big = q.parse(huge, h);
  ASSERT_EQ(big.status, ParseStatus::kError);
  EXPECT_EQ(big.error_status, 414);
}

TEST(RequestLimits, VerdictIndependentOfHowInputIsSplit) {
  // Found by fuzzing: an over-long request line ended by a bare LF was a 400 when read whole but
  // a 414 when trickled. The length verdict now comes first either way.
  ParserLimits l;
  l.max_request_line_bytes = 32;
  const std::string in = "GET /" + std::string(40, 'a') + "\nHost: a\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{7}, size_t{33}, size_t{34}, in.size()}) {
    SCOPED_TRACE(step);
    RequestParser p(l);
    RequestHead h;
    ParseResult r;
    for (size_t n = std::min(step, in.size());; n = std::min(n + step, in.size())) {
      r = p.parse(std::string_view(in).substr(0, n), h);
      if (r.status != ParseStatus::kIncomplete || n == in.size()) break;
    }
    ASSERT_EQ(r.status, ParseStatus::kError);
    EXPECT_EQ(r.error_status, 414);
  }
  // One byte over the limit and ended by a bare LF is still "too long", not "bare LF".
  RequestHead h;
  const std::string over = request_line_of(33) + "\nHost: a\r\n\r\n";
  EXPECT_EQ(parse_once(over, h, l).error_status, 414);
  const std::string at = request_line_of(32) + "\nHost: a\r\n\r\n";
  EXPECT_EQ(parse_once(at, h, l).error_status, 400);
}

TEST(RequestLimits, LongRequestLineBeyondHeaderBytesIs414) {
  // A URI over the line limit is a 414 even when it also breaks the byte limit.
  ParserLimits l;
  l.max_request_line_bytes = 100;
  l.max_header_bytes = 120;
  RequestHead h;
  ParseResult r = parse_once("GET /" + std::string(200, 'a'), h, l);
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 414);
}

// ---------------------------------------------------------------------------------------------
// Incremental and pipelined input.

TEST(RequestParser, PipelinedStopsAtFirstHead) {
  const std::string first = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
  const std::string second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string in = first + "xyz" + second;
  RequestParser p;
  RequestHead h;
  ParseResult r = p.parse(in, h);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.consumed, first.size());
  EXPECT_EQ(h.path, "/a");
  EXPECT_EQ(h.storage, first);

  p.reset();
  r = p.parse(std::string_view(in).substr(first.size() + 3), h);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.consumed, second.size());
  EXPECT_EQ(h.path, "/b");
  EXPECT_EQ(h.framing, BodyFraming::kNone);
  EXPECT_EQ(h.headers.size(), 1u);  // the reused head forgot the first request's fields
}

TEST(RequestParser, PipelinedGetsBackToBack) {
  const std::string one = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string in;
  for (int i = 0; i < 5; ++i) in += one;
  RequestParser p;
  RequestHead h;
  std::string_view rest = in;
  int count = 0;
  while (!rest.empty()) {
    ParseResult r = p.parse(rest, h);
    ASSERT_EQ(r.status, ParseStatus::kComplete);
    EXPECT_EQ(r.consumed, one.size());
    rest.remove_prefix(r.consumed);
    ++count;
  }
  EXPECT_EQ(count, 5);
}

TEST(RequestParser, TrickledOneByteAtATime) {
  const std::string in =
      "POST /upload?id=7 HTTP/1.1\r\nHost: up.example:8080\r\nTransfer-Encoding: chunked\r\n"
      "Connection: keep-alive, Upgrade\r\nUpgrade: foo/2\r\nExpect: 100-continue\r\n\r\nBODY";
  const size_t head_len = in.find("BODY");
  RequestParser p;
  RequestHead h;
  for (size_t i = 1; i < head_len; ++i) {
    ParseResult r = p.parse(std::string_view(in).substr(0, i), h);
    ASSERT_EQ(r.status, ParseStatus::kIncomplete) << i;
  }
  ParseResult r = p.parse(std::string_view(in).substr(0, head_len), h);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error;
  EXPECT_EQ(r.consumed, head_len);
  EXPECT_EQ(h.path, "/upload");
  EXPECT_EQ(h.query, "id=7");
  EXPECT_EQ(h.authority, "up.example:8080");
  EXPECT_EQ(h.framing, BodyFraming::kChunked);
  EXPECT_TRUE(h.expect_continue);
  EXPECT_TRUE(h.upgrade);
  EXPECT_EQ(h.upgrade_protocol, "foo/2");
  EXPECT_EQ(h.headers.size(), 5u);
}

TEST(RequestParser, TrickledInChunksEqualsOneShot) {
  const std::string in =
      "GET /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\nGET /y HTTP/1.1\r\n";
  RequestHead whole;
  ParseResult one = parse_once(in, whole);
  ASSERT_EQ(one.status, ParseStatus::kComplete);
  for (size_t step = 1; step < 12; ++step) {
    RequestParser p;
    RequestHead h;
    ParseResult r;
    for (size_t n = step;; n = std::min(n + step, in.size())) {
      r = p.parse(std::string_view(in).substr(0, n), h);
      if (r.status != ParseStatus::kIncomplete || n == in.size()) break;
    }
    ASSERT_EQ(r.status, ParseStatus::kComplete) << step;
    EXPECT_EQ(r.consumed, one.consumed);
    EXPECT_EQ(h.storage, whole.storage);
    EXPECT_EQ(h.headers.size(), whole.headers.size());
  }
}

TEST(RequestParser, ShorterBufferAfterProgressStartsOver) {
  // A caller that hands a different (shorter) buffer without reset() still gets a right answer.
  RequestParser p;
  RequestHead h;
  EXPECT_EQ(p.parse("GET /long-path HTTP/1.1\r\nHost: h\r\n", h).status, ParseStatus::kIncomplete);
  ParseResult r = p.parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", h);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(h.path, "/");
}

TEST(RequestParser, ParserUsableAfterError) {
  RequestParser p;
  RequestHead h;
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", h).status, ParseStatus::kError);
  ParseResult r = p.parse("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n", h);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(h.path, "/ok");
}

TEST(RequestParser, StorageCapacityReused) {
  RequestParser p;
  RequestHead h;
  const std::string big = "GET /" + std::string(500, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(p.parse(big, h).status, ParseStatus::kComplete);
  const char* storage = h.storage.data();
  const auto* fields = h.headers.data();
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", h).status, ParseStatus::kComplete);
  EXPECT_EQ(h.storage.data(), storage);  // no reallocation for a smaller head
  EXPECT_EQ(h.headers.data(), fields);
}

TEST(RequestHead, TakeHandsOverTheHeadAndGivesBackTheOldBuffers) {
  RequestHead used;
  ASSERT_EQ(
      parse_once("GET /old HTTP/1.1\r\nHost: old-host-name-long-enough\r\n\r\n"s, used).status,
      ParseStatus::kComplete);
  used.storage.reserve(1024);  // a pooled head's buffer
  used.headers.reserve(16);
  const char* old_storage = used.storage.data();
  const HeaderField* old_fields = used.headers.data();

  RequestHead fresh;
  ASSERT_EQ(parse_once("POST /new?q=1 HTTP/1.1\r\nHost: new-host-name-long-enough\r\n"
                       "Content-Length: 3\r\n\r\n"s,
                       fresh)
                .status,
            ParseStatus::kComplete);
  const char* new_storage = fresh.storage.data();

  used.take(fresh);
  EXPECT_EQ(used.method, "POST");
  EXPECT_EQ(used.path, "/new");
  EXPECT_EQ(used.query, "q=1");
  EXPECT_EQ(used.authority, "new-host-name-long-enough");
  EXPECT_EQ(used.content_length, 3u);
  ASSERT_EQ(used.headers.size(), 2u);
  EXPECT_EQ(used.headers[1].value, "3");
  EXPECT_EQ(used.storage.data(), new_storage);   // the bytes did not move: the views hold
  EXPECT_EQ(fresh.storage.data(), old_storage);  // the old buffers, for the next head
  EXPECT_EQ(fresh.headers.data(), old_fields);
  EXPECT_GE(fresh.storage.capacity(), 1024u);
}

}  // namespace
}  // namespace proxenos::http
