#include "http/body_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace proxenos::http {
namespace {

using namespace std::string_literals;

struct Drained {
  std::string body;
  std::string trailers;
  size_t consumed = 0;
  bool done = false;
  bool error = false;
  std::string reason;
};

// Feeds `in` to the decoder until it stops making progress, as a connection would per read.
void drain(BodyDecoder& d, std::string_view in, Drained& out) {
  while (true) {
    DecodeResult r = d.decode(in);
    out.body.append(r.data);
    out.trailers.append(r.trailers);
    out.consumed += r.consumed;
    in.remove_prefix(r.consumed);
    if (r.error) {
      out.error = true;
      out.reason = std::string(r.reason);
      return;
    }
    if (r.done) {
      out.done = true;
      return;
    }
    if (r.consumed == 0) return;
  }
}

Drained decode_all(BodyFraming framing, uint64_t cl, std::string_view in) {
  BodyDecoder d;
  d.reset(framing, cl);
  Drained out;
  drain(d, in, out);
  return out;
}

TEST(BodyDecoder, NoneIsDoneAtOnce) {
  BodyDecoder d;
  d.reset(BodyFraming::kNone, 0);
  EXPECT_TRUE(d.done());
  DecodeResult r = d.decode("GET / HTTP/1.1\r\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_TRUE(r.data.empty());
}

TEST(BodyDecoder, ContentLengthAcrossReads) {
  BodyDecoder d;
  d.reset(BodyFraming::kContentLength, 10);
  EXPECT_FALSE(d.done());
  DecodeResult r = d.decode("hello");
  EXPECT_EQ(r.data, "hello");
  EXPECT_EQ(r.consumed, 5u);
  EXPECT_FALSE(r.done);
  EXPECT_EQ(d.remaining(), 5u);
  r = d.decode("worldGET / HTTP/1.1");  // pipelined bytes after the body stay unconsumed
  EXPECT_EQ(r.data, "world");
  EXPECT_EQ(r.consumed, 5u);
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.remaining(), 0u);
  r = d.decode("more");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.consumed, 0u);
}

TEST(BodyDecoder, ContentLengthZero) {
  BodyDecoder d;
  d.reset(BodyFraming::kContentLength, 0);
  EXPECT_TRUE(d.done());
  EXPECT_EQ(d.decode("x").consumed, 0u);
}

TEST(BodyDecoder, UntilCloseTakesEverything) {
  BodyDecoder d;
  d.reset(BodyFraming::kUntilClose, 0);
  DecodeResult r = d.decode("abc\r\n0\r\n\r\n");
  EXPECT_EQ(r.data, "abc\r\n0\r\n\r\n");
  EXPECT_EQ(r.consumed, 10u);
  EXPECT_FALSE(r.done);
  EXPECT_FALSE(d.done());
}

const std::string kChunked =
    "5;name=value\r\nhello\r\n"
    "6;a;b=\"q x\"\r\n world\r\n"
    "A\r\n0123456789\r\n"
    "000\r\n"
    "X-Trailer: t1\r\n"
    "Checksum:\tabc def\r\n"
    "Empty:\r\n"
    "\r\n";
const std::string kChunkedBody = "hello world0123456789";
const std::string kChunkedTrailers = "X-Trailer: t1\r\nChecksum:\tabc def\r\nEmpty:\r\n\r\n";

TEST(BodyDecoder, ChunkedWithExtensionsAndTrailers) {
  Drained out = decode_all(BodyFraming::kChunked, 0, kChunked + "NEXT");
  EXPECT_FALSE(out.error) << out.reason;
  EXPECT_TRUE(out.done);
  EXPECT_EQ(out.body, kChunkedBody);
  EXPECT_EQ(out.trailers, kChunkedTrailers);  // handed out raw, for a hop that forwards them
  EXPECT_EQ(out.consumed, kChunked.size());   // stops at the end of the body
}

TEST(BodyDecoder, NoTrailersIsTheFinalCrlfAlone) {
  Drained out = decode_all(BodyFraming::kChunked, 0, "3\r\nabc\r\n0\r\n\r\nNEXT");
  EXPECT_TRUE(out.done);
  EXPECT_EQ(out.trailers, "\r\n");
  Drained length = decode_all(BodyFraming::kContentLength, 3, "abcNEXT");
  EXPECT_TRUE(length.done);
  EXPECT_EQ(length.trailers, "");
}

