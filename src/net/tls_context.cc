#include "net/tls_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "net/tls_internal.h"
#include "net/tls_stream.h"

namespace proxenos::net {
namespace tls_internal {

std::string drain_errors(bool* verify_failed) {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    if (verify_failed != nullptr && ERR_GET_LIB(code) == ERR_LIB_SSL &&
        ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      *verify_failed = true;
    }
    if (!out.empty()) out += "; ";
    const char* reason = ERR_reason_error_string(code);
    if (reason != nullptr) {
      out += reason;
    } else {
      char buf[256];
      ERR_error_string_n(code, buf, sizeof(buf));
      out += buf;
    }
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      out += " (";
      out += data;
      out += ")";
    }
  }
  return out;
}

namespace {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

int64_t to_unix(const ASN1_TIME* time) {
  struct tm tm {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

std::string rfc2253(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || name == nullptr) return {};
  if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  return bio_string(bio.get());
}

std::string to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  return bio_string(bio.get());
}

std::string sha256_hex(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 0xf];
  }
  return out;
}

std::vector<std::string> subject_alt_names(X509* cert, int type) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != type) continue;
    const ASN1_IA5STRING* value = type == GEN_DNS   ? name->d.dNSName
                                  : type == GEN_URI ? name->d.uniformResourceIdentifier
                                                    : nullptr;
    if (value == nullptr) continue;
    std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                          static_cast<size_t>(ASN1_STRING_length(value)));
    if (text.find('\0') != std::string_view::npos) continue;
    out.emplace_back(text);
  }
  GENERAL_NAMES_free(names);
  return out;
}

CertificateSummary summarize(X509* cert) {
  CertificateSummary summary;
  summary.subject = rfc2253(X509_get_subject_name(cert));
  summary.dns_sans = subject_alt_names(cert, GEN_DNS);
  summary.uri_sans = subject_alt_names(cert, GEN_URI);
  summary.not_before = to_unix(X509_get0_notBefore(cert));
  summary.not_after = to_unix(X509_get0_notAfter(cert));
  return summary;
}

int stream_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace tls_internal

namespace {

using tls_internal::drain_errors;

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct InfoStackDeleter {
  void operator()(STACK_OF(X509_INFO) * stack) const {
    sk_X509_INFO_pop_free(stack, X509_INFO_free);
  }
};
using InfoStackPtr = std::unique_ptr<STACK_OF(X509_INFO), InfoStackDeleter>;

// TLS 1.2: ECDHE key exchange with AEAD ciphers only (Envoy's current default minus CBC).
constexpr char kDefaultCipherList[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
constexpr char kDefaultCiphersuites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr char kDefaultGroups[] = "X25519:P-256";

BioPtr mem_bio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

bool is_pem_end(unsigned long code) {
  return ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Leaf first, then the intermediates, as they appear. Other PEM blocks (a key in the same file)
// are skipped.
bool load_certificates(std::string_view pem, X509Ptr* leaf, std::vector<X509Ptr>* chain,
                       std::string* error) {
  if (pem.find("-----BEGIN") == std::string_view::npos) {
    *error = "unparsable certificate: no PEM certificate found";
    return false;
  }
  BioPtr bio = mem_bio(pem);
  ERR_clear_error();
  leaf->reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!*leaf) {
    *error = "unparsable certificate: " + drain_errors();
    return false;
  }
  for (;;) {
    X509* next = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (next == nullptr) {
      if (is_pem_end(ERR_peek_last_error())) {
        ERR_clear_error();
        return true;
      }
      *error = "unparsable certificate (chain entry " + std::to_string(chain->size() + 2) +
               "): " + drain_errors();
      return false;
    }
    chain->emplace_back(next);
  }
}

int no_passphrase(char*, int, int, void*) {
  return -1;
}

PkeyPtr load_private_key(std::string_view pem, std::string* error) {
  if (pem.find("-----BEGIN") == std::string_view::npos) {
    *error = "unparsable private key: no PEM private key found";
    return nullptr;
  }
  if (pem.find("ENCRYPTED") != std::string_view::npos) {
    *error = "unparsable private key: encrypted keys are not supported";
    return nullptr;
  }
  BioPtr bio = mem_bio(pem);
  ERR_clear_error();
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) *error = "unparsable private key: " + drain_errors();
  return key;
}

std::string format_time(const ASN1_TIME* time) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), time) != 1) return "?";
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(std::max(len, 0L)));
}

