#pragma once
// The start of a connection on a TLS-terminating or PROXY-protocol listener. On HTTPPROXY and
// HTTPSPROXY listeners the HAProxy PROXY header (v1 or v2) comes first and gives the real client
// address, which then replaces the TCP peer everywhere (logs, x-forwarded-for). Then, on
// TLS listeners, on HTTPS listeners a look at the
// first byte (0x16, a TLS handshake record, means TLS; anything else is cleartext HTTP on the same
// port, as Emissary's listeners accept), then the TLS handshake with the certificate chosen by
// SNI, bounded by the handshake timeout. It then hands the socket, and the TLS stream, to the
// connection that serves it: a TCPMapping whose host matches the SNI (TCPMappings win over Hosts
// of the same name), else HTTP. On listeners with passthrough TCPMappings the ClientHello is
// first peeked (within the same timeout) and, when the first TCPMapping matching its SNI is a
// passthrough one, the socket goes to it with TLS untouched: nothing was consumed, so the
// upstream reads the client's ClientHello itself.

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
  // `selector`: terminate TLS (null: cleartext HTTP). `sniff`: cleartext is also accepted
  // (HTTPS listeners); otherwise TLS is required. `proxy_header`: a PROXY header must come first.
  TlsHandshake(Worker& worker, int fd, std::string listener_key, const net::Address& peer,
               const net::Address& local, std::shared_ptr<const net::SniSelector> selector,
               bool sniff, bool proxy_header = false);
  ~TlsHandshake() override;

  void start() override;
  void drain() override;  // nothing is in progress yet: close
  void on_io(uint32_t events) override;

 private:
  void advance();
  bool read_proxy_header();  // true once it is consumed; false to wait (or after closing)
  // On listeners with passthrough TCPMappings: peeks the ClientHello and hands the connection,
  // untouched, to a passthrough TCPMapping matching its SNI. True to go on (terminate TLS or
  // serve cleartext); false to wait for more bytes, or once the connection was handed over or
  // closed.
  bool route_passthrough();
  void hand_over(DownstreamConnection* next);
  void close_now();

  Worker& worker_;
  int fd_;
  std::string listener_key_;
  net::Address peer_;
  net::Address local_;
  std::shared_ptr<const net::SniSelector> selector_;
  bool sniff_;
  bool proxy_header_;
  std::shared_ptr<observe::ListenerStats> stats_;
  std::unique_ptr<net::TlsStream> tls_;
  net::Timer timer_;
  bool done_ = false;
  bool client_hello_read_ = false;
};

}  // namespace proxenos::proxy