TEST(BodyDecoder, TrailersOfARejectedSectionAreNotHandedOut) {
  BodyDecoder d;
  d.reset(BodyFraming::kChunked, 0);
  DecodeResult r = d.decode("0\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n");
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.trailers, "");
}

TEST(AppendTrailerSection, FieldLinesThenFinalCrlfWithoutForbiddenFields) {
  HeaderList trailers = {{"grpc-status", "0"}, {"Content-Length", "3"},
                         {":path", "/"},       {"x-checksum", "abc def"},
                         {"HOST", "h"},        {"transfer-encoding", "x"}};
  std::string out = "0\r\n";
  append_trailer_section(trailers, out);
  EXPECT_EQ(out, "0\r\ngrpc-status: 0\r\nx-checksum: abc def\r\n\r\n");
  std::string none;
  append_trailer_section({}, none);
  EXPECT_EQ(none, "\r\n");
  // What it writes reads back as the same trailers.
  BodyDecoder d;
  d.reset(BodyFraming::kChunked, 0);
  DecodeResult r = d.decode(out);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.trailers, "grpc-status: 0\r\nx-checksum: abc def\r\n\r\n");
}

TEST(BodyDecoder, ChunkedOneSpanPerCall) {
  BodyDecoder d;
  d.reset(BodyFraming::kChunked, 0);
  std::string_view in = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  DecodeResult r = d.decode(in);
  EXPECT_EQ(r.data, "abc");
  EXPECT_FALSE(r.done);
  in.remove_prefix(r.consumed);
  EXPECT_EQ(in, "de\r\n0\r\n\r\n");  // the next size line was walked already
  r = d.decode(in);
  EXPECT_EQ(r.data, "de");
  EXPECT_TRUE(r.done);  // data and end of body come back together
  EXPECT_EQ(r.consumed, in.size());
}

TEST(BodyDecoder, ChunkedSplitAtEveryOffset) {
  for (size_t split = 0; split <= kChunked.size(); ++split) {
    BodyDecoder d;
    d.reset(BodyFraming::kChunked, 0);
    Drained out;
    drain(d, std::string_view(kChunked).substr(0, split), out);
    ASSERT_FALSE(out.error) << split << ": " << out.reason;
    ASSERT_EQ(out.consumed, split) << "a decoder must take all it can";
    EXPECT_EQ(out.done, split == kChunked.size());
    drain(d, std::string_view(kChunked).substr(split), out);
    ASSERT_FALSE(out.error) << split << ": " << out.reason;
    EXPECT_TRUE(out.done) << split;
    EXPECT_EQ(out.body, kChunkedBody) << split;
    EXPECT_EQ(out.trailers, kChunkedTrailers) << split;
    EXPECT_EQ(out.consumed, kChunked.size());
  }
}

TEST(BodyDecoder, ChunkedOneByteAtATime) {
  BodyDecoder d;
  d.reset(BodyFraming::kChunked, 0);
  Drained out;
  for (char c : kChunked) {
    ASSERT_FALSE(out.done);
    drain(d, std::string_view(&c, 1), out);
    ASSERT_FALSE(out.error) << out.reason;
  }
  EXPECT_TRUE(out.done);
  EXPECT_EQ(out.body, kChunkedBody);
  EXPECT_EQ(out.trailers, kChunkedTrailers);
}

TEST(BodyDecoder, ChunkedUpperAndLowerHexAndLargeSizeLine) {
  Drained out =
      decode_all(BodyFraming::kChunked, 0, "a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n");
  EXPECT_TRUE(out.done) << out.reason;
  EXPECT_EQ(out.body, "0123456789abcdefghijk");

  // 16 digits up to 2^63-1 are a valid size (the data simply never comes).
  BodyDecoder d;
  d.reset(BodyFraming::kChunked, 0);
  DecodeResult r = d.decode("7fffffffffffffff\r\nab");
  EXPECT_FALSE(r.error) << r.reason;
  EXPECT_EQ(r.data, "ab");
  EXPECT_EQ(d.remaining(), 0x7fffffffffffffffull - 2);
}