// Certificate, intermediates and key onto `ctx`, with the checks every certificate gets.
bool use_certificate(SSL_CTX* ctx, std::string_view chain_pem, std::string_view key_pem,
                     bool server, CertificateSummary* summary, std::vector<std::string>* warnings,
                     std::string* error) {
  X509Ptr leaf;
  std::vector<X509Ptr> chain;
  if (!load_certificates(chain_pem, &leaf, &chain, error)) return false;
  PkeyPtr key = load_private_key(key_pem, error);
  if (!key) return false;
  ERR_clear_error();
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    *error = "private key does not match the certificate";
    return false;
  }
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    *error = "certificate rejected: " + drain_errors();
    return false;
  }
  for (const X509Ptr& cert : chain) {
    if (SSL_CTX_add1_chain_cert(ctx, cert.get()) != 1) {
      *error = "certificate chain rejected: " + drain_errors();
      return false;
    }
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
    *error = "private key rejected: " + drain_errors();
    return false;
  }
  *summary = tls_internal::summarize(leaf.get());
  if (X509_cmp_current_time(X509_get0_notAfter(leaf.get())) < 0) {
    warnings->push_back("certificate expired on " + format_time(X509_get0_notAfter(leaf.get())));
  } else if (X509_cmp_current_time(X509_get0_notBefore(leaf.get())) > 0) {
    warnings->push_back("certificate is not valid before " +
                        format_time(X509_get0_notBefore(leaf.get())));
  }
  int purpose = server ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT;
  if (X509_check_purpose(leaf.get(), purpose, 0) != 1) {
    warnings->push_back(server ? "certificate is not valid for TLS server authentication"
                               : "certificate is not valid for TLS client authentication");
  }
  ERR_clear_error();
  return true;
}

// CA certificates (and CRLs) into the context's verification store. Returns the CA certificates
// added, or -1 with `error` set.
int load_ca_bundle(SSL_CTX* ctx, std::string_view ca_pem, std::string_view crl_pem,
                   bool add_client_ca_names, std::string* error) {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  BioPtr bio = mem_bio(ca_pem);
  ERR_clear_error();
  InfoStackPtr infos(PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr));
  if (!infos) {
    *error = "unparsable CA bundle: " + drain_errors();
    return -1;
  }
  int count = 0;
  for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos.get(), i);
    if (info->x509 == nullptr) continue;
    if (X509_STORE_add_cert(store, info->x509) != 1) {
      *error = "CA bundle rejected: " + drain_errors();
      return -1;
    }
    if (add_client_ca_names && SSL_CTX_add_client_CA(ctx, info->x509) != 1) {
      *error = "CA bundle rejected: " + drain_errors();
      return -1;
    }
    ++count;
  }
  if (count == 0) {
    *error = "unparsable CA bundle: no certificate found";
    return -1;
  }
  if (!crl_pem.empty()) {
    BioPtr crl_bio = mem_bio(crl_pem);
    InfoStackPtr crls(PEM_X509_INFO_read_bio(crl_bio.get(), nullptr, nullptr, nullptr));
    if (!crls) {
      *error = "unparsable CRL: " + drain_errors();
      return -1;
    }
    int crl_count = 0;
    for (int i = 0; i < sk_X509_INFO_num(crls.get()); ++i) {
      X509_INFO* info = sk_X509_INFO_value(crls.get(), i);
      if (info->crl == nullptr) continue;
      if (X509_STORE_add_crl(store, info->crl) != 1) {
        *error = "CRL rejected: " + drain_errors();
        return -1;
      }
      ++crl_count;
    }
    if (crl_count == 0) {
      *error = "unparsable CRL: no CRL found";
      return -1;
    }
    // The leaf only: a CRL for every intermediate would be needed otherwise, which users of
    // Emissary's crl_secret do not provide.
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  ERR_clear_error();
  return count;
}

int to_openssl_version(TlsVersion version) {
  switch (version) {
    case TlsVersion::k1_0:
      return TLS1_VERSION;
    case TlsVersion::k1_1:
      return TLS1_1_VERSION;
    case TlsVersion::k1_2:
      return TLS1_2_VERSION;
    case TlsVersion::k1_3:
      return TLS1_3_VERSION;
    case TlsVersion::kDefault:
      break;
  }
  return 0;
}

