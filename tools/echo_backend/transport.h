#pragma once
// The socket of a connection that switched protocol (HTTP/2, WebSocket): plain or TLS, with the
// same recv/sendmsg-like contract either way.

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <memory>

#include "tls.h"

namespace proxenos::echo {

struct Transport {
  int fd = -1;
  std::unique_ptr<TlsStream> tls;

  // See TlsStream::read / writev.
  ssize_t recv(char* buf, size_t cap) {
    return tls ? tls->read(buf, cap) : ::recv(fd, buf, cap, 0);
  }
  ssize_t writev(const iovec* iov, int count) {
    if (tls) return tls->writev(iov, count);
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<size_t>(count);
    return ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  }
  // A short plain read drained the socket; TLS reads return one record at a time, so only EAGAIN
  // says the TLS side is drained.
  bool short_read_drains() const { return !tls; }
  const TlsInfo* tls_info() { return tls ? &tls->info() : nullptr; }
};

}  // namespace proxenos::echo
