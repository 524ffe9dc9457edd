#pragma once
// Common part of the connections an HTTP/1 EchoConnection hands its socket to (HTTP/2 and
// WebSocket): edge-triggered readiness bookkeeping, one output string sent as the socket drains,
// and the lingering close (shut the write side, read until the peer closes) that keeps the kernel
// from answering unread bytes with RST.

#include <cstdint>
#include <string>
#include <string_view>

#include "echo_server.h"
#include "net/event_loop.h"
#include "transport.h"

namespace proxenos::echo {

class SwitchedConnection : public ServerConnection {
 public:
  ~SwitchedConnection() override;
  void on_io(uint32_t events) final;

 protected:
  SwitchedConnection(EchoServer& server, Transport transport, std::string remote);

  // Takes over the socket from the EchoConnection that registered it.
  void register_io();
  virtual void on_ready() = 0;  // readiness changed (and not lingering)
  virtual void on_closing() {}  // the socket is about to close: drop protocol state

  size_t pending() const { return out_.size() - out_pos_; }
  // Sends queued output until done or the socket is full. False when the connection closed.
  bool flush();
  // Reads once into the server's scratch buffer. Returns the byte count (>0), 0 when nothing is
  // readable now (readable_ cleared; peer_eof_ set at end of stream), or -1 when the connection
  // was closed because of an error.
  ssize_t read_some(char** data);

  void begin_linger();  // after the last output: close_notify, SHUT_WR, drain until EOF/timeout
  void close_now();
  void abort_now();  // RST

  EchoServer& server_;
  net::EventLoop& loop_;
  Transport io_;
  std::string remote_;
  std::string out_;
  size_t out_pos_ = 0;
  bool readable_ = true;  // take the first look ourselves: the handover may have left bytes
  bool rdhup_ = false;
  bool peer_eof_ = false;
  bool closed_ = false;

 private:
  void drain_linger();
  net::Timer linger_timer_;
  bool lingering_ = false;
};

}  // namespace proxenos::echo