// Versions, ciphers and groups, shared by both directions. Fills the strings handed to OpenSSL
// so the server side can re-apply them after switching context.
bool apply_protocol_policy(SSL_CTX* ctx, TlsVersion min_version, TlsVersion max_version,
                           const std::vector<std::string>& cipher_suites,
                           const std::vector<std::string>& curves, std::string* cipher_list,
                           std::string* ciphersuites, std::string* groups,
                           std::vector<std::string>* warnings, std::string* error) {
  int min = min_version == TlsVersion::kDefault ? TLS1_2_VERSION : to_openssl_version(min_version);
  int max = to_openssl_version(max_version);
  if (max != 0 && min > max) {
    *error = "min_tls_version is above max_tls_version";
    return false;
  }
  if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, max) != 1) {
    *error = "unsupported TLS version: " + drain_errors();
    return false;
  }
  // TLS 1.0/1.1 sign with SHA-1 (and MD5), which any security level above 0 refuses.
  SSL_CTX_set_security_level(ctx, min < TLS1_2_VERSION ? 0 : 2);

  std::string list12, list13;
  for (const std::string& entry : cipher_suites) {
    // BoringSSL's equal-preference groups "[A|B]" become plain order.
    std::string flat;
    for (char c : entry) {
      if (c == '[' || c == ']') continue;
      flat += (c == '|' ? ':' : c);
    }
    std::string_view rest = flat;
    while (!rest.empty()) {
      size_t colon = rest.find(':');
      std::string_view name = trim(rest.substr(0, colon));
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
      if (name.empty()) continue;
      std::string name_z(name);
      bool tls13 = name.substr(0, 4) == "TLS_";
      bool modifier = name[0] == '!' || name[0] == '-' || name[0] == '+' || name[0] == '@';
      if (!modifier) {
        int ok = tls13 ? SSL_CTX_set_ciphersuites(ctx, name_z.c_str())
                       : SSL_CTX_set_cipher_list(ctx, name_z.c_str());
        if (ok != 1) {
          ERR_clear_error();
          *error = "unknown cipher suite '" + name_z + "'";
          return false;
        }
      }
      std::string& list = tls13 ? list13 : list12;
      if (!list.empty()) list += ':';
      list += name_z;
    }
  }
  bool custom12 = !list12.empty();
  *cipher_list = custom12 ? list12 : kDefaultCipherList;
  *ciphersuites = list13.empty() ? kDefaultCiphersuites : list13;
  if (SSL_CTX_set_cipher_list(ctx, cipher_list->c_str()) != 1) {
    *error = "no usable TLS 1.2 cipher suite in '" + *cipher_list + "'";
    return false;
  }
  if (SSL_CTX_set_ciphersuites(ctx, ciphersuites->c_str()) != 1) {
    *error = "no usable TLS 1.3 cipher suite in '" + *ciphersuites + "'";
    return false;
  }
  if (min < TLS1_2_VERSION && !custom12) {
    warnings->push_back(
        "min_tls_version below v1.2 with the default AEAD-only cipher_suites: TLS 1.0/1.1 "
        "clients have no cipher in common; list CBC suites in cipher_suites to serve them");
  }

  std::string group_list;
  for (const std::string& entry : curves) {
    std::string name(trim(entry));
    if (name.empty()) continue;
    if (SSL_CTX_set1_groups_list(ctx, name.c_str()) != 1) {
      ERR_clear_error();
      *error = "unknown ECDH curve '" + name + "'";
      return false;
    }
    if (!group_list.empty()) group_list += ':';
    group_list += name;
  }
  *groups = group_list.empty() ? kDefaultGroups : group_list;
  if (SSL_CTX_set1_groups_list(ctx, groups->c_str()) != 1) {
    *error = "unusable ECDH curves '" + *groups + "': " + drain_errors();
    return false;
  }
  return true;
}

