#pragma once
// TLS configuration as plain data: what the compiler produces from Hosts, TLSContexts, Secrets
// and Mappings, and what net/tls turns into OpenSSL contexts. No OpenSSL types here, so config
// and snapshots stay free of sockets and libraries.

#include <cstdint>
#include <string>
#include <vector>

namespace proxenos::net {

enum class TlsVersion : uint8_t { kDefault, k1_0, k1_1, k1_2, k1_3 };

// One certificate and its policy for terminating TLS (a Host's or a TLSContext's).
struct TlsServerSettings {
  std::string name;             // "TLSContext/ns/name" or "Host/ns/name": for logs and errors
  std::string cert_chain_pem;   // leaf first, then intermediates
  std::string private_key_pem;  // secret: never logged or dumped
  // Client certificates (mTLS): CA bundle to verify them; empty = not requested.
  std::string ca_pem;
  bool cert_required = false;  // reject clients without a valid certificate
  std::string crl_pem;         // revocation list(s) checked with ca_pem
  // ALPN protocols offered, in preference order ("h2", "http/1.1").
  std::vector<std::string> alpn = {"h2", "http/1.1"};
  TlsVersion min_version = TlsVersion::k1_2;
  TlsVersion max_version = TlsVersion::kDefault;  // the library's newest (1.3)
  std::vector<std::string> cipher_suites;  // OpenSSL names; TLS 1.2 list (1.3 suites separate)
  std::vector<std::string> ecdh_curves;    // groups, e.g. X25519, P-256
};

// How to originate TLS towards an upstream (`https://` service, Mapping `tls`, TCPMapping `tls`).
struct TlsClientSettings {
  std::string name;             // "TLSContext/ns/name" or "" for a plain https:// service
  std::string sni;              // server name sent (and verified when verify_hostname)
  std::string ca_pem;           // verify the upstream against this bundle; empty = no verification
  bool verify_hostname = true;  // with ca_pem: the certificate must be valid for `sni`
  std::string cert_chain_pem;   // client certificate for mTLS to the upstream
  std::string private_key_pem;
  std::vector<std::string> alpn;  // e.g. {"h2"} for grpc upstreams, {"http/1.1"} otherwise
  TlsVersion min_version = TlsVersion::k1_2;
  TlsVersion max_version = TlsVersion::kDefault;
  std::vector<std::string> cipher_suites;
  std::vector<std::string> ecdh_curves;

  bool operator==(const TlsClientSettings&) const = default;
};

}  // namespace proxenos::net
