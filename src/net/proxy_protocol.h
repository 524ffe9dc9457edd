#pragma once
// HAProxy PROXY protocol receiver, versions 1 (text) and 2 (binary), as HAProxy's
// doc/proxy-protocol.txt specifies it. Listeners with protocol HTTPPROXY/HTTPSPROXY require the
// header: a connection whose first bytes are neither signature is an error, never plain traffic
// (the spec forbids guessing, since that would let anyone spoof addresses).
//
// Feed parse_proxy_header() everything received so far, from the connection's first byte. It
// answers kIncomplete (read more and call again with the longer input), kError (drop the
// connection; `error` says why) or kDone (`consumed` bytes are the header; the rest is the
// connection's payload, e.g. a TLS ClientHello or an HTTP request). It never asks for more than
// 107 bytes for v1 (the longest legal line) nor 16 + the announced length for v2, and rejects as
// soon as the bytes seen so far cannot start a valid header, so a caller need not guess limits.
// It is deterministic in its input: a truncated header yields kIncomplete or the very error the
// whole input gives.
//
// Receiver rules kept from the spec:
// - v1: "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n", single spaces, no leading zeros in
//   IPv4 octets or ports, the address family matching the keyword; "PROXY UNKNOWN..." is LOCAL
//   (anything up to the CRLF is ignored). A lone CR or LF ends nothing: it is an error.
// - v2: version nibble 2, command LOCAL (0) or PROXY (1). LOCAL discards the whole address block
//   (family and TLVs included). PROXY with TCP over IPv4/IPv6 (0x11, 0x21) carries addresses; the
//   other valid family/transport combinations (UNSPEC, UDP, AF_UNIX, ...) fall back to "use the
//   real endpoints", i.e. LOCAL, as the spec allows. Families or transports above 3/2 are errors.
//   A block shorter than its family's addresses, or TLVs that do not tile the rest exactly, are
//   errors. A PP2_TYPE_CRC32C TLV is verified (CRC32c over the header with the checksum zeroed).
//
// Allocation: none, except one copy of the TLV bytes when a v2 PROXY header carries TLVs (so the
// result outlives the caller's read buffer). Error strings are static.

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "net/address.h"

namespace proxenos::net {

inline constexpr size_t kProxyV1MaxLine = 107;  // "PROXY UNKNOWN <ipv6> <ipv6> 65535 65535\r\n"
inline constexpr size_t kProxyV2HeaderSize = 16;
inline constexpr std::string_view kProxyV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

// Registered v2 TLV types (PP2_TYPE_*). PP2_TYPE_SSL's value holds sub-TLVs, kept raw.
inline constexpr uint8_t kPp2TypeAlpn = 0x01;
inline constexpr uint8_t kPp2TypeAuthority = 0x02;  // the client's SNI / host name, UTF-8
inline constexpr uint8_t kPp2TypeCrc32c = 0x03;
inline constexpr uint8_t kPp2TypeNoop = 0x04;
inline constexpr uint8_t kPp2TypeUniqueId = 0x05;
inline constexpr uint8_t kPp2TypeSsl = 0x20;
inline constexpr uint8_t kPp2TypeNetns = 0x30;

enum class ProxyParseStatus : uint8_t { kIncomplete, kError, kDone };

// kLocal: use the connection's real endpoints (v2 LOCAL, v1 UNKNOWN, and v2 PROXY for families
// other than TCP over IPv4/IPv6). kProxy: `source`/`destination` are the original endpoints.
enum class ProxyCommand : uint8_t { kLocal, kProxy };

struct ProxyTlv {
  uint8_t type = 0;
  std::string_view value;  // points into the owning ProxyTlvs
};

// The v2 TLVs of a PROXY header, in wire order, as the raw validated TLV bytes. Iterating or
// looking up allocates nothing; views stay valid while this object lives and is not modified.
class ProxyTlvs {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ProxyTlv;
    using difference_type = std::ptrdiff_t;
    using pointer = const ProxyTlv*;
    using reference = const ProxyTlv&;

    Iterator() = default;
    reference operator*() const { return current_; }
    pointer operator->() const { return &current_; }
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const Iterator& other) const { return rest_.data() == other.rest_.data(); }

   private:
    friend class ProxyTlvs;
    explicit Iterator(std::string_view rest);
    std::string_view rest_;  // current TLV and the ones after it
    ProxyTlv current_;
  };

  ProxyTlvs() = default;
  explicit ProxyTlvs(std::string raw) : raw_(std::move(raw)) {}

  Iterator begin() const { return Iterator(raw_); }
  Iterator end() const { return Iterator(std::string_view(raw_).substr(raw_.size())); }
  bool empty() const { return raw_.empty(); }
  size_t count() const;
  // The first TLV of `type`, if any.
  std::optional<std::string_view> find(uint8_t type) const;
  // The bytes as received: (type, length_hi, length_lo, value)*.
  std::string_view raw() const { return raw_; }

 private:
  std::string raw_;
};

struct ProxyHeader {
  int version = 0;  // 1 or 2
  ProxyCommand command = ProxyCommand::kLocal;
  Address source;       // kProxy only: the client as the sender saw it
  Address destination;  // kProxy only: the address the client connected to
  ProxyTlvs tlvs;       // v2 PROXY command only (kept when the family falls back to kLocal)
};

struct ProxyHeaderResult {
  ProxyParseStatus status = ProxyParseStatus::kIncomplete;
  size_t consumed = 0;     // kDone: header length in bytes
  std::string_view error;  // kError: static text, e.g. "bad PROXY protocol v2 signature"
  ProxyHeader header;      // kDone only
};

ProxyHeaderResult parse_proxy_header(std::string_view bytes);

// CRC32c (Castagnoli, RFC 4960 appendix B), as PP2_TYPE_CRC32C uses it.
uint32_t crc32c(std::string_view bytes, uint32_t crc = 0);

}  // namespace proxenos::net
