#pragma once
// OpenSSL contexts built from the plain TLS settings: certificates for terminating TLS, the SNI
// choice among them on one listener, TLS origination towards upstreams, and the session-ticket
// keys shared by all of them. Everything here is immutable once built (TicketKeys excepted, which
// locks) and may be shared by every worker; a new configuration builds new objects, and
// connections keep the ones they started with.

#include <openssl/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/tls_settings.h"

// As <openssl/ssl.h> declares it (not in <openssl/types.h>).
typedef struct ssl_session_st SSL_SESSION;

namespace proxenos::net {

// Edge-hardening default: a connection that has not finished its TLS handshake after 10 s is
// closed. The event loop owns the timer; TlsStream has no clock.
inline constexpr uint32_t kDefaultTlsHandshakeTimeoutMs = 10'000;

// Session-ticket encryption keys, shared by every server context (and every listener) so a client
// resumes wherever it lands. rotate() makes a fresh current key; the previous key still decrypts
// (tickets it sealed are accepted and renewed with the current key), older ones are forgotten.
// Thread-safe: a handshake takes the lock only to copy 80 bytes.
class TicketKeys {
 public:
  struct Key {
    std::array<uint8_t, 16> name{};
    std::array<uint8_t, 32> aes{};   // AES-256-CBC
    std::array<uint8_t, 32> hmac{};  // HMAC-SHA256
  };
  enum class Lookup : uint8_t { kNotFound, kCurrent, kPrevious };

  TicketKeys();  // starts with one random key
  void rotate();
  uint64_t rotations() const;

  Key current() const;
  Lookup find(const uint8_t* name, Key* out) const;  // name: 16 bytes

 private:
  static Key random_key();

  mutable std::mutex mu_;
  Key current_;
  std::optional<Key> previous_;
  uint64_t rotations_ = 0;
};

// The parts of a certificate that diagnostics and x-forwarded-client-cert's `By` need.
struct CertificateSummary {
  std::string subject;  // RFC 2253
  std::vector<std::string> dns_sans;
  std::vector<std::string> uri_sans;
  int64_t not_before = 0;  // seconds since the epoch
  int64_t not_after = 0;
};

// Terminates TLS with one certificate and policy (a Host's or a TLSContext's).
//
// Defaults: TLS 1.2 minimum; TLS 1.2 ciphers ECDHE with AES-GCM or ChaCha20-Poly1305 only, in
// server order; groups X25519 and P-256; ALPN chosen in the configured order among what the
// client offers (no overlap or no ALPN from the client: no ALPN, i.e. HTTP/1.1); renegotiation
// off; one TLS 1.3 ticket per handshake. A min_tls_version below 1.2 lowers the OpenSSL security
// level to 0 for that context, since TLS 1.0/1.1 need SHA-1 and MD5 signatures.
// `cipher_suites` replaces the TLS 1.2 list (names beginning with `TLS_` replace the TLS 1.3
// list instead); BoringSSL's `[A|B]` equal-preference groups are accepted and flattened.
// With `ca_pem`, client certificates are requested and, when presented, must verify (chain,
// clientAuth purpose, and the CRL for the leaf when `crl_pem` is set); `cert_required` also
// rejects clients that send none.
class TlsServerContext {
 public:
  // nullptr and `error` set when the settings cannot work (unparsable certificate, key or CA
  // bundle, key not matching the certificate, unknown cipher or curve, ...). An expired (or not
  // yet valid) certificate is served as Emissary does, with a message in warnings().
  // `ticket_keys` seals session tickets when this context is used without an SniSelector; null
  // leaves OpenSSL's own per-context random keys.
  static std::shared_ptr<const TlsServerContext> create(const TlsServerSettings& settings,
                                                        std::shared_ptr<TicketKeys> ticket_keys,
                                                        std::string* error);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  const CertificateSummary& certificate() const { return certificate_; }
  bool requests_client_certificate() const { return requests_client_cert_; }
  SSL_CTX* native() const { return ctx_; }
  TicketKeys* ticket_keys() const { return ticket_keys_.get(); }

 private:
  friend class SniSelector;
  TlsServerContext() = default;
  // Makes `ssl` (created on another SSL_CTX) behave as if created on this one. SSL_set_SSL_CTX
  // only swaps the certificate and session id context; versions, options, verification, ciphers
  // and groups were copied from the first context when the SSL was made.
  bool apply_to(SSL* ssl) const;

