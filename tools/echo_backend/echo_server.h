#pragma once
// One worker thread's echo server: accepts on its own SO_REUSEPORT listener and owns the
// connections it accepted, plus the scratch memory they share (the thread is single-threaded, so
// one read buffer and one JSON buffer serve every connection without allocation per request).
//
// Every connection starts as an HTTP/1 EchoConnection. It hands its socket over to an
// H2Connection when the first bytes are the HTTP/2 preface, or to a WsConnection after a
// WebSocket handshake; the server owns whichever object holds the socket.

#include <cstdint>
#include <memory>
#include <string>

#include "http/http1_parser.h"
#include "net/buffer.h"
#include "net/event_loop.h"

namespace proxenos::echo {

class TlsContext;

// Base of the per-connection handlers, linked into the server's list so shutdown frees them.
class ServerConnection : public net::IoHandler {
 public:
  ServerConnection() = default;
  virtual ~ServerConnection() = default;
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

 private:
  friend class EchoServer;
  ServerConnection* prev_ = nullptr;
  ServerConnection* next_ = nullptr;
};

struct EchoOptions {
  const TlsContext* tls = nullptr;  // serve TLS on the port (shared by all workers)
  uint32_t h2_max_streams = 1000;   // SETTINGS_MAX_CONCURRENT_STREAMS we advertise
  bool grpc_echo_metadata = true;   // gRPC response headers echo the request's as x-echo-*
};

class EchoServer final : public net::IoHandler {
 public:
  // Takes ownership of `listen_fd` (non-blocking, already listening).
  EchoServer(net::EventLoop& loop, int listen_fd, std::string name, EchoOptions options = {});
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  void on_io(uint32_t events) override;

  net::EventLoop& loop() { return loop_; }
  const std::string& name() const { return name_; }
  const EchoOptions& options() const { return options_; }
  const http::ParserLimits& limits() const { return limits_; }
  net::BufferPool& pool() { return pool_; }
  char* scratch() { return scratch_.get(); }
  static constexpr size_t kScratchSize = 128 * 1024;
  std::string& json_scratch() { return json_; }

  // Links a connection created by a protocol switch (the socket's new owner).
  void adopt(ServerConnection* connection);
  // Called by a connection that closed itself or handed its socket on: unlinks it and deletes it
  // after the current batch.
  void release(ServerConnection* connection);

 private:
  net::EventLoop& loop_;
  int listen_fd_;
  std::string name_;
  EchoOptions options_;
  http::ParserLimits limits_;
  net::BufferPool pool_;
  std::unique_ptr<char[]> scratch_;
  std::string json_;
  ServerConnection* connections_ = nullptr;  // intrusive list of live connections
  bool accept_error_logged_ = false;
};

}  // namespace proxenos::echo
