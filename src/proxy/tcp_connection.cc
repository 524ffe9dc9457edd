#include "proxy/tcp_connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "net/socket.h"

namespace proxenos::proxy {

TcpConnection::TcpConnection(Worker& worker, int fd, std::string listener_key)
    : worker_(worker),
      fd_(fd),
      listener_key_(std::move(listener_key)),
      timer_(worker.loop(), [this] { on_timer(); }) {}

TcpConnection::TcpConnection(Worker& worker, int fd, std::string listener_key,
                             std::unique_ptr<net::TlsStream> tls, size_t route)
    : TcpConnection(worker, fd, std::move(listener_key)) {
  tls_ = std::move(tls);
  preset_route_ = route;
}

TcpConnection::~TcpConnection() {
  if (!closed_) {
    // Worker teardown deletes connections directly.
    tls_.reset();
    if (fd_ >= 0) {
      worker_.loop().remove(fd_);
      close(fd_);
    }
    upstream::UpstreamConnection::destroy(std::move(upstream_));
  }
  worker_.buffers().give(std::move(to_upstream_.buffer));
  worker_.buffers().give(std::move(to_downstream_.buffer));
}

void TcpConnection::start() {
  worker_.loop().add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
  config_ = worker_.config();
  const config::ListenerSnapshot* listener = config_ ? config_->listener(listener_key_) : nullptr;
  size_t index = 0;
  if (listener != nullptr)
    index = static_cast<size_t>(listener - config_->snapshot->listeners.data());
  // Raw TCP takes the TCPMapping without a host (SNI-routed ones need TLS in front).
  const config::TcpRoute* route = nullptr;
  size_t route_index = 0;
  if (listener != nullptr && preset_route_ < listener->tcp.size()) {
    route = &listener->tcp[preset_route_];
    route_index = preset_route_;
  } else if (listener != nullptr) {
    for (size_t i = 0; i < listener->tcp.size(); ++i) {
      if (listener->tcp[i].sni.empty() && !listener->tcp[i].targets.empty()) {
        route = &listener->tcp[i];
        route_index = i;
        break;
      }
    }
  }
  if (route != nullptr && index < config_->tcp_stats.size() &&
      route_index < config_->tcp_stats[index].size()) {
    stats_ = config_->tcp_stats[index][route_index];
  } else {
    stats_ = worker_.tcp_no_route_stats();
  }
  stats_->downstream_cx_total.inc();
  stats_->downstream_cx_active.add(1);
  if (route == nullptr) {
    stats_->downstream_cx_no_route.inc();
    close_now();
    return;
  }

  uint32_t draw = worker_.draw_percent();
  const config::TcpTarget* target = &route->targets.back();
  for (const config::TcpTarget& t : route->targets) {
    if (draw < t.cumulative_weight) {
      target = &t;
      break;
    }
  }
  if (target->cluster >= config_->clusters.size()) {
    close_now();
    return;
  }
  cluster_ = config_->clusters[target->cluster];
  cluster_->stats().upstream_rq_total.inc();
  const net::Address* endpoint = cluster_->pick_endpoint();
  int err = 0;
  if (endpoint != nullptr) upstream_ = cluster_->connect(*endpoint, &err);
  if (!upstream_) {
    cluster_->stats().upstream_cx_connect_fail.inc();
    close_now();
    return;
  }
  upstream_->set_handler(this);
  upstream_->requests++;
  idle_timeout_ms_ = route->idle_timeout_ms;
  last_activity_ms_ = worker_.loop().now_ms();
  timer_.arm(cluster_->spec().connect_timeout_ms);
  to_upstream_.buffer = worker_.buffers().take();
  to_downstream_.buffer = worker_.buffers().take();
  pump();
}

void TcpConnection::on_io(uint32_t events) {
  if (closed_) return;
  if (events & EPOLLERR) to_upstream_.failed = true;
  pump();
}

void TcpConnection::on_upstream_connected() {
  if (closed_ || !upstream_) return;
  if (idle_timeout_ms_ > 0) {
    timer_.arm(idle_timeout_ms_);
  } else {
    timer_.cancel();
  }
  pump();
}

void TcpConnection::on_upstream_event(uint32_t events) {
  if (closed_ || !upstream_) return;
  if (!upstream_->connected) {  // a failure to connect (TCP or TLS)
    cluster_->stats().upstream_cx_connect_fail.inc();
    close_now();
    return;
  }
  if (events & EPOLLERR) to_downstream_.failed = true;
  pump();
}

// Moves what can be moved in both directions, until neither makes progress (edge-triggered:
// every readable or writable edge must be used up).
void TcpConnection::pump() {
  bool connected = upstream_ && upstream_->connected;
  do {
    to_upstream_.progressed = to_downstream_.progressed = false;
    net::StreamIo down{fd_, tls_.get()};
    net::StreamIo up = connected ? upstream_->io() : net::StreamIo{};
    relay(down, up, connected, to_upstream_, &stats_->downstream_cx_rx_bytes_total,
          &cluster_->stats().upstream_cx_tx_bytes_total);
    if (connected) {
      relay(up, down, true, to_downstream_, &cluster_->stats().upstream_cx_rx_bytes_total,
            &stats_->downstream_cx_tx_bytes_total);
    }
    if (to_upstream_.failed || to_downstream_.failed) {
      close_now();
      return;
    }
  } while (to_upstream_.progressed || to_downstream_.progressed);
  if (to_upstream_.shut && to_downstream_.shut) close_now();  // both FINs delivered
}

void TcpConnection::relay(const net::StreamIo& from, const net::StreamIo& to, bool to_ready,
                          Direction& d, observe::Counter* rx, observe::Counter* tx) {
  net::Buffer& buf = *d.buffer;
  for (;;) {
    if (to_ready && !buf.empty()) {
      std::string_view data = buf.readable();
      ssize_t n = to.write(data.data(), data.size());
      if (n > 0) {
        buf.consume(static_cast<size_t>(n));
        tx->add(static_cast<uint64_t>(n));
        d.progressed = true;
        last_activity_ms_ = worker_.loop().now_ms();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        d.failed = true;
        return;
      }
    }
    if (to_ready && buf.empty() && d.eof && !d.shut) {
      to.shutdown_write();
      d.shut = true;
      d.progressed = true;
    }
    if (d.eof) return;
    if (buf.writable() == 0) buf.compact();
    if (buf.writable() == 0) return;  // full: the receiver must take some first
    ssize_t n = from.read(buf.write_ptr(), buf.writable());
    if (n > 0) {
      buf.commit(static_cast<size_t>(n));
      rx->add(static_cast<uint64_t>(n));
      d.progressed = true;
      last_activity_ms_ = worker_.loop().now_ms();
      continue;
    }
    if (n == 0) {
      d.eof = true;
      d.progressed = true;
      continue;  // pass the FIN on once the buffer is out
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) d.failed = true;
    return;
  }
}

void TcpConnection::on_timer() {
  if (closed_) return;
  if (upstream_ && !upstream_->connected) {
    cluster_->stats().upstream_cx_connect_fail.inc();  // connect timeout
    close_now();
    return;
  }
  uint64_t now = worker_.loop().now_ms();
  if (idle_timeout_ms_ > 0) {
    uint64_t quiet = now - last_activity_ms_;
    if (quiet >= idle_timeout_ms_) {
      stats_->idle_timeout.inc();
      close_now();
      return;
    }
    timer_.arm(idle_timeout_ms_ - quiet);
  }
}

void TcpConnection::close_now() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  if (stats_) stats_->downstream_cx_active.add(-1);
  upstream::UpstreamConnection::destroy(std::move(upstream_));
  tls_.reset();
  worker_.loop().remove(fd_);
  close(fd_);
  fd_ = -1;
  worker_.on_connection_close(this);
  TcpConnection* self = this;
  worker_.loop().defer([self] { delete self; });
}

}  // namespace proxenos::proxy
