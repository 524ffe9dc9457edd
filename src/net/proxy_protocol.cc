#include "net/proxy_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace proxenos::net {

namespace {

constexpr std::string_view kV1Prefix = "PROXY ";

// Header errors; static so a result never allocates for them.
constexpr std::string_view kErrNoSignature = "not a PROXY protocol header";
constexpr std::string_view kErrV1Signature = "bad PROXY protocol v1 signature";
constexpr std::string_view kErrV1TooLong = "PROXY protocol v1 line longer than 107 bytes";
constexpr std::string_view kErrV1BareCr = "PROXY protocol v1 line has a CR without LF";
constexpr std::string_view kErrV1BareLf = "PROXY protocol v1 line has an LF without CR";
constexpr std::string_view kErrV1Protocol = "unsupported PROXY protocol v1 protocol";
constexpr std::string_view kErrV1Malformed = "malformed PROXY protocol v1 line";
constexpr std::string_view kErrV2Signature = "bad PROXY protocol v2 signature";
constexpr std::string_view kErrV2Version = "unsupported PROXY protocol version";
constexpr std::string_view kErrV2Command = "bad PROXY protocol v2 command";
constexpr std::string_view kErrV2Family = "unsupported PROXY protocol v2 address family";
constexpr std::string_view kErrV2Transport = "unsupported PROXY protocol v2 transport";
constexpr std::string_view kErrV2Length = "PROXY protocol v2 length shorter than its addresses";
constexpr std::string_view kErrV2Tlv = "PROXY protocol v2 TLV overruns the header";
constexpr std::string_view kErrV2CrcSize = "PROXY protocol v2 CRC32c TLV is not 4 bytes";
constexpr std::string_view kErrV2Crc = "PROXY protocol v2 CRC32c mismatch";

ProxyHeaderResult incomplete() {
  return {};
}

ProxyHeaderResult failure(std::string_view why) {
  ProxyHeaderResult r;
  r.status = ProxyParseStatus::kError;
  r.error = why;
  return r;
}

ProxyHeaderResult done(size_t consumed, int version) {
  ProxyHeaderResult r;
  r.status = ProxyParseStatus::kDone;
  r.consumed = consumed;
  r.header.version = version;
  return r;
}

uint16_t be16(std::string_view b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) |
                               static_cast<uint8_t>(b[at + 1]));
}

