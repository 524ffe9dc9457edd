#pragma once
// TLS for the echo backend, straight on OpenSSL: one server context built from the command line,
// and a non-blocking per-connection stream whose read/writev behave like recv/sendmsg, so the
// connection classes keep their edge-triggered loops and only swap the system call.

#include <sys/types.h>
#include <sys/uio.h>

#include <memory>
#include <string>
#include <vector>

#include "echo_response.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace proxenos::echo {

struct TlsOptions {
  std::string cert_file;       // PEM chain, leaf first
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM bundle: when set, a client certificate is required
  std::vector<std::string> alpn = {"h2", "http/1.1"};  // server preference order
};

class TlsContext {
 public:
  // Returns null and fills `error` when a file cannot be loaded or the key does not match.
  static std::unique_ptr<TlsContext> create(const TlsOptions& options, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* get() const { return ctx_; }
  const std::vector<std::string>& alpn() const { return alpn_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::vector<std::string> alpn_;
};

// One accepted TLS connection. The handshake runs inside the first read() calls.
class TlsStream {
 public:
  static std::unique_ptr<TlsStream> accept(const TlsContext& context, int fd);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Like recv(): bytes read, 0 at end of stream, or -1 with errno EAGAIN (call again after the
  // next readiness of either direction), EPROTO (TLS failure: close, no RST needed) or another
  // errno.
  ssize_t read(char* buf, size_t cap);
  // Like sendmsg(): bytes written (possibly fewer than offered), or -1 with errno.
  ssize_t writev(const iovec* iov, int count);
  // Sends close_notify once, best effort (non-blocking).
  void shutdown();

  // Negotiated facts; meaningful once the handshake is done (i.e. after data was read).
  const TlsInfo& info();

 private:
  explicit TlsStream(SSL* ssl) : ssl_(ssl) {}
  SSL* ssl_;
  TlsInfo info_;
  bool info_ready_ = false;
  bool shut_ = false;
};

}  // namespace proxenos::echo
