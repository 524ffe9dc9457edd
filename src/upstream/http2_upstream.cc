#include "upstream/http2_upstream.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>

#include "upstream/worker_cluster.h"

namespace proxenos::upstream {

namespace {
constexpr size_t kReadChunk = 16 * 1024;
// Requests queued on a connection still connecting, before its SETTINGS tell the real limit.
constexpr size_t kMaxWaitingWhileConnecting = 100;
}  // namespace

Http2Upstream::Http2Upstream(WorkerCluster& cluster, std::unique_ptr<UpstreamConnection> connection)
    : net::Flushable(net::FlushOrder::kLast),
      cluster_(cluster),
      loop_(connection->loop()),
      connection_(std::move(connection)),
      connect_timer_(loop_,
                     [this] {
                       if (!ready() && !retired_) {
                         cluster_.stats().upstream_cx_connect_fail.inc();
                         fail("connection timeout");
                       }
                     }),
      idle_timer_(loop_,
                  [this] {
                    if (streams_.empty() && waiting_.empty()) drain();
                  }),
      endpoint_text_(connection_->endpoint().to_string()) {
  connection_->set_handler(this);
  connection_->requests = 1;
  session_ = std::make_unique<http::Http2Session>(http::Http2Session::Role::kClient, *this);
  connect_timer_.arm(cluster_.spec().connect_timeout_ms);
}

Http2Upstream::~Http2Upstream() {
  // Only the cluster's teardown deletes a live one, when no request refers to it any more.
  session_.reset();
  UpstreamConnection::destroy(std::move(connection_));
}

Http2Upstream* Http2Upstream::acquire(WorkerCluster& cluster, std::string& error,
                                      const Http2Upstream* avoid) {
  auto& list = cluster.http2_connections();
  for (auto& c : list) {
    if (c.get() != avoid && c->accepting()) return c.get();
  }
  const net::Address* endpoint = cluster.pick_endpoint();
  if (endpoint == nullptr) {
    error = "no healthy upstream";
    return nullptr;
  }
  int err = 0;
  std::unique_ptr<UpstreamConnection> connection = cluster.connect(*endpoint, &err);
  if (!connection) {
    cluster.stats().upstream_cx_connect_fail.inc();
    error = "connection failure";
    return nullptr;
  }
  list.push_back(std::make_unique<Http2Upstream>(cluster, std::move(connection)));
  return list.back().get();
}

void Http2Upstream::drain() {
  draining_ = true;
  maybe_retire();
}

bool Http2Upstream::accepting() const {
  if (failed_ || retired_ || draining_ || !connection_) return false;
  if (!ready()) return waiting_.size() < kMaxWaitingWhileConnecting;
  return session_->can_open_stream();
}

void Http2Upstream::wait(Http2UpstreamRequest* request) {
  if (ready()) {
    request->on_h2_ready();
    return;
  }
  waiting_.push_back(request);
}

void Http2Upstream::cancel_wait(Http2UpstreamRequest* request) {
  std::erase(waiting_, request);
  maybe_retire();
}

int32_t Http2Upstream::submit_request(const http::Http2Request& request, bool end_stream,
                                      Http2UpstreamRequest* requester) {
  // Before the upstream's SETTINGS we cannot know its stream limit, and nghttp2 would send
  // streams beyond it (refused); after them, a full connection sends the requester elsewhere.
  if (!ready() || retired_ || !session_->can_open_stream()) return -1;
  int32_t id = session_->submit_request(request, end_stream);
  if (id < 0) return -1;
  streams_[id] = requester;
  idle_timer_.cancel();
  flush();
  return id;
}

http::SubmitResult Http2Upstream::submit_data(int32_t stream, std::string_view bytes,
                                              bool end_stream) {
  if (retired_) return http::SubmitResult::kClosed;
  http::SubmitResult r = session_->submit_data(stream, bytes, end_stream);
  flush();
  return r;
}

bool Http2Upstream::submit_trailers(int32_t stream, const http::HeaderList& trailers) {
  if (retired_) return false;
  const bool ok = session_->submit_trailers(stream, trailers);
  flush();
  return ok;
}

void Http2Upstream::consume(int32_t stream, size_t bytes) {
  if (retired_) return;
  session_->consume(stream, bytes);
  flush();
}

void Http2Upstream::abandon(int32_t stream) {
  if (stream == last_stream_) last_request_ = nullptr;
  if (streams_.erase(stream) == 0 || retired_) return;
  session_->reset_stream(stream, http::kH2Cancel);
  flush();
  maybe_retire();
}

const std::string& Http2Upstream::local_address() {
  static const std::string kNone;
  return connection_ ? connection_->local_address() : kNone;
}

void Http2Upstream::on_upstream_connected() {
  if (retired_) return;
  flush();  // the connection preface and our SETTINGS; requests wait for the upstream's
}

void Http2Upstream::notify_waiting() {
  std::vector<Http2UpstreamRequest*> waiting;
  waiting.swap(waiting_);
  for (Http2UpstreamRequest* r : waiting) {
    if (retired_ || failed_) {
      r->on_h2_connect_failed("connection termination");
      continue;
    }
    r->on_h2_ready();
  }
  flush();
}

void Http2Upstream::on_upstream_event(uint32_t events) {
  if (retired_) return;
  if (!connection_->connected) {
    cluster_.stats().upstream_cx_connect_fail.inc();
    const std::string& failure = connection_->failure();
    fail(failure.empty() ? std::string_view("connection failure") : std::string_view(failure));
    return;
  }
  bool tls = connection_->is_tls();
  if ((events & EPOLLOUT) || tls) flush_now();
  if (retired_) return;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || tls) read();
}