void apply_common_options(SSL_CTX* ctx) {
  // Renegotiation is a CPU amplification vector and nothing we serve needs it.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

// ALPN protocol list in wire format (length-prefixed).
bool alpn_wire(const std::vector<std::string>& protocols, std::string* wire, std::string* error) {
  wire->clear();
  for (const std::string& protocol : protocols) {
    std::string_view name = trim(protocol);
    if (name.empty()) continue;
    if (name.size() > 255) {
      *error = "ALPN protocol name longer than 255 bytes";
      return false;
    }
    wire->push_back(static_cast<char>(name.size()));
    wire->append(name);
  }
  return true;
}

// Server preference: the first configured protocol the client also offers. No overlap means no
// ALPN at all (the client gets HTTP/1.1), as Envoy does, rather than a fatal alert.
int alpn_select(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                unsigned int in_len, void* arg) {
  const auto* wire = static_cast<const std::string*>(arg);
  const auto* ours = reinterpret_cast<const unsigned char*>(wire->data());
  for (size_t i = 0; i < wire->size(); i += 1 + ours[i]) {
    unsigned int len = ours[i];
    for (unsigned int j = 0; j < in_len;) {
      unsigned int offered = in[j];
      if (j + 1 + offered > in_len) break;
      if (offered == len && std::memcmp(in + j + 1, ours + i + 1, len) == 0) {
        *out = in + j + 1;
        *out_len = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      j += 1 + offered;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int ticket_key_callback(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  TlsStream* stream = TlsStream::from(ssl);
  TicketKeys* keys = stream != nullptr ? stream->ticket_keys() : nullptr;
  if (keys == nullptr) return 0;  // no ticket issued / ticket not recognised
  static char kDigest[] = "SHA256";
  TicketKeys::Key key;
  int result = 1;
  if (encrypt == 1) {
    key = keys->current();
    std::memcpy(key_name, key.name.data(), key.name.size());
    if (RAND_bytes(iv, 16) != 1) return -1;
  } else {
    TicketKeys::Lookup found = keys->find(key_name, &key);
    if (found == TicketKeys::Lookup::kNotFound) return 0;
    result = found == TicketKeys::Lookup::kPrevious ? 2 : 1;  // 2: reissue with the current key
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac.data(), key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, kDigest, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  int ok = encrypt == 1
               ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv)
               : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv);
  OPENSSL_cleanse(&key, sizeof(key));
  return ok == 1 ? result : -1;
}

void enable_session_resumption(SSL_CTX* ctx, TicketKeys* keys,
                               const TlsSessionCacheOptions& cache) {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, static_cast<long>(cache.max_sessions));
  SSL_CTX_set_timeout(ctx, static_cast<long>(cache.timeout_s));
  // One TLS 1.3 ticket per handshake: a browser uses one per connection, and each costs an
  // encryption and a record.
  SSL_CTX_set_num_tickets(ctx, 1);
  if (keys != nullptr) SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_callback);
}

int client_context_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int new_client_session(SSL* ssl, SSL_SESSION* session) {
  const auto* context = static_cast<const TlsClientContext*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), client_context_index()));
  TlsStream* stream = TlsStream::from(ssl);
  if (context == nullptr || stream == nullptr) return 0;
  // A copy: OpenSSL marks a connection's own session unresumable when the SSL is freed without
  // close_notify, which is how pooled upstream connections usually end.
  if (SSL_SESSION* copy = SSL_SESSION_dup(session)) context->store_session(stream->sni(), copy);
  return 0;  // OpenSSL keeps its reference
}

}  // namespace

// ---- TicketKeys ----

TicketKeys::TicketKeys() : current_(random_key()) {}

TicketKeys::Key TicketKeys::random_key() {
  Key key;
  if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1 ||
      RAND_bytes(key.aes.data(), static_cast<int>(key.aes.size())) != 1 ||
      RAND_bytes(key.hmac.data(), static_cast<int>(key.hmac.size())) != 1) {
    std::abort();  // no randomness: nothing secure can be done
  }
  return key;
}

void TicketKeys::rotate() {
  Key fresh = random_key();
  std::lock_guard lock(mu_);
  previous_ = current_;
  current_ = fresh;
  ++rotations_;
}

uint64_t TicketKeys::rotations() const {
  std::lock_guard lock(mu_);
  return rotations_;
}

TicketKeys::Key TicketKeys::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

TicketKeys::Lookup TicketKeys::find(const uint8_t* name, Key* out) const {
  std::lock_guard lock(mu_);
  if (std::memcmp(name, current_.name.data(), current_.name.size()) == 0) {
    *out = current_;
    return Lookup::kCurrent;
  }
  if (previous_ && std::memcmp(name, previous_->name.data(), previous_->name.size()) == 0) {
    *out = *previous_;
    return Lookup::kPrevious;
  }
  return Lookup::kNotFound;
}

// ---- TlsServerContext ----

