#include "proxy/tls_handshake.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "net/client_hello.h"
#include "net/proxy_protocol.h"
#include "net/tls_context.h"
#include "proxy/http2_connection.h"
#include "proxy/http_connection.h"
#include "proxy/tcp_connection.h"
#include "router/route_table.h"

namespace proxenos::proxy {

namespace {
constexpr unsigned char kTlsHandshakeRecord = 0x16;
// PROXY headers we accept: v1 lines are at most 107 bytes; v2 headers with TLVs beyond this are
// refused (HAProxy's own TLVs stay well below).
constexpr size_t kMaxProxyHeader = 4096;
}  // namespace

TlsHandshake::TlsHandshake(Worker& worker, int fd, std::string listener_key,
                           const net::Address& peer, const net::Address& local,
                           std::shared_ptr<const net::SniSelector> selector, bool sniff,
                           bool proxy_header)
    : worker_(worker),
      fd_(fd),
      listener_key_(std::move(listener_key)),
      peer_(peer),
      local_(local),
      selector_(std::move(selector)),
      sniff_(sniff),
      proxy_header_(proxy_header),
      stats_(worker.listener_stats(listener_key_)),
      timer_(worker.loop(), [this] {
        stats_->ssl_connection_error.inc();  // the handshake timed out
        close_now();
      }) {}

TlsHandshake::~TlsHandshake() {
  if (!done_ && fd_ >= 0) {  // worker teardown
    tls_.reset();
    worker_.loop().remove(fd_);
    close(fd_);
  }
}

void TlsHandshake::start() {
  worker_.loop().add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
  timer_.arm(net::kDefaultTlsHandshakeTimeoutMs);
  advance();
}

void TlsHandshake::drain() {
  close_now();
}

void TlsHandshake::on_io(uint32_t events) {
  if (done_) return;
  if ((events & EPOLLERR) && !tls_) {
    close_now();
    return;
  }
  advance();
}

bool TlsHandshake::read_proxy_header() {
  // Peek, so that nothing after the header (a ClientHello, a request) is consumed with it.
  char buf[kMaxProxyHeader];
  ssize_t n = recv(fd_, buf, sizeof buf, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (n <= 0) {
    close_now();
    return false;
  }
  net::ProxyHeaderResult r = net::parse_proxy_header(std::string_view(buf, static_cast<size_t>(n)));
  if (r.status == net::ProxyParseStatus::kIncomplete) {
    if (static_cast<size_t>(n) == sizeof buf) close_now();  // longer than we accept
    return false;
  }
  if (r.status == net::ProxyParseStatus::kError) {
    stats_->downstream_cx_protocol_error.inc();
    close_now();
    return false;
  }
  // Consume exactly the header.
  size_t left = r.consumed;
  while (left > 0) {
    ssize_t got = recv(fd_, buf, std::min(left, sizeof buf), 0);
    if (got <= 0) {
      close_now();
      return false;
    }
    left -= static_cast<size_t>(got);
  }
  if (r.header.command == net::ProxyCommand::kProxy) {
    peer_ = r.header.source;
    local_ = r.header.destination;
  }
  proxy_header_ = false;
  return true;
}

bool TlsHandshake::route_passthrough() {
  const auto& cfg = worker_.config();
  const config::ListenerSnapshot* listener = cfg ? cfg->listener(listener_key_) : nullptr;
  if (listener == nullptr ||
      std::none_of(listener->tcp.begin(), listener->tcp.end(),
                   [](const config::TcpRoute& r) { return r.passthrough; })) {
    client_hello_read_ = true;
    return true;
  }
  // Peek, so that the upstream gets the ClientHello as the client sent it. Edge-triggered epoll
  // wakes us again when more bytes arrive; the handshake timer bounds the wait.
  std::array<char, net::kMaxClientHelloBytes> buf;
  ssize_t n = recv(fd_, buf.data(), buf.size(), MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (n <= 0) {
    close_now();
    return false;
  }
  if (static_cast<unsigned char>(buf[0]) != kTlsHandshakeRecord) {
    client_hello_read_ = true;  // cleartext: the listener decides below
    return true;
  }
  net::ClientHelloResult hello =
      net::parse_client_hello(std::string_view(buf.data(), static_cast<size_t>(n)));
  if (hello.status == net::ClientHelloStatus::kIncomplete) {
    if (static_cast<size_t>(n) == buf.size()) close_now();  // cannot happen: the parser is bounded
    return false;
  }
  if (hello.status == net::ClientHelloStatus::kError) {
    // No TLS implementation would complete a handshake from it either.
    stats_->ssl_connection_error.inc();
    close_now();
    return false;
  }
  client_hello_read_ = true;
  if (hello.server_name.empty()) return true;
  // The first TCPMapping whose host matches decides, as for terminated TLS.
  for (size_t i = 0; i < listener->tcp.size(); ++i) {
    const std::string& glob = listener->tcp[i].sni;
    if (glob.empty() || !router::glob_matches_host(glob, hello.server_name)) continue;
    if (!listener->tcp[i].passthrough) break;
    hand_over(new TcpConnection(worker_, fd_, listener_key_, nullptr, i));
    return false;
  }
  return true;
}

void TlsHandshake::advance() {
  if (proxy_header_ && !read_proxy_header()) return;
  if (!tls_ && !client_hello_read_ && !route_passthrough()) return;
  if (!tls_) {
    unsigned char first = 0;
    ssize_t n = recv(fd_, &first, 1, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
      close_now();
      return;
    }
    if (first == kTlsHandshakeRecord && !selector_) {
      // TLS on a listener left without a usable certificate (or with passthrough TCPMappings
      // only, none of which matched): refuse it rather than read the ClientHello as a request.
      stats_->ssl_connection_error.inc();
      close_now();
      return;
    }
    if (first != kTlsHandshakeRecord || !selector_) {
      if (!sniff_) {
        close_now();  // a TLS-only listener: cleartext gets nothing
        return;
      }
      // Cleartext on an HTTPS listener: plain HTTP on the same socket.
      hand_over(new HttpConnection(worker_, fd_, listener_key_, peer_, local_));
      return;
    }
    std::string error;
    tls_ = net::TlsStream::server(selector_, fd_, &error);
    if (!tls_) {
      close_now();
      return;
    }
  }
  net::TlsResult r = tls_->handshake();
  if (r.status == net::TlsIo::kWantRead || r.status == net::TlsIo::kWantWrite) return;
  if (r.status != net::TlsIo::kOk) {
    stats_->ssl_connection_error.inc();
    close_now();
    return;
  }
  stats_->ssl_handshake.inc();
  if (tls_->session_reused()) stats_->ssl_session_reused.inc();
  // A TCPMapping whose host matches the SNI takes the connection; else HTTP.
  const auto& cfg = worker_.config();
  const config::ListenerSnapshot* listener = cfg ? cfg->listener(listener_key_) : nullptr;
  if (listener != nullptr && !tls_->sni().empty()) {
    for (size_t i = 0; i < listener->tcp.size(); ++i) {
      const std::string& glob = listener->tcp[i].sni;
      if (!glob.empty() && router::glob_matches_host(glob, tls_->sni())) {
        hand_over(new TcpConnection(worker_, fd_, listener_key_, std::move(tls_), i));
        return;
      }
    }
  }
  if (listener != nullptr && listener->protocol == config::ListenerProtocol::kTls &&
      !listener->routes) {
    close_now();  // a TLS listener for TCPMappings only, and none matched
    return;
  }
  if (tls_->alpn() == "h2") {
    hand_over(new Http2Connection(worker_, fd_, listener_key_, peer_.to_string(),
                                  local_.to_string(), std::move(tls_), {}, /*counted=*/false));
    return;
  }
  hand_over(new HttpConnection(worker_, fd_, listener_key_, peer_, local_, std::move(tls_)));
}

void TlsHandshake::hand_over(DownstreamConnection* next) {
  done_ = true;
  timer_.cancel();
  worker_.loop().remove(fd_);  // the next owner registers the socket itself
  fd_ = -1;
  worker_.on_connection_close(this);
  worker_.on_connection_open(next);
  next->start();
  TlsHandshake* self = this;
  worker_.loop().defer([self] { delete self; });
}

void TlsHandshake::close_now() {
  if (done_) return;
  done_ = true;
  timer_.cancel();
  tls_.reset();
  worker_.loop().remove(fd_);
  close(fd_);
  fd_ = -1;
  worker_.on_connection_close(this);
  TlsHandshake* self = this;
  worker_.loop().defer([self] { delete self; });
}

}  // namespace proxenos::proxy
