#include "tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace proxenos::echo {

namespace {

std::string openssl_error(const std::string& what) {
  std::string out = what;
  unsigned long e = ERR_get_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += ": ";
    out += buf;
  }
  ERR_clear_error();
  return out;
}

// Server-preference ALPN: the first of our protocols the client also offers. No overlap means no
// ALPN at all (the client then speaks HTTP/1.1), rather than a handshake failure.
int select_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* ours = static_cast<const std::vector<std::string>*>(arg);
  for (const std::string& proto : *ours) {
    for (unsigned int i = 0; i < inlen;) {
      unsigned int len = in[i];
      if (i + 1 + len > inlen) break;
      if (len == proto.size() && std::memcmp(in + i + 1, proto.data(), len) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::unique_ptr<TlsContext> TlsContext::create(const TlsOptions& options, std::string* error) {
  std::unique_ptr<TlsContext> context(new TlsContext());
  context->alpn_ = options.alpn;
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    *error = openssl_error("SSL_CTX_new");
    return nullptr;
  }
  context->ctx_ = ctx;
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1) {
    *error = openssl_error("--tls-cert " + options.cert_file);
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    *error = openssl_error("--tls-key " + options.key_file +
                           " cannot be loaded or does not match --tls-cert");
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    *error = openssl_error("--tls-key does not match --tls-cert");
    return nullptr;
  }
  if (!options.client_ca_file.empty()) {
    const char* ca = options.client_ca_file.c_str();
    if (SSL_CTX_load_verify_locations(ctx, ca, nullptr) != 1) {
      *error = openssl_error("--tls-client-ca " + options.client_ca_file);
      return nullptr;
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca);
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  // Resumed sessions of verified clients need a session id context.
  static constexpr unsigned char kSidContext[] = "proxenos-echo";
  SSL_CTX_set_session_id_context(ctx, kSidContext, sizeof kSidContext - 1);
  if (!context->alpn_.empty()) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, &context->alpn_);
  return context;
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

std::unique_ptr<TlsStream> TlsStream::accept(const TlsContext& context, int fd) {
  SSL* ssl = SSL_new(context.get());
  if (ssl == nullptr) {
    ERR_clear_error();
    return nullptr;
  }
  if (SSL_set_fd(ssl, fd) != 1) {
    ERR_clear_error();
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return std::unique_ptr<TlsStream>(new TlsStream(ssl));
}

TlsStream::~TlsStream() {
  SSL_free(ssl_);
}

ssize_t TlsStream::read(char* buf, size_t cap) {
  errno = 0;
  int n = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(cap, INT_MAX)));
  if (n > 0) return n;
  int err = SSL_get_error(ssl_, n);
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (errno == 0) return 0;
      return -1;
    default:
      ERR_clear_error();
      errno = EPROTO;
      return -1;
  }
}

ssize_t TlsStream::writev(const iovec* iov, int count) {
  size_t total = 0;
  for (int i = 0; i < count; ++i) {
    const char* p = static_cast<const char*>(iov[i].iov_base);
    size_t left = iov[i].iov_len;
    while (left > 0) {
      errno = 0;
      int n = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(left, INT_MAX)));
      if (n > 0) {
        total += static_cast<size_t>(n);
        p += n;
        left -= static_cast<size_t>(n);
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        // The retry starts with the same bytes (the caller advances by `total` only), as
        // OpenSSL requires.
        if (total > 0) return static_cast<ssize_t>(total);
        errno = EAGAIN;
        return -1;
      }
      ERR_clear_error();
      if (total > 0) return static_cast<ssize_t>(total);
      if (err != SSL_ERROR_SYSCALL || errno == 0) errno = EPIPE;
      return -1;
    }
  }
  return static_cast<ssize_t>(total);
}

void TlsStream::shutdown() {
  if (shut_) return;
  shut_ = true;
  if (SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);
  ERR_clear_error();
}

const TlsInfo& TlsStream::info() {
  if (info_ready_ || !SSL_is_init_finished(ssl_)) return info_;
  info_ready_ = true;
  info_.version = SSL_get_version(ssl_);
  const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  if (sni != nullptr) info_.sni = sni;
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  if (alpn != nullptr) info_.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert != nullptr) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio != nullptr) {
      X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
      char* data = nullptr;
      long len = BIO_get_mem_data(bio, &data);
      if (len > 0 && data != nullptr) info_.client_subject.assign(data, static_cast<size_t>(len));
      BIO_free(bio);
    }
  }
  ERR_clear_error();
  return info_;
}

}  // namespace proxenos::echo
