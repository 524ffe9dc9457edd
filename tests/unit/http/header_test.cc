#include "http/header.h"

#include <gtest/gtest.h>

#include "http/status.h"

namespace proxenos::http {
namespace {

TEST(Iequals, FoldsAsciiCaseOnly) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("content-length", "content-lengt"));
  EXPECT_FALSE(iequals("a-b", "a_b"));
  EXPECT_FALSE(iequals("\xC3\x89", "\xC3\xA9"));  // no Unicode folding
  EXPECT_FALSE(iequals("@", "`"));                // 0x40/0x60 differ only in the case bit
}

TEST(Header, IequalsFoldsOnlyAsciiLettersAtEveryPosition) {
  // Long names are compared a word at a time: any byte pair, anywhere, must fold as bytewise.
  auto fold = [](unsigned c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
  for (size_t size : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 24u, 29u}) {
    for (size_t at : {size_t{0}, size / 2, size - 1}) {
      std::string a(size, 'x');
      std::string b(size, 'X');
      for (unsigned c1 = 0; c1 < 256; ++c1) {
        for (unsigned c2 = 0; c2 < 256; ++c2) {
          a[at] = static_cast<char>(c1);
          b[at] = static_cast<char>(c2);
          ASSERT_EQ(iequals(a, b), fold(c1) == fold(c2))
              << size << " " << at << " " << c1 << " " << c2;
        }
      }
    }
  }
}

TEST(FindHeader, FirstMatchAndFoundFlag) {
  HeaderList headers{{"Host", "a"}, {"X-Empty", ""}, {"host", "b"}};
  bool found = false;
  EXPECT_EQ(find_header(headers, "HOST", &found), "a");
  EXPECT_TRUE(found);
  EXPECT_EQ(find_header(headers, "x-empty", &found), "");
  EXPECT_TRUE(found);
  EXPECT_EQ(find_header(headers, "x-missing", &found), "");
  EXPECT_FALSE(found);
  EXPECT_EQ(find_header(headers, "x-missing"), "");
}

TEST(HeaderHasToken, CommaListCaseInsensitive) {
  EXPECT_TRUE(header_has_token("Upgrade", "upgrade"));
  EXPECT_TRUE(header_has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(header_has_token(" close ,\tx", "close"));
  EXPECT_TRUE(header_has_token(",,close,", "close"));
  EXPECT_FALSE(header_has_token("upgrader", "upgrade"));
  EXPECT_FALSE(header_has_token("keep-alive", "close"));
  EXPECT_FALSE(header_has_token("", "close"));
}

TEST(CharTables, TokenAndValueClasses) {
  EXPECT_TRUE(chars::kToken['a']);
  EXPECT_TRUE(chars::kToken['_']);
  EXPECT_TRUE(chars::kToken['~']);
  EXPECT_FALSE(chars::kToken[':']);
  EXPECT_FALSE(chars::kToken[' ']);
  EXPECT_FALSE(chars::kToken['\r']);
  EXPECT_FALSE(chars::kToken[0x80]);
  EXPECT_TRUE(chars::kFieldValue['\t']);
  EXPECT_TRUE(chars::kFieldValue[' ']);
  EXPECT_TRUE(chars::kFieldValue[0xff]);
  EXPECT_FALSE(chars::kFieldValue['\r']);
  EXPECT_FALSE(chars::kFieldValue['\n']);
  EXPECT_FALSE(chars::kFieldValue[0]);
  EXPECT_FALSE(chars::kFieldValue[0x7f]);
}

TEST(ReasonPhrase, CommonCodes) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(101), "Switching Protocols");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(414), "URI Too Long");
  EXPECT_EQ(reason_phrase(426), "Upgrade Required");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(502), "Bad Gateway");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(299), "Unknown");
}

TEST(ReasonPhrase, EveryListedStatusHasAPhrase) {
  for (int s :
       {100, 101, 200, 201, 202, 203, 204, 205, 206, 301, 302, 303, 304, 307, 308, 400, 401,
        403, 404, 405, 408, 411, 413, 414, 415, 426, 429, 431, 500, 501, 502, 503, 504, 505}) {
    EXPECT_NE(reason_phrase(s), "Unknown") << s;
  }
}

}  // namespace
}  // namespace proxenos::http
