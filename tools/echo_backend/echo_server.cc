#include "echo_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "echo_connection.h"
#include "net/socket.h"
#include "tls.h"

namespace proxenos::echo {

EchoServer::EchoServer(net::EventLoop& loop, int listen_fd, std::string name, EchoOptions options)
    : loop_(loop),
      listen_fd_(listen_fd),
      name_(std::move(name)),
      options_(options),
      scratch_(new char[kScratchSize]) {
  // The backend must accept whatever a proxy under test forwards, so its own limits are loose:
  // the limits being tested are the proxy's.
  limits_.allow_http10 = true;
  limits_.underscores = http::UnderscoreAction::kAllow;
  limits_.max_header_bytes = 1024 * 1024;
  limits_.max_header_count = 4096;
  limits_.max_request_line_bytes = 512 * 1024;
  json_.reserve(4096);
  loop_.add(listen_fd_, EPOLLIN, this);
}

EchoServer::~EchoServer() {
  loop_.remove(listen_fd_);
  close(listen_fd_);
  while (connections_ != nullptr) {
    ServerConnection* c = connections_;
    connections_ = c->next_;
    delete c;
  }
}

void EchoServer::on_io(uint32_t /*events*/) {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && !accept_error_logged_) {
        // EMFILE and friends: the next connection attempt retries; say it once, not per attempt.
        std::fprintf(stderr, "echo-backend: accept: %s\n", std::strerror(errno));
        accept_error_logged_ = true;
      }
      return;
    }
    net::set_nodelay(fd);
    net::Address peer;
    peer.storage = ss;
    peer.length = len;
    std::unique_ptr<TlsStream> tls;
    if (options_.tls != nullptr) {
      tls = TlsStream::accept(*options_.tls, fd);
      if (!tls) {
        close(fd);
        continue;
      }
    }
    auto* c = new EchoConnection(*this, fd, peer, std::move(tls));
    adopt(c);
    c->start();
  }
}

void EchoServer::adopt(ServerConnection* c) {
  c->prev_ = nullptr;
  c->next_ = connections_;
  if (connections_ != nullptr) connections_->prev_ = c;
  connections_ = c;
}

void EchoServer::release(ServerConnection* c) {
  if (c->prev_ != nullptr) c->prev_->next_ = c->next_;
  if (c->next_ != nullptr) c->next_->prev_ = c->prev_;
  if (connections_ == c) connections_ = c->next_;
  c->prev_ = c->next_ = nullptr;
  loop_.defer([c] { delete c; });
}

}  // namespace proxenos::echo
