#pragma once
// One TLS connection over a non-blocking socket, driven by an edge-triggered event loop. The
// stream owns its SSL object, not the fd (the caller closes it, after the stream is gone) and not
// the epoll registration.
//
// Driving it: call handshake() until it returns kOk, then read()/write(). Each call does as much
// as the socket allows and says what it waits for: kWantRead (call again when readable), or
// kWantWrite (when writable). Either can come from any call: TLS 1.3 may send while reading
// (key updates) and a handshake reads and writes. With edge-triggered epoll keep reading until a
// call returns something other than kOk: OpenSSL may hold decrypted bytes the socket no longer
// signals.
//
// Writes are partial: write() returns kOk with the bytes taken (at most one 16 KiB record's
// worth past what the socket accepted). After kWantWrite call write() again with the same bytes
// at the front; the buffer may move and may have grown (OpenSSL may already have sealed part
// of it).
//
// Sniffing TLS on a shared port (HTTPS listeners): peek the first bytes with recv(MSG_PEEK) and
// create the stream as if nothing had been read; 0x16 (handshake record) is TLS. If bytes had to
// be consumed (e.g. a PROXY protocol header read in the same recv as the ClientHello's start),
// pass the TLS part as `initial_bytes`: the stream reads them before the socket.
//
// No heap allocation per read or write; error strings are built only on failure.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/tls_context.h"

namespace proxenos::net {

enum class TlsIo : uint8_t {
  kOk,         // done; `bytes` moved for read/write
  kWantRead,   // wait for the socket to be readable, then call the same function again
  kWantWrite,  // wait for writable, then call again (write: with the same bytes at the front)
  kClosed,     // the peer sent close_notify: a clean end of its data
  kEof,        // the peer closed the TCP connection without close_notify (possible truncation)
  kError,      // fatal; error() says why. Do not call shutdown(); close the socket
};

struct TlsResult {
  TlsIo status = TlsIo::kOk;
  size_t bytes = 0;
  bool ok() const { return status == TlsIo::kOk; }
};

const char* to_string(TlsIo status);

// The peer's certificate as x-forwarded-client-cert reports it (Envoy's keys in brackets).
struct PeerCertificateInfo {
  bool presented = false;  // the peer sent a certificate (all else is empty otherwise)
  bool verified = false;   // it verified against the configured CA (never true without a CA)
  std::string sha256_hex;  // [Hash] lower-case hex SHA-256 of the leaf's DER
  std::string pem;         // [Cert] leaf in PEM; the header carries it URL-encoded
  std::string chain_pem;   // [Chain] leaf then the intermediates the peer sent, PEM
  std::string subject;     // [Subject] RFC 2253, as Envoy prints it
  std::string issuer;      // RFC 2253
  std::vector<std::string> uri_sans;  // [URI] (Envoy puts the first one in the header)
  std::vector<std::string> dns_sans;  // [DNS] one key per name
};

class TlsStream {
 public:
  // Server side with SNI selection. `fd` must be non-blocking. nullptr and `error` on failure.
  static std::unique_ptr<TlsStream> server(std::shared_ptr<const SniSelector> selector, int fd,
                                           std::string* error, std::string_view initial_bytes = {});
  // Server side with one fixed context (no SNI choice).
  static std::unique_ptr<TlsStream> server(std::shared_ptr<const TlsServerContext> context, int fd,
                                           std::string* error, std::string_view initial_bytes = {});
  // Client side. `sni` overrides the context's SNI name (e.g. the host of an https:// service);
  // the override is also the name verified.
  static std::unique_ptr<TlsStream> client(std::shared_ptr<const TlsClientContext> context, int fd,
                                           std::string* error, std::string_view sni = {});
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  TlsResult handshake();
  TlsResult read(char* data, size_t size);
  TlsResult write(const char* data, size_t size);
  // Sends close_notify. kOk once sent (the peer's may still come: read() reports kClosed),
  // kClosed if the peer's had already arrived, kWantWrite if the socket is full (call again when
  // writable). Refused (kError, the stream stays usable) while a write() waits to be retried:
  // finish it first, or just close. After a fatal kError/kEof it does nothing and returns kError.
  // Destroying a stream without shutdown() is fine (sessions stay resumable).
  TlsResult shutdown();

  bool handshake_done() const { return handshake_done_; }
  bool is_server() const { return server_; }
  // Why the last kError happened: OpenSSL's reasons, plus the certificate verification result
  // ("certificate verify failed: hostname mismatch") or the socket error.
  const std::string& error() const { return error_; }

  std::string_view alpn() const;  // negotiated protocol; empty = none (HTTP/1.1)
  // Server: what the client sent (lower case, no trailing dot). Client: the name used for SNI
  // and verification (not sent when it is an IP literal).
  std::string_view sni() const;
  std::string_view version() const;  // "TLSv1.3"
  std::string_view cipher() const;   // "TLS_AES_128_GCM_SHA256"
  bool session_reused() const;
  // Server with a selector: the entry chosen for the SNI (index into SniSelector::entries()),
  // SniSelector::kDefaultEntry, or kNoEntry before the ClientHello / without a selector.
  uint32_t sni_entry() const { return sni_entry_; }
  // Server: the context that served the handshake (nullptr before the ClientHello).
  const TlsServerContext* server_context() const;
  PeerCertificateInfo peer_certificate_info() const;

  SSL* native() const { return ssl_; }

  // For the OpenSSL callbacks.
  static TlsStream* from(const SSL* ssl);
  void on_client_hello(std::string_view sni, uint32_t entry, const TlsServerContext* context);
  TicketKeys* ticket_keys() const { return ticket_keys_; }

  // What the BIO reads first and where it reads/writes the rest.
  struct Io {
    int fd = -1;
    std::string prefix;
    size_t prefix_offset = 0;
    int last_errno = 0;
    bool eof = false;  // recv() returned 0
  };

 private:
  TlsStream() = default;
  bool init(SSL_CTX* ctx, int fd, std::string_view initial_bytes, std::string* error);
  TlsResult fail(int ssl_result, const char* operation);
  void on_handshake_done();

  SSL* ssl_ = nullptr;
  Io io_;
  bool server_ = false;
  bool handshake_done_ = false;
  bool failed_ = false;
  bool shutdown_sent_ = false;
  bool write_pending_ = false;  // the last write() asked to be retried
  std::string error_;
  std::string hint_;  // why the ClientHello could not be served, for error_
  std::string sni_;
  uint32_t sni_entry_ = SniSelector::kNoEntry;
  const TlsServerContext* chosen_ = nullptr;
  TicketKeys* ticket_keys_ = nullptr;
  // Keep what the callbacks point to alive as long as the SSL object.
  std::shared_ptr<const SniSelector> selector_;
  std::shared_ptr<const TlsServerContext> server_context_;
  std::shared_ptr<const TlsClientContext> client_context_;
};

}  // namespace proxenos::net
