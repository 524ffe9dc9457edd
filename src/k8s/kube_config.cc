#include "k8s/kube_config.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/secret.h"

namespace proxenos::k8s {

namespace {

constexpr size_t kMaxFileBytes = 8 * 1024 * 1024;

bool read_file(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > kMaxFileBytes) {
    *error = path + " is too large";
    return false;
  }
  *out = ss.str();
  return true;
}

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string scalar(const YAML::Node& map, const char* key) {
  if (!map || !map.IsMap()) return "";
  YAML::Node v = map[key];
  return v && v.IsScalar() ? v.Scalar() : "";
}

// The `{name, <what>: {...}}` entry of a kubeconfig list.
YAML::Node find_named(const YAML::Node& list, const std::string& name, const char* what) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const YAML::Node& entry : list) {
    if (entry.IsMap() && scalar(entry, "name") == name) return entry[what];
  }
  return YAML::Node();
}

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

// `data_key` (base64) wins over `file_key` (a path), as in client-go.
bool read_data_or_file(const YAML::Node& map, const char* data_key, const char* file_key,
                       const std::string& base_dir, std::string* out, std::string* error) {
  std::string data = scalar(map, data_key);
  if (!data.empty()) {
    if (!config::base64_decode(data, out)) {
      *error = std::string(data_key) + ": not valid base64";
      return false;
    }
    return true;
  }
  std::string file = scalar(map, file_key);
  if (file.empty()) return true;
  return read_file(resolve(file, base_dir), out, error);
}

}  // namespace

bool parse_server_url(const std::string& url, KubeConfig* out, std::string* error) {
  std::string rest;
  if (url.starts_with("https://")) {
    out->tls = true;
    out->port = 443;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    out->tls = false;
    out->port = 80;
    rest = url.substr(7);
  } else {
    *error = "server URL must start with https:// or http://: " + url;
    return false;
  }
  if (rest.find_first_of("?#") != std::string::npos) {
    *error = "server URL must not have a query or fragment: " + url;
    return false;
  }
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  std::string host = authority;
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) {
      *error = "unbalanced [ in server URL: " + url;
      return false;
    }
    host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        *error = "bad server URL: " + url;
        return false;
      }
      port = after.substr(1);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) {
    *error = "server URL has no host: " + url;
    return false;
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
      *error = "bad port in server URL: " + url;
      return false;
    }
    unsigned long p = std::stoul(port);
    if (p == 0 || p > 65535) {
      *error = "bad port in server URL: " + url;
      return false;
    }
    out->port = static_cast<uint16_t>(p);
  }
  out->server = url;
  out->host = host;
  out->path_prefix = prefix;
  return true;
}

std::string KubeConfig::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::optional<net::TlsClientSettings> KubeConfig::tls_settings(
    std::string* error, const std::string& system_ca_file) const {
  net::TlsClientSettings s;
  s.name = "kubernetes-api";
  s.sni = tls_server_name.empty() ? host : tls_server_name;
  s.alpn = {"http/1.1"};
  s.cert_chain_pem = client_cert_pem;
  s.private_key_pem = client_key_pem;
  if (!insecure_skip_tls_verify) {
    s.ca_pem = ca_pem;
    // An empty CA would mean "do not verify" to net/tls: use the system's roots instead.
    if (s.ca_pem.empty() && !read_file(system_ca_file, &s.ca_pem, error)) return std::nullopt;
    s.verify_hostname = true;
  }
  return s;
}

std::optional<KubeConfig> in_cluster_config(const InClusterPaths& paths, std::string* error) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') return std::nullopt;
  std::string h = host;
  std::string url =
      "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  KubeConfig c;
  if (!parse_server_url(url, &c, error)) return std::nullopt;
  std::string token;
  if (!read_file(paths.token, &token, error)) return std::nullopt;
  c.token_file = paths.token;
  c.token = trim(token);
  if (!read_file(paths.ca, &c.ca_pem, error)) return std::nullopt;
  std::string ns;
  std::string ignored;
  if (read_file(paths.namespace_file, &ns, &ignored)) c.namespace_ = trim(ns);
  return c;
}

