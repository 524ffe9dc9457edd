#pragma once
// A TLS ClientHello read without terminating TLS, for routing a connection by its SNI (as
// Envoy's tls_inspector does before a filter chain is chosen by server_names). The bytes are
// peeked from the socket, so the connection can still be relayed untouched afterwards.
//
// Feed parse_client_hello() everything received so far, from the connection's first byte. It
// answers kIncomplete (read more and call again with the longer input), kError (not a TLS
// ClientHello, malformed, or longer than `max_bytes`; `error` says why) or kDone (`consumed` bytes
// are the records holding the whole ClientHello; `server_name` and `alpn` are filled). It reads
// only within its input, never asks for more than `max_bytes`, and is deterministic in its input:
// a prefix yields kIncomplete or the very error the whole input gives.
//
// What is checked: TLS records of type handshake (0x16) with a 3.x version and 1..16384 bytes
// (RFC 8446 §5.1), a handshake message of type client_hello (1) reassembled across records with
// nothing but handshake records in between, and the ClientHello's layout (RFC 8446 §4.1.2,
// RFC 5246 §7.4.1.2): session id at most 32 bytes, a non-empty even cipher-suite list, at least
// one compression method, extensions that tile their block exactly (the block may be absent, as
// TLS 1.0-1.2 allow), at most one server_name and one ALPN extension. From server_name
// (RFC 6066 §3) the host_name entry is taken, lower-cased; a host_name that is empty, longer than
// 255 bytes or holds bytes outside printable ASCII is an error. ALPN protocol names (RFC 7301)
// must be non-empty.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace proxenos::net {

// 16 KiB: a ClientHello with post-quantum key shares and many extensions stays well below.
inline constexpr size_t kMaxClientHelloBytes = 16 * 1024;

enum class ClientHelloStatus : uint8_t { kIncomplete, kError, kDone };

struct ClientHelloResult {
  ClientHelloStatus status = ClientHelloStatus::kIncomplete;
  size_t consumed = 0;            // kDone: bytes of the records up to the end of the ClientHello
  std::string server_name;        // kDone: SNI host_name, lower case; "" when the client sent none
  std::vector<std::string> alpn;  // kDone: ALPN protocols in the client's order
  const char* error = "";         // kError: static text
};

ClientHelloResult parse_client_hello(std::string_view in, size_t max_bytes = kMaxClientHelloBytes);

}  // namespace proxenos::net
