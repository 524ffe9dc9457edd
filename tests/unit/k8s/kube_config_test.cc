#include "k8s/kube_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace proxenos::k8s {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/k8s-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ServerUrl, ParsesSchemesPortsAndPrefixes) {
  KubeConfig c;
  std::string e;
  ASSERT_TRUE(parse_server_url("https://10.96.0.1", &c, &e)) << e;
  EXPECT_TRUE(c.tls);
  EXPECT_EQ(c.host, "10.96.0.1");
  EXPECT_EQ(c.port, 443);
  EXPECT_EQ(c.path_prefix, "");
  ASSERT_TRUE(parse_server_url("http://localhost:8001/k8s/clusters/c-1/", &c, &e)) << e;
  EXPECT_FALSE(c.tls);
  EXPECT_EQ(c.host, "localhost");
  EXPECT_EQ(c.port, 8001);
  EXPECT_EQ(c.path_prefix, "/k8s/clusters/c-1");
  EXPECT_EQ(c.authority(), "localhost:8001");
  ASSERT_TRUE(parse_server_url("https://[fd00::1]:6443", &c, &e)) << e;
  EXPECT_EQ(c.host, "fd00::1");
  EXPECT_EQ(c.port, 6443);
  EXPECT_EQ(c.authority(), "[fd00::1]:6443");
}

TEST(ServerUrl, RejectsBadUrls) {
  KubeConfig c;
  std::string e;
  EXPECT_FALSE(parse_server_url("10.0.0.1:443", &c, &e));
  EXPECT_NE(e.find("https://"), std::string::npos);
  EXPECT_FALSE(parse_server_url("https://:443", &c, &e));
  EXPECT_FALSE(parse_server_url("https://h:99999", &c, &e));
  EXPECT_FALSE(parse_server_url("https://h:12x", &c, &e));
  EXPECT_FALSE(parse_server_url("https://h/?q=1", &c, &e));
  EXPECT_FALSE(parse_server_url("https://[::1", &c, &e));
}

class InCluster : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
  }
  TempDir dir_;
};

TEST_F(InCluster, NotInAClusterWithoutTheEnvironment) {
  unsetenv("KUBERNETES_SERVICE_HOST");
  std::string e;
  EXPECT_FALSE(in_cluster_config({}, &e));
  EXPECT_EQ(e, "");
}

TEST_F(InCluster, ReadsServiceAccountFiles) {
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  InClusterPaths p{dir_.write("token", "tok-1\n"), dir_.write("ca.crt", "CA PEM"),
                   dir_.write("namespace", "ambassador\n")};
  std::string e;
  auto c = in_cluster_config(p, &e);
  ASSERT_TRUE(c) << e;
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
  EXPECT_EQ(c->host, "fd00::1");
  EXPECT_TRUE(c->tls);
  EXPECT_EQ(c->token, "tok-1");
  EXPECT_EQ(c->token_file, p.token);
  EXPECT_EQ(c->ca_pem, "CA PEM");
  EXPECT_EQ(c->namespace_, "ambassador");
}

TEST_F(InCluster, MissingTokenIsAnError) {
  setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  InClusterPaths p{dir_.path() + "/none", dir_.write("ca.crt", "x"), dir_.path() + "/ns"};
  std::string e;
  EXPECT_FALSE(in_cluster_config(p, &e));
  EXPECT_NE(e.find("/none"), std::string::npos);
}

// base64 of "CADATA", "CERT", "KEY"
constexpr const char* kKubeconfig = R"(
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: prod
  cluster: {server: "https://prod.example:6443", certificate-authority: ca.pem}
- name: local
  cluster:
    server: http://127.0.0.1:8001
    insecure-skip-tls-verify: true
    tls-server-name: kubernetes
    certificate-authority-data: Q0FEQVRB
users:
- name: admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
- name: robot
  user: {token: static-tok, tokenFile: tok.txt}
contexts:
- name: dev
  context: {cluster: local, user: admin, namespace: team-a}
- name: ops
  context: {cluster: prod, user: robot}
- name: broken
  context: {cluster: nowhere, user: robot}
)";

TEST(Kubeconfig, CurrentContextWithInlineData) {
  TempDir dir;
  std::string path = dir.write("config", kKubeconfig);
  std::string e;
  auto c = load_kubeconfig(path, "", &e);
  ASSERT_TRUE(c) << e;
  EXPECT_FALSE(c->tls);
  EXPECT_EQ(c->port, 8001);
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->tls_server_name, "kubernetes");
  EXPECT_EQ(c->ca_pem, "CADATA");
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
  EXPECT_EQ(c->namespace_, "team-a");
  EXPECT_EQ(c->token, "");
}

