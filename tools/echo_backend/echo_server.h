#pragma once
// One worker thread's echo server: accepts on its own SO_REUSEPORT listener and owns the
// connections it accepted, plus the scratch memory they share (the thread is single-threaded, so
// one read buffer and one JSON buffer serve every connection without allocation per request).

#include <memory>
#include <string>

#include "http/http1_parser.h"
#include "net/buffer.h"
#include "net/event_loop.h"

namespace proxenos::echo {

class EchoConnection;

class EchoServer final : public net::IoHandler {
 public:
  // Takes ownership of `listen_fd` (non-blocking, already listening).
  EchoServer(net::EventLoop& loop, int listen_fd, std::string name);
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  void on_io(uint32_t events) override;

  net::EventLoop& loop() { return loop_; }
  const std::string& name() const { return name_; }
  const http::ParserLimits& limits() const { return limits_; }
  net::BufferPool& pool() { return pool_; }
  char* scratch() { return scratch_.get(); }
  static constexpr size_t kScratchSize = 128 * 1024;
  std::string& json_scratch() { return json_; }

  // Called by a connection that closed itself: unlinks it and deletes it after the current batch.
  void release(EchoConnection* connection);

 private:
  net::EventLoop& loop_;
  int listen_fd_;
  std::string name_;
  http::ParserLimits limits_;
  net::BufferPool pool_;
  std::unique_ptr<char[]> scratch_;
  std::string json_;
  EchoConnection* connections_ = nullptr;  // intrusive list of live connections
  bool accept_error_logged_ = false;
};

}  // namespace proxenos::echo
