#include "net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace proxenos::net {
namespace {

std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out.push_back(static_cast<char>(b));
  return out;
}

// The 12-byte v2 signature, spelled out rather than taken from the header under test.
const std::string kSig =
    bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A});

// PROXY TCP over IPv4, 192.168.0.1:56324 -> 10.0.0.2:443, no TLVs.
const std::string kV2Tcp4 = kSig + bytes({0x21, 0x11, 0x00, 0x0C,  // v2 PROXY, TCP4, len 12
                                          192, 168, 0, 1,          // source
                                          10, 0, 0, 2,             // destination
                                          0xDC, 0x04,              // 56324
                                          0x01, 0xBB});            // 443

// Every prefix shorter than the header must ask for more bytes; the whole header and the header
// followed by payload must parse to the same result.
void expect_incomplete_prefixes(const std::string& header) {
  for (size_t n = 0; n < header.size(); ++n) {
    ProxyHeaderResult r = parse_proxy_header(std::string_view(header).substr(0, n));
    EXPECT_EQ(r.status, ProxyParseStatus::kIncomplete) << "prefix length " << n << ": " << r.error;
  }
}

// Every prefix of a bad input is either incomplete or already the same error.
void expect_same_error_or_incomplete(const std::string& input, std::string_view error) {
  for (size_t n = 0; n <= input.size(); ++n) {
    ProxyHeaderResult r = parse_proxy_header(std::string_view(input).substr(0, n));
    if (r.status == ProxyParseStatus::kIncomplete) continue;
    EXPECT_EQ(r.status, ProxyParseStatus::kError) << "prefix length " << n;
    EXPECT_EQ(r.error, error) << "prefix length " << n;
  }
}

ProxyHeaderResult expect_done(const std::string& header, std::string_view payload = "GET / ") {
  expect_incomplete_prefixes(header);
  ProxyHeaderResult r = parse_proxy_header(header + std::string(payload));
  EXPECT_EQ(r.status, ProxyParseStatus::kDone) << r.error;
  EXPECT_EQ(r.consumed, header.size());
  EXPECT_TRUE(r.error.empty());
  ProxyHeaderResult exact = parse_proxy_header(header);
  EXPECT_EQ(exact.status, ProxyParseStatus::kDone);
  EXPECT_EQ(exact.consumed, header.size());
  return r;
}

std::string_view expect_error(const std::string& input) {
  ProxyHeaderResult r = parse_proxy_header(input);
  EXPECT_EQ(r.status, ProxyParseStatus::kError) << "input: " << input;
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_FALSE(r.error.empty());
  expect_same_error_or_incomplete(input, r.error);
  return r.error;
}

std::vector<std::pair<int, std::string>> tlv_list(const ProxyTlvs& tlvs) {
  std::vector<std::pair<int, std::string>> out;
  for (const ProxyTlv& t : tlvs) out.emplace_back(t.type, std::string(t.value));
  return out;
}

// --- version 1 ---

TEST(ProxyProtocolV1, Tcp4FromTheSpec) {
  ProxyHeaderResult r = expect_done("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
                                    "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n");
  EXPECT_EQ(r.consumed, 47u);
  EXPECT_EQ(r.header.version, 1);
  EXPECT_EQ(r.header.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.header.source.family(), AF_INET);
  EXPECT_EQ(r.header.source.to_string(), "192.168.0.1:56324");
  EXPECT_EQ(r.header.destination.to_string(), "192.168.0.11:443");
  EXPECT_EQ(r.header.source.length, sizeof(sockaddr_in));
  EXPECT_TRUE(r.header.tlvs.empty());
}

TEST(ProxyProtocolV1, Tcp4Extremes) {
  ProxyHeaderResult r = expect_done("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n");
  EXPECT_EQ(r.header.source.to_string(), "255.255.255.255:65535");
  EXPECT_EQ(r.header.destination.to_string(), "0.0.0.0:0");
}

TEST(ProxyProtocolV1, Tcp6) {
  ProxyHeaderResult r = expect_done("PROXY TCP6 2001:db8::1 ::1 51000 8443\r\n");
  EXPECT_EQ(r.header.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.header.source.family(), AF_INET6);
  EXPECT_EQ(r.header.source.length, sizeof(sockaddr_in6));
  EXPECT_EQ(r.header.source.to_string(), "[2001:db8::1]:51000");
  EXPECT_EQ(r.header.destination.to_string(), "[::1]:8443");
}

