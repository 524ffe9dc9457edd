#pragma once
// One worker's listening socket for one Listener port (SO_REUSEPORT: every worker has its own,
// and the kernel spreads connections across them).

#include <string>

#include "net/address.h"
#include "net/event_loop.h"

namespace proxenos::proxy {

class Worker;

class ListenerSocket final : public net::IoHandler {
 public:
  // Binds and listens; check ok() / error().
  ListenerSocket(Worker& worker, std::string key, const net::Address& address);
  ~ListenerSocket();

  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }
  void on_io(uint32_t events) override;
  void pause();  // drain: stop accepting (the socket closes with the object)

 private:
  void accept_all();

  Worker& worker_;
  std::string key_;
  net::Address address_;
  int fd_ = -1;
  std::string error_;
  net::Timer retry_timer_;  // accept backoff after EMFILE/ENFILE
};

}  // namespace proxenos::proxy