std::shared_ptr<const TlsServerContext> TlsServerContext::create(
    const TlsServerSettings& settings, std::shared_ptr<TicketKeys> ticket_keys,
    std::string* error) {
  std::shared_ptr<TlsServerContext> self(new TlsServerContext());
  self->name_ = settings.name;
  self->ticket_keys_ = std::move(ticket_keys);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    *error = "cannot create an SSL context: " + drain_errors();
    return nullptr;
  }
  self->ctx_ = ctx;
  apply_common_options(ctx);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (!apply_protocol_policy(ctx, settings.min_version, settings.max_version,
                             settings.cipher_suites, settings.ecdh_curves, &self->cipher_list_,
                             &self->ciphersuites_, &self->groups_, &self->warnings_, error)) {
    return nullptr;
  }
  if (settings.cert_chain_pem.empty()) {
    *error = "no certificate";
    return nullptr;
  }
  if (settings.private_key_pem.empty()) {
    *error = "no private key";
    return nullptr;
  }
  if (!use_certificate(ctx, settings.cert_chain_pem, settings.private_key_pem, true,
                       &self->certificate_, &self->warnings_, error)) {
    return nullptr;
  }

  if (!settings.ca_pem.empty()) {
    if (load_ca_bundle(ctx, settings.ca_pem, settings.crl_pem, true, error) < 0) return nullptr;
    X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_CLIENT);
    SSL_CTX_set_verify(ctx,
                       SSL_VERIFY_PEER | (settings.cert_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                                 : SSL_VERIFY_NONE),
                       nullptr);
    self->requests_client_cert_ = true;
  } else if (settings.cert_required) {
    *error = "cert_required needs a CA bundle to verify client certificates";
    return nullptr;
  } else if (!settings.crl_pem.empty()) {
    *error = "a CRL needs a CA bundle";
    return nullptr;
  }

  std::string wire;
  if (!alpn_wire(settings.alpn, &wire, error)) return nullptr;
  self->alpn_wire_ = std::move(wire);
  if (!self->alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(ctx, alpn_select, &self->alpn_wire_);

  // Sessions resume only under the same certificate and client-certificate policy.
  unsigned char sid[32];
  std::string identity = settings.cert_chain_pem;
  identity += '\0';
  identity += settings.ca_pem;
  identity += '\0';
  identity += settings.crl_pem;
  identity += settings.cert_required ? '1' : '0';
  SHA256(reinterpret_cast<const unsigned char*>(identity.data()), identity.size(), sid);
  SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid));
  enable_session_resumption(ctx, self->ticket_keys_.get(), TlsSessionCacheOptions{});
  ERR_clear_error();
  return self;
}

TlsServerContext::~TlsServerContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

bool TlsServerContext::apply_to(SSL* ssl) const {
  SSL_clear_options(ssl, SSL_get_options(ssl));
  SSL_set_options(ssl, SSL_CTX_get_options(ctx_));
  SSL_set_security_level(ssl, SSL_CTX_get_security_level(ctx_));
  if (SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx_)) != 1 ||
      SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(ctx_)) != 1) {
    return false;
  }
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx_), SSL_CTX_get_verify_callback(ctx_));
  SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx_));
  if (X509_VERIFY_PARAM_set1(SSL_get0_param(ssl), SSL_CTX_get0_param(ctx_)) != 1) return false;
  return SSL_set_cipher_list(ssl, cipher_list_.c_str()) == 1 &&
         SSL_set_ciphersuites(ssl, ciphersuites_.c_str()) == 1 &&
         SSL_set1_groups_list(ssl, groups_.c_str()) == 1;
}

// ---- SniSelector ----

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "host:8443" -> "host"; IPv6 literals and names without a numeric port stay as they are.
std::string_view strip_port(std::string_view glob) {
  size_t colon = glob.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == glob.size()) return glob;
  if (glob.find(':') != colon) return glob;
  for (char c : glob.substr(colon + 1)) {
    if (c < '0' || c > '9') return glob;
  }
  return glob.substr(0, colon);
}

