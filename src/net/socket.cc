#include "net/socket.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace proxenos::net {

int listen_tcp(const Address& address, bool reuse_port, int backlog, std::string* error) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (error) *error = std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (address.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, address.sa(), address.length) != 0 || listen(fd, backlog) != 0) {
    if (error) *error = "bind " + address.to_string() + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

int connect_tcp(const Address& address, int* error_number) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error_number = errno;
    return -1;
  }
  set_nodelay(fd);
  if (connect(fd, address.sa(), address.length) != 0 && errno != EINPROGRESS) {
    *error_number = errno;
    close(fd);
    return -1;
  }
  *error_number = 0;
  return fd;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

Address local_address(int fd) {
  Address a;
  a.length = sizeof a.storage;
  getsockname(fd, a.sa(), &a.length);
  return a;
}

Address peer_address(int fd) {
  Address a;
  a.length = sizeof a.storage;
  getpeername(fd, a.sa(), &a.length);
  return a;
}

}  // namespace proxenos::net
