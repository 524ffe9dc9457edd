#pragma once
// The start of a connection on a TLS-terminating listener: on HTTPS listeners first a look at the
// first byte (0x16, a TLS handshake record, means TLS; anything else is cleartext HTTP on the same
// port, as Emissary's listeners accept), then the TLS handshake with the certificate chosen by
// SNI, bounded by the handshake timeout. It then hands the socket, and the TLS stream, to the
// connection that serves it: a TCPMapping whose host matches the SNI (TCPMappings win over Hosts
// of the same name), else HTTP.

#include <cstdint>
#include <memory>
#include <string>

#include "net/address.h"
#include "net/event_loop.h"
#include "net/tls_stream.h"
#include "proxy/connection.h"
#include "proxy/worker.h"

namespace proxenos::proxy {

class TlsHandshake final : public DownstreamConnection, public net::IoHandler {
 public:
  // `sniff`: cleartext is also accepted (HTTPS listeners); otherwise TLS is required.
  TlsHandshake(Worker& worker, int fd, std::string listener_key, const net::Address& peer,
               const net::Address& local, std::shared_ptr<const net::SniSelector> selector,
               bool sniff);
  ~TlsHandshake() override;

  void start() override;
  void drain() override;  // nothing is in progress yet: close
  void on_io(uint32_t events) override;

 private:
  void advance();
  void hand_over(DownstreamConnection* next);
  void close_now();

  Worker& worker_;
  int fd_;
  std::string listener_key_;
  net::Address peer_;
  net::Address local_;
  std::shared_ptr<const net::SniSelector> selector_;
  bool sniff_;
  std::shared_ptr<observe::ListenerStats> stats_;
  std::unique_ptr<net::TlsStream> tls_;
  net::Timer timer_;
  bool done_ = false;
};

}  // namespace proxenos::proxy
