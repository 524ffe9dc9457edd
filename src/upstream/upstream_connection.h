#pragma once
// One connection to an upstream endpoint, plain or TLS. It finishes connecting by itself (the
// TCP handshake, then the TLS handshake with verification) and tells its handler once it is ready,
// or that it failed and why. While a request uses it, readiness goes to that request's handler;
// while it sits in its cluster's pool, any readiness (the peer closing it, or sending stray bytes)
// makes the pool drop it.

#include <cstdint>
#include <memory>
#include <string>

#include "net/address.h"
#include "net/event_loop.h"
#include "net/stream_io.h"
#include "net/tls_stream.h"
#include "observe/stats.h"

namespace proxenos::upstream {

class WorkerCluster;

class UpstreamConnection final : public net::IoHandler {
 public:
  class Handler {
   public:
    // The connection is ready (TCP, and TLS if any): send the request.
    virtual void on_upstream_connected() = 0;
    // Readiness once connected; before that only a failure (connected still false, failure()
    // says why).
    virtual void on_upstream_event(uint32_t events) = 0;

   protected:
    ~Handler() = default;
  };

  UpstreamConnection(net::EventLoop& loop, int fd, WorkerCluster* cluster,
                     const net::Address& endpoint);
  ~UpstreamConnection();

  void on_io(uint32_t events) override;
  void set_handler(Handler* handler) { handler_ = handler; }
  // Counts this connection in the shard's upstream_cx_active until it closes. The shard is held
  // because the connection may outlive its cluster by a deferred delete.
  void count_in(std::shared_ptr<observe::ClusterStats> stats) {
    stats_ = std::move(stats);
    stats_->upstream_cx_active.add(1);
  }

  int fd() const { return fd_; }
  // Reads and writes, through TLS when the connection has it.
  net::StreamIo io() const { return {fd_, tls_.get()}; }
  bool is_tls() const { return tls_ != nullptr; }
  void set_tls(std::unique_ptr<net::TlsStream> tls) { tls_ = std::move(tls); }
  // Why connecting failed: "connection failure", or the TLS error with its verification reason.
  const std::string& failure() const { return failure_; }
  const net::Address& endpoint() const { return endpoint_; }
  // "ip:port" of the endpoint, formatted once per connection (for %UPSTREAM_HOST%).
  const std::string& endpoint_text();
  // "ip:port" of our end, read once per connection (for %UPSTREAM_LOCAL_ADDRESS%).
  const std::string& local_address();
  WorkerCluster* cluster() const { return cluster_; }
  net::EventLoop& loop() { return loop_; }

  bool connected = false;  // ready for requests: TCP (and TLS) handshakes finished
  uint32_t requests = 0;   // requests started on this connection (>1 means it was reused)
  uint64_t created_ms = 0;
  uint64_t idle_since_ms = 0;

  // Closes the socket now and frees the object after the current event batch, so events already
  // fetched for it in this batch find it inert instead of freed.
  static void destroy(std::unique_ptr<UpstreamConnection> connection);

 private:
  friend class WorkerCluster;
  void finish_connecting(uint32_t events);
  void fail(std::string reason);
  net::EventLoop& loop_;
  int fd_;
  WorkerCluster* cluster_;
  net::Address endpoint_;
  Handler* handler_ = nullptr;
  std::shared_ptr<observe::ClusterStats> stats_;
  std::string local_address_;
  std::string endpoint_text_;
  std::unique_ptr<net::TlsStream> tls_;
  std::string failure_;
  bool tcp_connected_ = false;
  bool in_pool_ = false;
  bool dead_ = false;
};

}  // namespace proxenos::upstream
