#pragma once
// TLSContext, and a Host's inline `spec.tls` (Emissary's TLSConfig: the same fields): where the
// certificate comes from, client certificates (mTLS), ALPN, versions, ciphers. TlsResolver turns
// them, with Secrets and files, into the plain net::TlsServerSettings / TlsClientSettings the data
// plane uses, reporting every problem on the resource whose field caused it.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/decode.h"
#include "config/diagnostic.h"
#include "config/resource.h"
#include "config/secret.h"
#include "net/tls_settings.h"

namespace proxenos::config {

// How a Secret name is read (Emissary's secret namespacing, irtlscontext.py resolve_secret).
enum class SecretNaming : uint8_t {
  kSplitFirst,    // TLSContext: `name.namespace` (last dot); a Secret literally named so also works
  kLiteralOnly,   // TLSContext with secret_namespacing: false
  kLiteralFirst,  // Host tlsSecret: a Kubernetes SecretReference; `name.namespace` as a fallback
};

struct SecretRef {
  std::string name;
  std::string namespace_;  // explicit (Host tlsSecret.namespace); "" = the referrer's
  SecretNaming naming = SecretNaming::kSplitFirst;
  std::string field;  // "spec.secret", for diagnostics
  Origin at;
};

struct FileRef {
  std::string path;
  std::string field;
  Origin at;
};

struct TlsContextSpec {
  std::string name;
  std::string namespace_;
  std::string source;  // "TLSContext/ns/name", or the Host's source for its inline spec.tls
  Origin origin;
  std::string base_dir;  // relative file paths are read from here (the resource's folder)
  bool host_inline = false;

  std::vector<std::string> hosts;  // SNI names it terminates for (TCPMapping host matching)
  std::optional<SecretRef> secret;
  std::optional<FileRef> cert_chain_file, private_key_file;
  std::optional<SecretRef> ca_secret;
  std::optional<FileRef> cacert_chain_file;
  std::optional<SecretRef> crl_secret;
  std::optional<std::vector<std::string>> alpn;  // alpn_protocols, trimmed; nullopt = default
  std::optional<bool> cert_required;
  std::optional<net::TlsVersion> min_version, max_version;
  std::vector<std::string> cipher_suites;
  std::vector<std::string> ecdh_curves;
  std::optional<std::string> sni;  // sent when originating
  bool secret_namespacing = true;

  bool has_certificate() const { return secret.has_value() || cert_chain_file.has_value(); }
};

std::optional<TlsContextSpec> decode_tls_context(const Resource& resource,
                                                 Diagnostics* diagnostics);

// A Host's `spec.tls` (the map reader is positioned on it). Emissary's camelCase spellings
// (alpnProtocols, certChainFile, ...) are accepted too.
TlsContextSpec decode_host_inline_tls(MapReader& tls, const Resource& host);

// A Host's TLS fields as written.
struct HostTlsSpec {
  std::optional<SecretRef> tls_secret;  // spec.tlsSecret
  std::optional<std::string> context;   // spec.tlsContext.name
  Origin context_at;
  std::optional<TlsContextSpec> inline_tls;  // spec.tls
  bool any() const { return tls_secret || context || inline_tls; }
};

// The PEM material a context names, read once.
struct TlsMaterial {
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;
  std::string crl_pem;
  std::optional<bool> cert_required;  // a `cert_required` key in the CA Secret (Emissary)
  std::string cert_from;              // "Secret ns/name" or "file PATH", for messages
};

// Termination settings and whether ALPN was configured (a TCPMapping terminating TLS offers no
// ALPN unless it was).
struct ServerTls {
  net::TlsServerSettings settings;
  bool alpn_explicit = false;
};

enum class TlsPurpose : uint8_t { kHttp, kTcp };

class TlsResolver {
 public:
  explicit TlsResolver(Diagnostics* out) : out_(out), secrets_(out) {}

  void add_secret(const Resource* secret) { secrets_.add(secret); }
  // Contexts stay owned by the caller and must outlive the resolver.
  void add_context(const TlsContextSpec* context);

  // By name as Emissary keys them: the referrer's namespace first, else the only TLSContext of
  // that name. Null with `error` set when there is none, or several elsewhere.
  const TlsContextSpec* find_context(const std::string& name, const std::string& namespace_,
                                     std::string* error) const;
  // The TLSContexts whose `hosts` list `hostname` (exactly, ignoring case), in input order.
  std::vector<const TlsContextSpec*> contexts_for_host(const std::string& hostname) const;

  // The context's certificate, CA and CRL, read once; null when any is unusable (the errors are
  // reported on the context once).
  const TlsMaterial* material(const TlsContextSpec& context);

  // A Host's termination settings; nullopt, with errors on the Host, when it cannot terminate
  // TLS. `host_source` is "Host/ns/name".
  std::optional<ServerTls> host_tls(const std::string& host_source, const std::string& host_name,
                                    const std::string& host_namespace, const std::string& hostname,
                                    const Origin& host_origin, const HostTlsSpec& spec);

  // Termination with a TLSContext's own certificate (a TCPMapping `host` it lists).
  std::optional<ServerTls> context_server_tls(const TlsContextSpec& context);

  // Origination towards `service_host`, with `context` (already found valid) or none (plain
  // https://). For HTTP, ALPN offers the protocol the cluster speaks (`http2`); for raw TCP, the
  // context's alpn_protocols or nothing.
  net::TlsClientSettings client_tls(const TlsContextSpec* context, const std::string& service_host,
                                    TlsPurpose purpose, bool http2, const std::string& referrer,
                                    const Origin& at);

  void mark_used(const TlsContextSpec& context) { used_.insert(&context); }
  bool used(const TlsContextSpec& context) const { return used_.count(&context) != 0; }

 private:
  void report(Severity severity, const std::string& resource, const Origin& at,
              const std::string& field, std::string message);
  // Resolves a Secret reference; null with an error on `resource` when missing or unusable.
  const SecretData* secret(const SecretRef& ref, const std::string& default_namespace,
                           const std::string& resource);
  bool read_file(const FileRef& ref, const std::string& base_dir, PemKind kind,
                 const std::string& resource, std::string* out);
  bool certificate_from_secret(const SecretRef& ref, const std::string& default_namespace,
                               const std::string& resource, TlsMaterial* out);
  std::optional<TlsMaterial> read_material(const TlsContextSpec& context);
  void apply_policy(const TlsContextSpec* context, const TlsMaterial* material,
                    net::TlsServerSettings* settings, bool* alpn_explicit);

  Diagnostics* out_;
  SecretIndex secrets_;
  std::multimap<std::string, const TlsContextSpec*> contexts_;  // by name
  std::vector<const TlsContextSpec*> ordered_;
  std::map<const TlsContextSpec*, std::optional<TlsMaterial>> materials_;
  std::set<const TlsContextSpec*> used_;
};

}  // namespace proxenos::config
