#include "switched_connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace proxenos::echo {

namespace {
constexpr uint64_t kLingerMs = 2000;
constexpr size_t kCompactAfter = 256 * 1024;
constexpr size_t kMaxKeptOutputCapacity = 1024 * 1024;
}  // namespace

SwitchedConnection::SwitchedConnection(EchoServer& server, Transport transport, std::string remote)
    : server_(server),
      loop_(server.loop()),
      io_(std::move(transport)),
      remote_(std::move(remote)),
      linger_timer_(server.loop(), [this] { close_now(); }) {}

SwitchedConnection::~SwitchedConnection() {
  if (!closed_) {
    loop_.remove(io_.fd);
    ::close(io_.fd);
  }
}

void SwitchedConnection::register_io() {
  loop_.modify(io_.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
}

void SwitchedConnection::on_io(uint32_t events) {
  if (closed_) return;
  // TLS may need the other direction to make progress, so any event is worth a read attempt.
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || io_.tls) readable_ = true;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) rdhup_ = true;
  if (lingering_) {
    drain_linger();
    return;
  }
  on_ready();
}

bool SwitchedConnection::flush() {
  while (pending() > 0) {
    iovec iov{out_.data() + out_pos_, pending()};
    ssize_t n = io_.writev(&iov, 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      abort_now();
      return false;
    }
    out_pos_ += static_cast<size_t>(n);
  }
  if (out_pos_ == out_.size()) {
    out_pos_ = 0;
    if (out_.capacity() > kMaxKeptOutputCapacity) {
      std::string().swap(out_);
    } else {
      out_.clear();
    }
  } else if (out_pos_ > kCompactAfter) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  return true;
}

ssize_t SwitchedConnection::read_some(char** data) {
  char* buf = server_.scratch();
  for (;;) {
    if (!readable_) return 0;
    ssize_t n = io_.recv(buf, EchoServer::kScratchSize);
    if (n > 0) {
      if (static_cast<size_t>(n) < EchoServer::kScratchSize && !rdhup_ && io_.short_read_drains()) {
        readable_ = false;
      }
      *data = buf;
      return n;
    }
    if (n == 0) {
      readable_ = false;
      peer_eof_ = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      return 0;
    }
    if (errno == EPROTO) {
      close_now();
    } else {
      abort_now();
    }
    return -1;
  }
}

void SwitchedConnection::begin_linger() {
  if (closed_ || lingering_) return;
  if (peer_eof_) {
    close_now();
    return;
  }
  lingering_ = true;
  if (io_.tls) io_.tls->shutdown();
  on_closing();
  shutdown(io_.fd, SHUT_WR);
  linger_timer_.arm(kLingerMs);
  drain_linger();
}

void SwitchedConnection::drain_linger() {
  for (;;) {
    ssize_t n = ::recv(io_.fd, server_.scratch(), EchoServer::kScratchSize, 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_now();
    return;
  }
}

void SwitchedConnection::abort_now() {
  linger lin{};
  lin.l_onoff = 1;
  lin.l_linger = 0;
  setsockopt(io_.fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
  close_now();
}

void SwitchedConnection::close_now() {
  if (closed_) return;
  closed_ = true;
  linger_timer_.cancel();
  on_closing();
  loop_.remove(io_.fd);
  ::close(io_.fd);
  server_.release(this);
}

}  // namespace proxenos::echo
