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
    // A pooled connection has no request in flight: anything but "writable" means it is unusable.
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) cluster_->drop_idle(this);
    return;
  }
  if (handler_ != nullptr) handler_->on_upstream_event(events);
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
  if (c->fd_ >= 0) {
    c->loop_.remove(c->fd_);
    close(c->fd_);
    c->fd_ = -1;
  }
  c->loop_.defer([c] { delete c; });
}

}  // namespace proxenos::upstream
