#pragma once
// One raw TCP connection on a TCPMapping's port: picks the TCPMapping (and its canary member),
// connects to the upstream and relays bytes both ways until both directions have ended.
//
// Each direction has one bounded buffer: when the receiving side stops reading, the buffer
// fills and we stop reading from the sender, so back-pressure reaches the sender instead of our
// memory. A FIN is passed on once everything before it was delivered (half-close): the other
// direction keeps flowing until its own FIN.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "net/buffer.h"
#include "net/event_loop.h"
#include "net/stream_io.h"
#include "net/tls_stream.h"
#include "observe/stats.h"
#include "proxy/connection.h"
#include "proxy/worker.h"
#include "upstream/upstream_connection.h"
#include "upstream/worker_cluster.h"

namespace proxenos::proxy {

class TcpConnection final : public DownstreamConnection,
                            public net::IoHandler,
                            public upstream::UpstreamConnection::Handler {
 public:
  // Raw TCP: the listener's TCPMapping without a host.
  TcpConnection(Worker& worker, int fd, std::string listener_key);
  // TLS terminated by TlsHandshake: the TCPMapping `route` (index into the listener's `tcp`)
  // matched the client's SNI.
  TcpConnection(Worker& worker, int fd, std::string listener_key,
                std::unique_ptr<net::TlsStream> tls, size_t route);
  ~TcpConnection() override;

  void start() override;
  // TCP has no request boundary to stop at: drained connections run until the process's drain
  // deadline closes them.
  void drain() override {}
  void on_io(uint32_t events) override;
  void on_upstream_event(uint32_t events) override;
  void on_upstream_connected() override;

 private:
  // One direction of the relay.
  struct Direction {
    std::unique_ptr<net::Buffer> buffer;
    bool eof = false;     // the sending side's FIN arrived
    bool shut = false;    // we passed the FIN on
    bool failed = false;  // a socket error: the connection is over
    bool progressed = false;
  };
  void pump();
  void relay(const net::StreamIo& from, const net::StreamIo& to, bool to_ready, Direction& d,
             observe::Counter* rx, observe::Counter* tx);
  void on_timer();
  void close_now();

  Worker& worker_;
  int fd_;
  std::unique_ptr<net::TlsStream> tls_;
  size_t preset_route_ = SIZE_MAX;
  std::string listener_key_;
  std::shared_ptr<const WorkerConfig> config_;
  std::shared_ptr<observe::TcpStats> stats_;
  std::shared_ptr<upstream::WorkerCluster> cluster_;
  std::unique_ptr<upstream::UpstreamConnection> upstream_;
  Direction to_upstream_;
  Direction to_downstream_;
  net::Timer timer_;  // connect timeout, then idle timeout
  uint64_t last_activity_ms_ = 0;
  uint32_t idle_timeout_ms_ = 0;
  bool closed_ = false;
};

}  // namespace proxenos::proxy
