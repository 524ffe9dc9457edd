#include "proxy/shadow_request.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>

#include "net/socket.h"
#include "proxy/worker.h"

namespace proxenos::proxy {

namespace {

// Envoy's shadow host: "-shadow" goes before the port, if there is one.
void append_shadow_host(std::string_view host, std::string& out) {
  size_t colon = host.rfind(':');
  bool has_port =
      colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos;
  std::string_view name = has_port ? host.substr(0, colon) : host;
  out.append(name);
  out.append("-shadow");
  if (has_port) out.append(host.substr(colon));
}

// The upstream head with its Host value given the shadow suffix. Our heads always carry the host
// as the first header line, spelled "host: ".
void shadow_head(std::string_view head, std::string& out) {
  constexpr std::string_view kHost = "\r\nhost: ";
  size_t at = head.find(kHost);
  if (at == std::string_view::npos) {
    out.append(head);
    return;
  }
  size_t value = at + kHost.size();
  size_t end = head.find("\r\n", value);
  out.append(head.substr(0, value));
  append_shadow_host(head.substr(value, end - value), out);
  out.append(head.substr(end));
}

}  // namespace

ShadowRequest::ShadowRequest(Worker& worker, std::shared_ptr<upstream::WorkerCluster> cluster,
                             bool chunked, bool body_complete)
    : worker_(worker),
      cluster_(std::move(cluster)),
      timer_(worker.loop(), [this] { on_timeout(); }),
      chunked_(chunked),
      body_complete_(body_complete) {}

ShadowRequest::~ShadowRequest() {
  upstream::UpstreamConnection::destroy(std::move(upstream_));
}

ShadowRequest* ShadowRequest::start(Worker& worker,
                                    std::shared_ptr<upstream::WorkerCluster> cluster,
                                    std::string_view upstream_head, bool chunked,
                                    bool body_complete, uint32_t timeout_ms) {
  observe::ClusterStats& stats = cluster->stats();
  stats.upstream_rq_total.inc();
  std::unique_ptr<upstream::UpstreamConnection> connection = cluster->take_idle();
  if (!connection) {
    const net::Address* endpoint = cluster->pick_endpoint();
    int err = 0;
    if (endpoint != nullptr) connection = cluster->connect(*endpoint, &err);
    if (!connection) {
      stats.upstream_cx_connect_fail.inc();
      return nullptr;
    }
  }
  auto* shadow = new ShadowRequest(worker, std::move(cluster), chunked, body_complete);
  worker.adopt_shadow(shadow);
  shadow->start_us_ = worker.loop().now_us();
  shadow->upstream_ = std::move(connection);
  shadow->upstream_->set_handler(shadow);
  shadow->upstream_->requests++;
  shadow_head(upstream_head, shadow->out_);
  if (body_complete && chunked) shadow->out_.append("0\r\n\r\n");
  if (timeout_ms > 0) shadow->timer_.arm(timeout_ms);
  if (shadow->upstream_->connected) shadow->flush();
  return shadow;
}

void ShadowRequest::append(std::string_view data) {
  if (finished_) return;
  if (out_.size() - out_sent_ + data.size() > kShadowMaxPending) {
    // The shadow upstream (or the way to it) is slower than the client's upload: let it go
    // rather than hold the client's body for it.
    abandon();
    return;
  }
  if (out_sent_ == out_.size()) {
    out_.clear();
    out_sent_ = 0;
  }
  out_.append(data);
}

void ShadowRequest::feed(std::string_view data) {
  if (finished_ || data.empty()) return;
  if (chunked_) {
    char size_line[24];
    auto [p, ec] = std::to_chars(size_line, size_line + 16, data.size(), 16);
    *p++ = '\r';
    *p++ = '\n';
    append(std::string_view(size_line, static_cast<size_t>(p - size_line)));
    append(data);
    append("\r\n");
  } else {
    append(data);
  }
  if (!finished_ && upstream_ && upstream_->connected) flush();
}

void ShadowRequest::end_body(std::string_view trailer_section) {
  if (finished_ || body_complete_) return;
  body_complete_ = true;
  if (chunked_) {
    append("0\r\n");
    append(trailer_section.empty() ? std::string_view("\r\n") : trailer_section);
  }
  if (!finished_ && upstream_ && upstream_->connected) flush();
}

void ShadowRequest::detach() {
  detached_ = true;
  if (finished_) {
    worker_.release_shadow(this);
  } else if (!body_complete_) {
    abandon();  // releases itself, being detached
  }
}

void ShadowRequest::on_upstream_connected() {
  if (finished_ || !upstream_) return;
  flush();
}

void ShadowRequest::on_upstream_event(uint32_t events) {
  if (finished_ || !upstream_) return;
  if (!upstream_->connected) {  // a failure to connect (TCP or TLS)
    cluster_->stats().upstream_cx_connect_fail.inc();
    abandon();
    return;
  }
  bool tls = upstream_->is_tls();
  if ((events & EPOLLOUT) || tls) flush();
  if (!finished_ && ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || tls)) read();
}