// The first host_name of a server_name extension (RFC 6066 3), lower-cased into `out` (256
// bytes), without a trailing dot. false: malformed (-> decode_error).
bool parse_server_name(const unsigned char* p, size_t len, char* out, size_t* out_len, int* alert) {
  *alert = SSL_AD_DECODE_ERROR;
  if (len < 2) return false;
  size_t list_len = (static_cast<size_t>(p[0]) << 8) | p[1];
  if (list_len + 2 != len) return false;
  size_t pos = 2;
  while (pos + 3 <= len) {
    unsigned type = p[pos];
    size_t name_len = (static_cast<size_t>(p[pos + 1]) << 8) | p[pos + 2];
    pos += 3;
    if (pos + name_len > len) return false;
    if (type == 0) {
      if (name_len > 0 && p[pos + name_len - 1] == '.') --name_len;
      if (name_len == 0 || name_len > 255) return false;
      for (size_t i = 0; i < name_len; ++i) {
        unsigned char c = p[pos + i];
        if (c <= 0x20 || c >= 0x7f) {
          *alert = SSL_AD_ILLEGAL_PARAMETER;
          return false;
        }
        out[i] = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      }
      *out_len = name_len;
      return true;
    }
    pos += name_len;
  }
  return pos == len;
}

}  // namespace

std::shared_ptr<const SniSelector> SniSelector::create(
    std::vector<SniEntry> entries, std::shared_ptr<const TlsServerContext> default_context,
    std::shared_ptr<TicketKeys> ticket_keys, std::string* error,
    const TlsSessionCacheOptions& cache) {
  std::shared_ptr<SniSelector> self(new SniSelector());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!entries[i].context) {
      *error = "SNI entry '" + entries[i].hostname + "' has no TLS context";
      return nullptr;
    }
    std::string glob = lower(strip_port(entries[i].hostname));
    auto index = static_cast<uint32_t>(i);
    if (glob.empty()) {
      *error = "SNI entry " + std::to_string(i) + " has an empty hostname";
      return nullptr;
    }
    if (glob == "*") {
      if (!self->star_) self->star_ = index;
    } else if (glob.front() == '*') {
      self->suffixes_.emplace_back(glob.substr(1), index);
    } else if (glob.back() == '*') {
      self->prefixes_.emplace_back(glob.substr(0, glob.size() - 1), index);
    } else {
      self->exact_.emplace_back(std::move(glob), index);
    }
  }
  // Stable: among equal names or equal-length affixes the first entry given wins.
  std::stable_sort(self->exact_.begin(), self->exact_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  auto longer = [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); };
  std::stable_sort(self->suffixes_.begin(), self->suffixes_.end(), longer);
  std::stable_sort(self->prefixes_.begin(), self->prefixes_.end(), longer);
  self->entries_ = std::move(entries);
  self->default_ = std::move(default_context);
  self->ticket_keys_ = std::move(ticket_keys);

  SSL_CTX* base = SSL_CTX_new(TLS_server_method());
  if (base == nullptr) {
    *error = "cannot create an SSL context: " + drain_errors();
    return nullptr;
  }
  self->base_ = base;
  apply_common_options(base);
  SSL_CTX_set_options(base, SSL_OP_CIPHER_SERVER_PREFERENCE);
  static constexpr unsigned char kSid[] = "proxenos-sni";
  SSL_CTX_set_session_id_context(base, kSid, sizeof(kSid) - 1);
  enable_session_resumption(base, self->ticket_keys_.get(), cache);
  SSL_CTX_set_client_hello_cb(base, client_hello_callback, self.get());
  ERR_clear_error();
  return self;
}

SniSelector::~SniSelector() {
  if (base_ != nullptr) SSL_CTX_free(base_);
}

uint32_t SniSelector::match(std::string_view server_name) const {
  if (server_name.empty()) {
    if (default_) return kDefaultEntry;
    return star_ ? *star_ : kNoEntry;
  }
  auto it = std::lower_bound(exact_.begin(), exact_.end(), server_name,
                             [](const auto& entry, std::string_view name) {
                               return std::string_view(entry.first) < name;
                             });
  if (it != exact_.end() && it->first == server_name) return it->second;
  // A wildcard never matches the empty string: "*.b.com" does not match ".b.com".
  for (const auto& [suffix, index] : suffixes_) {
    if (server_name.size() > suffix.size() && server_name.ends_with(suffix)) return index;
  }
  for (const auto& [prefix, index] : prefixes_) {
    if (server_name.size() > prefix.size() && server_name.starts_with(prefix)) return index;
  }
  if (star_) return *star_;
  return default_ ? kDefaultEntry : kNoEntry;
}