TEST(ProxyProtocolV1, Tcp6FullFormUpperCaseAndMappedV4) {
  ProxyHeaderResult r =
      expect_done("PROXY TCP6 FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF ::ffff:10.1.2.3 1 2\r\n");
  EXPECT_EQ(r.header.source.ip(), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(r.header.destination.ip(), "::ffff:10.1.2.3");
}

TEST(ProxyProtocolV1, UnknownShortAndLongFormsAreLocal) {
  ProxyHeaderResult r = expect_done("PROXY UNKNOWN\r\n");
  EXPECT_EQ(r.consumed, 15u);
  EXPECT_EQ(r.header.version, 1);
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
  EXPECT_EQ(r.header.source.length, 0u);

  // Anything after UNKNOWN is ignored, valid or not.
  r = expect_done("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n");
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
  r = expect_done("PROXY UNKNOWN whatever was here\r\n");
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
}

TEST(ProxyProtocolV1, LongestLineIs107Bytes) {
  const std::string v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string line = "PROXY UNKNOWN " + v6 + " " + v6 + " 65535 65535\r\n";
  ASSERT_EQ(line.size(), 107u);
  expect_done(line);
  const std::string tcp6 = "PROXY TCP6 " + v6 + " " + v6 + " 65535 65535\r\n";
  ASSERT_EQ(tcp6.size(), 104u);
  ProxyHeaderResult r = expect_done(tcp6);
  EXPECT_EQ(r.header.destination.port(), 65535);

  // One more byte before the CRLF and the line is over the limit: an error at byte 107, never a
  // wait for more.
  const std::string too_long = "PROXY UNKNOWN " + v6 + " " + v6 + " 65535 655355\r\n";
  EXPECT_EQ(expect_error(too_long), "PROXY protocol v1 line longer than 107 bytes");
  EXPECT_EQ(parse_proxy_header(too_long.substr(0, 106)).status, ProxyParseStatus::kIncomplete);
  EXPECT_EQ(parse_proxy_header(too_long.substr(0, 107)).status, ProxyParseStatus::kError);
  EXPECT_EQ(expect_error("PROXY UNKNOWN " + std::string(200, 'x')),
            "PROXY protocol v1 line longer than 107 bytes");
}

TEST(ProxyProtocolV1, MalformedLines) {
  const std::string_view malformed = "malformed PROXY protocol v1 line";
  for (const char* line : {
           "PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",   // two spaces
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",   // trailing space
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",        // missing port
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 1\r\n",  // extra field
           "PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",   // leading zero in a port
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 00\r\n",     // "00"
           "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",    // port out of range
           "PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",       // sign
           "PROXY TCP4 192.168.00.1 192.168.0.11 56324 443\r\n",   // leading zero in an octet
           "PROXY TCP4 192.168.0.256 192.168.0.11 56324 443\r\n",  // octet out of range
           "PROXY TCP4 192.168.0 192.168.0.11 56324 443\r\n",      // three octets
           "PROXY TCP4 192.168.0.1. 192.168.0.11 56324 443\r\n",   // trailing dot
           "PROXY TCP4 1.2.3.4.5 192.168.0.11 56324 443\r\n",      // five octets
           "PROXY TCP4 ::1 192.168.0.11 56324 443\r\n",            // IPv6 under TCP4
           "PROXY TCP6 192.168.0.1 ::1 56324 443\r\n",             // IPv4 under TCP6
           "PROXY TCP6 ::1%eth0 ::1 56324 443\r\n",                // scope id
           "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 56324 443\r\n",       // too many groups
           "PROXY TCP6 ::1 ::1 1 \r\n",                            // empty port
       }) {
    EXPECT_EQ(expect_error(line), malformed) << line;
  }
}

TEST(ProxyProtocolV1, UnknownProtocols) {
  for (const char* line :
       {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY UNKNOWNX\r\n", "PROXY \r\n",
        "PROXY TCP4\r\n"}) {
    EXPECT_EQ(expect_error(line), "unsupported PROXY protocol v1 protocol") << line;
  }
}

TEST(ProxyProtocolV1, LineEndingsMustBeCrLf) {
  EXPECT_EQ(expect_error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            "PROXY protocol v1 line has an LF without CR");
  EXPECT_EQ(expect_error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n"),
            "PROXY protocol v1 line has a CR without LF");
  EXPECT_EQ(expect_error("PROXY UNKNOWN\r\r\n"), "PROXY protocol v1 line has a CR without LF");
  // A CR that is the last byte received so far may still be followed by its LF.
  EXPECT_EQ(parse_proxy_header("PROXY UNKNOWN\r").status, ProxyParseStatus::kIncomplete);
}

TEST(ProxyProtocolV1, BadSignature) {
  EXPECT_EQ(expect_error("PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "bad PROXY protocol v1 signature");
  EXPECT_EQ(expect_error("PROXY\r\n"), "bad PROXY protocol v1 signature");
  EXPECT_EQ(expect_error("POST / HTTP/1.1\r\n"), "bad PROXY protocol v1 signature");
  // Rejected as soon as the second byte disagrees.
  EXPECT_EQ(parse_proxy_header("PU").status, ProxyParseStatus::kError);
  EXPECT_EQ(parse_proxy_header("PROX").status, ProxyParseStatus::kIncomplete);
}

// --- neither version ---

TEST(ProxyProtocol, ConnectionsWithoutAHeaderAreRejected) {
  EXPECT_EQ(parse_proxy_header("").status, ProxyParseStatus::kIncomplete);
  EXPECT_EQ(expect_error("GET / HTTP/1.1\r\n\r\n"), "not a PROXY protocol header");
  EXPECT_EQ(expect_error(bytes({0x16, 0x03, 0x01, 0x02, 0x00})), "not a PROXY protocol header");
  EXPECT_EQ(expect_error(std::string("\0", 1)), "not a PROXY protocol header");
  EXPECT_EQ(expect_error("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "not a PROXY protocol header");
}

// --- version 2 ---

TEST(ProxyProtocolV2, Tcp4) {
  ASSERT_EQ(kV2Tcp4.size(), 28u);
  ProxyHeaderResult r = expect_done(kV2Tcp4, "\x16\x03\x01");
  EXPECT_EQ(r.consumed, 28u);
  EXPECT_EQ(r.header.version, 2);
  EXPECT_EQ(r.header.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.header.source.family(), AF_INET);
  EXPECT_EQ(r.header.source.to_string(), "192.168.0.1:56324");
  EXPECT_EQ(r.header.destination.to_string(), "10.0.0.2:443");
  EXPECT_TRUE(r.header.tlvs.empty());
  EXPECT_EQ(r.header.tlvs.count(), 0u);
}

TEST(ProxyProtocolV2, Tcp6) {
  const std::string h =
      kSig + bytes({0x21, 0x21, 0x00, 0x24,                                         // TCP6, len 36
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,  // 2001:db8::1
                    0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,  // ::2
                    0xFF, 0xFF,                                                     // 65535
                    0x00, 0x50});                                                   // 80
  ProxyHeaderResult r = expect_done(h);
  EXPECT_EQ(r.consumed, 52u);
  EXPECT_EQ(r.header.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.header.source.family(), AF_INET6);
  EXPECT_EQ(r.header.source.to_string(), "[2001:db8::1]:65535");
  EXPECT_EQ(r.header.destination.to_string(), "[::2]:80");
}

TEST(ProxyProtocolV2, LocalDiscardsTheWholeBlock) {
  // LOCAL with no address block (what health checks send).
  ProxyHeaderResult r = expect_done(kSig + bytes({0x20, 0x00, 0x00, 0x00}));
  EXPECT_EQ(r.consumed, 16u);
  EXPECT_EQ(r.header.version, 2);
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
  EXPECT_EQ(r.header.source.length, 0u);

  // LOCAL with an address block, a family the receiver must ignore and bytes that would not be
  // valid TLVs: all skipped by length.
  r = expect_done(kSig + bytes({0x20, 0xFF, 0x00, 0x05, 1, 2, 3, 4, 5}));
  EXPECT_EQ(r.consumed, 21u);
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
  EXPECT_TRUE(r.header.tlvs.empty());
}

TEST(ProxyProtocolV2, UnsupportedValidFamiliesFallBackToLocal) {
  // PROXY over UNSPEC: addresses (if any) are ignored.
  ProxyHeaderResult r = expect_done(kSig + bytes({0x21, 0x00, 0x00, 0x00}));
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
  r = expect_done(kSig + bytes({0x21, 0x00, 0x00, 0x03, 7, 7, 7}));
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
  EXPECT_EQ(r.consumed, 19u);

  // UDP over IPv4: well formed, but no use to a TCP listener.
  r = expect_done(kSig + bytes({0x21, 0x12, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}));
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);

  // AF_UNIX stream: 2 x 108 bytes of paths, then a TLV (kept, and validated).
  std::string unix_block(216, '\0');
  unix_block.replace(0, 9, "/run/a.sk");
  unix_block.replace(108, 9, "/run/b.sk");
  const std::string tlv = bytes({kPp2TypeAuthority, 0x00, 0x01, 'h'});
  const std::string h = kSig + bytes({0x21, 0x31, 0x00, 216 + 4}) + unix_block + tlv;
  r = expect_done(h);
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
  EXPECT_EQ(r.consumed, 16u + 220u);
  EXPECT_EQ(r.header.tlvs.find(kPp2TypeAuthority), std::optional<std::string_view>("h"));

  // Family/transport pairs within range but not listed by the spec (INET over UNSPEC transport).
  r = expect_done(kSig + bytes({0x21, 0x10, 0x00, 0x00}));
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
}

TEST(ProxyProtocolV2, Tlvs) {
  const std::string tlvs = bytes({kPp2TypeAlpn,
                                  0x00,
                                  0x02,
                                  'h',
                                  '2',  //
                                  kPp2TypeAuthority,
                                  0x00,
                                  0x0B,
                                  'e',
                                  'x',
                                  'a',
                                  'm',
                                  'p',
                                  'l',
                                  'e',
                                  '.',
                                  'c',
                                  'o',
                                  'm',  //
                                  kPp2TypeSsl,
                                  0x00,
                                  0x0C,
                                  0x07,
                                  0,
                                  0,
                                  0,
                                  0,  // client, verify
                                  0x21,
                                  0x00,
                                  0x04,
                                  'T',
                                  'L',
                                  'S',
                                  '3',  // SSL_VERSION
                                  kPp2TypeNoop,
                                  0x00,
                                  0x00,  //
                                  0xE0,
                                  0x00,
                                  0x01,
                                  0x00,  // custom
                                  kPp2TypeAuthority,
                                  0x00,
                                  0x01,
                                  'x'});  // second one
  const std::string h = kSig + bytes({0x21, 0x11, 0x00, static_cast<int>(12 + tlvs.size())}) +
                        kV2Tcp4.substr(16) + tlvs;
  ProxyHeaderResult r = expect_done(h);
  EXPECT_EQ(r.header.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.header.source.to_string(), "192.168.0.1:56324");
  EXPECT_EQ(r.header.tlvs.raw(), tlvs);
  EXPECT_EQ(r.header.tlvs.count(), 6u);
  std::vector<std::pair<int, std::string>> want = {
      {0x01, "h2"},
      {0x02, "example.com"},
      {0x20, bytes({0x07, 0, 0, 0, 0, 0x21, 0x00, 0x04, 'T', 'L', 'S', '3'})},
      {0x04, ""},
      {0xE0, bytes({0x00})},
      {0x02, "x"}};
  EXPECT_EQ(tlv_list(r.header.tlvs), want);
  EXPECT_EQ(r.header.tlvs.find(kPp2TypeAuthority), std::optional<std::string_view>("example.com"));
  EXPECT_EQ(r.header.tlvs.find(kPp2TypeUniqueId), std::nullopt);

  // The TLVs are owned by the result: they survive the input and copies of the result.
  ProxyHeaderResult copy;
  {
    std::string input = h + "payload";
    copy = parse_proxy_header(input);
    input.assign(input.size(), 'Z');
  }
  EXPECT_EQ(tlv_list(copy.header.tlvs), want);
}

TEST(ProxyProtocolV2, TlvsMustTileTheBlock) {
  const std::string_view overrun = "PROXY protocol v2 TLV overruns the header";
  // A TLV announcing 3 value bytes with 2 present.
  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x11, 0x00, 12 + 5}) + kV2Tcp4.substr(16) +
                         bytes({0x02, 0x00, 0x03, 'a', 'b'})),
            overrun);
  // Two stray bytes after the addresses: not even a TLV header.
  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x11, 0x00, 12 + 2}) + kV2Tcp4.substr(16) +
                         bytes({0x02, 0x00})),
            overrun);
}

