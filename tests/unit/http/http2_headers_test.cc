// h2c preface detection and HTTP/1 -> HTTP/2 header translation.

#include "http/http2_headers.h"

#include <gtest/gtest.h>

#include <string>

#include "http2_test_util.h"

namespace proxenos::http {
namespace {

using h2test::Fields;
using h2test::OwnedHeaders;

Fields fields_of(const H2OutFields& f) {
  Fields out;
  for (size_t i = 0; i < f.size(); ++i) out.emplace_back(f.name(i), f.value(i));
  return out;
}

TEST(Http2Preface, FullPartialAndNo) {
  const std::string preface(kHttp2Preface);
  EXPECT_EQ(preface.size(), 24u);
  EXPECT_EQ(match_http2_preface(preface), PrefaceMatch::kFull);
  EXPECT_TRUE(is_http2_preface(preface + "\0\0\0\x04"));
  for (size_t n = 0; n < 12; ++n) {
    EXPECT_EQ(match_http2_preface(preface.substr(0, n)), PrefaceMatch::kPartial) << n;
    EXPECT_FALSE(is_http2_preface(preface.substr(0, n)));
  }
  // "PRI * HTTP/2" commits to HTTP/2; the session refuses a broken rest with GOAWAY.
  for (size_t n = 12; n <= preface.size(); ++n) {
    EXPECT_EQ(match_http2_preface(preface.substr(0, n)), PrefaceMatch::kFull) << n;
  }
  EXPECT_EQ(match_http2_preface("GET / HTTP/1.1\r\n"), PrefaceMatch::kNo);
  EXPECT_EQ(match_http2_preface("P"), PrefaceMatch::kPartial);
  EXPECT_EQ(match_http2_preface("POST / HTTP/1.1\r\n"), PrefaceMatch::kNo);  // differs at byte 1
  EXPECT_EQ(match_http2_preface("PRI * HTTP/1.1\r\n"), PrefaceMatch::kNo);
  EXPECT_EQ(match_http2_preface("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), PrefaceMatch::kFull);
  EXPECT_EQ(match_http2_preface("pri * HTTP/2.0"), PrefaceMatch::kNo);  // case matters
}

TEST(Http2Headers, ConnectionSpecific) {
  for (std::string_view n : {"connection", "Connection", "keep-alive", "Proxy-Connection",
                             "transfer-encoding", "UPGRADE"}) {
    EXPECT_TRUE(is_connection_specific_header(n)) << n;
  }
  for (std::string_view n : {"te", "host", "content-length", "connectionx", "upgrade-insecure"}) {
    EXPECT_FALSE(is_connection_specific_header(n)) << n;
  }
}

TEST(Http2Headers, RequestTranslation) {
  OwnedHeaders in({{"Host", "example.com"},
                   {"Connection", "keep-alive, X-Private"},
                   {"X-Private", "secret"},
                   {"TE", "trailers"},
                   {"Content-Type", "Text/Plain"},
                   {"Cookie", " a=1;b=2 ;; c=3 "},
                   {":path", "/evil"},
                   {"X-Bad Name", "v"},
                   {"X-Bad-Value", "a\rb"},
                   {"X-Trim", "  v  "}});
  H2OutFields out;
  out.add_pseudo(":method", "GET");
  out.add_fields(in.list, H2OutFields::Kind::kRequest, /*drop_host=*/true);
  EXPECT_EQ(fields_of(out), (Fields{{":method", "GET"},
                                    {"te", "trailers"},
                                    {"content-type", "Text/Plain"},
                                    {"cookie", "a=1"},
                                    {"cookie", "b=2"},
                                    {"cookie", "c=3"},
                                    {"x-trim", "v"}}));
}

TEST(Http2Headers, FieldsInHttp2FormKeepHostTeAndCookieRulesAndTheRestIsChecked) {
  // The first three come from an HTTP/2 peer (checked on arrival); the rest do not.
  OwnedHeaders in({{"host", "example.com"},
                   {"cookie", "a=1; b=2"},
                   {"accept", "*/*"},
                   {"X-Route-Added", "v"},
                   {"X-Bad-Value", "a\rb"},
                   {"connection", "x-private"},
                   {"x-private", "p"}});
  H2OutFields out;
  out.add_fields(in.list, H2OutFields::Kind::kRequest, /*drop_host=*/true, /*in_h2_form=*/3);
  EXPECT_EQ(
      fields_of(out),
      (Fields{{"cookie", "a=1"}, {"cookie", "b=2"}, {"accept", "*/*"}, {"x-route-added", "v"}}));
  // A count beyond the list is the whole list.
  OwnedHeaders small({{"accept", "*/*"}});
  H2OutFields all;
  all.add_fields(small.list, H2OutFields::Kind::kResponse, false, 9);
  EXPECT_EQ(fields_of(all), (Fields{{"accept", "*/*"}}));
}

TEST(Http2Headers, ValuesAreCheckedEveryByteLongOrShort) {
  // Bytes HTTP/2 forbids anywhere in a long value (checked a word at a time) or its tail.
  const std::string ok = "0123456789abcdef\tGHIJKLMNOP \x80\xff~!xyz";  // tab, obs-text: fine
  Fields want{{"x-ok", ok}};
  Fields in_fields{{"X-Ok", ok}};
  for (size_t at : {0, 5, 7, 8, 15, 16, 23, 30, 32, 34}) {
    for (char bad : {'\0', '\n', '\r', '\x1f', '\x7f'}) {
      std::string v = ok;
      v[at] = bad;
      in_fields.emplace_back("X-Bad", v);
    }
  }
  OwnedHeaders in(in_fields);
  H2OutFields out;
  out.add_fields(in.list, H2OutFields::Kind::kResponse, false);
  EXPECT_EQ(fields_of(out), want);
}

TEST(Http2Headers, NamesAreCheckedEveryByteLongOrShort) {
  // Names are checked eight bytes at a time with a bytewise fallback, the last word overlapping:
  // an uppercase letter or a non-token byte at any place must be found.
  const std::string base = "x-long-name-0123456789-abcdefghij";  // 33 bytes
  Fields want;
  Fields in_fields;
  for (size_t len : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33}) {
    const std::string name = base.substr(0, len);
    for (size_t at = 0; at < len; ++at) {
      std::string upper = name;
      upper[at] = 'Q';  // lowercased on the way out
      in_fields.emplace_back(upper, "u");
      std::string lowered = upper;
      lowered[at] = 'q';
      want.emplace_back(lowered, "u");
      for (char bad : {' ', ':', '"', '(', '@', '\x7f', '\x80', '\0'}) {
        std::string b = name;
        b[at] = bad;
        in_fields.emplace_back(b, "dropped");
      }
    }
    in_fields.emplace_back(name, "plain");
    want.emplace_back(name, "plain");
  }
  // Other tchars are fine and kept as they are.
  in_fields.emplace_back("x!#$%&'*+.^_`|~12345", "t");
  want.emplace_back("x!#$%&'*+.^_`|~12345", "t");
  OwnedHeaders in(in_fields);
  H2OutFields out;
  out.add_fields(in.list, H2OutFields::Kind::kResponse, false);
  EXPECT_EQ(fields_of(out), want);
}

TEST(Http2Headers, ShortValuesAreCheckedEveryByte) {
  // Values shorter than a vector are checked from overlapping loads: every place counts.
  Fields want;
  Fields in_fields;
  for (size_t len = 1; len <= 17; ++len) {
    const std::string ok = std::string("ab\tc~\x80 xyz0123456789").substr(0, len);
    in_fields.emplace_back("x-ok", ok);
    want.emplace_back("x-ok", ok.substr(0, ok.find_last_not_of(" \t") + 1));  // OWS trimmed
    for (size_t at = 0; at < len; ++at) {
      for (char bad : {'\0', '\n', '\r', '\x01', '\x1f', '\x7f'}) {
        std::string v = ok;
        v[at] = bad;
        in_fields.emplace_back("x-bad", v);
      }
    }
  }
  OwnedHeaders in(in_fields);
  H2OutFields out;
  out.add_fields(in.list, H2OutFields::Kind::kResponse, false);
  EXPECT_EQ(fields_of(out), want);
}

TEST(Http2Headers, TeOtherThanTrailersIsDropped) {
  OwnedHeaders in({{"TE", "gzip"}, {"te", "deflate, trailers;q=0.5"}});
  H2OutFields out;
  out.add_fields(in.list, H2OutFields::Kind::kRequest, false);
  EXPECT_EQ(fields_of(out), Fields{});  // "trailers;q=0.5" is not the bare token
  OwnedHeaders ok({{"TE", "trailers"}});
  out.clear();
  out.add_fields(ok.list, H2OutFields::Kind::kResponse, false);
  EXPECT_EQ(fields_of(out), Fields{});  // never in responses
}

TEST(Http2Headers, ResponseKeepsHostAndDoesNotSplitCookies) {
  OwnedHeaders in({{"Host", "h"}, {"Set-Cookie", "a=1; Path=/"}, {"Cookie", "a=1; b=2"}});
  H2OutFields out;
  out.add_fields(in.list, H2OutFields::Kind::kResponse, false);
  EXPECT_EQ(fields_of(out),
            (Fields{{"host", "h"}, {"set-cookie", "a=1; Path=/"}, {"cookie", "a=1; b=2"}}));
}

TEST(Http2Headers, ReuseAcrossBlocks) {
  H2OutFields out;
  OwnedHeaders a({{"X-A", std::string(1000, 'a')}});
  out.add_fields(a.list, H2OutFields::Kind::kResponse, false);
  out.clear();
  OwnedHeaders b({{"X-B", "b"}});
  out.add_fields(b.list, H2OutFields::Kind::kResponse, false);
  EXPECT_EQ(fields_of(out), (Fields{{"x-b", "b"}}));
}

TEST(Http2Headers, BlockOutlivesItsSources) {
  // Names and values are copied as they are added (trailers wait for the body to drain).
  H2OutFields out;
  {
    std::string status = "222";
    OwnedHeaders in({{"grpc-status", "0"}, {"Grpc-Message", "all good"}, {"x-long", "v"}});
    out.add_pseudo(":status", status);
    out.add_fields(in.list, H2OutFields::Kind::kTrailers, false);
    status.assign("999");
    for (auto& [n, v] : in.fields) n.assign(n.size(), '?'), v.assign(v.size(), '?');
  }
  const std::string clobber(4096, 'x');  // likely reuses the freed memory
  EXPECT_EQ(fields_of(out), (Fields{{":status", "222"},
                                    {"grpc-status", "0"},
                                    {"grpc-message", "all good"},
                                    {"x-long", "v"}}));
}

TEST(Http2Headers, BytesGrowPastTheirFirstBufferAndKeepEveryField) {
  // 300 fields of growing sizes: the buffer moves several times while the block is built.
  Fields want;
  Fields in_fields;
  for (int i = 0; i < 300; ++i) {
    std::string name = "x-f" + std::to_string(i);
    std::string value(static_cast<size_t>(i % 37), static_cast<char>('a' + i % 26));
    in_fields.emplace_back(name, value);
    want.emplace_back(name, value);
  }
  OwnedHeaders in(in_fields);
  H2OutFields out;
  out.add_fields(in.list, H2OutFields::Kind::kResponse, false);
  EXPECT_EQ(fields_of(out), want);
  // Handed over (as to a stream), the bytes go with the buffer; the old one comes back empty.
  FieldBytes taken;
  const char* at = out.bytes().data();
  taken.swap(out.bytes());
  EXPECT_EQ(taken.data(), at);
  EXPECT_EQ(out.bytes().size(), 0u);
  EXPECT_EQ(out.field(299).value(taken.data()), want[299].second);
}

}  // namespace
}  // namespace proxenos::http