  std::string name_;
  std::vector<std::string> warnings_;
  CertificateSummary certificate_;
  bool requests_client_cert_ = false;
  SSL_CTX* ctx_ = nullptr;
  std::shared_ptr<TicketKeys> ticket_keys_;
  std::string cipher_list_;   // TLS 1.2, as given to OpenSSL
  std::string ciphersuites_;  // TLS 1.3
  std::string groups_;
  std::string alpn_wire_;  // the ALPN callback's argument
};

// One certificate choice on a listener. `hostname` is a Host glob: exact (case-insensitive),
// `*.suffix` / `*suffix`, `prefix.*`, or `*`; a `:port` on it is ignored (SNI carries none).
struct SniEntry {
  std::string hostname;
  std::shared_ptr<const TlsServerContext> context;
};

// Session cache of the listener's base context (TLS 1.2 session ids; tickets need no cache).
struct TlsSessionCacheOptions {
  size_t max_sessions = 4096;
  uint32_t timeout_s = 7200;  // also the ticket lifetime
};

// The TLS side of one listener: picks a TlsServerContext by SNI while the ClientHello is being
// processed (before the version, ciphers and ALPN are negotiated, so each entry's policy applies
// in full). Match order: exact name, longest suffix wildcard, longest prefix wildcard, `*`, then
// the default context. A client without SNI gets the default context, or the `*` entry when
// there is no default. When nothing applies the handshake fails with an unrecognized_name alert.
// Session tickets are sealed with `ticket_keys` (OpenSSL takes the ticket callback and session
// cache from the context an SSL was created on, i.e. this selector's base, whichever entry is
// chosen); each context's session id context is a digest of its certificate and client-
// certificate policy, so a session never resumes under a different certificate or CA.
class SniSelector {
 public:
  static constexpr uint32_t kDefaultEntry = 0xffffffff;  // the default context was chosen
  static constexpr uint32_t kNoEntry = 0xfffffffe;       // nothing chosen (yet, or nothing fits)

  // nullptr and `error` set when an entry has no context or an empty hostname.
  static std::shared_ptr<const SniSelector> create(
      std::vector<SniEntry> entries, std::shared_ptr<const TlsServerContext> default_context,
      std::shared_ptr<TicketKeys> ticket_keys, std::string* error,
      const TlsSessionCacheOptions& cache = {});
  ~SniSelector();
  SniSelector(const SniSelector&) = delete;
  SniSelector& operator=(const SniSelector&) = delete;

  // Index into the entries given to create(), kDefaultEntry, or kNoEntry. `server_name` must be
  // lower case; empty means the client sent no SNI. Allocation-free.
  uint32_t match(std::string_view server_name) const;
  // The context behind match()'s answer; nullptr for kNoEntry.
  const TlsServerContext* context_for(uint32_t entry) const;
  const std::vector<SniEntry>& entries() const { return entries_; }
  SSL_CTX* native() const { return base_; }
  TicketKeys* ticket_keys() const { return ticket_keys_.get(); }

 private:
  SniSelector() = default;
  static int client_hello_callback(SSL* ssl, int* alert, void* arg);

  std::vector<SniEntry> entries_;
  std::shared_ptr<const TlsServerContext> default_;
  std::shared_ptr<TicketKeys> ticket_keys_;
  SSL_CTX* base_ = nullptr;
  // Lower-cased names and affixes with their entry index, in lookup order.
  std::vector<std::pair<std::string, uint32_t>> exact_;     // sorted by name
  std::vector<std::pair<std::string, uint32_t>> suffixes_;  // longest first
  std::vector<std::pair<std::string, uint32_t>> prefixes_;  // longest first
  std::optional<uint32_t> star_;
};

// Originates TLS towards an upstream. Without `ca_pem` the upstream is not verified at all. With
// it: the chain must verify, the leaf must be valid for serverAuth, and, when `verify_hostname`,
// must match the SNI name (no partial wildcards; an IP literal is checked against IP SANs).
// SNI is not sent for IP literals. Versions, ciphers and groups default as on the server side.
// The last session per SNI name is kept for resumption on the next connection.
class TlsClientContext {
 public:
  static std::shared_ptr<const TlsClientContext> create(const TlsClientSettings& settings,
                                                        std::string* error);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  const std::string& name() const { return name_; }
  const std::string& sni() const { return sni_; }
  bool verifies_peer() const { return verify_; }
  bool verifies_hostname() const { return verify_hostname_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  SSL_CTX* native() const { return ctx_; }

  // Session resumption towards the upstream (used by TlsStream).
  SSL_SESSION* session_for(std::string_view sni) const;  // a copy to free, or nullptr
  void store_session(std::string_view sni, SSL_SESSION* session) const;  // adopts the reference
  void forget_sessions() const;

 private:
  TlsClientContext() = default;

  std::string name_;
  std::string sni_;
  bool verify_ = false;
  bool verify_hostname_ = false;
  std::vector<std::string> warnings_;
  SSL_CTX* ctx_ = nullptr;
  mutable std::mutex session_mu_;
  mutable std::string session_sni_;
  mutable SSL_SESSION* session_ = nullptr;
};

}  // namespace proxenos::net
