#pragma once
// Certificates for TLS tests, made in memory with OpenSSL (EC P-256, SHA-256 signatures).

#include <openssl/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace proxenos::net::tls_testing {

struct TestCert {
  std::string cert_pem;  // leaf only
  std::string key_pem;
  uint64_t serial = 0;
};

struct CertSpec {
  std::string common_name;
  std::vector<std::string> sans;   // "DNS:a.example.com", "URI:spiffe://x/y"
  std::string extended_key_usage;  // "serverAuth", "clientAuth", "serverAuth,clientAuth", ""
  int64_t valid_from_s = -3600;    // relative to now
  int64_t valid_until_s = 30 * 86400;
};

class TestCa {
 public:
  explicit TestCa(const std::string& common_name);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& cert_pem() const { return cert_pem_; }
  TestCert issue(const CertSpec& spec);
  // A CRL signed by this CA revoking the given serial numbers.
  std::string crl_pem(const std::vector<uint64_t>& revoked_serials) const;

 private:
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  std::string cert_pem_;
  uint64_t next_serial_ = 2;
};

// SHA-256 of the DER of a PEM certificate, lower-case hex (computed independently of net/).
std::string pem_sha256_hex(const std::string& cert_pem);

}  // namespace proxenos::net::tls_testing
