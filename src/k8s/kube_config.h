#pragma once
// Where the Kubernetes API is and how to authenticate to it: in-cluster (service-account files)
// or a kubeconfig file, as client-go resolves them (../shared/spec/kubernetes-api.md §2).
// Everything here runs on the control thread; file reads are small and rare.

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

#include "net/tls_settings.h"

namespace proxenos::k8s {

// The service-account files a pod gets (paths overridable for tests).
struct InClusterPaths {
  std::string token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespace_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
};

struct KubeConfig {
  std::string server;  // as configured: "https://10.96.0.1:443", "http://127.0.0.1:8001/prefix"
  bool tls = true;     // https://
  std::string host;    // without brackets for IPv6
  uint16_t port = 443;
  std::string path_prefix;  // "" or "/prefix" (no trailing slash), put before every API path

  std::string ca_pem;  // empty with tls and !insecure: the system bundle is used
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;  // overrides the name sent and verified
  std::string client_cert_pem;  // mTLS client certificate (kubeconfig users)
  std::string client_key_pem;

  std::string token;       // static bearer token
  std::string token_file;  // re-read on rotation; wins over `token` when set
  std::string namespace_;  // the context's or the pod's namespace ("" = not given)

  // Settings for net::TlsClientContext (only meaningful when `tls`). `system_ca_file` is read
  // when neither a CA nor insecure is configured; `error` is set if that fails.
  std::optional<net::TlsClientSettings> tls_settings(
      std::string* error, const std::string& system_ca_file = kSystemCaFile) const;
  // "host:port" / "[::1]:port" for the Host header.
  std::string authority() const;

  static constexpr const char* kSystemCaFile = "/etc/ssl/certs/ca-certificates.crt";
};

// Splits "https://host:port/prefix" into the fields of `out`. False with `error` for anything
// else (no scheme, bad port, query or fragment).
bool parse_server_url(const std::string& url, KubeConfig* out, std::string* error);

// In-cluster: needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (nullopt without an
// error when either is unset: not in a cluster), the token file (read now to fail early, then
// re-read by TokenSource) and the CA file.
std::optional<KubeConfig> in_cluster_config(const InClusterPaths& paths, std::string* error);

// Reads a kubeconfig file: the `context` named (or current-context), its cluster and user.
// Relative file paths are resolved from the kubeconfig's folder; *-data fields are base64.
std::optional<KubeConfig> load_kubeconfig(const std::string& path, const std::string& context,
                                          std::string* error);

// $KUBECONFIG (first existing file of a ':' list) or ~/.kube/config; "" when none exists.
std::string default_kubeconfig_path();

// The bearer token to send. A token file is re-read when its modification time, size or inode
// changes (the kubelet swaps a symlinked ..data folder), at least every `max_age_s` (client-go
// re-reads each minute), and right after a 401 (invalidate()).
class TokenSource {
 public:
  TokenSource() = default;
  TokenSource(std::string static_token, std::string token_file, int64_t max_age_s = 60);
  explicit TokenSource(const KubeConfig& config) : TokenSource(config.token, config.token_file) {}

  // The token ("" when none is configured or the file cannot be read; the last good one is kept
  // when a re-read fails). `now_s`: seconds on any monotonic clock.
  const std::string& get(int64_t now_s);
  void invalidate() { force_ = true; }
  uint64_t reads() const { return reads_; }
  const std::string& last_error() const { return error_; }

 private:
  std::string token_;
  std::string file_;
  int64_t max_age_s_ = 60;
  bool force_ = true;
  int64_t read_at_s_ = 0;
  timespec mtime_{};
  int64_t size_ = -1;
  uint64_t inode_ = 0;
  uint64_t reads_ = 0;
  std::string error_;
};

}  // namespace proxenos::k8s