TEST(Kubeconfig, NamedContextWithFilesRelativeToTheKubeconfig) {
  TempDir dir;
  std::string path = dir.write("config", kKubeconfig);
  dir.write("ca.pem", "FILE CA");
  std::string e;
  auto c = load_kubeconfig(path, "ops", &e);
  ASSERT_TRUE(c) << e;
  EXPECT_TRUE(c->tls);
  EXPECT_EQ(c->host, "prod.example");
  EXPECT_EQ(c->ca_pem, "FILE CA");
  EXPECT_EQ(c->token, "static-tok");
  EXPECT_EQ(c->token_file, dir.path() + "/tok.txt");
}

TEST(Kubeconfig, Errors) {
  TempDir dir;
  std::string path = dir.write("config", kKubeconfig);
  std::string e;
  EXPECT_FALSE(load_kubeconfig(path, "missing", &e));
  EXPECT_NE(e.find("context \"missing\" not found"), std::string::npos) << e;
  EXPECT_FALSE(load_kubeconfig(path, "broken", &e));
  EXPECT_NE(e.find("cluster \"nowhere\""), std::string::npos) << e;
  EXPECT_FALSE(load_kubeconfig(path, "ops", &e));  // ca.pem does not exist here
  EXPECT_NE(e.find("ca.pem"), std::string::npos) << e;
  EXPECT_FALSE(load_kubeconfig(dir.write("bad", "a: [\n"), "", &e));
  EXPECT_FALSE(load_kubeconfig(dir.path() + "/absent", "", &e));
}

TEST(Kubeconfig, DefaultPathFromKubeconfigVariable) {
  TempDir dir;
  std::string second = dir.write("second", "x");
  setenv("KUBECONFIG", (dir.path() + "/nope:" + second).c_str(), 1);
  EXPECT_EQ(default_kubeconfig_path(), second);
  setenv("KUBECONFIG", (dir.path() + "/nope").c_str(), 1);
  EXPECT_EQ(default_kubeconfig_path(), "");
  unsetenv("KUBECONFIG");
}

TEST(TlsSettingsFromConfig, CaInsecureAndSystemBundle) {
  TempDir dir;
  KubeConfig c;
  std::string e;
  ASSERT_TRUE(parse_server_url("https://10.0.0.1:443", &c, &e));
  c.ca_pem = "CA";
  auto s = c.tls_settings(&e);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ca_pem, "CA");
  EXPECT_EQ(s->sni, "10.0.0.1");
  EXPECT_TRUE(s->verify_hostname);
  c.tls_server_name = "kubernetes.default.svc";
  c.insecure_skip_tls_verify = true;
  s = c.tls_settings(&e);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ca_pem, "");  // net/tls: no CA = no verification
  EXPECT_EQ(s->sni, "kubernetes.default.svc");
  c.insecure_skip_tls_verify = false;
  c.ca_pem.clear();
  s = c.tls_settings(&e, dir.write("bundle", "SYSTEM"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ca_pem, "SYSTEM");
  EXPECT_FALSE(c.tls_settings(&e, dir.path() + "/none"));
}

TEST(Tokens, StaticToken) {
  TokenSource t("abc", "");
  EXPECT_EQ(t.get(0), "abc");
  EXPECT_EQ(t.reads(), 0u);
}

TEST(Tokens, FileReReadOnChangeAgeAndInvalidate) {
  TempDir dir;
  std::string file = dir.write("token", "one\n");
  TokenSource t("", file, 60);
  EXPECT_EQ(t.get(100), "one");
  EXPECT_EQ(t.get(101), "one");
  EXPECT_EQ(t.reads(), 1u);  // unchanged file, young token: no read
  // Rotation: the kubelet swaps the file (new inode, new size).
  std::string tmp = dir.write("token.new", "second\n");
  std::filesystem::rename(tmp, file);
  EXPECT_EQ(t.get(102), "second");
  EXPECT_EQ(t.reads(), 2u);
  EXPECT_EQ(t.get(170), "second");  // older than max age: read again
  EXPECT_EQ(t.reads(), 3u);
  t.invalidate();  // after a 401
  EXPECT_EQ(t.get(171), "second");
  EXPECT_EQ(t.reads(), 4u);
  // A vanished file keeps the last good token.
  std::filesystem::remove(file);
  t.invalidate();
  EXPECT_EQ(t.get(172), "second");
  EXPECT_NE(t.last_error(), "");
}

}  // namespace
}  // namespace proxenos::k8s
