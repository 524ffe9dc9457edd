#include "net/tls_stream.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/tls_internal.h"

namespace proxenos::net {
namespace {

// A socket BIO that first serves bytes the caller already read, sends with MSG_NOSIGNAL (a
// peer's reset must not raise SIGPIPE) and reports EOF so OpenSSL can tell a truncation from a
// socket error.
TlsStream::Io* io_of(BIO* bio) {
  return static_cast<TlsStream::Io*>(BIO_get_data(bio));
}

int bio_write(BIO* bio, const char* data, int size) {
  TlsStream::Io* io = io_of(bio);
  BIO_clear_retry_flags(bio);
  for (;;) {
    ssize_t n = ::send(io->fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_write(bio);
    } else {
      io->last_errno = errno;
    }
    return -1;
  }
}

int bio_read(BIO* bio, char* data, int size) {
  TlsStream::Io* io = io_of(bio);
  BIO_clear_retry_flags(bio);
  if (io->prefix_offset < io->prefix.size()) {
    size_t n = std::min(static_cast<size_t>(size), io->prefix.size() - io->prefix_offset);
    std::memcpy(data, io->prefix.data() + io->prefix_offset, n);
    io->prefix_offset += n;
    if (io->prefix_offset == io->prefix.size()) {
      std::string().swap(io->prefix);  // the ClientHello start is not needed any more
      io->prefix_offset = 0;
    }
    return static_cast<int>(n);
  }
  for (;;) {
    ssize_t n = ::recv(io->fd, data, static_cast<size_t>(size), 0);
    if (n > 0) return static_cast<int>(n);
    if (n == 0) {
      io->eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_read(bio);
    } else {
      io->last_errno = errno;
    }
    return -1;
  }
}

long bio_ctrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return io_of(bio)->eof ? 1 : 0;
    case BIO_CTRL_PENDING: {
      const TlsStream::Io* io = io_of(bio);
      return static_cast<long>(io->prefix.size() - io->prefix_offset);
    }
    default:
      return 0;
  }
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 0);
  return 1;
}

int bio_destroy(BIO* bio) {
  BIO_set_data(bio, nullptr);
  BIO_set_init(bio, 0);
  return 1;
}

BIO_METHOD* fd_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "proxenos fd");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    BIO_meth_set_destroy(m, bio_destroy);
    return m;
  }();
  return method;
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

const char* to_string(TlsIo status) {
  switch (status) {
    case TlsIo::kOk:
      return "ok";
    case TlsIo::kWantRead:
      return "want-read";
    case TlsIo::kWantWrite:
      return "want-write";
    case TlsIo::kClosed:
      return "closed";
    case TlsIo::kEof:
      return "eof";
    case TlsIo::kError:
      return "error";
  }
  return "?";
}

TlsStream* TlsStream::from(const SSL* ssl) {
  return static_cast<TlsStream*>(SSL_get_ex_data(ssl, tls_internal::stream_index()));
}

bool TlsStream::init(SSL_CTX* ctx, int fd, std::string_view initial_bytes, std::string* error) {
  ERR_clear_error();
  ssl_ = SSL_new(ctx);
  BIO* bio = ssl_ != nullptr ? BIO_new(fd_bio_method()) : nullptr;
  if (bio == nullptr) {
    *error = "cannot create a TLS connection: " + tls_internal::drain_errors();
    return false;
  }
  io_.fd = fd;
  io_.prefix.assign(initial_bytes);
  BIO_set_data(bio, &io_);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);
  SSL_set_ex_data(ssl_, tls_internal::stream_index(), this);
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return true;
}

std::unique_ptr<TlsStream> TlsStream::server(std::shared_ptr<const SniSelector> selector, int fd,
                                             std::string* error, std::string_view initial_bytes) {
  if (!selector) {
    *error = "no TLS configuration";
    return nullptr;
  }
  std::unique_ptr<TlsStream> stream(new TlsStream());
  stream->server_ = true;
  stream->ticket_keys_ = selector->ticket_keys();
  if (!stream->init(selector->native(), fd, initial_bytes, error)) return nullptr;
  stream->selector_ = std::move(selector);
  SSL_set_accept_state(stream->ssl_);
  return stream;
}

std::unique_ptr<TlsStream> TlsStream::server(std::shared_ptr<const TlsServerContext> context,
                                             int fd, std::string* error,
                                             std::string_view initial_bytes) {
  if (!context) {
    *error = "no TLS configuration";
    return nullptr;
  }
  std::unique_ptr<TlsStream> stream(new TlsStream());
  stream->server_ = true;
  stream->ticket_keys_ = context->ticket_keys();
  stream->chosen_ = context.get();
  if (!stream->init(context->native(), fd, initial_bytes, error)) return nullptr;
  stream->server_context_ = std::move(context);
  SSL_set_accept_state(stream->ssl_);
  return stream;
}

