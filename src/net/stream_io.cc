#include "net/stream_io.h"

#include <sys/socket.h>

#include <cerrno>

namespace proxenos::net {

namespace {
ssize_t from_tls(const TlsResult& r) {
  switch (r.status) {
    case TlsIo::kOk:
      return static_cast<ssize_t>(r.bytes);
    case TlsIo::kWantRead:
    case TlsIo::kWantWrite:
      errno = EAGAIN;
      return -1;
    case TlsIo::kClosed:
    case TlsIo::kEof:
      return 0;
    case TlsIo::kError:
      break;
  }
  errno = ECONNRESET;
  return -1;
}
}  // namespace

ssize_t StreamIo::read(char* data, size_t size) const {
  if (tls == nullptr) return recv(fd, data, size, 0);
  return from_tls(tls->read(data, size));
}

ssize_t StreamIo::write(const char* data, size_t size) const {
  if (tls == nullptr) return send(fd, data, size, MSG_NOSIGNAL);
  TlsResult r = tls->write(data, size);
  if (r.status == TlsIo::kClosed || r.status == TlsIo::kEof) {
    errno = EPIPE;
    return -1;
  }
  return from_tls(r);
}

void StreamIo::shutdown_write() const {
  if (tls != nullptr) tls->shutdown();
  ::shutdown(fd, SHUT_WR);
}

std::string StreamIo::error() const {
  return tls != nullptr ? tls->error() : std::string();
}

}  // namespace proxenos::net
