#include "upstream/upstream_connection.h"

#include <sys/epoll.h>
#include <unistd.h>

#include "net/socket.h"
#include "upstream/worker_cluster.h"

namespace proxenos::upstream {

UpstreamConnection::UpstreamConnection(net::EventLoop& loop, int fd, WorkerCluster* cluster,
                                       const net::Address& endpoint)
    : loop_(loop), fd_(fd), cluster_(cluster), endpoint_(endpoint) {
  created_ms = loop.now_ms();
  loop_.add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
}

UpstreamConnection::~UpstreamConnection() {
  if (stats_) stats_->upstream_cx_active.add(-1);
  if (fd_ >= 0) {
    loop_.remove(fd_);
    close(fd_);
  }
}

void UpstreamConnection::on_io(uint32_t events) {
  if (dead_) return;
  if (in_pool_) {
    // A pooled connection has no request in flight: anything but "writable" means it is unusable,
    // except TLS records that carry no data (a TLS 1.3 session ticket arriving late).
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      cluster_->drop_idle(this);
    } else if (events & EPOLLIN) {
      char scratch[512];
      net::TlsResult r = tls_ ? tls_->read(scratch, sizeof scratch) : net::TlsResult{};
      if (!tls_ || (r.status != net::TlsIo::kWantRead && r.status != net::TlsIo::kWantWrite)) {
        cluster_->drop_idle(this);
      }
    }
    return;
  }
  if (!connected) {
    finish_connecting(events);
    return;
  }
  if (handler_ != nullptr) handler_->on_upstream_event(events);
}

void UpstreamConnection::finish_connecting(uint32_t events) {
  if (!tcp_connected_) {
    if ((events & (EPOLLERR | EPOLLHUP)) || net::socket_error(fd_) != 0) {
      fail("connection failure");
      return;
    }
    if (!(events & EPOLLOUT)) return;
    tcp_connected_ = true;
  }
  if (tls_) {
    net::TlsResult r = tls_->handshake();
    if (r.status == net::TlsIo::kWantRead || r.status == net::TlsIo::kWantWrite) return;
    if (r.status != net::TlsIo::kOk) {
      fail("TLS error: " +
           (tls_->error().empty() ? std::string(net::to_string(r.status)) : tls_->error()));
      return;
    }
  }
  connected = true;
  if (handler_ != nullptr) handler_->on_upstream_connected();
}

void UpstreamConnection::fail(std::string reason) {
  failure_ = std::move(reason);
  if (handler_ != nullptr) handler_->on_upstream_event(EPOLLERR);
}

const std::string& UpstreamConnection::endpoint_text() {
  if (endpoint_text_.empty()) endpoint_text_ = endpoint_.to_string();
  return endpoint_text_;
}

const std::string& UpstreamConnection::local_address() {
  if (local_address_.empty() && fd_ >= 0) local_address_ = net::local_address(fd_).to_string();
  return local_address_;
}

void UpstreamConnection::destroy(std::unique_ptr<UpstreamConnection> connection) {
  if (!connection) return;
  UpstreamConnection* c = connection.release();
  c->dead_ = true;
  c->handler_ = nullptr;
  c->tls_.reset();  // before the fd closes: the stream uses it
  if (c->fd_ >= 0) {
    c->loop_.remove(c->fd_);
    close(c->fd_);
    c->fd_ = -1;
  }
  c->loop_.defer([c] { delete c; });
}

}  // namespace proxenos::upstream