TEST(ProxyProtocolV2, Crc32c) {
  // RFC 3720 / iSCSI check value.
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("456789", crc32c("123")), crc32c("123456789"));
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros

  // A header whose CRC32c TLV is right, then the same header with one address byte changed.
  std::string h = kSig + bytes({0x21, 0x11, 0x00, 12 + 7}) + kV2Tcp4.substr(16) +
                  bytes({kPp2TypeCrc32c, 0x00, 0x04, 0, 0, 0, 0});
  const uint32_t crc = crc32c(h);
  h[h.size() - 4] = static_cast<char>(crc >> 24);
  h[h.size() - 3] = static_cast<char>(crc >> 16);
  h[h.size() - 2] = static_cast<char>(crc >> 8);
  h[h.size() - 1] = static_cast<char>(crc);
  ProxyHeaderResult r = expect_done(h);
  EXPECT_EQ(r.header.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.header.tlvs.count(), 1u);

  std::string tampered = h;
  tampered[16] = static_cast<char>(193);
  EXPECT_EQ(expect_error(tampered), "PROXY protocol v2 CRC32c mismatch");

  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x11, 0x00, 12 + 6}) + kV2Tcp4.substr(16) +
                         bytes({kPp2TypeCrc32c, 0x00, 0x03, 1, 2, 3})),
            "PROXY protocol v2 CRC32c TLV is not 4 bytes");
}