void ShadowRequest::flush() {
  while (!finished_ && out_sent_ < out_.size()) {
    std::string_view data(out_.data() + out_sent_, out_.size() - out_sent_);
    ssize_t n = upstream_->io().write(data.data(), data.size());
    if (n > 0) {
      cluster_->stats().upstream_cx_tx_bytes_total.add(static_cast<uint64_t>(n));
      out_sent_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    abandon();
    return;
  }
}

void ShadowRequest::read() {
  char buf[16 * 1024];
  for (;;) {
    ssize_t n = upstream_->io().read(buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      // The peer closed: a body delimited by the close is complete; anything else is not.
      bool done = head_seen_ && body_.framing() == http::BodyFraming::kUntilClose;
      if (done) cluster_->stats().count_response(response_.status);
      finish(false);
      return;
    }
    cluster_->stats().upstream_cx_rx_bytes_total.add(static_cast<uint64_t>(n));
    in_.append(buf, static_cast<size_t>(n));
    if (!head_seen_) {
      http::ParseResult r = parser_.parse(in_, false, response_);
      if (r.status == http::ParseStatus::kIncomplete) continue;
      if (r.status == http::ParseStatus::kError) {
        abandon();
        return;
      }
      in_.erase(0, r.consumed);
      parser_.reset();
      if (response_.status < 200) {
        response_.status = 0;
        continue;
      }
      head_seen_ = true;
      body_.reset(response_.framing, response_.content_length);
      if (response_.framing == http::BodyFraming::kNone) {
        cluster_->stats().count_response(response_.status);
        finish(response_.keep_alive && in_.empty());
        return;
      }
    }
    // The body is only walked to find its end; its bytes are dropped.
    while (!in_.empty()) {
      http::DecodeResult r = body_.decode(in_);
      if (r.error) {
        abandon();
        return;
      }
      in_.erase(0, r.consumed);
      if (r.done) {
        cluster_->stats().count_response(response_.status);
        finish(response_.keep_alive && in_.empty());
        return;
      }
      if (r.consumed == 0) break;
    }
  }
}

void ShadowRequest::on_timeout() {
  if (finished_) return;
  cluster_->stats().upstream_rq_timeout.inc();
  abandon();
}

void ShadowRequest::finish(bool reusable) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  cluster_->stats().upstream_rq_time.record_us(worker_.loop().now_us() - start_us_);
  // A connection is only clean when the whole request went out and the response ended.
  bool clean = reusable && body_complete_ && out_sent_ == out_.size() && !worker_.draining();
  if (clean) {
    cluster_->release(std::move(upstream_));
  } else {
    upstream::UpstreamConnection::destroy(std::move(upstream_));
  }
  std::string().swap(out_);
  std::string().swap(in_);
  if (detached_) worker_.release_shadow(this);
}

}  // namespace proxenos::proxy
