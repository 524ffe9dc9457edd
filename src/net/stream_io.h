#pragma once
// Reading and writing a connection that is either a plain socket or a TLS stream over one, with
// the socket calls' conventions: bytes moved (> 0), 0 at the end of the peer's data, or -1 with
// errno (EAGAIN when the connection waits for readiness, anything else a failure). Callers then
// need not care which it is, except for one TLS rule: a read may wait for the socket to become
// writable and a write for it to become readable, so TLS connections retry both on any event.

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "net/tls_stream.h"

namespace proxenos::net {

struct StreamIo {
  int fd = -1;
  TlsStream* tls = nullptr;

  ssize_t read(char* data, size_t size) const;
  ssize_t write(const char* data, size_t size) const;
  // Ends our sending side: close_notify for TLS, then the TCP FIN.
  void shutdown_write() const;
  // Why the last -1 from a TLS stream happened ("" for plain sockets: see errno).
  std::string error() const;
};

}  // namespace proxenos::net