TEST(ProxyProtocolV2, HeaderErrors) {
  EXPECT_EQ(expect_error(kSig + bytes({0x11, 0x11, 0x00, 0x00})),
            "unsupported PROXY protocol version");
  EXPECT_EQ(expect_error(kSig + bytes({0x31, 0x11, 0x00, 0x00})),
            "unsupported PROXY protocol version");
  EXPECT_EQ(expect_error(kSig + bytes({0x22, 0x11, 0x00, 0x00})), "bad PROXY protocol v2 command");
  EXPECT_EQ(expect_error(kSig + bytes({0x2F, 0x11, 0x00, 0x00})), "bad PROXY protocol v2 command");
  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x41, 0x00, 0x00})),
            "unsupported PROXY protocol v2 address family");
  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x13, 0x00, 0x00})),
            "unsupported PROXY protocol v2 transport");
  // Errors that the first 13 or 14 bytes already show do not wait for the rest.
  EXPECT_EQ(parse_proxy_header(kSig + bytes({0x22})).status, ProxyParseStatus::kError);
  EXPECT_EQ(parse_proxy_header(kSig + bytes({0x21, 0x41})).status, ProxyParseStatus::kError);

  const std::string_view short_block = "PROXY protocol v2 length shorter than its addresses";
  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x11, 0x00, 0x0B}) + kV2Tcp4.substr(16, 11)),
            short_block);
  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x11, 0x00, 0x00})), short_block);
  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x21, 0x00, 0x0C}) + kV2Tcp4.substr(16)), short_block);
  EXPECT_EQ(expect_error(kSig + bytes({0x21, 0x31, 0x00, 0x24}) + std::string(36, 'a')),
            short_block);
}