const TlsServerContext* SniSelector::context_for(uint32_t entry) const {
  if (entry == kDefaultEntry) return default_.get();
  if (entry < entries_.size()) return entries_[entry].context.get();
  return nullptr;
}

// Runs before OpenSSL looks at anything else in the ClientHello, so the version, cipher, group,
// ALPN, client-certificate and resumption decisions all use the chosen context.
int SniSelector::client_hello_callback(SSL* ssl, int* alert, void* arg) {
  const auto* self = static_cast<const SniSelector*>(arg);
  char name[256];
  size_t name_len = 0;
  const unsigned char* ext = nullptr;
  size_t ext_len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &ext_len) == 1 &&
      !parse_server_name(ext, ext_len, name, &name_len, alert)) {
    return SSL_CLIENT_HELLO_ERROR;
  }
  std::string_view server_name(name, name_len);
  uint32_t entry = self->match(server_name);
  const TlsServerContext* context = self->context_for(entry);
  if (TlsStream* stream = TlsStream::from(ssl))
    stream->on_client_hello(server_name, entry, context);
  if (context == nullptr) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (SSL_set_SSL_CTX(ssl, context->ctx_) == nullptr || !context->apply_to(ssl)) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

// ---- TlsClientContext ----

std::shared_ptr<const TlsClientContext> TlsClientContext::create(const TlsClientSettings& settings,
                                                                 std::string* error) {
  std::shared_ptr<TlsClientContext> self(new TlsClientContext());
  self->name_ = settings.name;
  self->sni_ = settings.sni;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    *error = "cannot create an SSL context: " + drain_errors();
    return nullptr;
  }
  self->ctx_ = ctx;
  apply_common_options(ctx);
  std::string cipher_list, ciphersuites, groups;
  if (!apply_protocol_policy(ctx, settings.min_version, settings.max_version,
                             settings.cipher_suites, settings.ecdh_curves, &cipher_list,
                             &ciphersuites, &groups, &self->warnings_, error)) {
    return nullptr;
  }
  if (!settings.cert_chain_pem.empty() || !settings.private_key_pem.empty()) {
    if (settings.cert_chain_pem.empty()) {
      *error = "client private key without a certificate";
      return nullptr;
    }
    if (settings.private_key_pem.empty()) {
      *error = "client certificate without a private key";
      return nullptr;
    }
    CertificateSummary summary;
    if (!use_certificate(ctx, settings.cert_chain_pem, settings.private_key_pem, false, &summary,
                         &self->warnings_, error)) {
      return nullptr;
    }
  }
  if (!settings.ca_pem.empty()) {
    if (load_ca_bundle(ctx, settings.ca_pem, {}, false, error) < 0) return nullptr;
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    self->verify_ = true;
    self->verify_hostname_ = settings.verify_hostname;
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  std::string wire;
  if (!alpn_wire(settings.alpn, &wire, error)) return nullptr;
  if (!wire.empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned int>(wire.size())) != 0) {
    *error = "ALPN list rejected: " + drain_errors();
    return nullptr;
  }
  SSL_CTX_set_ex_data(ctx, client_context_index(), self.get());
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, new_client_session);
  ERR_clear_error();
  return self;
}

TlsClientContext::~TlsClientContext() {
  if (session_ != nullptr) SSL_SESSION_free(session_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

SSL_SESSION* TlsClientContext::session_for(std::string_view sni) const {
  std::lock_guard lock(session_mu_);
  if (session_ == nullptr || session_sni_ != sni || SSL_SESSION_is_resumable(session_) != 1) {
    return nullptr;
  }
  // Each connection gets its own copy: OpenSSL marks the session of a connection that ends
  // badly unresumable, which must not spoil it for the others.
  return SSL_SESSION_dup(session_);
}

void TlsClientContext::store_session(std::string_view sni, SSL_SESSION* session) const {
  SSL_SESSION* old = nullptr;
  {
    std::lock_guard lock(session_mu_);
    old = session_;
    session_ = session;
    session_sni_.assign(sni);
  }
  if (old != nullptr) SSL_SESSION_free(old);
}

void TlsClientContext::forget_sessions() const {
  SSL_SESSION* old = nullptr;
  {
    std::lock_guard lock(session_mu_);
    old = session_;
    session_ = nullptr;
    session_sni_.clear();
  }
  if (old != nullptr) SSL_SESSION_free(old);
}

}  // namespace proxenos::net