std::unique_ptr<TlsStream> TlsStream::client(std::shared_ptr<const TlsClientContext> context,
                                             int fd, std::string* error, std::string_view sni) {
  if (!context) {
    *error = "no TLS configuration";
    return nullptr;
  }
  std::unique_ptr<TlsStream> stream(new TlsStream());
  if (!stream->init(context->native(), fd, {}, error)) return nullptr;
  stream->sni_ = sni.empty() ? context->sni() : std::string(sni);
  SSL* ssl = stream->ssl_;
  bool ip = !stream->sni_.empty() && is_ip_literal(stream->sni_);
  // RFC 6066: no IP literals in SNI.
  if (!stream->sni_.empty() && !ip && SSL_set_tlsext_host_name(ssl, stream->sni_.c_str()) != 1) {
    *error = "invalid SNI name '" + stream->sni_ + "': " + tls_internal::drain_errors();
    return nullptr;
  }
  if (context->verifies_hostname() && !stream->sni_.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, stream->sni_.c_str())
                : X509_VERIFY_PARAM_set1_host(param, stream->sni_.data(), stream->sni_.size());
    if (ok != 1) {
      *error = "cannot verify name '" + stream->sni_ + "': " + tls_internal::drain_errors();
      return nullptr;
    }
  }
  if (SSL_SESSION* session = context->session_for(stream->sni_)) {
    SSL_set_session(ssl, session);
    SSL_SESSION_free(session);
  }
  stream->client_context_ = std::move(context);
  SSL_set_connect_state(ssl);
  return stream;
}

TlsStream::~TlsStream() {
  if (ssl_ == nullptr) return;
  // Closing without close_notify is normal for HTTP (as nginx does, mark it done): otherwise
  // OpenSSL drops the session from the server's cache as if the connection had been attacked.
  // Connections that failed at the TLS level have had their session dropped already.
  if (handshake_done_ && !failed_)
    SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);
}

void TlsStream::on_client_hello(std::string_view sni, uint32_t entry,
                                const TlsServerContext* context) {
  sni_.assign(sni);
  sni_entry_ = entry;
  chosen_ = context;
  if (context == nullptr) {
    hint_ = sni.empty() ? "no default certificate for clients without SNI"
                        : "no certificate for server name '" + sni_ + "'";
  }
}

TlsResult TlsStream::fail(int ssl_result, const char* operation) {
  int code = SSL_get_error(ssl_, ssl_result);
  switch (code) {
    case SSL_ERROR_WANT_READ:
      return {TlsIo::kWantRead, 0};
    case SSL_ERROR_WANT_WRITE:
      return {TlsIo::kWantWrite, 0};
    case SSL_ERROR_ZERO_RETURN:
      return {TlsIo::kClosed, 0};
    default:
      break;
  }
  failed_ = true;
  bool verify_failed = false;
  std::string reasons = tls_internal::drain_errors(&verify_failed);
  error_ = operation;
  error_ += " failed: ";
  if (!hint_.empty()) {
    error_ += hint_;
    error_ += "; ";
  }
  if (io_.eof && (code == SSL_ERROR_SYSCALL || code == SSL_ERROR_SSL) &&
      (reasons.empty() || reasons.find("unexpected eof") != std::string::npos)) {
    error_ += "peer closed the connection without close_notify";
    return {TlsIo::kEof, 0};
  }
  if (code == SSL_ERROR_SYSCALL) {
    if (io_.last_errno != 0) {
      error_ += std::strerror(io_.last_errno);
    } else {
      error_ += "socket error";
    }
    if (!reasons.empty()) error_ += "; " + reasons;
    return {TlsIo::kError, 0};
  }
  error_ += reasons.empty() ? std::string("OpenSSL error ") + std::to_string(code) : reasons;
  if (verify_failed) {
    long result = SSL_get_verify_result(ssl_);
    if (result != X509_V_OK) {
      error_ += ": ";
      error_ += X509_verify_cert_error_string(result);
    }
  }
  return {TlsIo::kError, 0};
}

void TlsStream::on_handshake_done() {
  handshake_done_ = true;
  // A TLS 1.2 server may renew the ticket of a resumed session (after a key rotation); OpenSSL
  // reports new sessions only for full handshakes, so keep the renewed one here. TLS 1.3
  // tickets arrive after the handshake through the new-session callback.
  if (client_context_ && SSL_session_reused(ssl_) == 1 && SSL_version(ssl_) <= TLS1_2_VERSION) {
    if (SSL_SESSION* session = SSL_get_session(ssl_)) {
      if (SSL_SESSION* copy = SSL_SESSION_dup(session)) client_context_->store_session(sni_, copy);
    }
  }
}

