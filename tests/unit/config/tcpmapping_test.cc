#include <gtest/gtest.h>

#include <algorithm>

#include "test_util.h"
#include "tls_test_data.h"

namespace proxenos::config {
namespace {

using testing::compile_text;
using testing::Compiled;
using testing::doc;
using testing::errors;
using testing::kCertPem;
using testing::listener;
using testing::tls_secret;

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

const upstream::ClusterSpec& cluster_of(const Compiled& c, const TcpTarget& t) {
  return c.snap().clusters.at(t.cluster);
}

std::vector<std::string> tcp_snis(const ListenerSnapshot* l) {
  std::vector<std::string> out;
  if (l != nullptr) {
    for (const TcpRoute& r : l->tcp) out.push_back(r.sni);
  }
  return out;
}

const std::string kHttps =
    doc("Listener", "https",
        "{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}");

TEST(TcpMappingTest, PortWithoutListenerGetsASynthesizedTcpListener) {
  Compiled c =
      compile_text(kHttps + doc("TCPMapping", "redis", "{port: 6379, service: redis:6379}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const ListenerSnapshot* l = listener(c.snap(), 6379);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->name, "listener-0.0.0.0-6379");
  EXPECT_EQ(l->protocol, ListenerProtocol::kTcp);
  EXPECT_EQ(l->bind_address, "0.0.0.0");
  EXPECT_EQ(l->stats_prefix, "ingress_tcp_6379");
  EXPECT_EQ(l->routes, nullptr);
  EXPECT_TRUE(has_note(c,
                       "synthesized a TCP Listener listener-0.0.0.0-6379 for "
                       "TCPMapping/default/redis"));
  ASSERT_EQ(l->tcp.size(), 1u);
  const TcpRoute& r = l->tcp[0];
  EXPECT_EQ(r.sni, "");
  EXPECT_FALSE(r.tls.has_value());
  EXPECT_EQ(r.idle_timeout_ms, 3600u * 1000);  // Envoy's tcp_proxy default
  EXPECT_EQ(r.source.substr(0, r.source.find(' ')), "TCPMapping/default/redis");
  ASSERT_EQ(r.targets.size(), 1u);
  EXPECT_EQ(r.targets[0].cumulative_weight, 100u);
  EXPECT_EQ(r.targets[0].source, "TCPMapping/default/redis");
  const upstream::ClusterSpec& s = cluster_of(c, r.targets[0]);
  EXPECT_EQ(s.host, "redis");
  EXPECT_EQ(s.port, 6379);
  EXPECT_FALSE(s.tls);
  EXPECT_EQ(s.name, "cluster_redis_6379_default");
}

TEST(TcpMappingTest, CanaryWeightsSplitLikeMappings) {
  Compiled c = compile_text(doc("TCPMapping", "a", "{port: 9000, service: a:9000}") +
                            doc("TCPMapping", "b", "{port: 9000, service: b:9000, weight: 30}") +
                            doc("TCPMapping", "x", "{port: 9001, service: x:1, weight: 20}") +
                            doc("TCPMapping", "y", "{port: 9001, service: y:1, weight: 30}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const ListenerSnapshot* l = listener(c.snap(), 9000);
  ASSERT_NE(l, nullptr);
  ASSERT_EQ(l->tcp.size(), 1u);
  const std::vector<TcpTarget>& t = l->tcp[0].targets;
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].source, "TCPMapping/default/b");  // weighted members first
  EXPECT_EQ(t[0].cumulative_weight, 30u);
  EXPECT_EQ(t[1].source, "TCPMapping/default/a");
  EXPECT_EQ(t[1].cumulative_weight, 100u);
  // Shares below 100 in total are relative, as Envoy's tcp_proxy weights are: 20:30 is 40:60.
  const ListenerSnapshot* l2 = listener(c.snap(), 9001);
  ASSERT_NE(l2, nullptr);
  ASSERT_EQ(l2->tcp.at(0).targets.size(), 2u);
  EXPECT_EQ(l2->tcp[0].targets[0].cumulative_weight, 40u);
  EXPECT_EQ(l2->tcp[0].targets[1].cumulative_weight, 100u);
}

TEST(TcpMappingTest, BadWeightsAndMismatchedCoreKeysAreErrors) {
  Compiled c =
      compile_text(doc("TCPMapping", "a", "{port: 9000, service: a:1, weight: 60}") +
                   doc("TCPMapping", "b", "{port: 9000, service: b:1, weight: 50}") +
                   doc("TCPMapping", "c", "{port: 9100, service: c:1, idle_timeout_ms: '1000'}") +
                   doc("TCPMapping", "d", "{port: 9100, service: d:1, idle_timeout_ms: 2000}") +
                   doc("TCPMapping", "z1", "{port: 9200, service: z:1, weight: 0}") +
                   doc("TCPMapping", "z2", "{port: 9200, service: z:2, weight: 0}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/b", "spec.weight",
                       "add up to more than 100 (110 after this TCPMapping)"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/a", "", "dropped with its canary"));
  EXPECT_EQ(listener(c.snap(), 9000), nullptr);
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/d", "",
                       "idle_timeout_ms must be set to the same values"));
  ASSERT_NE(listener(c.snap(), 9100), nullptr);
  EXPECT_EQ(listener(c.snap(), 9100)->tcp.at(0).targets.size(), 1u);
  EXPECT_EQ(listener(c.snap(), 9100)->tcp[0].idle_timeout_ms, 1000u);
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/z1", "spec.weight", "weight 0"));
}

TEST(TcpMappingTest, FieldValidation) {
  Compiled c =
      compile_text(doc("TCPMapping", "noport", "{service: a:1}") +
                   doc("TCPMapping", "idle", "{port: 9000, service: a:1, idle_timeout_ms: soon}") +
                   doc("TCPMapping", "addr", "{port: 9000, service: a:1, address: localhost}") +
                   doc("TCPMapping", "svc", "{port: 9000, service: 'a:1/path'}") +
                   doc("TCPMapping", "weight", "{port: 9000, service: a:1, weight: 101}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/noport", "spec.port", "required"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/idle", "spec.idle_timeout_ms",
                       "milliseconds"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/addr", "spec.address",
                       "must be an IP address"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/svc", "spec.service", ""));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/weight", "spec.weight", ""));
  EXPECT_EQ(listener(c.snap(), 9000), nullptr);
}

TEST(TcpMappingTest, ExplicitTcpListenerAndBindAddress) {
  Compiled c = compile_text(
      doc("Listener", "tcp",
          "{port: 5432, protocol: TCP, securityModel: SECURE, hostBinding: {namespace: {from: "
          "SELF}}}") +
      doc("TCPMapping", "pg", "{port: 5432, service: pg:5432, enable_ipv6: true}") +
      doc("TCPMapping", "local", "{port: 7000, address: 127.0.0.1, service: l:7000}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const ListenerSnapshot* l = listener(c.snap(), 5432);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->name, "Listener/default/tcp");
  ASSERT_EQ(l->tcp.size(), 1u);
  EXPECT_TRUE(cluster_of(c, l->tcp[0].targets[0]).enable_ipv6);
  EXPECT_FALSE(has_note(c, "synthesized a TCP Listener listener-0.0.0.0-5432"));
  const ListenerSnapshot* local = listener(c.snap(), 7000);
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->bind_address, "127.0.0.1");
  EXPECT_EQ(local->name, "listener-127.0.0.1-7000");
}

TEST(TcpMappingTest, OverlappingAddressOnAListenerPortIsAnError) {
  Compiled c = compile_text(
      doc("Listener", "tcp",
          "{port: 5432, protocol: TCP, securityModel: SECURE, hostBinding: {namespace: {from: "
          "SELF}}}") +
      doc("TCPMapping", "pg", "{port: 5432, address: 10.0.0.1, service: pg:5432}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/pg", "spec.address",
                       "overlaps Listener/default/tcp"))
      << testing::dump(c.result.diagnostics);
}

TEST(TcpMappingTest, HostTerminatesTlsWithTheHostCertificateOnAnHttpsPort) {
  Compiled c =
      compile_text(kHttps + tls_secret("cert") +
                   doc("Host", "db", "{hostname: db.example.com, tlsSecret: {name: cert}}") +
                   doc("Host", "web", "{hostname: web.example.com, tlsSecret: {name: cert}}") +
                   doc("TCPMapping", "db", "{port: 8443, host: DB.example.com, service: db:5432}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const ListenerSnapshot* l = listener(c.snap(), 8443);
  ASSERT_NE(l, nullptr);
  ASSERT_EQ(l->tcp.size(), 1u);
  const TcpRoute& r = l->tcp[0];
  EXPECT_EQ(r.sni, "db.example.com");
  ASSERT_TRUE(r.tls.has_value());
  const net::TlsServerSettings& s = c.snap().tls.at(*r.tls);
  EXPECT_EQ(s.cert_chain_pem, kCertPem);
  EXPECT_TRUE(s.alpn.empty());  // raw bytes: no ALPN unless asked for
  // The other Host keeps its HTTP certificate (with ALPN) on the same listener; TLS for
  // db.example.com is the TCPMapping's.
  ASSERT_EQ(l->sni.size(), 1u);
  EXPECT_EQ(l->sni[0].hostname, "web.example.com");
  EXPECT_EQ(c.snap().tls.at(l->sni[0].tls).alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_TRUE(has_note(c, "TLS for db.example.com goes to the TCPMapping"));
  EXPECT_NE(l->routes, nullptr);
}

TEST(TcpMappingTest, HostMatchedByTlsContextHostsOnASynthesizedTlsListener) {
  Compiled c = compile_text(
      tls_secret("cert") +
      doc("TLSContext", "ctx", "{hosts: [a.example.com], secret: cert, alpn_protocols: imap}") +
      doc("Host", "wild", "{hostname: '*.example.com', tlsSecret: {name: cert}}") +
      doc("TCPMapping", "a", "{port: 9993, host: a.example.com, service: imap-a:993}") +
      doc("TCPMapping", "b", "{port: 9993, host: b.example.com, service: imap-b:993}") +
      doc("TCPMapping", "rest", "{port: 9993, service: fallback:993}") +
      doc("TCPMapping", "star", "{port: 9993, host: '*', service: star:993}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/star", "spec.host",
                       "no Host with TLS has hostname *"))
      << testing::dump(c.result.diagnostics);
  const ListenerSnapshot* l = listener(c.snap(), 9993);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->protocol, ListenerProtocol::kTls);
  EXPECT_EQ(l->stats_prefix, "ingress_tls_9993");
  // SNI routes in match order, then the catch-all.
  EXPECT_EQ(tcp_snis(l), (std::vector<std::string>{"a.example.com", "b.example.com", ""}));
  const net::TlsServerSettings& a = c.snap().tls.at(l->tcp[0].tls.value());
  EXPECT_EQ(a.name, "TLSContext/default/ctx");
  EXPECT_EQ(a.alpn, std::vector<std::string>{"imap"});
  // b has no exact Host or TLSContext: the wildcard Host's certificate covers it.
  const net::TlsServerSettings& b = c.snap().tls.at(l->tcp[1].tls.value());
  EXPECT_EQ(b.name, "Host/default/wild");
  EXPECT_FALSE(l->tcp[2].tls.has_value());
  // The TLSContext is in use (by the TCPMapping): no warning.
  EXPECT_FALSE(has_diag(c, Severity::kWarning, "TLSContext/default/ctx", "spec.hosts", ""));
}

TEST(TcpMappingTest, WithoutHostOnAnHttpPortIsAnError) {
  Compiled c = compile_text(kHttps + doc("TCPMapping", "raw", "{port: 8443, service: raw:1}") +
                            doc("TCPMapping", "nocert",
                                "{port: 8443, host: x.com, service: "
                                "x:1}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/raw", "spec.host",
                       "Listener/default/https serves HTTP there"))
      << testing::dump(c.result.diagnostics);
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/nocert", "spec.host",
                       "there is no certificate"));
  ASSERT_NE(listener(c.snap(), 8443), nullptr);
  EXPECT_TRUE(listener(c.snap(), 8443)->tcp.empty());
}

TEST(TcpMappingTest, PassthroughNeedsNoCertificateAndSharesAPortBySni) {
  Compiled c = compile_text(
      kHttps + tls_secret("cert") +
      doc("Host", "web", "{hostname: web.example.com, tlsSecret: {name: cert}}") +
      doc("TCPMapping", "pass",
          "{port: 8443, host: Pass.example.com, tls_passthrough: true, service: backend:9443}") +
      doc("TCPMapping", "only",
          "{port: 9443, host: '*.example.com', tls_passthrough: true, "
          "service: other:443}"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
  const ListenerSnapshot* l = listener(c.snap(), 8443);
  ASSERT_NE(l, nullptr);
  ASSERT_EQ(l->tcp.size(), 1u);
  EXPECT_EQ(l->tcp[0].sni, "pass.example.com");
  EXPECT_TRUE(l->tcp[0].passthrough);
  EXPECT_FALSE(l->tcp[0].tls.has_value());
  const upstream::ClusterSpec& s = cluster_of(c, l->tcp[0].targets.at(0));
  EXPECT_EQ(s.host, "backend");
  EXPECT_EQ(s.port, 9443);
  EXPECT_FALSE(s.tls);           // the client's TLS goes through as it is
  ASSERT_EQ(l->sni.size(), 1u);  // the Host keeps its certificate
  EXPECT_EQ(l->sni[0].hostname, "web.example.com");

  // A port with passthrough TCPMappings only: a TLS listener without any certificate.
  const ListenerSnapshot* only = listener(c.snap(), 9443);
  ASSERT_NE(only, nullptr);
  EXPECT_EQ(only->protocol, ListenerProtocol::kTls);
  EXPECT_TRUE(only->sni.empty());
  ASSERT_EQ(only->tcp.size(), 1u);
  EXPECT_TRUE(only->tcp[0].passthrough);
  EXPECT_EQ(only->tcp[0].sni, "*.example.com");
}

TEST(TcpMappingTest, PassthroughErrors) {
  Compiled c = compile_text(
      doc("TCPMapping", "nohost", "{port: 9000, tls_passthrough: true, service: a:1}") +
      doc("TCPMapping", "tls",
          "{port: 9001, host: a.example.com, tls_passthrough: true, "
          "service: a:1, tls: true}") +
      doc("TCPMapping", "https",
          "{port: 9002, host: a.example.com, tls_passthrough: true, "
          "service: 'https://a:1'}") +
      doc("TCPMapping", "notbool",
          "{port: 9003, host: a.example.com, tls_passthrough: yes-please, "
          "service: a:1}") +
      doc("TCPMapping", "pass",
          "{port: 9004, host: a.example.com, tls_passthrough: true, "
          "service: a:1}") +
      doc("TCPMapping", "term", "{port: 9004, host: a.example.com, service: b:1}"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/nohost", "spec.tls_passthrough",
                       "needs spec.host"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/tls", "spec.tls_passthrough",
                       "TLS origination"));
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/https", "spec.tls_passthrough",
                       "TLS origination"));
  EXPECT_TRUE(
      has_diag(c, Severity::kError, "TCPMapping/default/notbool", "spec.tls_passthrough", ""));
  // A terminating TCPMapping cannot join a passthrough one's canary group.
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/term", "", "tls_passthrough"))
      << testing::dump(c.result.diagnostics);
  for (uint16_t port : {9000, 9001, 9002, 9003}) EXPECT_EQ(listener(c.snap(), port), nullptr);
  const ListenerSnapshot* l = listener(c.snap(), 9004);
  ASSERT_NE(l, nullptr);
  ASSERT_EQ(l->tcp.size(), 1u);
  EXPECT_TRUE(l->tcp[0].passthrough);
}

TEST(TcpMappingTest, TlsOrigination) {
  Compiled c = compile_text(
      tls_secret("client") + doc("TLSContext", "up", "{secret: client, sni: db.internal}") +
      doc("TCPMapping", "https", "{port: 9000, service: 'https://db'}") +
      doc("TCPMapping", "bool", "{port: 9001, service: db:5432, tls: true}") +
      doc("TCPMapping", "ctx", "{port: 9002, service: db:5432, tls: up}") +
      doc("TCPMapping", "missing", "{port: 9003, service: db:5432, tls: nope}"));
  const upstream::ClusterSpec& https = cluster_of(c, listener(c.snap(), 9000)->tcp[0].targets[0]);
  EXPECT_TRUE(https.tls);
  EXPECT_EQ(https.port, 443);
  EXPECT_EQ(https.tls_settings.sni, "db");
  EXPECT_TRUE(https.tls_settings.alpn.empty());
  const upstream::ClusterSpec& b = cluster_of(c, listener(c.snap(), 9001)->tcp[0].targets[0]);
  EXPECT_TRUE(b.tls);
  EXPECT_EQ(b.port, 5432);
  const upstream::ClusterSpec& x = cluster_of(c, listener(c.snap(), 9002)->tcp[0].targets[0]);
  EXPECT_TRUE(x.tls);
  EXPECT_EQ(x.tls_settings.sni, "db.internal");
  EXPECT_EQ(x.tls_settings.cert_chain_pem, kCertPem);
  EXPECT_EQ(x.name, "cluster_db_5432_otls_up_default");
  EXPECT_TRUE(has_diag(c, Severity::kError, "TCPMapping/default/missing", "spec.tls",
                       "TLSContext nope does not exist"));
  EXPECT_EQ(listener(c.snap(), 9003), nullptr);
}

TEST(TcpMappingTest, AmbassadorIdApplies) {
  Compiled c = compile_text(
      doc("TCPMapping", "mine", "{port: 9000, service: a:1}") +
      doc("TCPMapping", "theirs", "{ambassador_id: [other], port: 9001, service: a:1}"));
  EXPECT_NE(listener(c.snap(), 9000), nullptr);
  EXPECT_EQ(listener(c.snap(), 9001), nullptr);
  EXPECT_TRUE(c.snap().resource_origins.count("TCPMapping/default/mine") == 1);
}

}  // namespace
}  // namespace proxenos::config
