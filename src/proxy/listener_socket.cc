#include "proxy/listener_socket.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "net/socket.h"
#include "proxy/http_connection.h"
#include "proxy/tcp_connection.h"
#include "proxy/tls_handshake.h"
#include "proxy/worker.h"

namespace proxenos::proxy {

namespace {
constexpr int kBacklog = 4096;
// When the process runs out of descriptors we stop accepting for a moment instead of spinning
// on a listening socket that stays readable (edge-hardening row 28).
constexpr uint64_t kAcceptBackoffMs = 100;
}  // namespace

ListenerSocket::ListenerSocket(Worker& worker, std::string key, const net::Address& address)
    : worker_(worker),
      key_(std::move(key)),
      address_(address),
      retry_timer_(worker.loop(), [this] { accept_all(); }) {
  fd_ = net::listen_tcp(address_, true, kBacklog, &error_);
  if (fd_ >= 0) worker_.loop().add(fd_, EPOLLIN, this);
}

ListenerSocket::~ListenerSocket() {
  pause();
}

void ListenerSocket::pause() {
  retry_timer_.cancel();
  if (fd_ >= 0) {
    worker_.loop().remove(fd_);
    close(fd_);
    fd_ = -1;
  }
}

void ListenerSocket::on_io(uint32_t) {
  accept_all();
}

void ListenerSocket::accept_all() {
  while (fd_ >= 0) {
    net::Address peer;
    peer.length = sizeof peer.storage;
    int fd = accept4(fd_, peer.sa(), &peer.length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        retry_timer_.arm(kAcceptBackoffMs);
      }
      return;
    }
    net::set_nodelay(fd);
    DownstreamConnection* connection = nullptr;
    const auto& cfg = worker_.config();
    const config::ListenerSnapshot* listener = cfg ? cfg->listener(key_) : nullptr;
    std::shared_ptr<const net::SniSelector> selector;
    bool wants_tls = false;
    if (listener != nullptr) {
      size_t index = static_cast<size_t>(listener - cfg->snapshot->listeners.data());
      if (index < cfg->tls->listeners.size()) selector = cfg->tls->listeners[index];
      wants_tls = index < cfg->tls->terminates.size() && cfg->tls->terminates[index];
    }
    bool proxy_header =
        listener != nullptr && (listener->protocol == config::ListenerProtocol::kHttpProxy ||
                                listener->protocol == config::ListenerProtocol::kHttpsProxy);
    if (selector || proxy_header || wants_tls) {
      // HTTPS listeners take cleartext too (the first byte tells); TLS listeners only TLS.
      bool sniff = listener->protocol != config::ListenerProtocol::kTls;
      connection = new TlsHandshake(worker_, fd, key_, peer, net::local_address(fd),
                                    std::move(selector), sniff, proxy_header);
    } else if (listener != nullptr && listener->protocol == config::ListenerProtocol::kTcp) {
      connection = new TcpConnection(worker_, fd, key_);
    } else {
      connection = new HttpConnection(worker_, fd, key_, peer, net::local_address(fd));
    }
    worker_.on_connection_open(connection);
    connection->start();
  }
}

}  // namespace proxenos::proxy
