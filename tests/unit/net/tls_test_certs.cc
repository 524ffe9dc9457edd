#include "tls_test_certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <stdexcept>

namespace proxenos::net::tls_testing {
namespace {

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificate setup failed: ") + what);
}

std::string pem_of_cert(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  check(PEM_write_bio_X509(bio, cert) == 1, "PEM_write_bio_X509");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string pem_of_key(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  check(PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  check(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

// Issued by `issuer` (nullptr: self-signed) and signed with `issuer_key`.
X509* make_cert(EVP_PKEY* key, uint64_t serial, const std::string& cn, bool ca, X509* issuer,
                EVP_PKEY* issuer_key, const CertSpec* spec) {
  X509* cert = X509_new();
  check(cert != nullptr, "X509_new");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), spec != nullptr ? spec->valid_from_s : -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), spec != nullptr ? spec->valid_until_s : 365 * 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Proxenos Test"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert, cert, nullptr, nullptr, 0);
  if (ca) {
    add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
  } else {
    add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature");
    add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always");
    if (!spec->sans.empty()) {
      std::string sans;
      for (const std::string& san : spec->sans) sans += (sans.empty() ? "" : ",") + san;
      add_ext(cert, &ctx, NID_subject_alt_name, sans);
    }
    if (!spec->extended_key_usage.empty()) {
      add_ext(cert, &ctx, NID_ext_key_usage, spec->extended_key_usage);
    }
  }
  check(X509_sign(cert, issuer_key, EVP_sha256()) > 0, "X509_sign");
  return cert;
}

}  // namespace

TestCa::TestCa(const std::string& common_name) {
  key_ = EVP_EC_gen("P-256");
  check(key_ != nullptr, "EVP_EC_gen");
  cert_ = make_cert(key_, 1, common_name, true, nullptr, key_, nullptr);
  cert_pem_ = pem_of_cert(cert_);
}

TestCa::~TestCa() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

TestCert TestCa::issue(const CertSpec& spec) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  check(key != nullptr, "EVP_EC_gen");
  uint64_t serial = next_serial_++;
  X509* cert = make_cert(key, serial, spec.common_name, false, cert_, key_, &spec);
  TestCert out{pem_of_cert(cert), pem_of_key(key), serial};
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

std::string TestCa::crl_pem(const std::vector<uint64_t>& revoked_serials) const {
  X509_CRL* crl = X509_CRL_new();
  check(crl != nullptr, "X509_CRL_new");
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, X509_get_subject_name(cert_));
  ASN1_TIME* now = X509_gmtime_adj(nullptr, -60);
  ASN1_TIME* next = X509_gmtime_adj(nullptr, 7 * 86400);
  X509_CRL_set1_lastUpdate(crl, now);
  X509_CRL_set1_nextUpdate(crl, next);
  for (uint64_t serial : revoked_serials) {
    X509_REVOKED* revoked = X509_REVOKED_new();
    ASN1_INTEGER* number = ASN1_INTEGER_new();
    ASN1_INTEGER_set_uint64(number, serial);
    X509_REVOKED_set_serialNumber(revoked, number);
    X509_REVOKED_set_revocationDate(revoked, now);
    X509_CRL_add0_revoked(crl, revoked);
    ASN1_INTEGER_free(number);
  }
  X509_CRL_sort(crl);
  check(X509_CRL_sign(crl, key_, EVP_sha256()) > 0, "X509_CRL_sign");
  BIO* bio = BIO_new(BIO_s_mem());
  check(PEM_write_bio_X509_CRL(bio, crl) == 1, "PEM_write_bio_X509_CRL");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  ASN1_TIME_free(now);
  ASN1_TIME_free(next);
  X509_CRL_free(crl);
  return out;
}

std::string pem_sha256_hex(const std::string& cert_pem) {
  BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  check(cert != nullptr, "PEM_read_bio_X509");
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  unsigned char md[32];
  unsigned int md_len = 0;
  EVP_Digest(der, static_cast<size_t>(der_len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  X509_free(cert);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < md_len; ++i) {
    snprintf(buf, sizeof(buf), "%02x", md[i]);
    hex += buf;
  }
  return hex;
}

}  // namespace proxenos::net::tls_testing