struct BadChunk {
  std::string name;
  std::string input;
  std::string reason;
};

std::ostream& operator<<(std::ostream& os, const BadChunk& b) {
  return os << b.name;
}

class ChunkRejectTest : public testing::TestWithParam<BadChunk> {};

TEST_P(ChunkRejectTest, Rejects) {
  const BadChunk& c = GetParam();
  Drained whole = decode_all(BodyFraming::kChunked, 0, c.input);
  ASSERT_TRUE(whole.error) << "accepted: " << c.name;
  EXPECT_NE(whole.reason.find(c.reason), std::string::npos) << whole.reason;
  EXPECT_FALSE(whole.done);

  // Byte by byte gives the same verdict, and the decoder stays failed.
  BodyDecoder d;
  d.reset(BodyFraming::kChunked, 0);
  Drained bytes;
  for (char ch : c.input) {
    drain(d, std::string_view(&ch, 1), bytes);
    if (bytes.error) break;
  }
  EXPECT_TRUE(bytes.error);
  EXPECT_EQ(bytes.reason, whole.reason);
  DecodeResult again = d.decode("0\r\n\r\n");
  EXPECT_TRUE(again.error);
  EXPECT_EQ(again.consumed, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    All, ChunkRejectTest,
    testing::Values(
        BadChunk{"NotHex", "g\r\n", "invalid chunk size"},
        BadChunk{"EmptySize", "\r\n", "invalid chunk size"},
        BadChunk{"Minus", "-5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"},
        BadChunk{"Plus", "+5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"},
        BadChunk{"HexPrefix", "0x5\r\nhello\r\n0\r\n\r\n", "after chunk size"},
        BadChunk{"LeadingSpace", " 5\r\nhello\r\n", "invalid chunk size"},
        BadChunk{"TrailingSpace", "5 \r\nhello\r\n", "after chunk size"},
        BadChunk{"SpaceBeforeExt", "5 ;a\r\nhello\r\n", "after chunk size"},
        BadChunk{"Overflow17Digits", "10000000000000000\r\n", "too large"},
        BadChunk{"LeadingZeros17Digits", "00000000000000001\r\nx\r\n", "too large"},
        BadChunk{"Above2Pow63", "8000000000000000\r\n", "too large"},
        BadChunk{"AllFs", "ffffffffffffffff\r\n", "too large"},
        BadChunk{"BareLfAfterSize", "5\nhello\r\n0\r\n\r\n", "after chunk size"},
        BadChunk{"BareCrAfterSize", "5\rhello\r\n0\r\n\r\n", "bare CR"},
        BadChunk{"DataTooLong", "5\r\nhelloX\r\n0\r\n\r\n", "missing CRLF after chunk data"},
        BadChunk{"DataBareLf", "5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data"},
        BadChunk{"DataBareCr", "5\r\nhello\r0\r\n\r\n", "missing CRLF after chunk data"},
        BadChunk{"CtlInExt", "5;a\x01\r\nhello\r\n0\r\n\r\n", "chunk extension"},
        BadChunk{"NulInExt", "5;a\0b\r\nhello\r\n0\r\n\r\n"s, "chunk extension"},
        BadChunk{"LfInExt", "5;a\nhello\r\n0\r\n\r\n", "chunk extension"},
        BadChunk{"ExtBareCr", "5;a\rhello\r\n0\r\n\r\n", "bare CR"},
        BadChunk{"TrailerContentLength", "0\r\nContent-Length: 5\r\n\r\n", "forbidden"},
        BadChunk{"TrailerTransferEncoding", "0\r\nTransfer-Encoding: chunked\r\n\r\n", "forbidden"},
        BadChunk{"TrailerHostMixedCase", "0\r\nhOsT: evil\r\n\r\n", "forbidden"},
        BadChunk{"TrailerObsFold", "0\r\nX: a\r\n b\r\n\r\n", "obs-fold"},
        BadChunk{"TrailerSpaceBeforeColon", "0\r\nX : y\r\n\r\n", "whitespace"},
        BadChunk{"TrailerNoColon", "0\r\nX y\r\n\r\n", "whitespace"},
        BadChunk{"TrailerEmptyName", "0\r\n: y\r\n\r\n", "trailer name"},
        BadChunk{"TrailerBadNameChar", "0\r\nX(y): z\r\n\r\n", "trailer name"},
        BadChunk{"TrailerNulInValue", "0\r\nX: a\0b\r\n\r\n"s, "trailer value"},
        BadChunk{"TrailerBareLf", "0\r\nX: y\n\r\n", "trailer value"},
        BadChunk{"TrailerBareCr", "0\r\nX: y\rZ\r\n\r\n", "bare CR"},
        BadChunk{"FinalBareLf", "0\r\n\n", "trailer name"},
        BadChunk{"FinalBareCr", "0\r\n\rX", "bare CR"}),
    [](const auto& info) { return info.param.name; });

TEST(BodyDecoder, ChunkExtensionLimit) {
  const std::string at = "1;" + std::string(kMaxChunkExtBytes, 'e') + "\r\nx\r\n0\r\n\r\n";
  Drained ok = decode_all(BodyFraming::kChunked, 0, at);
  EXPECT_TRUE(ok.done) << ok.reason;
  EXPECT_EQ(ok.body, "x");

  const std::string over = "1;" + std::string(kMaxChunkExtBytes + 1, 'e') + "\r\nx\r\n0\r\n\r\n";
  Drained bad = decode_all(BodyFraming::kChunked, 0, over);
  EXPECT_TRUE(bad.error);
  EXPECT_NE(bad.reason.find("chunk extension too long"), std::string::npos);

  // The budget is per size line and holds across reads.
  BodyDecoder d;
  d.reset(BodyFraming::kChunked, 0);
  Drained split;
  drain(d, std::string_view(over).substr(0, 100), split);
  EXPECT_FALSE(split.error);
  drain(d, std::string_view(over).substr(100), split);
  EXPECT_TRUE(split.error);
}

// A trailer section of exactly `total` bytes after "0\r\n" (final CRLF included).
std::string trailers_of_size(size_t total) {
  std::string t = "X-Pad: ";
  t.append(total - t.size() - 4, 'p');
  return t + "\r\n\r\n";
}

TEST(BodyDecoder, TrailerSectionLimit) {
  Drained ok = decode_all(BodyFraming::kChunked, 0, "0\r\n" + trailers_of_size(kMaxTrailerBytes));
  EXPECT_TRUE(ok.done) << ok.reason;
  Drained bad =
      decode_all(BodyFraming::kChunked, 0, "0\r\n" + trailers_of_size(kMaxTrailerBytes + 1));
  EXPECT_TRUE(bad.error);
  EXPECT_NE(bad.reason.find("trailer section too large"), std::string::npos);

  // Many small trailer lines count together.
  std::string many = "0\r\n";
  while (many.size() < kMaxTrailerBytes + 10) many += "A: b\r\n";
  Drained lines = decode_all(BodyFraming::kChunked, 0, many + "\r\n");
  EXPECT_TRUE(lines.error);
}

TEST(BodyDecoder, ResetReusesDecoder) {
  BodyDecoder d;
  d.reset(BodyFraming::kChunked, 0);
  Drained first;
  drain(d, "zz\r\n", first);
  EXPECT_TRUE(first.error);
  d.reset(BodyFraming::kChunked, 0);
  Drained second;
  drain(d, "2\r\nok\r\n0\r\n\r\n", second);
  EXPECT_TRUE(second.done) << second.reason;
  EXPECT_EQ(second.body, "ok");
  d.reset(BodyFraming::kContentLength, 2);
  EXPECT_EQ(d.framing(), BodyFraming::kContentLength);
  EXPECT_EQ(d.decode("abc").data, "ab");
}

TEST(BodyDecoder, LongTrailerNameIsNotMistakenForForbiddenOne) {
  Drained out =
      decode_all(BodyFraming::kChunked, 0, "0\r\nContent-Length-Extra-Long-Name: 5\r\n\r\n");
  EXPECT_TRUE(out.done) << out.reason;
  out = decode_all(BodyFraming::kChunked, 0, "0\r\nX-Host: a\r\nHosts: b\r\n\r\n");
  EXPECT_TRUE(out.done) << out.reason;
}

}  // namespace
}  // namespace proxenos::http