TlsResult TlsStream::handshake() {
  if (handshake_done_) return {TlsIo::kOk, 0};
  if (failed_) return {TlsIo::kError, 0};
  ERR_clear_error();
  int result = SSL_do_handshake(ssl_);
  if (result == 1) {
    on_handshake_done();
    return {TlsIo::kOk, 0};
  }
  return fail(result, "TLS handshake");
}

TlsResult TlsStream::read(char* data, size_t size) {
  if (failed_) return {TlsIo::kError, 0};
  if (size == 0) return {TlsIo::kOk, 0};
  ERR_clear_error();
  size_t n = 0;
  int result = SSL_read_ex(ssl_, data, size, &n);
  if (result == 1) {
    if (!handshake_done_) on_handshake_done();
    return {TlsIo::kOk, n};
  }
  return fail(result, handshake_done_ ? "TLS read" : "TLS handshake");
}

TlsResult TlsStream::write(const char* data, size_t size) {
  if (failed_) return {TlsIo::kError, 0};
  if (size == 0) return {TlsIo::kOk, 0};
  ERR_clear_error();
  size_t n = 0;
  int result = SSL_write_ex(ssl_, data, size, &n);
  if (result == 1) {
    write_pending_ = false;
    if (!handshake_done_) on_handshake_done();
    return {TlsIo::kOk, n};
  }
  TlsResult r = fail(result, handshake_done_ ? "TLS write" : "TLS handshake");
  write_pending_ = r.status == TlsIo::kWantWrite || r.status == TlsIo::kWantRead;
  return r;
}

TlsResult TlsStream::shutdown() {
  if (failed_) return {TlsIo::kError, 0};
  // Mid-handshake there is no session to close cleanly; the caller just closes the socket.
  if (!handshake_done_) return {TlsIo::kOk, 0};
  if (write_pending_) {
    // OpenSSL holds a sealed record of that write; an alert cannot overtake it.
    error_ = "TLS shutdown refused: finish the pending write first (or just close)";
    return {TlsIo::kError, 0};
  }
  if (shutdown_sent_) {
    bool received = (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
    return {received ? TlsIo::kClosed : TlsIo::kOk, 0};
  }
  ERR_clear_error();
  // After kWantWrite, calling SSL_shutdown again flushes the pending alert.
  int result = SSL_shutdown(ssl_);
  if (result == 1 || result == 0) {
    shutdown_sent_ = true;
    return {result == 1 ? TlsIo::kClosed : TlsIo::kOk, 0};
  }
  return fail(result, "TLS shutdown");
}

std::string_view TlsStream::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data != nullptr ? std::string_view(reinterpret_cast<const char*>(data), len)
                         : std::string_view();
}

std::string_view TlsStream::sni() const {
  if (!sni_.empty() || !server_) return sni_;
  // A fixed-context server has no ClientHello callback; OpenSSL kept the name.
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? std::string_view(name) : std::string_view();
}

std::string_view TlsStream::version() const {
  return handshake_done_ ? std::string_view(SSL_get_version(ssl_)) : std::string_view();
}

std::string_view TlsStream::cipher() const {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  return cipher != nullptr ? std::string_view(SSL_CIPHER_get_name(cipher)) : std::string_view();
}

bool TlsStream::session_reused() const {
  return SSL_session_reused(ssl_) == 1;
}

const TlsServerContext* TlsStream::server_context() const {
  return chosen_;
}

PeerCertificateInfo TlsStream::peer_certificate_info() const {
  PeerCertificateInfo info;
  X509* leaf = SSL_get0_peer_certificate(ssl_);
  if (leaf == nullptr) return info;
  info.presented = true;
  info.verified = (SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) != 0 &&
                  SSL_get_verify_result(ssl_) == X509_V_OK;
  info.sha256_hex = tls_internal::sha256_hex(leaf);
  info.pem = tls_internal::to_pem(leaf);
  info.chain_pem = info.pem;
  // The client side's chain includes the leaf, the server side's does not.
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_)) {
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      X509* cert = sk_X509_value(chain, i);
      if (X509_cmp(cert, leaf) != 0) info.chain_pem += tls_internal::to_pem(cert);
    }
  }
  info.subject = tls_internal::rfc2253(X509_get_subject_name(leaf));
  info.issuer = tls_internal::rfc2253(X509_get_issuer_name(leaf));
  info.uri_sans = tls_internal::subject_alt_names(leaf, GEN_URI);
  info.dns_sans = tls_internal::subject_alt_names(leaf, GEN_DNS);
  return info;
}

}  // namespace proxenos::net
