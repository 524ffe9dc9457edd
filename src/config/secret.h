#pragma once
// Kubernetes Secrets as TLS material. A Secret is decoded only when a Host, TLSContext or
// TCPMapping refers to it: clusters hold many Secrets the gateway has no business judging. Key
// material never appears in a diagnostic; messages name the Secret and the data key only.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.h"
#include "config/resource.h"

namespace proxenos::config {

// Standard base64 (RFC 4648 §4) as Kubernetes stores Secret data: whitespace (line breaks of
// block scalars) is ignored and padding is optional. False on any other character.
bool base64_decode(std::string_view in, std::string* out);

enum class PemKind : uint8_t { kCertificate, kPrivateKey, kCrl };

// Checks that `pem` holds what `kind` needs: one or more well-formed CERTIFICATE blocks, exactly
// one unencrypted private key, or X509 CRL blocks. Full parsing is left to net/tls; this catches
// the usual mistakes (wrong file, data encoded twice, encrypted key, truncated block). Returns ""
// when fine, else a message that never quotes the content.
std::string check_pem(std::string_view pem, PemKind kind);

// Reads a certificate/key file named by a resource, at most 8 MiB. A relative path is taken
// relative to `base_dir` (the folder of the file the resource came from) when it is not empty.
bool read_pem_file(const std::string& path, const std::string& base_dir, std::string* out,
                   std::string* error);

// A decoded Secret: `data` (base64) and `stringData` (plain, winning on equal keys) merged.
struct SecretData {
  std::string source;  // "Secret/ns/name"
  std::string name;
  std::string namespace_;
  std::string type;  // "kubernetes.io/tls", "Opaque", ... ("" reads as Opaque)
  Origin origin;
  std::map<std::string, std::string> values;

  const std::string* get(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? nullptr : &it->second;
  }
  // Types that may carry TLS material here: kubernetes.io/tls and Opaque.
  bool tls_capable() const {
    return type.empty() || type == "Opaque" || type == "kubernetes.io/tls";
  }
};

class SecretIndex {
 public:
  explicit SecretIndex(Diagnostics* out) : out_(out) {}

  void add(const Resource* secret);
  bool exists(const std::string& namespace_, const std::string& name) const;
  // The namespaces holding a Secret called `name` (for hints in errors).
  std::vector<std::string> namespaces_with(const std::string& name) const;

  // The decoded Secret, or null: `*invalid` tells a Secret that exists but cannot be used (its
  // errors are reported on it, once) from one that does not exist.
  const SecretData* get(const std::string& namespace_, const std::string& name, bool* invalid);

 private:
  struct Entry {
    const Resource* resource = nullptr;
    bool decoded = false;
    std::unique_ptr<SecretData> data;  // null after decoding when invalid
  };
  // Null (with the errors reported on the Secret) when unusable.
  std::unique_ptr<SecretData> decode(const Resource& secret);

  Diagnostics* out_;
  std::map<std::string, Entry> entries_;  // "ns/name"
};

}  // namespace proxenos::config
