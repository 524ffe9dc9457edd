#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include <unistd.h>

#include "config/resource_store.h"
#include "config/secret.h"
#include "test_util.h"
#include "tls_test_data.h"

namespace proxenos::config {
namespace {

using testing::base64;
using testing::compile_text;
using testing::Compiled;
using testing::doc;
using testing::errors;
using testing::kCertPem;
using testing::kCrlPem;
using testing::kKeyPem;
using testing::listener;
using testing::secret_doc;
using testing::tls_secret;

// Every test's diagnostics are also checked for key material.
void expect_no_key_material(const Compiled& c) {
  for (const std::string& d : testing::all_diags(c)) {
    EXPECT_EQ(d.find(testing::kKeyFragment), std::string::npos) << d;
  }
}

bool has_diag(const Compiled& c, Severity severity, const std::string& resource,
              const std::string& field, const std::string& text) {
  for (const Diagnostics* ds : {&c.loaded.diagnostics, &c.result.diagnostics}) {
    for (const Diagnostic& d : *ds) {
      if (d.severity == severity && d.resource == resource && d.field == field &&
          d.message.find(text) != std::string::npos) {
        return true;
      }
    }
  }
  return false;
}

bool has_note(const Compiled& c, const std::string& text) {
  return std::any_of(c.result.notes.begin(), c.result.notes.end(),
                     [&](const std::string& n) { return n.find(text) != std::string::npos; });
}

const net::TlsServerSettings* sni_tls(const Compiled& c, uint16_t port, const std::string& name) {
  const ListenerSnapshot* l = listener(c.snap(), port);
  if (l == nullptr) return nullptr;
  for (const SniCertificate& s : l->sni) {
    if (s.hostname == name) return &c.snap().tls.at(s.tls);
  }
  return nullptr;
}

std::vector<std::string> sni_names(const Compiled& c, uint16_t port) {
  std::vector<std::string> out;
  if (const ListenerSnapshot* l = listener(c.snap(), port)) {
    for (const SniCertificate& s : l->sni) out.push_back(s.hostname);
  }
  return out;
}

const upstream::ClusterSpec* cluster_named(const Compiled& c, const std::string& prefix) {
  for (const upstream::ClusterSpec& s : c.snap().clusters) {
    if (s.name.starts_with(prefix)) return &s;
  }
  return nullptr;
}

const std::string kHttpsListener =
    doc("Listener", "https",
        "{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}");

// --- Secrets: base64 and PEM checks ----------------------------------------------------------

TEST(SecretTest, Base64DecodesKubernetesData) {
  std::string out;
  EXPECT_TRUE(base64_decode("aGVsbG8=", &out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(base64_decode("aGVsbG8", &out));  // unpadded
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(base64_decode("aGVs\n  bG8h\n", &out));  // line breaks of a block scalar
  EXPECT_EQ(out, "hello!");
  EXPECT_TRUE(base64_decode(base64(kCertPem), &out));
  EXPECT_EQ(out, kCertPem);
  EXPECT_FALSE(base64_decode("aGVs*G8=", &out));
  EXPECT_FALSE(base64_decode("aGVsbG8=x", &out));  // data after padding
  EXPECT_FALSE(base64_decode("a", &out));          // not a whole byte
  EXPECT_FALSE(base64_decode("aGVsbG8===", &out));
}

TEST(SecretTest, PemChecksCatchTheUsualMistakes) {
  EXPECT_EQ(check_pem(kCertPem, PemKind::kCertificate), "");
  EXPECT_EQ(check_pem(std::string(kCertPem) + kCertPem, PemKind::kCertificate), "");  // chain
  EXPECT_EQ(check_pem(kKeyPem, PemKind::kPrivateKey), "");
  EXPECT_EQ(check_pem(kCrlPem, PemKind::kCrl), "");
  EXPECT_NE(check_pem(kKeyPem, PemKind::kCertificate).find("no CERTIFICATE block"),
            std::string::npos);
  EXPECT_NE(check_pem("hello", PemKind::kCertificate).find("holds no PEM data"), std::string::npos);
  EXPECT_NE(check_pem(base64(kCertPem), PemKind::kCertificate).find("encoded twice"),
            std::string::npos);
  std::string truncated(kCertPem);
  truncated.resize(truncated.size() / 2);
  EXPECT_NE(check_pem(truncated, PemKind::kCertificate).find("without its END line"),
            std::string::npos);
  std::string damaged(kCertPem);
  damaged.replace(damaged.find("MIIB"), 4, "!!!!");
  EXPECT_NE(check_pem(damaged, PemKind::kCertificate).find("damaged"), std::string::npos);
  EXPECT_NE(check_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE "
                      "KEY-----\n",
                      PemKind::kPrivateKey)
                .find("encrypted"),
            std::string::npos);
  EXPECT_NE(check_pem(std::string(kKeyPem) + kKeyPem, PemKind::kPrivateKey).find("exactly one"),
            std::string::npos);
}

// --- Host TLS -------------------------------------------------------------------------------

TEST(HostTlsTest, TlsSecretTerminatesOnTheDefaultHttpsListener) {
  Compiled c = compile_text(
      tls_secret("example-cert") +
      doc("Host", "example", "{hostname: example.com, tlsSecret: {name: example-cert}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  expect_no_key_material(c);
  // No Listeners: the default 8443 (HTTPS) gets the certificate, 8080 (HTTP) none.
  EXPECT_EQ(sni_names(c, 8443), std::vector<std::string>{"example.com"});
  EXPECT_TRUE(sni_names(c, 8080).empty());
  const ListenerSnapshot* l = listener(c.snap(), 8443);
  ASSERT_NE(l, nullptr);
  ASSERT_TRUE(l->default_tls.has_value());
  const net::TlsServerSettings& s = c.snap().tls.at(*l->default_tls);
  EXPECT_EQ(s.name, "Host/default/example");
  EXPECT_EQ(s.cert_chain_pem, kCertPem);
  EXPECT_EQ(s.private_key_pem, kKeyPem);
  EXPECT_EQ(s.alpn, (std::vector<std::string>{"h2", "http/1.1"}));  // Proxenos default
  EXPECT_EQ(s.min_version, net::TlsVersion::k1_2);
  EXPECT_EQ(s.max_version, net::TlsVersion::kDefault);
  EXPECT_TRUE(s.ca_pem.empty());
  EXPECT_FALSE(s.cert_required);
}

TEST(HostTlsTest, SniOrderExactThenLongerSuffixThenWildcardWhichIsTheDefault) {
  std::string yaml = kHttpsListener + tls_secret("cert");
  for (const char* name : {"*", "*.example.com", "a.example.com", "*.b.example.com", "z.org"}) {
    std::string n = std::string(name) == "*" ? "star" : std::string(name);
    std::replace(n.begin(), n.end(), '*', 'w');
    yaml += doc("Host", n, std::string("{hostname: '") + name + "', tlsSecret: {name: cert}}");
  }
  // A Host without TLS gets no certificate entry.
  yaml += doc("Host", "plain", "{hostname: plain.example.com}");
  Compiled c = compile_text(yaml);
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  EXPECT_EQ(sni_names(c, 8443),
            (std::vector<std::string>{"a.example.com", "z.org", "*.b.example.com", "*.example.com",
                                      "*"}));
  const ListenerSnapshot* l = listener(c.snap(), 8443);
  ASSERT_TRUE(l->default_tls.has_value());
  EXPECT_EQ(*l->default_tls, l->sni.back().tls);
  // Equal settings share one Snapshot::tls entry.
  EXPECT_EQ(c.snap().tls.size(), 1u);
}

TEST(HostTlsTest, DefaultIsTheFirstCertificateWithoutAWildcardHost) {
  Compiled c = compile_text(kHttpsListener + tls_secret("cert") +
                            doc("Host", "b", "{hostname: '*.b.com', tlsSecret: {name: cert}}") +
                            doc("Host", "a", "{hostname: 'a.com:8443', tlsSecret: {name: cert}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  // The port of a Host's hostname is not part of SNI.
  EXPECT_EQ(sni_names(c, 8443), (std::vector<std::string>{"a.com", "*.b.com"}));
  const ListenerSnapshot* l = listener(c.snap(), 8443);
  EXPECT_EQ(l->default_tls, l->sni.front().tls);
}

TEST(HostTlsTest, OnlyHostsBoundToTheListenerAndOnlyTlsStacks) {
  Compiled c = compile_text(
      doc("Listener", "https",
          "{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: "
          "SELF}}}") +
      doc("Listener", "http",
          "{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: "
          "ALL}}}") +
      tls_secret("cert") + tls_secret("cert", "other") +
      doc("Host", "mine", "{hostname: mine.com, tlsSecret: {name: cert}}") +
      doc("Host", "theirs", "{hostname: theirs.com, tlsSecret: {name: cert}}", "other"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  EXPECT_EQ(sni_names(c, 8443), std::vector<std::string>{"mine.com"});
  EXPECT_TRUE(sni_names(c, 8080).empty());
}

TEST(HostTlsTest, MissingSecretDropsOnlyThatHost) {
  Compiled c = compile_text(kHttpsListener + tls_secret("good") +
                            doc("Host", "ok", "{hostname: ok.com, tlsSecret: {name: good}}") +
                            doc("Host", "bad", "{hostname: bad.com, tlsSecret: {name: nope}}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/bad", "spec.tlsSecret",
                       "Secret nope not found in namespace default"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_note(c, "Host/default/bad: not served"));
  EXPECT_EQ(sni_names(c, 8443), std::vector<std::string>{"ok.com"});
  EXPECT_EQ(testing::vhost(c.snap(), 8443, "bad.com"), nullptr);
  EXPECT_NE(testing::vhost(c.snap(), 8443, "ok.com"), nullptr);
  // The error line points at the field.
  for (const std::string& e : errors(c)) EXPECT_NE(e.find("test.yaml:"), std::string::npos) << e;
}

TEST(HostTlsTest, EmptySecretNameMeansNoTls) {
  Compiled c =
      compile_text(kHttpsListener + doc("Host", "h", "{hostname: h.com, tlsSecret: {name: ''}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kWarning, "Host/default/h", "spec.tlsSecret.name",
                       "does not terminate TLS"));
  EXPECT_NE(testing::vhost(c.snap(), 8443, "h.com"), nullptr);  // still served in cleartext
  EXPECT_TRUE(sni_names(c, 8443).empty());
}

TEST(HostTlsTest, MissingSecretHintsAtTheNamespaceItLivesIn) {
  Compiled c = compile_text(kHttpsListener + tls_secret("cert", "certs") +
                            doc("Host", "h", "{hostname: h.com, tlsSecret: {name: cert}}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/h", "spec.tlsSecret",
                       "exists in namespace certs"))
      << testing::dump(c.result.diagnostics);
}

TEST(HostTlsTest, SecretNamespaceAndDottedNames) {
  Compiled c = compile_text(
      kHttpsListener + tls_secret("cert", "certs") + tls_secret("www.example.com") +
      tls_secret("other") + tls_secret("split", "ns2") +
      doc("Host", "explicit", "{hostname: a.com, tlsSecret: {name: cert, namespace: certs}}") +
      // Secret names may contain dots: the literal name wins for a Host.
      doc("Host", "dotted", "{hostname: www.example.com, tlsSecret: {name: www.example.com}}") +
      // ...and `name.namespace` still works when no Secret has the literal name.
      doc("Host", "compat", "{hostname: c.com, tlsSecret: {name: split.ns2}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  EXPECT_EQ(sni_names(c, 8443).size(), 3u);
}

TEST(HostTlsTest, BrokenSecretsAreReportedOnTheSecretAndTheHost) {
  Compiled c = compile_text(
      kHttpsListener +
      secret_doc("badb64", "kubernetes.io/tls",
                 "  tls.crt: '***'\n  tls.key: " + base64(kKeyPem) + "\n") +
      secret_doc("nokey", "kubernetes.io/tls", "  tls.crt: " + base64(kCertPem) + "\n") +
      secret_doc("opaque", "Opaque", "  tls.crt: " + base64(kCertPem) + "\n") +
      secret_doc("docker", "kubernetes.io/dockerconfigjson", "  .dockerconfigjson: e30=\n") +
      secret_doc("swapped", "kubernetes.io/tls",
                 "  tls.crt: " + base64(kKeyPem) + "\n  tls.key: " + base64(kKeyPem) + "\n") +
      doc("Host", "h1", "{hostname: h1.com, tlsSecret: {name: badb64}}") +
      doc("Host", "h2", "{hostname: h2.com, tlsSecret: {name: nokey}}") +
      doc("Host", "h3", "{hostname: h3.com, tlsSecret: {name: opaque}}") +
      doc("Host", "h4", "{hostname: h4.com, tlsSecret: {name: docker}}") +
      doc("Host", "h5", "{hostname: h5.com, tlsSecret: {name: swapped}}"));
  expect_no_key_material(c);
  EXPECT_TRUE(has_diag(c, Severity::kError, "Secret/default/badb64", "data.tls.crt",
                       "is not valid base64"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/h1", "spec.tlsSecret",
                       "see the errors reported on it"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Secret/default/nokey", "data.tls.key",
                       "is required in a Secret of type kubernetes.io/tls"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/h3", "spec.tlsSecret",
                       "Secret default/opaque has no tls.key"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/h4", "spec.tlsSecret",
                       "has type kubernetes.io/dockerconfigjson"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Secret/default/swapped", "data.tls.crt",
                       "holds no CERTIFICATE block"));
  EXPECT_TRUE(sni_names(c, 8443).empty());
  // Each broken Secret is reported once, however many Hosts use it.
  size_t count = 0;
  for (const Diagnostic& d : c.result.diagnostics) count += d.resource == "Secret/default/badb64";
  EXPECT_EQ(count, 1u);
}

TEST(HostTlsTest, StringDataAndPlainPemData) {
  auto indent = [](const std::string& pem) {
    std::string out;
    size_t start = 0;
    while (start < pem.size()) {
      size_t nl = pem.find('\n', start);
      out += "    " + pem.substr(start, nl - start) + "\n";
      start = nl + 1;
    }
    return out;
  };
  std::string string_data =
      "---\napiVersion: v1\nkind: Secret\nmetadata: {name: sd}\ntype: kubernetes.io/tls\n"
      "stringData:\n  tls.crt: |\n" +
      indent(kCertPem) + "  tls.key: |\n" + indent(kKeyPem);
  // `data` holding PEM text as it is (no base64) is taken as Emissary takes it.
  std::string plain =
      "---\napiVersion: v1\nkind: Secret\nmetadata: {name: plain}\n"
      "type: kubernetes.io/tls\ndata:\n  tls.crt: |\n" +
      indent(kCertPem) + "  tls.key: |\n" + indent(kKeyPem);
  Compiled c = compile_text(kHttpsListener + string_data + plain +
                            doc("Host", "a", "{hostname: a.com, tlsSecret: {name: sd}}") +
                            doc("Host", "b", "{hostname: b.com, tlsSecret: {name: plain}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  ASSERT_NE(sni_tls(c, 8443, "a.com"), nullptr);
  EXPECT_EQ(sni_tls(c, 8443, "a.com")->cert_chain_pem, kCertPem);
  EXPECT_EQ(sni_tls(c, 8443, "a.com")->private_key_pem, kKeyPem);
  ASSERT_NE(sni_tls(c, 8443, "b.com"), nullptr);
  EXPECT_EQ(sni_tls(c, 8443, "b.com")->cert_chain_pem, kCertPem);
}

TEST(HostTlsTest, SecretsIgnoreAmbassadorIdAndNeedApiV1) {
  std::string bad_api = "---\napiVersion: v2\nkind: Secret\nmetadata: {name: x}\ndata: {}\n";
  Compiled c = compile_text(kHttpsListener + tls_secret("cert") + bad_api +
                                doc("Host", "h",
                                    "{ambassador_id: [blue], hostname: h.com, tlsSecret: "
                                    "{name: cert}}"),
                            "blue");
  EXPECT_EQ(sni_names(c, 8443), std::vector<std::string>{"h.com"});
  EXPECT_TRUE(has_diag(c, Severity::kError, "Secret/default/x", "apiVersion", "use v1"));
}

TEST(HostTlsTest, ABadRotationKeepsTheLastGoodSecretServing) {
  auto load = [](const std::string& secret) {
    LoadResult out;
    std::string host = doc("Host", "h", "{hostname: h.com, tlsSecret: {name: cert}}");
    for (const auto& [name, text] : std::map<std::string, std::string>{
             {"listener.yaml", kHttpsListener}, {"host.yaml", host}, {"secret.yaml", secret}}) {
      parse_documents(text, name, out);
      out.file_texts.emplace(name, std::make_shared<const std::string>(text));
    }
    return out;
  };
  ResourceStore store;
  StoreResult r1 = store.compile(load(tls_secret("cert")), CompileOptions{});
  ASSERT_EQ(r1.compiled.snapshot->tls.size(), 1u) << testing::dump(r1.diagnostics);
  // The rotated Secret holds the key where the certificate belongs.
  StoreResult r2 = store.compile(
      load(secret_doc("cert", "kubernetes.io/tls",
                      "  tls.crt: " + base64(kKeyPem) + "\n  tls.key: " + base64(kKeyPem) + "\n")),
      CompileOptions{});
  ASSERT_EQ(r2.compiled.snapshot->tls.size(), 1u) << testing::dump(r2.diagnostics);
  EXPECT_EQ(r2.compiled.snapshot->tls[0].cert_chain_pem, kCertPem);
  EXPECT_EQ(r2.kept, std::vector<std::string>{"Secret/default/cert"});
  bool reported = false;
  for (const Diagnostic& d : r2.diagnostics) {
    reported |= d.severity == Severity::kError && d.resource == "Secret/default/cert" &&
                d.field == "data.tls.crt";
    EXPECT_EQ(d.to_string().find(testing::kKeyFragment), std::string::npos);
  }
  EXPECT_TRUE(reported) << testing::dump(r2.diagnostics);
}

// --- TLSContext ---------------------------------------------------------------------------------

TEST(TlsContextTest, LinkedContextSetsPolicy) {
  std::string ca =
      secret_doc("client-ca", "Opaque",
                 "  ca.crt: " + base64(kCertPem) + "\n  cert_required: " + base64("true") + "\n");
  std::string crl = secret_doc("revoked", "", "  crl.pem: " + base64(kCrlPem) + "\n");
  Compiled c = compile_text(
      kHttpsListener + tls_secret("cert") + ca + crl +
      doc("TLSContext", "policy",
          "{hosts: [a.com], alpn_protocols: ' http/1.1 , h2 ,', min_tls_version: v1.3, "
          "max_tls_version: v1.3, cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256], ecdh_curves: "
          "[X25519, P-256], ca_secret: client-ca, crl_secret: revoked}") +
      doc("Host", "a", "{hostname: a.com, tlsSecret: {name: cert}, tlsContext: {name: policy}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  expect_no_key_material(c);
  const net::TlsServerSettings* s = sni_tls(c, 8443, "a.com");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->name, "Host/default/a");
  EXPECT_EQ(s->cert_chain_pem, kCertPem);
  EXPECT_EQ(s->alpn, (std::vector<std::string>{"http/1.1", "h2"}));
  EXPECT_EQ(s->min_version, net::TlsVersion::k1_3);
  EXPECT_EQ(s->max_version, net::TlsVersion::k1_3);
  EXPECT_EQ(s->cipher_suites, std::vector<std::string>{"ECDHE-ECDSA-AES128-GCM-SHA256"});
  EXPECT_EQ(s->ecdh_curves, (std::vector<std::string>{"X25519", "P-256"}));
  EXPECT_EQ(s->ca_pem, kCertPem);
  EXPECT_TRUE(s->cert_required);  // from the CA Secret's cert_required key, as Emissary reads it
  EXPECT_EQ(s->crl_pem, kCrlPem);
  // Used by a Host: no "unused" warning.
  EXPECT_FALSE(has_diag(c, Severity::kWarning, "TLSContext/default/policy", "spec.hosts", ""));
}

TEST(TlsContextTest, ContextSecretServesAHostWithoutTlsSecret) {
  Compiled c = compile_text(kHttpsListener + tls_secret("cert", "certs") +
                            doc("TLSContext", "ctx", "{hosts: [a.com], secret: cert.certs}") +
                            doc("Host", "a", "{hostname: a.com, tlsContext: {name: ctx}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  ASSERT_NE(sni_tls(c, 8443, "a.com"), nullptr);
  EXPECT_EQ(sni_tls(c, 8443, "a.com")->cert_chain_pem, kCertPem);
}

TEST(TlsContextTest, SecretNamespacingOffReadsTheDotLiterally) {
  Compiled c = compile_text(
      kHttpsListener + tls_secret("istio.mtls") + tls_secret("istio", "mtls") +
      // Split first (Emissary): istio in namespace mtls.
      doc("TLSContext", "split", "{secret: istio.mtls}") +
      doc("TLSContext", "literal", "{secret: istio.mtls, secret_namespacing: false}") +
      doc("TLSContext", "missing", "{secret: nothere.mtls, secret_namespacing: false}") +
      doc("Host", "a", "{hostname: a.com, tlsContext: {name: split}}") +
      doc("Host", "b", "{hostname: b.com, tlsContext: {name: literal}}") +
      doc("Host", "c", "{hostname: c.com, tlsContext: {name: missing}}"));
  EXPECT_EQ(sni_names(c, 8443), (std::vector<std::string>{"a.com", "b.com"}));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TLSContext/default/missing", "spec.secret",
                       "Secret nothere.mtls not found in namespace default"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/c", "spec.tlsContext.name",
                       "TLSContext default/missing cannot be used"));
}

TEST(TlsContextTest, ImplicitHostContextAddsItsSettings) {
  Compiled c = compile_text(kHttpsListener + tls_secret("cert") +
                            doc("TLSContext", "a-context", "{alpn_protocols: http/1.1}") +
                            doc("Host", "a", "{hostname: a.com, tlsSecret: {name: cert}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  ASSERT_NE(sni_tls(c, 8443, "a.com"), nullptr);
  EXPECT_EQ(sni_tls(c, 8443, "a.com")->alpn, std::vector<std::string>{"http/1.1"});
  EXPECT_TRUE(testing::all_diags(c).empty()) << testing::dump(c.result.diagnostics);
}

TEST(TlsContextTest, InlineHostTlsTakesSnakeAndCamelCase) {
  Compiled c = compile_text(
      kHttpsListener + tls_secret("cert") +
      doc("Host", "a",
          "{hostname: a.com, tlsSecret: {name: cert}, tls: {alpnProtocols: h2, "
          "min_tls_version: v1.3, cipherSuites: [AES], redirect_cleartext_from: 8080}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const net::TlsServerSettings* s = sni_tls(c, 8443, "a.com");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->alpn, std::vector<std::string>{"h2"});
  EXPECT_EQ(s->min_version, net::TlsVersion::k1_3);
  EXPECT_EQ(s->cipher_suites, std::vector<std::string>{"AES"});
  EXPECT_TRUE(has_diag(c, Severity::kWarning, "Host/default/a", "spec.tls.redirect_cleartext_from",
                       "requestPolicy.insecure.action"));
}

TEST(TlsContextTest, OldMaximumLowersTheDefaultMinimum) {
  Compiled c = compile_text(kHttpsListener + tls_secret("cert") +
                            doc("Host", "a",
                                "{hostname: a.com, tlsSecret: {name: cert}, tls: "
                                "{max_tls_version: v1.1}}"));
  const net::TlsServerSettings* s = sni_tls(c, 8443, "a.com");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->min_version, net::TlsVersion::k1_0);
  EXPECT_EQ(s->max_version, net::TlsVersion::k1_1);
}

TEST(TlsContextTest, MalformedFieldsAreErrorsOnTheContext) {
  Compiled c = compile_text(
      tls_secret("cert") +
      doc("TLSContext", "versions", "{min_tls_version: v1.3, max_tls_version: v1.2}") +
      doc("TLSContext", "unknown", "{min_tls_version: TLSv1.2}") +
      doc("TLSContext", "ciphers", "{cipher_suites: [AES, ' '], ecdh_curves: ['']}") +
      doc("TLSContext", "required", "{secret: cert, cert_required: true}") +
      doc("TLSContext", "both", "{secret: cert, cert_chain_file: /x.pem, private_key_file: /y}") +
      doc("TLSContext", "half", "{cert_chain_file: /x.pem}") +
      doc("TLSContext", "alpn", "{alpn_protocols: " + std::string(300, 'x') + "}"));
  auto err = [&](const std::string& name, const std::string& field, const std::string& text) {
    return has_diag(c, Severity::kError, "TLSContext/default/" + name, field, text);
  };
  EXPECT_TRUE(err("versions", "spec.max_tls_version", "is below min_tls_version"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(err("unknown", "spec.min_tls_version", "must be one of v1.0, v1.1, v1.2, v1.3"));
  EXPECT_TRUE(err("ciphers", "spec.cipher_suites[1]", "must not be empty"));
  EXPECT_TRUE(err("ciphers", "spec.ecdh_curves[0]", "must not be empty"));
  EXPECT_TRUE(err("required", "spec.cert_required", "needs ca_secret or cacert_chain_file"));
  EXPECT_TRUE(err("both", "spec.cert_chain_file", "must not be set together with secret"));
  EXPECT_TRUE(err("half", "spec.cert_chain_file", "needs private_key_file"));
  EXPECT_TRUE(err("alpn", "spec.alpn_protocols", "at most 255 bytes"));
}

TEST(TlsContextTest, UnusedContextsAreWarnedAbout) {
  Compiled c = compile_text(kHttpsListener + tls_secret("cert") +
                            doc("TLSContext", "term", "{hosts: [x.com], secret: cert}") +
                            doc("TLSContext", "orig", "{sni: upstream.local}") +
                            doc("TLSContext", "auth", "{}") +
                            doc("AuthService", "ext", "{auth_service: ext:3000, tls: auth}"));
  EXPECT_TRUE(has_diag(c, Severity::kWarning, "TLSContext/default/term", "spec.hosts",
                       "so it terminates nothing"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kWarning, "TLSContext/default/orig", "",
                       "nothing uses this TLSContext"));
  EXPECT_FALSE(has_diag(c, Severity::kWarning, "TLSContext/default/auth", "", ""));
}

TEST(TlsContextTest, HostAndContextCertificatesMustAgree) {
  Compiled c = compile_text(
      kHttpsListener + tls_secret("one") +
      secret_doc("two", "kubernetes.io/tls",
                 "  tls.crt: " + base64(std::string(kCertPem) + kCertPem) +
                     "\n  tls.key: " + base64(kKeyPem) + "\n") +
      doc("TLSContext", "ctx", "{hosts: [other.com], secret: two}") +
      doc("Host", "a", "{hostname: a.com, tlsSecret: {name: one}, tlsContext: {name: ctx}}") +
      doc("Host", "b", "{hostname: b.com, tlsContext: {name: nope}}") +
      doc("Host", "d", "{hostname: d.com, tls: {alpn_protocols: h2}, tlsContext: {name: ctx}}") +
      doc("Host", "e", "{hostname: e.com, tls: {alpn_protocols: h2}}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/a", "spec.tlsSecret",
                       "differs from the one of TLSContext default/ctx"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/b", "spec.tlsContext.name",
                       "TLSContext nope does not exist"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/d", "spec.tls",
                       "must not be set together with spec.tlsContext"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/e", "spec",
                       "has no certificate to terminate TLS with"));
  EXPECT_TRUE(sni_names(c, 8443).empty());
}

TEST(TlsContextTest, HostsListNotNamingTheHostIsAWarning) {
  Compiled c = compile_text(kHttpsListener + tls_secret("cert") +
                            doc("TLSContext", "ctx", "{hosts: [other.com], secret: cert}") +
                            doc("Host", "a", "{hostname: a.com, tlsContext: {name: ctx}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kWarning, "Host/default/a", "spec.tlsContext.name",
                       "do not include this Host's hostname a.com"));
  EXPECT_EQ(sni_names(c, 8443), std::vector<std::string>{"a.com"});
}

class TlsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("proxenos-tls-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / "certs");
    std::ofstream(dir_ / "certs" / "tls.crt") << kCertPem;
    std::ofstream(dir_ / "certs" / "tls.key") << kKeyPem;
    std::ofstream(dir_ / "certs" / "ca.crt") << kCertPem;
    std::ofstream(dir_ / "certs" / "bad.key") << "not a key";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Compiled compile_at(const std::string& yaml) {
    Compiled c;
    c.loaded = testing::load_text(yaml, (dir_ / "config.yaml").string());
    c.result = compile(c.loaded.resources, CompileOptions{});
    return c;
  }
  std::filesystem::path dir_;
};

TEST_F(TlsFileTest, CertificateFilesAreReadAtCompileTime) {
  std::string abs = (dir_ / "certs").string();
  Compiled c =
      compile_at(kHttpsListener +
                 doc("TLSContext", "files",
                     "{cert_chain_file: " + abs + "/tls.crt, private_key_file: " + abs +
                         "/tls.key, cacert_chain_file: " + abs + "/ca.crt, cert_required: true}") +
                 // Relative paths are read from the folder of the file the resource came from.
                 doc("TLSContext", "relative",
                     "{cert_chain_file: certs/tls.crt, private_key_file: certs/tls.key}") +
                 doc("Host", "a", "{hostname: a.com, tlsContext: {name: files}}") +
                 doc("Host", "b",
                     "{hostname: b.com, tls: {certChainFile: certs/tls.crt, privateKeyFile: "
                     "certs/tls.key}}") +
                 doc("Host", "c", "{hostname: c.com, tlsContext: {name: relative}}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const net::TlsServerSettings* a = sni_tls(c, 8443, "a.com");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->cert_chain_pem, kCertPem);
  EXPECT_EQ(a->private_key_pem, kKeyPem);
  EXPECT_EQ(a->ca_pem, kCertPem);
  EXPECT_TRUE(a->cert_required);
  ASSERT_NE(sni_tls(c, 8443, "b.com"), nullptr);
  EXPECT_EQ(sni_tls(c, 8443, "b.com")->private_key_pem, kKeyPem);
  ASSERT_NE(sni_tls(c, 8443, "c.com"), nullptr);
}

TEST_F(TlsFileTest, UnreadableOrWrongFilesAreErrorsOnTheResource) {
  std::string abs = (dir_ / "certs").string();
  Compiled c = compile_at(
      kHttpsListener +
      doc("TLSContext", "missing",
          "{cert_chain_file: " + abs + "/nope.crt, private_key_file: " + abs + "/tls.key}") +
      doc("TLSContext", "badkey",
          "{cert_chain_file: " + abs + "/tls.crt, private_key_file: " + abs + "/bad.key}") +
      doc("Host", "a", "{hostname: a.com, tlsContext: {name: missing}}") +
      doc("Host", "b",
          "{hostname: b.com, tls: {cert_chain_file: " + abs + "/tls.key, private_key_file: " + abs +
              "/tls.key}}") +
      doc("Host", "c", "{hostname: c.com, tlsContext: {name: badkey}}"));
  expect_no_key_material(c);
  EXPECT_TRUE(has_diag(c, Severity::kError, "TLSContext/default/missing", "spec.cert_chain_file",
                       "nope.crt"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kError, "TLSContext/default/badkey", "spec.private_key_file",
                       "holds no PEM data"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Host/default/b", "spec.tls.cert_chain_file",
                       "holds no CERTIFICATE block"));
  EXPECT_TRUE(
      has_diag(c, Severity::kError, "Host/default/a", "spec.tlsContext.name", "cannot be used"));
  EXPECT_TRUE(sni_names(c, 8443).empty());
}

// --- origination ------------------------------------------------------------------------------

TEST(OriginationTest, HttpsServiceVerifiesNothingWithoutACa) {
  Compiled c = compile_text(std::string(testing::kBase) +
                            doc("Mapping", "m",
                                "{prefix: /m/, hostname: '*', service: "
                                "https://api.example.com}") +
                            doc("Mapping", "ip",
                                "{prefix: /ip/, hostname: '*', service: "
                                "https://10.0.0.1:8443}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const upstream::ClusterSpec* s = cluster_named(c, "cluster_https___api_example_com_otls_default");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, 443);
  EXPECT_EQ(s->tls_settings.sni, "api.example.com");
  EXPECT_TRUE(s->tls_settings.ca_pem.empty());
  EXPECT_EQ(s->tls_settings.alpn, std::vector<std::string>{"http/1.1"});
  EXPECT_FALSE(s->http2);
  const upstream::ClusterSpec* ip = cluster_named(c, "cluster_https___10_0_0_1_8443_otls");
  ASSERT_NE(ip, nullptr);
  EXPECT_EQ(ip->tls_settings.sni, "");  // no SNI for an address
}

TEST(OriginationTest, MappingTlsContextGivesClientCertCaAndSni) {
  std::string ca = secret_doc("upstream-ca", "Opaque", "  ca.crt: " + base64(kCertPem) + "\n");
  Compiled c = compile_text(
      std::string(testing::kBase) + tls_secret("client") + ca +
      doc("TLSContext", "mtls",
          "{secret: client, ca_secret: upstream-ca, sni: backend.internal, min_tls_version: "
          "v1.3}") +
      doc("Mapping", "m", "{prefix: /m/, hostname: '*', service: backend:8443, tls: mtls}") +
      doc("Mapping", "g",
          "{prefix: /g/, hostname: '*', service: grpc-backend, tls: mtls, "
          "grpc: true}") +
      doc("Mapping", "h2", "{prefix: /h/, hostname: '*', service: plain-grpc:50051, grpc: true}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  expect_no_key_material(c);
  // Emissary's name keeps the context when the service has no scheme.
  const upstream::ClusterSpec* s = cluster_named(c, "cluster_backend_8443_otls_mtls_default");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, 8443);
  const net::TlsClientSettings& t = s->tls_settings;
  EXPECT_EQ(t.name, "TLSContext/default/mtls");
  EXPECT_EQ(t.sni, "backend.internal");
  EXPECT_EQ(t.ca_pem, kCertPem);
  EXPECT_TRUE(t.verify_hostname);
  EXPECT_EQ(t.cert_chain_pem, kCertPem);
  EXPECT_EQ(t.private_key_pem, kKeyPem);
  EXPECT_EQ(t.min_version, net::TlsVersion::k1_3);
  EXPECT_EQ(t.alpn, std::vector<std::string>{"http/1.1"});
  const upstream::ClusterSpec* g = cluster_named(c, "cluster_grpc_backend_otls_mtls_default");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(g->http2);
  EXPECT_EQ(g->port, 443);
  EXPECT_EQ(g->tls_settings.alpn, std::vector<std::string>{"h2"});
  const upstream::ClusterSpec* h = cluster_named(c, "cluster_plain_grpc_50051_default");
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->http2);  // cleartext HTTP/2 (prior knowledge)
  EXPECT_FALSE(h->tls);
  EXPECT_FALSE(has_diag(c, Severity::kWarning, "TLSContext/default/mtls", "", ""));
}

TEST(OriginationTest, V2TlsTrueOriginatesWithoutAContext) {
  Compiled c = compile_text(std::string(testing::kBase) +
                            doc("Mapping", "m",
                                "{prefix: /m/, hostname: '*', service: backend, "
                                "tls: true}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const upstream::ClusterSpec* s = cluster_named(c, "cluster_backend_otls_default");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, 443);
  EXPECT_EQ(s->tls_settings.name, "");
  EXPECT_EQ(s->tls_settings.sni, "backend");
}

TEST(OriginationTest, HostRewriteJoinsTheTlsClusterName) {
  Compiled c = compile_text(std::string(testing::kBase) +
                            doc("Mapping", "m",
                                "{prefix: /m/, hostname: '*', service: "
                                "https://api, host_rewrite: api.example.com}"));
  EXPECT_NE(cluster_named(c, "cluster_https___api_otls_hr_api_example_com_default"), nullptr)
      << c.snap().clusters.front().name;
}

TEST(OriginationTest, MissingOrBrokenContextDropsTheMapping) {
  Compiled c = compile_text(
      std::string(testing::kBase) + doc("TLSContext", "broken", "{secret: nothere}") +
      doc("Mapping", "a", "{prefix: /a/, hostname: '*', service: backend, tls: nope}") +
      doc("Mapping", "b", "{prefix: /b/, hostname: '*', service: backend, tls: broken}") +
      doc("Mapping", "c", "{prefix: /c/, hostname: '*', service: 'http://x', tls: broken2}") +
      doc("TLSContext", "broken2", "{}") +
      doc("Mapping", "ok", "{prefix: /ok/, hostname: '*', service: backend}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "Mapping/default/a", "spec.tls",
                       "TLSContext nope does not exist"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kError, "Mapping/default/b", "spec.tls", "cannot be used"));
  EXPECT_TRUE(has_diag(c, Severity::kWarning, "Mapping/default/c", "spec.tls",
                       "although spec.service says http://"));
  EXPECT_EQ(testing::route_sources(testing::vhost(c.snap(), 8080, "*")),
            (std::vector<std::string>{"Mapping/default/ok", "Mapping/default/c"}));
}

TEST(OriginationTest, ContextAlpnWithoutTheClusterProtocolWarns) {
  Compiled c = compile_text(std::string(testing::kBase) +
                            doc("TLSContext", "h2only", "{alpn_protocols: h2}") +
                            doc("Mapping", "m",
                                "{prefix: /m/, hostname: '*', service: backend, "
                                "tls: h2only}"));
  EXPECT_TRUE(has_diag(c, Severity::kWarning, "Mapping/default/m", "spec.tls",
                       "the upstream is spoken to in http/1.1"))
      << testing::dump(c.result.diagnostics);
  const upstream::ClusterSpec* s = cluster_named(c, "cluster_backend_otls_h2only_default");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->tls_settings.alpn, std::vector<std::string>{"http/1.1"});
}

}  // namespace
}  // namespace proxenos::config