std::optional<KubeConfig> load_kubeconfig(const std::string& path, const std::string& context,
                                          std::string* error) {
  std::string text;
  if (!read_file(path, &text, error)) return std::nullopt;
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    *error = path + ": invalid YAML: " + e.msg;
    return std::nullopt;
  }
  if (!doc.IsMap()) {
    *error = path + ": not a kubeconfig";
    return std::nullopt;
  }
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  std::string context_name = context.empty() ? scalar(doc, "current-context") : context;
  if (context_name.empty()) {
    *error = path + ": no current-context";
    return std::nullopt;
  }
  YAML::Node ctx = find_named(doc["contexts"], context_name, "context");
  if (!ctx || !ctx.IsMap()) {
    *error = path + ": context \"" + context_name + "\" not found";
    return std::nullopt;
  }
  std::string cluster_name = scalar(ctx, "cluster");
  YAML::Node cluster = find_named(doc["clusters"], cluster_name, "cluster");
  if (!cluster || !cluster.IsMap()) {
    *error = path + ": cluster \"" + cluster_name + "\" not found";
    return std::nullopt;
  }
  KubeConfig c;
  std::string server = scalar(cluster, "server");
  std::string url_error;
  if (!parse_server_url(server, &c, &url_error)) {
    *error = path + ": " + url_error;
    return std::nullopt;
  }
  c.namespace_ = scalar(ctx, "namespace");
  c.tls_server_name = scalar(cluster, "tls-server-name");
  c.insecure_skip_tls_verify = scalar(cluster, "insecure-skip-tls-verify") == "true";
  std::string e;
  if (!read_data_or_file(cluster, "certificate-authority-data", "certificate-authority", base_dir,
                         &c.ca_pem, &e)) {
    *error = path + ": cluster \"" + cluster_name + "\": " + e;
    return std::nullopt;
  }
  std::string user_name = scalar(ctx, "user");
  if (!user_name.empty()) {
    YAML::Node user = find_named(doc["users"], user_name, "user");
    if (!user || !user.IsMap()) {
      *error = path + ": user \"" + user_name + "\" not found";
      return std::nullopt;
    }
    c.token = scalar(user, "token");
    std::string token_file = scalar(user, "tokenFile");
    if (!token_file.empty()) c.token_file = resolve(token_file, base_dir);
    if (!read_data_or_file(user, "client-certificate-data", "client-certificate", base_dir,
                           &c.client_cert_pem, &e) ||
        !read_data_or_file(user, "client-key-data", "client-key", base_dir, &c.client_key_pem,
                           &e)) {
      *error = path + ": user \"" + user_name + "\": " + e;
      return std::nullopt;
    }
    if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
      *error = path + ": user \"" + user_name + "\": a client certificate needs its key";
      return std::nullopt;
    }
  }
  return c;
}

std::string default_kubeconfig_path() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t colon = list.find(':', start);
      std::string p = list.substr(start, colon == std::string::npos ? colon : colon - start);
      if (!p.empty() && fs::is_regular_file(p, ec)) return p;
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    return "";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    std::string p = std::string(home) + "/.kube/config";
    if (fs::is_regular_file(p, ec)) return p;
  }
  return "";
}

TokenSource::TokenSource(std::string static_token, std::string token_file, int64_t max_age_s)
    : token_(std::move(static_token)), file_(std::move(token_file)), max_age_s_(max_age_s) {}

const std::string& TokenSource::get(int64_t now_s) {
  if (file_.empty()) return token_;
  struct stat st {};
  bool changed = false;
  if (::stat(file_.c_str(), &st) == 0) {
    changed = st.st_mtim.tv_sec != mtime_.tv_sec || st.st_mtim.tv_nsec != mtime_.tv_nsec ||
              st.st_size != size_ || static_cast<uint64_t>(st.st_ino) != inode_;
  }
  if (!force_ && !changed && now_s - read_at_s_ < max_age_s_) return token_;
  std::string text;
  if (read_file(file_, &text, &error_)) {
    std::string t = trim(text);
    if (!t.empty()) {
      token_ = std::move(t);
      error_.clear();
    } else {
      error_ = file_ + " is empty";
    }
    mtime_ = st.st_mtim;
    size_ = st.st_size;
    inode_ = st.st_ino;
    ++reads_;
  }
  force_ = false;
  read_at_s_ = now_s;
  return token_;
}

}  // namespace proxenos::k8s