TEST(ProxyProtocolV2, BadSignature) {
  for (size_t i = 0; i < kSig.size(); ++i) {
    std::string h = kV2Tcp4;
    if (i == 0) continue;  // a different first byte is "not a PROXY protocol header"
    h[i] = static_cast<char>(h[i] ^ 0x20);
    EXPECT_EQ(expect_error(h), "bad PROXY protocol v2 signature") << "byte " << i;
    // Rejected as soon as the differing byte arrives.
    EXPECT_EQ(parse_proxy_header(h.substr(0, i + 1)).status, ProxyParseStatus::kError);
  }
}

TEST(ProxyProtocolV2, WaitsForExactlyTheAnnouncedLength) {
  // The largest block: 16 + 65535 bytes. One byte short is incomplete, the full length is done.
  const std::string tlv = bytes({0xE1, 0xFF, 0xF0}) + std::string(0xFFF0, 'v');
  const int len = 12 + static_cast<int>(tlv.size());
  ASSERT_EQ(len, 65535);
  const std::string h = kSig + bytes({0x21, 0x11, len >> 8, len & 0xFF}) + kV2Tcp4.substr(16) + tlv;
  EXPECT_EQ(parse_proxy_header(std::string_view(h).substr(0, h.size() - 1)).status,
            ProxyParseStatus::kIncomplete);
  ProxyHeaderResult r = parse_proxy_header(h + "x");
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r.consumed, 16u + 65535u);
  EXPECT_EQ(r.header.tlvs.find(0xE1)->size(), 0xFFF0u);
}

TEST(ProxyTlvs, TruncatedRawBytesEndTheIteration) {
  ProxyTlvs tlvs(bytes({0x01, 0x00, 0x01, 'a', 0x02, 0x00, 0x05, 'b'}));
  EXPECT_EQ(tlvs.count(), 1u);
  EXPECT_EQ(tlvs.find(0x01), std::optional<std::string_view>("a"));
  EXPECT_EQ(tlvs.find(0x02), std::nullopt);
  ProxyTlvs stub(bytes({0x01, 0x00}));
  EXPECT_EQ(stub.count(), 0u);
  EXPECT_EQ(ProxyTlvs().count(), 0u);
}

}  // namespace
}  // namespace proxenos::net