uint32_t be32(std::string_view b, size_t at) {
  return (uint32_t{static_cast<uint8_t>(b[at])} << 24) |
         (uint32_t{static_cast<uint8_t>(b[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(b[at + 2])} << 8) |
         uint32_t{static_cast<uint8_t>(b[at + 3])};
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Decimal without leading zeros ("0" itself is fine), at most `max`.
bool parse_decimal(std::string_view s, uint32_t max, uint32_t* out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// Strict dotted quad: the spec forbids leading zeros (octal confusion); inet_pton's tolerance of
// them varies by libc, so this does not rely on it.
bool parse_ipv4(std::string_view s, in_addr* out) {
  uint8_t octets[4];
  for (int i = 0; i < 4; ++i) {
    size_t dot = i < 3 ? s.find('.') : s.size();
    if (dot == std::string_view::npos) return false;
    uint32_t v = 0;
    if (dot > 3 || !parse_decimal(s.substr(0, dot), 255, &v)) return false;
    octets[i] = static_cast<uint8_t>(v);
    s.remove_prefix(std::min(dot + 1, s.size()));
    if (i < 3 && s.empty()) return false;
  }
  std::memcpy(&out->s_addr, octets, 4);
  return true;
}

bool parse_ipv6(std::string_view s, in6_addr* out) {
  // Longest text form inet_pton takes is INET6_ADDRSTRLEN - 1 (an IPv4-mapped tail).
  char buf[INET6_ADDRSTRLEN];
  if (s.empty() || s.size() >= sizeof buf) return false;
  for (char c : s) {
    const bool ok =
        is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    if (!ok) return false;
  }
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  return inet_pton(AF_INET6, buf, out) == 1;
}

void set_ipv4(Address* a, const void* addr4, uint16_t port) {
  a->storage = {};
  auto* sin = reinterpret_cast<sockaddr_in*>(&a->storage);
  sin->sin_family = AF_INET;
  std::memcpy(&sin->sin_addr, addr4, 4);
  sin->sin_port = htons(port);
  a->length = sizeof(sockaddr_in);
}

void set_ipv6(Address* a, const void* addr16, uint16_t port) {
  a->storage = {};
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a->storage);
  sin6->sin6_family = AF_INET6;
  std::memcpy(&sin6->sin6_addr, addr16, 16);
  sin6->sin6_port = htons(port);
  a->length = sizeof(sockaddr_in6);
}

// Splits "a b c d" on single spaces into exactly four non-empty fields.
bool split4(std::string_view s, std::array<std::string_view, 4>* out) {
  for (size_t i = 0; i < 4; ++i) {
    size_t sp = i < 3 ? s.find(' ') : s.size();
    if (sp == std::string_view::npos || sp == 0) return false;
    (*out)[i] = s.substr(0, sp);
    if (i < 3) s.remove_prefix(sp + 1);
  }
  return s.find(' ') == std::string_view::npos;
}

ProxyHeaderResult parse_v1_line(std::string_view line, size_t consumed) {
  // `line` is what follows "PROXY " up to (not including) the CRLF.
  if (line.substr(0, 7) == "UNKNOWN" && (line.size() == 7 || line[7] == ' ')) {
    return done(consumed, 1);  // kLocal; the rest of the line is ignored by the spec's rule
  }
  const bool tcp4 = line.substr(0, 5) == "TCP4 ";
  const bool tcp6 = line.substr(0, 5) == "TCP6 ";
  if (!tcp4 && !tcp6) return failure(kErrV1Protocol);
  std::array<std::string_view, 4> f;
  if (!split4(line.substr(5), &f)) return failure(kErrV1Malformed);
  uint32_t sport = 0;
  uint32_t dport = 0;
  if (!parse_decimal(f[2], 65535, &sport) || !parse_decimal(f[3], 65535, &dport)) {
    return failure(kErrV1Malformed);
  }
  ProxyHeaderResult r = done(consumed, 1);
  r.header.command = ProxyCommand::kProxy;
  if (tcp4) {
    in_addr src{};
    in_addr dst{};
    if (!parse_ipv4(f[0], &src) || !parse_ipv4(f[1], &dst)) return failure(kErrV1Malformed);
    set_ipv4(&r.header.source, &src, static_cast<uint16_t>(sport));
    set_ipv4(&r.header.destination, &dst, static_cast<uint16_t>(dport));
  } else {
    in6_addr src{};
    in6_addr dst{};
    if (!parse_ipv6(f[0], &src) || !parse_ipv6(f[1], &dst)) return failure(kErrV1Malformed);
    set_ipv6(&r.header.source, &src, static_cast<uint16_t>(sport));
    set_ipv6(&r.header.destination, &dst, static_cast<uint16_t>(dport));
  }
  return r;
}

ProxyHeaderResult parse_v1(std::string_view in) {
  const size_t n = std::min(in.size(), kV1Prefix.size());
  if (in.substr(0, n) != kV1Prefix.substr(0, n)) return failure(kErrV1Signature);
  if (in.size() < kV1Prefix.size()) return incomplete();
  // Find the CRLF within the first 107 bytes; a lone CR or LF is rejected where it stands so a
  // broken sender is dropped without waiting for the limit.
  const size_t limit = std::min(in.size(), kProxyV1MaxLine);
  for (size_t i = kV1Prefix.size(); i < limit; ++i) {
    if (in[i] == '\n') return failure(kErrV1BareLf);
    if (in[i] != '\r') continue;
    if (i + 1 >= kProxyV1MaxLine) return failure(kErrV1TooLong);
    if (i + 1 >= in.size()) return incomplete();
    if (in[i + 1] != '\n') return failure(kErrV1BareCr);
    return parse_v1_line(in.substr(kV1Prefix.size(), i - kV1Prefix.size()), i + 2);
  }
  if (in.size() >= kProxyV1MaxLine) return failure(kErrV1TooLong);
  return incomplete();
}

// Validates the TLVs from offset `at` to the end of the header `hdr`, including a CRC32c TLV
// against the whole header. Empty when they are fine, else why not.
std::string_view check_tlvs(std::string_view hdr, size_t at) {
  std::string_view rest = hdr.substr(at);
  while (!rest.empty()) {
    if (rest.size() < 3) return kErrV2Tlv;
    const size_t len = be16(rest, 1);
    if (rest.size() - 3 < len) return kErrV2Tlv;
    if (static_cast<uint8_t>(rest[0]) == kPp2TypeCrc32c) {
      if (len != 4) return kErrV2CrcSize;
      const size_t value_at = hdr.size() - rest.size() + 3;
      static constexpr char kZeros[4] = {0, 0, 0, 0};
      uint32_t crc = crc32c(hdr.substr(0, value_at));
      crc = crc32c(std::string_view(kZeros, 4), crc);
      crc = crc32c(hdr.substr(value_at + 4), crc);
      if (crc != be32(hdr, value_at)) return kErrV2Crc;
    }
    rest.remove_prefix(3 + len);
  }
  return {};
}

ProxyHeaderResult parse_v2(std::string_view in) {
  const size_t n = std::min(in.size(), kProxyV2Signature.size());
  if (in.substr(0, n) != kProxyV2Signature.substr(0, n)) return failure(kErrV2Signature);
  if (in.size() < 13) return incomplete();
  const uint8_t ver_cmd = static_cast<uint8_t>(in[12]);
  if ((ver_cmd >> 4) != 2) return failure(kErrV2Version);
  const uint8_t command = ver_cmd & 0x0f;
  if (command > 1) return failure(kErrV2Command);
  const bool proxy = command == 1;
  if (in.size() < 14) return incomplete();
  const uint8_t fam = static_cast<uint8_t>(in[13]);
  // LOCAL ignores the family byte altogether, so it cannot make LOCAL invalid.
  if (proxy && (fam >> 4) > 3) return failure(kErrV2Family);
  if (proxy && (fam & 0x0f) > 2) return failure(kErrV2Transport);
  if (in.size() < kProxyV2HeaderSize) return incomplete();
  const size_t total = kProxyV2HeaderSize + be16(in, 14);
  if (in.size() < total) return incomplete();
  ProxyHeaderResult r = done(total, 2);
  if (!proxy) return r;

  size_t addr_len = 0;
  switch (fam) {
    case 0x11:  // TCP over IPv4
    case 0x12:  // UDP over IPv4
      addr_len = 12;
      break;
    case 0x21:  // TCP over IPv6
    case 0x22:  // UDP over IPv6
      addr_len = 36;
      break;
    case 0x31:  // UNIX stream
    case 0x32:  // UNIX datagram
      addr_len = 216;
      break;
    default:
      // UNSPEC or a combination the spec does not list: the layout is unknown, so the whole
      // block (addresses and any TLVs) is skipped and the real endpoints are used.
      return r;
  }
  const std::string_view hdr = in.substr(0, total);
  if (total - kProxyV2HeaderSize < addr_len) return failure(kErrV2Length);
  const size_t tlv_at = kProxyV2HeaderSize + addr_len;
  if (std::string_view why = check_tlvs(hdr, tlv_at); !why.empty()) return failure(why);

  const char* a = hdr.data() + kProxyV2HeaderSize;
  if (fam == 0x11) {
    r.header.command = ProxyCommand::kProxy;
    set_ipv4(&r.header.source, a, be16(hdr, kProxyV2HeaderSize + 8));
    set_ipv4(&r.header.destination, a + 4, be16(hdr, kProxyV2HeaderSize + 10));
  } else if (fam == 0x21) {
    r.header.command = ProxyCommand::kProxy;
    set_ipv6(&r.header.source, a, be16(hdr, kProxyV2HeaderSize + 32));
    set_ipv6(&r.header.destination, a + 16, be16(hdr, kProxyV2HeaderSize + 34));
  }
  // Other families stay kLocal: an HTTP listener has no use for a UDP or AF_UNIX peer.
  if (tlv_at < total) r.header.tlvs = ProxyTlvs(std::string(hdr.substr(tlv_at)));
  return r;
}

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

}  // namespace

uint32_t crc32c(std::string_view bytes, uint32_t crc) {
  crc = ~crc;
  for (char ch : bytes) crc = kCrc32cTable[(crc ^ static_cast<uint8_t>(ch)) & 0xff] ^ (crc >> 8);
  return ~crc;
}

ProxyTlvs::Iterator::Iterator(std::string_view rest) : rest_(rest) {
  if (rest_.empty()) return;
  // ProxyTlvs can be built from any bytes; a truncated tail ends the iteration rather than
  // reading past it.
  if (rest_.size() < 3 || rest_.size() - 3 < be16(rest_, 1)) {
    rest_.remove_prefix(rest_.size());
    return;
  }
  current_.type = static_cast<uint8_t>(rest_[0]);
  current_.value = rest_.substr(3, be16(rest_, 1));
}

ProxyTlvs::Iterator& ProxyTlvs::Iterator::operator++() {
  *this = Iterator(rest_.substr(3 + current_.value.size()));
  return *this;
}

size_t ProxyTlvs::count() const {
  return static_cast<size_t>(std::distance(begin(), end()));
}

std::optional<std::string_view> ProxyTlvs::find(uint8_t type) const {
  for (const ProxyTlv& tlv : *this) {
    if (tlv.type == type) return tlv.value;
  }
  return std::nullopt;
}

ProxyHeaderResult parse_proxy_header(std::string_view bytes) {
  if (bytes.empty()) return incomplete();
  // The first byte tells the versions apart: 'P' for v1, CR for v2's signature.
  if (bytes[0] == 'P') return parse_v1(bytes);
  if (bytes[0] == '\r') return parse_v2(bytes);
  return failure(kErrNoSignature);
}

}  // namespace proxenos::net
