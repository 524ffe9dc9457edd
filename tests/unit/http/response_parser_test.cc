#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/http1_parser.h"

namespace proxenos::http {
namespace {

using namespace std::string_literals;

ParseResult parse_response(std::string_view in, ResponseHead& head, bool head_request = false,
                           const ParserLimits& limits = {}) {
  ResponseParser parser(limits);
  return parser.parse(in, head_request, head);
}

TEST(ResponseParser, StatusLineForms) {
  struct Case {
    std::string line;
    int status;
    std::string reason;
    int minor;
  };
  for (const Case& c : std::vector<Case>{
           {"HTTP/1.1 200 OK", 200, "OK", 1},
           {"HTTP/1.1 404 Not Found", 404, "Not Found", 1},
           {"HTTP/1.0 503 Service Unavailable", 503, "Service Unavailable", 0},
           {"HTTP/1.1 200 ", 200, "", 1},
           {"HTTP/1.1 200", 200, "", 1},
           {"HTTP/1.1 599 x\ty \xe9", 599, "x\ty \xe9", 1},
           {"HTTP/1.1 100 Continue", 100, "Continue", 1},
       }) {
    SCOPED_TRACE(c.line);
    ResponseHead h;
    const std::string in = c.line + "\r\nContent-Length: 0\r\n\r\n";
    ParseResult r = parse_response(in, h);
    ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error;
    EXPECT_EQ(r.consumed, in.size());
    EXPECT_EQ(h.status, c.status);
    EXPECT_EQ(h.reason, c.reason);
    EXPECT_EQ(h.version_minor, c.minor);
    ASSERT_EQ(h.headers.size(), 1u);
    EXPECT_EQ(h.headers[0].name, "Content-Length");
  }
}

struct BadResponse {
  std::string name;
  std::string input;
  std::string reason;
};

std::ostream& operator<<(std::ostream& os, const BadResponse& b) {
  return os << b.name;
}

class ResponseRejectTest : public testing::TestWithParam<BadResponse> {};

TEST_P(ResponseRejectTest, RejectsAs502) {
  const BadResponse& c = GetParam();
  ResponseHead h;
  ParseResult r = parse_response(c.input, h);
  ASSERT_EQ(r.status, ParseStatus::kError) << "accepted: " << c.input;
  EXPECT_EQ(r.error_status, 502);
  EXPECT_NE(r.error.find(c.reason), std::string_view::npos) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    All, ResponseRejectTest,
    testing::Values(
        BadResponse{"Http2", "HTTP/2.0 200 OK\r\n\r\n", "status line"},
        BadResponse{"Http12", "HTTP/1.2 200 OK\r\n\r\n", "status line"},
        BadResponse{"Lowercase", "http/1.1 200 OK\r\n\r\n", "status line"},
        BadResponse{"Icy", "ICY 200 OK\r\n\r\n", "status line"},
        BadResponse{"TwoDigitStatus", "HTTP/1.1 20 OK\r\n\r\n", "status line"},
        BadResponse{"FourDigitStatus", "HTTP/1.1 2000 OK\r\n\r\n", "status line"},
        BadResponse{"StatusBelow100", "HTTP/1.1 099 Odd\r\n\r\n", "status code"},
        BadResponse{"StatusAbove599", "HTTP/1.1 600 Odd\r\n\r\n", "status code"},
        BadResponse{"TwoSpaces", "HTTP/1.1  200 OK\r\n\r\n", "status line"},
        BadResponse{"CtlInReason", "HTTP/1.1 200 O\x01K\r\n\r\n", "status line"},
        BadResponse{"BareCrInReason", "HTTP/1.1 200 O\rK\r\n\r\n", "status line"},
        BadResponse{"Garbage", "garbage\r\n\r\n", "status line"},
        BadResponse{"EmptyStatusLine", "\r\n\r\n", "status line"},
        BadResponse{"ClAndTe",
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                    "both Content-Length and Transfer-Encoding"},
        BadResponse{"ChunkedGzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                    "Transfer-Encoding"},
        BadResponse{"TeGzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                    "Transfer-Encoding"},
        BadResponse{"TeInHttp10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                    "HTTP/1.0"},
        BadResponse{"ClDiffering",
                    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                    "Content-Length"},
        BadResponse{"ClPlus", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", "Content-Length"},
        BadResponse{"ClOn204StillValidated", "HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n",
                    "Content-Length"},
        BadResponse{"ObsFold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", "obs-fold"},
        BadResponse{"SpaceBeforeColon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
                    "whitespace"},
        BadResponse{"BareLf", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF"},
        BadResponse{"CrLfInValue", "HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: b\r\n\r\n", "bare CR"},
        BadResponse{"NulInValue", "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n"s, "header value"}),
    [](const auto& info) { return info.param.name; });

struct ResponseDerive {
  std::string name;
  std::string head;
  bool head_request;
  BodyFraming framing;
  uint64_t content_length;
  bool keep_alive;
};

std::ostream& operator<<(std::ostream& os, const ResponseDerive& d) {
  return os << d.name;
}

class ResponseDeriveTest : public testing::TestWithParam<ResponseDerive> {};

TEST_P(ResponseDeriveTest, Derives) {
  const ResponseDerive& d = GetParam();
  ResponseHead h;
  ParseResult r = parse_response(d.head + "\r\n", h, d.head_request);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error;
  EXPECT_EQ(h.framing, d.framing);
  EXPECT_EQ(h.content_length, d.content_length);
  EXPECT_EQ(h.keep_alive, d.keep_alive);
}

INSTANTIATE_TEST_SUITE_P(
    All, ResponseDeriveTest,
    testing::Values(
        ResponseDerive{"Cl", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", false,
                       BodyFraming::kContentLength, 10, true},
        ResponseDerive{"Chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n", false,
                       BodyFraming::kChunked, 0, true},
        ResponseDerive{"UntilClose", "HTTP/1.1 200 OK\r\nX-A: b\r\n", false,
                       BodyFraming::kUntilClose, 0, false},
        ResponseDerive{"UntilClose10", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", false,
                       BodyFraming::kUntilClose, 0, false},
        ResponseDerive{"HeadRequestWithCl", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", true,
                       BodyFraming::kNone, 10, true},
        ResponseDerive{"HeadRequestChunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
                       true, BodyFraming::kNone, 0, true},
        ResponseDerive{"HeadRequestNoLength", "HTTP/1.1 200 OK\r\n", true, BodyFraming::kNone, 0,
                       true},
        ResponseDerive{"Continue100", "HTTP/1.1 100 Continue\r\n", false, BodyFraming::kNone, 0,
                       true},
        ResponseDerive{"Switching101",
                       "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ws\r\n",
                       false, BodyFraming::kNone, 0, true},
        ResponseDerive{"NoContent204", "HTTP/1.1 204 No Content\r\n", false, BodyFraming::kNone, 0,
                       true},
        ResponseDerive{"NotModified304WithCl",
                       "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n", false,
                       BodyFraming::kNone, 50, true},
        ResponseDerive{"Close11", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n",
                       false, BodyFraming::kContentLength, 1, false},
        ResponseDerive{"Default10", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n", false,
                       BodyFraming::kContentLength, 1, false},
        ResponseDerive{"KeepAlive10",
                       "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: Keep-Alive\r\n", false,
                       BodyFraming::kContentLength, 1, true},
        ResponseDerive{"ClListFolded", "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n", false,
                       BodyFraming::kContentLength, 7, true},
        ResponseDerive{"UnderscoreAllowed", "HTTP/1.1 200 OK\r\nX_A: 1\r\nContent-Length: 0\r\n",
                       false, BodyFraming::kContentLength, 0, true}),
    [](const auto& info) { return info.param.name; });

TEST(ResponseParser, TrickledAndPipelined) {
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n";
  const std::string in = first + "okHTTP/1.1 204 No Content\r\n\r\n";
  ResponseParser p;
  ResponseHead h;
  for (size_t i = 1; i < first.size(); ++i) {
    ASSERT_EQ(p.parse(std::string_view(in).substr(0, i), false, h).status, ParseStatus::kIncomplete)
        << i;
  }
  ParseResult r = p.parse(in, false, h);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(r.consumed, first.size());
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.headers.size(), 2u);

  p.reset();
  r = p.parse(std::string_view(in).substr(first.size() + 2), false, h);
  ASSERT_EQ(r.status, ParseStatus::kComplete);
  EXPECT_EQ(h.status, 204);
  EXPECT_EQ(h.reason, "No Content");
  EXPECT_TRUE(h.headers.empty());
}

TEST(ResponseParser, Limits) {
  ParserLimits l;
  l.max_header_count = 2;
  l.max_header_bytes = 80;
  ResponseHead h;
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", h, false, l).status,
            ParseStatus::kComplete);
  ParseResult many = parse_response("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", h, false, l);
  ASSERT_EQ(many.status, ParseStatus::kError);
  EXPECT_EQ(many.error_status, 502);

  std::string at = "HTTP/1.1 200 OK\r\nA: ";
  at.append(80 - at.size() - 4, 'x');
  at += "\r\n\r\n";
  ASSERT_EQ(at.size(), 80u);
  EXPECT_EQ(parse_response(at, h, false, l).status, ParseStatus::kComplete);
  std::string over = at;
  over.insert(20, "x");
  ParseResult big = parse_response(over, h, false, l);
  ASSERT_EQ(big.status, ParseStatus::kError);
  EXPECT_EQ(big.error_status, 502);
}

TEST(ResponseParser, ViewsIntoStorage) {
  std::string in = "HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n";
  ResponseHead h;
  ASSERT_EQ(parse_response(in, h).status, ParseStatus::kComplete);
  std::fill(in.begin(), in.end(), '#');
  EXPECT_EQ(h.reason, "Moved");
  EXPECT_EQ(h.headers[0].value, "/x");
  EXPECT_EQ(h.storage, "HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n");
}

}  // namespace
}  // namespace proxenos::http
