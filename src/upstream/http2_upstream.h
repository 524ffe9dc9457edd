#pragma once
// HTTP/2 to an upstream (clusters whose spec says http2, i.e. Mapping `grpc: true`): one
// connection multiplexes the requests of many downstream streams. Each worker's WorkerCluster
// holds a short list of them; acquire() picks one that can take another stream (below the
// upstream's SETTINGS_MAX_CONCURRENT_STREAMS, no GOAWAY) or dials a new one. A connection that
// received GOAWAY takes nothing new and goes away once its streams are done; a connection that
// fails closes its streams (the requests see on_h2_close with an error code).
//
// Flow control is the requester's business: bytes it receives from on_h2_data are acknowledged
// with consume() once passed on, and submit_data's kFull asks it to wait for on_h2_send_ready.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/block_pool.h"
#include "http/header.h"
#include "http/http2_session.h"
#include "http/message_head.h"
#include "net/event_loop.h"
#include "upstream/upstream_connection.h"

namespace proxenos::upstream {

class WorkerCluster;

// One request riding on an Http2Upstream. Callbacks run on the worker thread, from the
// connection's I/O (never from inside the requester's own calls into it, except on_h2_ready
// when wait() finds the connection already up).
class Http2UpstreamRequest {
 public:
  // The connection waited on is ready: submit the request now.
  virtual void on_h2_ready() = 0;
  // Connecting failed before the request could be submitted (`reason` for the 503 body).
  virtual void on_h2_connect_failed(std::string_view reason) = 0;
  virtual void on_h2_response_head(http::ResponseHead&& head, bool end_stream) = 0;
  virtual void on_h2_data(std::string_view bytes, bool end_stream) = 0;
  virtual void on_h2_trailers(const http::HeaderList& trailers) = 0;
  virtual void on_h2_send_ready() = 0;
  // The stream is gone; NO_ERROR when both sides ended. REFUSED_STREAM: never processed.
  virtual void on_h2_close(uint32_t error_code) = 0;

 protected:
  ~Http2UpstreamRequest() = default;
};

class Http2Upstream final : public UpstreamConnection::Handler,
                            public net::Flushable,
                            public http::Http2Session::Handler {
 public:
  Http2Upstream(WorkerCluster& cluster, std::unique_ptr<UpstreamConnection> connection);
  ~Http2Upstream() override;
  Http2Upstream(const Http2Upstream&) = delete;
  Http2Upstream& operator=(const Http2Upstream&) = delete;

  // A connection of `cluster` that can take one more request, dialing one if needed; `avoid`
  // (a connection that refused a stream) is skipped. nullptr with `error` set when no endpoint
  // or the socket call failed.
  static Http2Upstream* acquire(WorkerCluster& cluster, std::string& error,
                                const Http2Upstream* avoid = nullptr);

  // Connected, and the upstream's SETTINGS (its stream limit) are known.
  bool ready() const { return connected() && settings_known_; }
  // Calls on_h2_ready once ready (now, if it is), or on_h2_connect_failed. on_h2_ready may find
  // the connection full after all (submit_request -1): then acquire another.
  void wait(Http2UpstreamRequest* request);
  void cancel_wait(Http2UpstreamRequest* request);

  // Stream id, or -1 (the connection cannot take it: acquire another).
  int32_t submit_request(const http::Http2Request& request, bool end_stream,
                         Http2UpstreamRequest* requester);
  http::SubmitResult submit_data(int32_t stream, std::string_view bytes, bool end_stream);
  // Ends the request with trailers after the body bytes already submitted (copied now).
  bool submit_trailers(int32_t stream, const http::HeaderList& trailers);
  void consume(int32_t stream, size_t bytes);
  // The requester is done with the stream (its downstream went away): reset it if still open;
  // no more callbacks for it.
  void abandon(int32_t stream);

  // Takes no new requests and closes once its streams are done (worker drain, a reload that
  // changed the upstream).
  void drain();

  const std::string& endpoint_text() const { return endpoint_text_; }
  const std::string& local_address();
  // Asks for what the session has to send to be written at the end of the event batch (the
  // requests of one downstream read leave in one write).
  void flush();
  // Writes it now (deferred while inside feed).
  void flush_now() override;

  // UpstreamConnection::Handler.
  void on_upstream_connected() override;
  void on_upstream_event(uint32_t events) override;

  // Http2Session::Handler.
  void on_response_head(int32_t stream, http::ResponseHead&& head, bool end_stream) override;
  void on_data(int32_t stream, std::string_view bytes, bool end_stream) override;
  void on_trailers(int32_t stream, const http::HeaderList& trailers) override;
  void on_stream_close(int32_t stream, uint32_t error_code) override;
  void on_goaway(int32_t last_stream_id, uint32_t error_code) override;
  void on_send_ready(int32_t stream) override;

 private:
  bool connected() const { return connection_ && connection_->connected && !failed_; }
  bool accepting() const;
  void read();
  void notify_waiting();
  void fail(std::string_view reason);
  void maybe_retire();

  WorkerCluster& cluster_;
  net::EventLoop& loop_;
  std::unique_ptr<UpstreamConnection> connection_;
  net::Timer connect_timer_;
  net::Timer idle_timer_;  // no stream for the cluster's idle_timeout_ms: close
  std::unique_ptr<http::Http2Session> session_;
  std::string endpoint_text_;
  std::vector<Http2UpstreamRequest*> waiting_;
  std::unordered_map<int32_t, Http2UpstreamRequest*, std::hash<int32_t>, std::equal_to<>,
                     base::PoolAllocator<std::pair<const int32_t, Http2UpstreamRequest*>>>
      streams_;
  // The stream the last callback was about: a response's head, data and end come in a row, and
  // each map lookup chased cold pointers (cycle profile: ~1 % of the process).
  int32_t last_stream_ = 0;
  Http2UpstreamRequest* last_request_ = nullptr;
  Http2UpstreamRequest* request_of(int32_t stream);
  std::vector<int32_t> ready_;  // streams owed on_h2_send_ready after the write pass
  bool in_feed_ = false;
  bool in_flush_ = false;
  bool failed_ = false;
  bool retired_ = false;
  bool draining_ = false;
  // The upstream's SETTINGS frame (a server sends it first) was wholly received.
  bool settings_known_ = false;
};

}  // namespace proxenos::upstream