void Http2Upstream::read() {
  char buf[kReadChunk];
  while (!retired_) {
    ssize_t n = connection_->io().read(buf, sizeof buf);
    if (n > 0) {
      cluster_.stats().upstream_cx_rx_bytes_total.add(static_cast<uint64_t>(n));
      in_feed_ = true;
      bool ok = session_->feed(std::string_view(buf, static_cast<size_t>(n)));
      in_feed_ = false;
      if (!ok) {
        // Protocol error or flood: send what the session has (a GOAWAY) once, then close.
        if (!retired_ && connection_) {
          std::string_view out = session_->pending_output();
          if (!out.empty()) (void)connection_->io().write(out.data(), out.size());
        }
        fail("protocol error");
        return;
      }
      // Only a whole SETTINGS frame tells the stream limit: its first bytes may come alone.
      if (!settings_known_ && session_->remote_settings_received()) {
        settings_known_ = true;
        connect_timer_.cancel();
        notify_waiting();
      }
      continue;
    }
    if (n == 0) {
      fail("connection termination");
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    fail("connection termination");
    return;
  }
  flush();
}

void Http2Upstream::flush() {
  if (!retired_) loop_.flush_later(this);
}

void Http2Upstream::flush_now() {
  if (retired_ || in_feed_ || in_flush_ || !connected()) return;
  in_flush_ = true;
  for (;;) {
    for (;;) {
      std::string_view out = session_->pending_output();
      if (out.empty()) break;
      ssize_t n = connection_->io().write(out.data(), out.size());
      if (n > 0) {
        cluster_.stats().upstream_cx_tx_bytes_total.add(static_cast<uint64_t>(n));
        session_->consume_output(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      in_flush_ = false;
      fail("connection termination");
      return;
    }
    if (ready_.empty()) break;
    std::vector<int32_t> ready;
    ready.swap(ready_);
    for (int32_t id : ready) {
      auto it = streams_.find(id);
      if (it != streams_.end()) it->second->on_h2_send_ready();
      if (retired_) {
        in_flush_ = false;
        return;
      }
    }
  }
  in_flush_ = false;
  maybe_retire();
}

void Http2Upstream::fail(std::string_view reason) {
  if (retired_ || failed_) return;
  failed_ = true;
  connect_timer_.cancel();
  std::string why(reason);
  std::vector<Http2UpstreamRequest*> waiting;
  waiting.swap(waiting_);
  for (Http2UpstreamRequest* r : waiting) r->on_h2_connect_failed(why);
  // Every submitted stream ends now; on_stream_close tells its requester.
  session_->connection_closed(http::kH2Cancel);
  streams_.clear();
  last_request_ = nullptr;
  maybe_retire();
}

// Leaves the cluster's list once nothing uses the connection and it can take nothing new.
void Http2Upstream::maybe_retire() {
  if (retired_) return;
  bool unused = streams_.empty() && waiting_.empty();
  bool finished = failed_ || (connected() && !session_->want_read() && !session_->want_write());
  bool draining = draining_ || session_->goaway_received();
  if (!unused || !(finished || draining)) {
    if (!unused) {
      idle_timer_.cancel();
    } else if (connected() && !idle_timer_.armed() && cluster_.spec().idle_timeout_ms > 0) {
      idle_timer_.arm(cluster_.spec().idle_timeout_ms);
    }
    return;
  }
  retired_ = true;
  connect_timer_.cancel();
  idle_timer_.cancel();
  UpstreamConnection::destroy(std::move(connection_));
  auto& list = cluster_.http2_connections();
  auto it =
      std::find_if(list.begin(), list.end(), [this](const auto& c) { return c.get() == this; });
  if (it == list.end()) return;
  Http2Upstream* self = it->release();
  list.erase(it);
  // The caller may be up the stack inside this object: free it after the event batch.
  loop_.defer([self] { delete self; });
}

// ---------------------------------------------------------------------------------------------
// Session callbacks.

Http2UpstreamRequest* Http2Upstream::request_of(int32_t stream) {
  if (stream == last_stream_ && last_request_ != nullptr) return last_request_;
  auto it = streams_.find(stream);
  if (it == streams_.end()) return nullptr;
  last_stream_ = stream;
  last_request_ = it->second;
  return last_request_;
}

void Http2Upstream::on_response_head(int32_t stream, http::ResponseHead&& head, bool end_stream) {
  if (Http2UpstreamRequest* r = request_of(stream))
    r->on_h2_response_head(std::move(head), end_stream);
}

void Http2Upstream::on_data(int32_t stream, std::string_view bytes, bool end_stream) {
  Http2UpstreamRequest* r = request_of(stream);
  if (r == nullptr) {
    if (!bytes.empty()) session_->consume(stream, bytes.size());
    return;
  }
  r->on_h2_data(bytes, end_stream);
}

void Http2Upstream::on_trailers(int32_t stream, const http::HeaderList& trailers) {
  if (Http2UpstreamRequest* r = request_of(stream)) r->on_h2_trailers(trailers);
}

void Http2Upstream::on_stream_close(int32_t stream, uint32_t error_code) {
  Http2UpstreamRequest* r = request_of(stream);
  if (r == nullptr) return;
  streams_.erase(stream);
  last_request_ = nullptr;
  r->on_h2_close(error_code);
  // Retiring here would destroy the session inside its own callback: the next flush does it.
}

void Http2Upstream::on_goaway(int32_t, uint32_t) {
  // New requests go elsewhere (accepting() is false now); streams at or below last_stream_id
  // finish here, the others are closed with REFUSED_STREAM and retried by their requesters.
}

void Http2Upstream::on_send_ready(int32_t stream) {
  ready_.push_back(stream);
}

}  // namespace proxenos::upstream
