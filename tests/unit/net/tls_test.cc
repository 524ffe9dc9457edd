#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "net/tls.h"
#include "tls_test_certs.h"

namespace proxenos::net {
namespace {

using tls_testing::CertSpec;
using tls_testing::TestCa;
using tls_testing::TestCert;

struct Certs {
  TestCa ca{"Proxenos Test CA"};
  TestCa other_ca{"Some Other CA"};
  TestCert a, wildcard_b, fallback, expired, wrong_name, client, client_only, untrusted,
      untrusted_client, revoked_client;
  std::string crl;

  Certs() {
    a = ca.issue({"a.example.com", {"DNS:a.example.com"}, "serverAuth"});
    wildcard_b = ca.issue({"*.b.example.com", {"DNS:*.b.example.com"}, "serverAuth"});
    fallback = ca.issue({"default.example.com", {"DNS:default.example.com"}, "serverAuth"});
    expired = ca.issue({"a.example.com", {"DNS:a.example.com"}, "serverAuth", -10 * 86400, -86400});
    wrong_name = ca.issue({"other.example.com", {"DNS:other.example.com"}, "serverAuth"});
    client = ca.issue({"client",
                       {"URI:spiffe://cluster.local/ns/default/sa/client", "DNS:client.example.com",
                        "DNS:client2.example.com"},
                       "clientAuth"});
    client_only = ca.issue({"a.example.com", {"DNS:a.example.com"}, "clientAuth"});
    untrusted = other_ca.issue({"a.example.com", {"DNS:a.example.com"}, "serverAuth"});
    untrusted_client = other_ca.issue({"client", {"DNS:client.example.com"}, "clientAuth"});
    revoked_client = ca.issue({"revoked", {"DNS:revoked.example.com"}, "clientAuth"});
    crl = ca.crl_pem({revoked_client.serial});
  }
};

Certs& certs() {
  static Certs* instance = new Certs();
  return *instance;
}

TlsServerSettings server_settings(const TestCert& cert, std::string name = "Host/test") {
  TlsServerSettings s;
  s.name = std::move(name);
  s.cert_chain_pem = cert.cert_pem;
  s.private_key_pem = cert.key_pem;
  return s;
}

std::shared_ptr<const TlsServerContext> server_context(const TlsServerSettings& settings,
                                                       std::shared_ptr<TicketKeys> keys = {}) {
  std::string error;
  auto ctx = TlsServerContext::create(settings, std::move(keys), &error);
  EXPECT_NE(ctx, nullptr) << error;
  return ctx;
}

std::shared_ptr<const TlsClientContext> client_context(const TlsClientSettings& settings) {
  std::string error;
  auto ctx = TlsClientContext::create(settings, &error);
  EXPECT_NE(ctx, nullptr) << error;
  return ctx;
}

TlsClientSettings verifying_client(std::string sni) {
  TlsClientSettings s;
  s.sni = std::move(sni);
  s.ca_pem = certs().ca.cert_pem();
  return s;
}

// Both ends of a socketpair, non-blocking.
struct Pipe {
  int client = -1;
  int server = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    client = fds[0];
    server = fds[1];
  }
  ~Pipe() {
    if (client >= 0) close(client);
    if (server >= 0) close(server);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
};

bool finished(TlsResult r) {
  return r.status != TlsIo::kWantRead && r.status != TlsIo::kWantWrite;
}

struct Outcome {
  TlsResult client, server;
  bool ok() const { return client.ok() && server.ok(); }
};

// Steps both handshakes in turn until neither can move; a socketpair needs no waiting.
Outcome handshake(TlsStream& client, TlsStream& server) {
  Outcome out{{TlsIo::kWantRead, 0}, {TlsIo::kWantRead, 0}};
  for (int i = 0; i < 100 && !(finished(out.client) && finished(out.server)); ++i) {
    if (!finished(out.client)) out.client = client.handshake();
    if (!finished(out.server)) out.server = server.handshake();
  }
  return out;
}

// A client and server stream over one pipe, handshake done (or failed).
struct Conn {
  Pipe pipe;
  std::unique_ptr<TlsStream> client, server;
  Outcome outcome;
};

std::unique_ptr<Conn> connect(const std::shared_ptr<const TlsClientContext>& client_ctx,
                              const std::shared_ptr<const SniSelector>& selector,
                              std::string_view sni = {}) {
  auto conn = std::make_unique<Conn>();
  std::string error;
  conn->client = TlsStream::client(client_ctx, conn->pipe.client, &error, sni);
  EXPECT_NE(conn->client, nullptr) << error;
  conn->server = TlsStream::server(selector, conn->pipe.server, &error);
  EXPECT_NE(conn->server, nullptr) << error;
  conn->outcome = handshake(*conn->client, *conn->server);
  return conn;
}

std::unique_ptr<Conn> connect(const std::shared_ptr<const TlsClientContext>& client_ctx,
                              const std::shared_ptr<const TlsServerContext>& server_ctx) {
  auto conn = std::make_unique<Conn>();
  std::string error;
  conn->client = TlsStream::client(client_ctx, conn->pipe.client, &error);
  EXPECT_NE(conn->client, nullptr) << error;
  conn->server = TlsStream::server(server_ctx, conn->pipe.server, &error);
  EXPECT_NE(conn->server, nullptr) << error;
  conn->outcome = handshake(*conn->client, *conn->server);
  return conn;
}

// Moves `size` bytes from one stream to the other; counts the writer's kWantWrite answers.
bool transfer(TlsStream& from, TlsStream& to, size_t size, size_t chunk, int* want_writes) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  std::string got;
  got.reserve(size);
  std::vector<char> buf(16384);
  size_t sent = 0;
  for (int rounds = 0; rounds < 100000 && got.size() < size; ++rounds) {
    while (sent < size) {
      TlsResult w = from.write(data.data() + sent, std::min(chunk, size - sent));
      if (w.status == TlsIo::kWantWrite) {
        ++*want_writes;
        break;
      }
      if (!w.ok()) return false;
      sent += w.bytes;
    }
    for (;;) {
      TlsResult r = to.read(buf.data(), buf.size());
      if (r.status == TlsIo::kWantRead) break;
      if (!r.ok()) return false;
      got.append(buf.data(), r.bytes);
    }
  }
  return got == data;
}

// Reads whatever arrived (e.g. TLS 1.3 session tickets) and returns the last status.
TlsResult drain(TlsStream& stream) {
  char buf[4096];
  TlsResult r;
  do {
    r = stream.read(buf, sizeof(buf));
  } while (r.ok());
  return r;
}

// Sends a few bytes each way so post-handshake messages (TLS 1.3 tickets) are processed.
void exchange(Conn& conn) {
  ASSERT_TRUE(conn.server->write("ping", 4).ok());
  char buf[16];
  TlsResult r = conn.client->read(buf, sizeof(buf));
  ASSERT_TRUE(r.ok()) << conn.client->error();
  EXPECT_EQ(std::string(buf, r.bytes), "ping");
  ASSERT_TRUE(conn.client->write("pong", 4).ok());
  r = conn.server->read(buf, sizeof(buf));
  ASSERT_TRUE(r.ok()) << conn.server->error();
  EXPECT_EQ(std::string(buf, r.bytes), "pong");
}

std::string server_cert_cn(const TlsStream& client) {
  return client.peer_certificate_info().subject;
}

// ---- context validation ----

TEST(TlsServerContextTest, ValidCertificateLoads) {
  std::string error;
  auto ctx = TlsServerContext::create(server_settings(certs().a), nullptr, &error);
  ASSERT_NE(ctx, nullptr) << error;
  EXPECT_TRUE(ctx->warnings().empty());
  EXPECT_EQ(ctx->certificate().dns_sans, std::vector<std::string>{"a.example.com"});
  EXPECT_EQ(ctx->certificate().subject, "CN=a.example.com,O=Proxenos Test");
  EXPECT_GT(ctx->certificate().not_after, ctx->certificate().not_before);
  EXPECT_FALSE(ctx->requests_client_certificate());
}

TEST(TlsServerContextTest, RejectsBadInputWithClearErrors) {
  struct Case {
    const char* what;
    TlsServerSettings settings;
    const char* message;
  };
  std::vector<Case> cases;
  TlsServerSettings s = server_settings(certs().a);
  s.cert_chain_pem = "not a certificate";
  cases.push_back({"no PEM", s, "unparsable certificate"});
  s.cert_chain_pem =
      "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
  cases.push_back({"garbage PEM", s, "unparsable certificate"});
  s = server_settings(certs().a);
  s.private_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  cases.push_back({"garbage key", s, "unparsable private key"});
  s = server_settings(certs().a);
  s.private_key_pem = certs().wrong_name.key_pem;
  cases.push_back({"mismatched key", s, "private key does not match the certificate"});
  s = server_settings(certs().a);
  s.cipher_suites = {"ECDHE-RSA-AES128-GCM-SHA256", "NOT-A-CIPHER"};
  cases.push_back({"bad cipher", s, "unknown cipher suite 'NOT-A-CIPHER'"});
  s = server_settings(certs().a);
  s.cipher_suites = {"TLS_NOT_A_SUITE"};
  cases.push_back({"bad 1.3 suite", s, "unknown cipher suite 'TLS_NOT_A_SUITE'"});
  s = server_settings(certs().a);
  s.ecdh_curves = {"X25519", "P-999"};
  cases.push_back({"bad curve", s, "unknown ECDH curve 'P-999'"});
  s = server_settings(certs().a);
  s.ca_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  cases.push_back({"bad CA", s, "unparsable CA bundle"});
  s.ca_pem = "nothing here";
  cases.push_back({"empty CA", s, "unparsable CA bundle"});
  s = server_settings(certs().a);
  s.cert_required = true;
  cases.push_back({"cert_required without CA", s, "needs a CA bundle"});
  s = server_settings(certs().a);
  s.min_version = TlsVersion::k1_3;
  s.max_version = TlsVersion::k1_2;
  cases.push_back({"min above max", s, "min_tls_version is above max_tls_version"});
  s = server_settings(certs().a);
  s.alpn = {std::string(300, 'x')};
  cases.push_back({"long ALPN", s, "ALPN"});
  s = server_settings(certs().a);
  s.cert_chain_pem.clear();
  cases.push_back({"no certificate", s, "no certificate"});

  for (const Case& c : cases) {
    std::string error;
    auto ctx = TlsServerContext::create(c.settings, nullptr, &error);
    EXPECT_EQ(ctx, nullptr) << c.what;
    EXPECT_NE(error.find(c.message), std::string::npos) << c.what << ": " << error;
  }
}

TEST(TlsServerContextTest, ExpiredCertificateIsServedWithAWarning) {
  std::string error;
  auto ctx = TlsServerContext::create(server_settings(certs().expired), nullptr, &error);
  ASSERT_NE(ctx, nullptr) << error;
  ASSERT_EQ(ctx->warnings().size(), 1u);
  EXPECT_NE(ctx->warnings()[0].find("certificate expired on"), std::string::npos);

  auto client_only =
      TlsServerContext::create(server_settings(certs().client_only), nullptr, &error);
  ASSERT_NE(client_only, nullptr) << error;
  ASSERT_EQ(client_only->warnings().size(), 1u);
  EXPECT_NE(client_only->warnings()[0].find("not valid for TLS server authentication"),
            std::string::npos);
}

TEST(TlsServerContextTest, AcceptsChainAndBoringSslCipherGroups) {
  TlsServerSettings s = server_settings(certs().a);
  s.cert_chain_pem += certs().ca.cert_pem();  // leaf then "intermediate"
  s.cipher_suites = {"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
                     "ECDHE-ECDSA-AES256-GCM-SHA384"};
  s.ecdh_curves = {"P-256", " X25519 "};
  std::string error;
  EXPECT_NE(TlsServerContext::create(s, nullptr, &error), nullptr) << error;
}

TEST(TlsClientContextTest, RejectsHalfAClientCertificate) {
  TlsClientSettings s;
  s.cert_chain_pem = certs().client.cert_pem;
  std::string error;
  EXPECT_EQ(TlsClientContext::create(s, &error), nullptr);
  EXPECT_NE(error.find("without a private key"), std::string::npos) << error;
  s.private_key_pem = certs().a.key_pem;
  EXPECT_EQ(TlsClientContext::create(s, &error), nullptr);
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;
}

// ---- SNI matching ----

TEST(SniSelectorTest, MatchOrder) {
  auto ctx = server_context(server_settings(certs().a));
  std::vector<SniEntry> entries = {
      {"*", ctx},                     // 0
      {"*.example.com", ctx},         // 1
      {"*.b.example.com", ctx},       // 2
      {"A.Example.com", ctx},         // 3
      {"x.b.example.com:8443", ctx},  // 4: the port is ignored
      {"api.*", ctx},                 // 5
      {"a.example.com", ctx},         // 6: duplicate, the first wins
  };
  std::string error;
  auto selector = SniSelector::create(entries, ctx, nullptr, &error);
  ASSERT_NE(selector, nullptr) << error;
  EXPECT_EQ(selector->match("a.example.com"), 3u);
  EXPECT_EQ(selector->match("x.b.example.com"), 4u);
  EXPECT_EQ(selector->match("y.b.example.com"), 2u);
  EXPECT_EQ(selector->match("z.y.b.example.com"), 2u);
  EXPECT_EQ(selector->match("c.example.com"), 1u);
  EXPECT_EQ(selector->match("api.other.org"), 5u);
  EXPECT_EQ(selector->match("example.com"), 0u);
  EXPECT_EQ(selector->match("b.example.com"), 1u);
  EXPECT_EQ(selector->match(""), SniSelector::kDefaultEntry);
  EXPECT_EQ(selector->context_for(3), ctx.get());
  EXPECT_EQ(selector->context_for(SniSelector::kNoEntry), nullptr);

  // A wildcard needs at least one character in place of the '*'.
  auto no_star = SniSelector::create({{"*.b.example.com", ctx}}, nullptr, nullptr, &error);
  ASSERT_NE(no_star, nullptr) << error;
  EXPECT_EQ(no_star->match(".b.example.com"), SniSelector::kNoEntry);
  EXPECT_EQ(no_star->match("b.example.com"), SniSelector::kNoEntry);
  EXPECT_EQ(no_star->match(""), SniSelector::kNoEntry);

  // Without a default, a client without SNI gets the `*` entry.
  auto star_only =
      SniSelector::create({{"a.example.com", ctx}, {"*", ctx}}, nullptr, nullptr, &error);
  ASSERT_NE(star_only, nullptr) << error;
  EXPECT_EQ(star_only->match(""), 1u);

  EXPECT_EQ(SniSelector::create({{"a.example.com", nullptr}}, ctx, nullptr, &error), nullptr);
  EXPECT_NE(error.find("no TLS context"), std::string::npos) << error;
}

class SniHandshakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = std::make_shared<TicketKeys>();
    a_ = server_context(server_settings(certs().a, "Host/a"), keys_);
    b_ = server_context(server_settings(certs().wildcard_b, "Host/b"), keys_);
    default_ = server_context(server_settings(certs().fallback, "Host/default"), keys_);
    std::string error;
    selector_ = SniSelector::create({{"a.example.com", a_}, {"*.b.example.com", b_}}, default_,
                                    keys_, &error);
    ASSERT_NE(selector_, nullptr) << error;
  }

  std::shared_ptr<TicketKeys> keys_;
  std::shared_ptr<const TlsServerContext> a_, b_, default_;
  std::shared_ptr<const SniSelector> selector_;
};

TEST_F(SniHandshakeTest, SniPicksTheCertificate) {
  struct Case {
    std::string sni;
    std::string expected_cn;
    uint32_t entry;
  };
  std::vector<Case> cases = {
      {"a.example.com", "CN=a.example.com,O=Proxenos Test", 0},
      {"A.EXAMPLE.COM", "CN=a.example.com,O=Proxenos Test", 0},
      {"x.b.example.com", "CN=*.b.example.com,O=Proxenos Test", 1},
      {"unknown.example.com", "CN=default.example.com,O=Proxenos Test", SniSelector::kDefaultEntry},
      {"", "CN=default.example.com,O=Proxenos Test", SniSelector::kDefaultEntry},
  };
  auto client = client_context(TlsClientSettings{});
  for (const Case& c : cases) {
    auto conn = connect(client, selector_, c.sni);
    ASSERT_TRUE(conn->outcome.ok())
        << c.sni << ": " << conn->client->error() << " / " << conn->server->error();
    EXPECT_EQ(server_cert_cn(*conn->client), c.expected_cn) << c.sni;
    std::string lower = c.sni;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    EXPECT_EQ(conn->server->sni(), lower);
    EXPECT_EQ(conn->server->sni_entry(), c.entry) << c.sni;
    EXPECT_EQ(conn->server->server_context(), selector_->context_for(c.entry));
    EXPECT_EQ(conn->server->version(), "TLSv1.3");
    EXPECT_FALSE(conn->server->cipher().empty());
    exchange(*conn);
  }
}

TEST_F(SniHandshakeTest, VerifyingClientAcceptsTheSelectedCertificate) {
  auto conn = connect(client_context(verifying_client("x.b.example.com")), selector_);
  ASSERT_TRUE(conn->outcome.ok()) << conn->client->error();
  PeerCertificateInfo info = conn->client->peer_certificate_info();
  EXPECT_TRUE(info.presented);
  EXPECT_TRUE(info.verified);
  EXPECT_EQ(info.dns_sans, std::vector<std::string>{"*.b.example.com"});
}

TEST_F(SniHandshakeTest, UnknownNameWithoutDefaultIsRefused) {
  std::string error;
  auto strict = SniSelector::create({{"a.example.com", a_}}, nullptr, keys_, &error);
  ASSERT_NE(strict, nullptr) << error;
  auto client = client_context(TlsClientSettings{});
  auto conn = connect(client, strict, "nope.example.com");
  EXPECT_EQ(conn->outcome.server.status, TlsIo::kError);
  EXPECT_NE(conn->server->error().find("no certificate for server name 'nope.example.com'"),
            std::string::npos)
      << conn->server->error();
  EXPECT_EQ(conn->outcome.client.status, TlsIo::kError);
  EXPECT_NE(conn->client->error().find("unrecognized name"), std::string::npos)
      << conn->client->error();

  auto no_sni = connect(client, strict);
  EXPECT_EQ(no_sni->outcome.server.status, TlsIo::kError);
  EXPECT_NE(no_sni->server->error().find("no default certificate"), std::string::npos)
      << no_sni->server->error();
}

TEST(TlsAlpnTest, ServerOrderAmongWhatTheClientOffers) {
  struct Case {
    std::vector<std::string> server, client;
    std::string expected;
  };
  std::vector<Case> cases = {
      {{"h2", "http/1.1"}, {"h2", "http/1.1"}, "h2"},
      {{"h2", "http/1.1"}, {"http/1.1", "h2"}, "h2"},
      {{"h2", "http/1.1"}, {"http/1.1"}, "http/1.1"},
      {{"h2", "http/1.1"}, {}, ""},
      {{"http/1.1"}, {"h2", "http/1.1"}, "http/1.1"},
      {{"http/1.1"}, {"h2"}, ""},  // no overlap: no ALPN, the handshake goes on
      {{}, {"h2", "http/1.1"}, ""},
      {{" h2 ", "http/1.1"}, {"h2"}, "h2"},
  };
  for (const Case& c : cases) {
    TlsServerSettings s = server_settings(certs().a);
    s.alpn = c.server;
    TlsClientSettings cs;
    cs.alpn = c.client;
    auto conn = connect(client_context(cs), server_context(s));
    ASSERT_TRUE(conn->outcome.ok()) << conn->server->error();
    EXPECT_EQ(conn->server->alpn(), c.expected);
    EXPECT_EQ(conn->client->alpn(), c.expected);
  }
}

TEST_F(SniHandshakeTest, EachEntryKeepsItsOwnPolicy) {
  // ALPN, versions and ciphers come from the entry chosen by SNI, not from the first context.
  TlsServerSettings s = server_settings(certs().a, "Host/a-h1");
  s.alpn = {"http/1.1"};
  s.min_version = TlsVersion::k1_3;
  auto a_h1 = server_context(s, keys_);
  TlsServerSettings d = server_settings(certs().fallback, "Host/default-12");
  d.max_version = TlsVersion::k1_2;
  d.cipher_suites = {"ECDHE-ECDSA-CHACHA20-POLY1305"};
  auto d12 = server_context(d, keys_);
  std::string error;
  auto selector = SniSelector::create({{"a.example.com", a_h1}}, d12, keys_, &error);
  ASSERT_NE(selector, nullptr) << error;

  TlsClientSettings cs;
  cs.alpn = {"h2", "http/1.1"};
  auto client = client_context(cs);
  auto a = connect(client, selector, "a.example.com");
  ASSERT_TRUE(a->outcome.ok()) << a->server->error();
  EXPECT_EQ(a->server->alpn(), "http/1.1");
  EXPECT_EQ(a->server->version(), "TLSv1.3");

  auto other = connect(client, selector, "other.example.com");
  ASSERT_TRUE(other->outcome.ok()) << other->server->error();
  EXPECT_EQ(other->server->alpn(), "h2");
  EXPECT_EQ(other->server->version(), "TLSv1.2");
  EXPECT_EQ(other->server->cipher(), "ECDHE-ECDSA-CHACHA20-POLY1305");

  TlsClientSettings old;
  old.max_version = TlsVersion::k1_2;
  auto refused = connect(client_context(old), selector, "a.example.com");
  EXPECT_EQ(refused->outcome.server.status, TlsIo::kError);
  EXPECT_NE(refused->server->error().find("unsupported protocol"), std::string::npos)
      << refused->server->error();
}

// ---- versions ----

TEST(TlsVersionTest, Tls11RefusedByDefaultAndAcceptedWhenConfigured) {
  TlsClientSettings old;
  old.min_version = TlsVersion::k1_1;
  old.max_version = TlsVersion::k1_1;
  old.cipher_suites = {"ECDHE-ECDSA-AES128-SHA"};
  auto client = client_context(old);

  auto refused = connect(client, server_context(server_settings(certs().a)));
  EXPECT_EQ(refused->outcome.server.status, TlsIo::kError);
  EXPECT_NE(refused->server->error().find("unsupported protocol"), std::string::npos)
      << refused->server->error();
  EXPECT_EQ(refused->outcome.client.status, TlsIo::kError);
  EXPECT_NE(refused->client->error().find("protocol version"), std::string::npos)
      << refused->client->error();

  TlsServerSettings s = server_settings(certs().a);
  s.min_version = TlsVersion::k1_1;
  s.cipher_suites = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"};
  auto accepted = connect(client, server_context(s));
  ASSERT_TRUE(accepted->outcome.ok()) << accepted->server->error();
  EXPECT_EQ(accepted->server->version(), "TLSv1.1");

  // min below 1.2 with only the AEAD defaults cannot serve 1.1: a warning says so.
  TlsServerSettings w = server_settings(certs().a);
  w.min_version = TlsVersion::k1_0;
  auto warned = server_context(w);
  ASSERT_NE(warned, nullptr);
  ASSERT_EQ(warned->warnings().size(), 1u);
  EXPECT_NE(warned->warnings()[0].find("cipher_suites"), std::string::npos);
}

TEST(TlsVersionTest, DefaultTls12CiphersAreAeadOnly) {
  TlsClientSettings cbc;
  cbc.max_version = TlsVersion::k1_2;
  cbc.cipher_suites = {"ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA"};
  auto conn = connect(client_context(cbc), server_context(server_settings(certs().a)));
  EXPECT_EQ(conn->outcome.server.status, TlsIo::kError);
  EXPECT_NE(conn->server->error().find("no shared cipher"), std::string::npos)
      << conn->server->error();

  TlsClientSettings tls12;
  tls12.max_version = TlsVersion::k1_2;
  auto ok = connect(client_context(tls12), server_context(server_settings(certs().a)));
  ASSERT_TRUE(ok->outcome.ok());
  EXPECT_EQ(ok->server->version(), "TLSv1.2");
  EXPECT_EQ(ok->server->cipher(), "ECDHE-ECDSA-AES128-GCM-SHA256");
}

// ---- client certificates (mTLS) ----

class MutualTlsTest : public ::testing::Test {
 protected:
  std::shared_ptr<const TlsServerContext> server(bool required, std::string crl = {}) {
    TlsServerSettings s = server_settings(certs().a);
    s.ca_pem = certs().ca.cert_pem();
    s.cert_required = required;
    s.crl_pem = std::move(crl);
    return server_context(s);
  }
  static std::shared_ptr<const TlsClientContext> client(const TestCert* cert) {
    TlsClientSettings s;
    s.sni = "a.example.com";
    if (cert != nullptr) {
      s.cert_chain_pem = cert->cert_pem;
      s.private_key_pem = cert->key_pem;
    }
    return client_context(s);
  }
};

TEST_F(MutualTlsTest, RequiredCertificateMissing) {
  auto conn = connect(client(nullptr), server(true));
  EXPECT_EQ(conn->outcome.server.status, TlsIo::kError);
  EXPECT_NE(conn->server->error().find("peer did not return a certificate"), std::string::npos)
      << conn->server->error();
  // TLS 1.3: the client finished its side before the server judged its certificate; the alert
  // arrives on the next read.
  TlsResult r = conn->outcome.client.ok() ? drain(*conn->client) : conn->outcome.client;
  EXPECT_EQ(r.status, TlsIo::kError);
  EXPECT_NE(conn->client->error().find("certificate required"), std::string::npos)
      << conn->client->error();
}

TEST_F(MutualTlsTest, ValidCertificateGivesPeerInfo) {
  auto conn = connect(client(&certs().client), server(true));
  ASSERT_TRUE(conn->outcome.ok()) << conn->server->error();
  exchange(*conn);
  PeerCertificateInfo info = conn->server->peer_certificate_info();
  EXPECT_TRUE(info.presented);
  EXPECT_TRUE(info.verified);
  EXPECT_EQ(info.subject, "CN=client,O=Proxenos Test");
  EXPECT_EQ(info.issuer, "CN=Proxenos Test CA,O=Proxenos Test");
  EXPECT_EQ(info.uri_sans, std::vector<std::string>{"spiffe://cluster.local/ns/default/sa/client"});
  EXPECT_EQ(info.dns_sans, (std::vector<std::string>{"client.example.com", "client2.example.com"}));
  EXPECT_EQ(info.pem, certs().client.cert_pem);
  EXPECT_EQ(info.chain_pem, certs().client.cert_pem);
  EXPECT_EQ(info.sha256_hex, tls_testing::pem_sha256_hex(certs().client.cert_pem));
  EXPECT_EQ(info.sha256_hex.size(), 64u);
}

TEST_F(MutualTlsTest, OptionalCertificate) {
  auto without = connect(client(nullptr), server(false));
  ASSERT_TRUE(without->outcome.ok()) << without->server->error();
  exchange(*without);
  EXPECT_FALSE(without->server->peer_certificate_info().presented);

  auto with = connect(client(&certs().client), server(false));
  ASSERT_TRUE(with->outcome.ok()) << with->server->error();
  EXPECT_TRUE(with->server->peer_certificate_info().verified);
}

TEST_F(MutualTlsTest, UntrustedOrRevokedOrWrongPurposeCertificateFails) {
  struct Case {
    const TestCert* cert;
    bool with_crl;
    const char* reason;
  };
  std::vector<Case> cases = {
      {&certs().untrusted_client, false, "unable to get local issuer certificate"},
      {&certs().revoked_client, true, "certificate revoked"},
      {&certs().a, false, "unsuitable certificate purpose"},  // serverAuth only
  };
  for (const Case& c : cases) {
    auto conn = connect(client(c.cert), server(false, c.with_crl ? certs().crl : ""));
    EXPECT_EQ(conn->outcome.server.status, TlsIo::kError) << c.reason;
    EXPECT_NE(conn->server->error().find("certificate verify failed"), std::string::npos)
        << conn->server->error();
    EXPECT_NE(conn->server->error().find(c.reason), std::string::npos) << conn->server->error();
  }
  // The CRL revokes only what it lists.
  auto fine = connect(client(&certs().client), server(true, certs().crl));
  EXPECT_TRUE(fine->outcome.ok()) << fine->server->error();
}

// ---- verifying upstreams ----

TEST(TlsClientVerifyTest, Failures) {
  struct Case {
    const TestCert* cert;
    const char* reason;
  };
  std::vector<Case> cases = {
      {&certs().wrong_name, "hostname mismatch"},
      {&certs().expired, "certificate has expired"},
      {&certs().untrusted, "unable to get local issuer certificate"},
      {&certs().client_only, "unsuitable certificate purpose"},
  };
  auto client = client_context(verifying_client("a.example.com"));
  for (const Case& c : cases) {
    auto conn = connect(client, server_context(server_settings(*c.cert)));
    EXPECT_EQ(conn->outcome.client.status, TlsIo::kError) << c.reason;
    EXPECT_NE(conn->client->error().find("certificate verify failed: "), std::string::npos)
        << conn->client->error();
    EXPECT_NE(conn->client->error().find(c.reason), std::string::npos) << conn->client->error();
    EXPECT_EQ(conn->outcome.server.status, TlsIo::kError);
  }
}

TEST(TlsClientVerifyTest, SuccessesAndOptOuts) {
  auto ok = connect(client_context(verifying_client("a.example.com")),
                    server_context(server_settings(certs().a)));
  ASSERT_TRUE(ok->outcome.ok()) << ok->client->error();
  EXPECT_TRUE(ok->client->peer_certificate_info().verified);
  EXPECT_EQ(ok->client->sni(), "a.example.com");
  EXPECT_EQ(ok->server->sni(), "a.example.com");  // fixed context: OpenSSL's record of it

  // The per-connection SNI override is also the name checked.
  auto overridden = connect(client_context(verifying_client("a.example.com")),
                            server_context(server_settings(certs().wrong_name)));
  EXPECT_EQ(overridden->outcome.client.status, TlsIo::kError);
  {
    auto conn = std::make_unique<Conn>();
    std::string error;
    conn->client = TlsStream::client(client_context(verifying_client("a.example.com")),
                                     conn->pipe.client, &error, "other.example.com");
    conn->server = TlsStream::server(server_context(server_settings(certs().wrong_name)),
                                     conn->pipe.server, &error);
    EXPECT_TRUE(handshake(*conn->client, *conn->server).ok()) << conn->client->error();
  }

  TlsClientSettings no_hostname = verifying_client("a.example.com");
  no_hostname.verify_hostname = false;
  auto chain_only =
      connect(client_context(no_hostname), server_context(server_settings(certs().wrong_name)));
  EXPECT_TRUE(chain_only->outcome.ok()) << chain_only->client->error();

  TlsClientSettings no_ca;
  no_ca.sni = "a.example.com";
  auto unverified =
      connect(client_context(no_ca), server_context(server_settings(certs().untrusted)));
  ASSERT_TRUE(unverified->outcome.ok()) << unverified->client->error();
  PeerCertificateInfo info = unverified->client->peer_certificate_info();
  EXPECT_TRUE(info.presented);
  EXPECT_FALSE(info.verified);
}

TEST(TlsClientVerifyTest, ClientCertificateToAnUpstream) {
  TlsServerSettings s = server_settings(certs().a);
  s.ca_pem = certs().ca.cert_pem();
  s.cert_required = true;
  TlsClientSettings cs = verifying_client("a.example.com");
  cs.cert_chain_pem = certs().client.cert_pem;
  cs.private_key_pem = certs().client.key_pem;
  cs.alpn = {"h2"};
  auto conn = connect(client_context(cs), server_context(s));
  ASSERT_TRUE(conn->outcome.ok()) << conn->server->error();
  exchange(*conn);
  EXPECT_EQ(conn->client->alpn(), "h2");
  EXPECT_EQ(conn->server->peer_certificate_info().subject, "CN=client,O=Proxenos Test");
}

// ---- session resumption ----

class ResumptionTest : public SniHandshakeTest, public ::testing::WithParamInterface<TlsVersion> {
 protected:
  std::shared_ptr<const TlsClientContext> client() {
    TlsClientSettings s = verifying_client("a.example.com");
    s.max_version = GetParam();
    return client_context(s);
  }
  bool resumed(const std::shared_ptr<const TlsClientContext>& client) {
    auto conn = connect(client, selector_);
    EXPECT_TRUE(conn->outcome.ok()) << conn->client->error() << conn->server->error();
    exchange(*conn);
    EXPECT_EQ(conn->client->session_reused(), conn->server->session_reused());
    EXPECT_EQ(conn->server->sni_entry(), 0u);
    return conn->server->session_reused();
  }
};

TEST_P(ResumptionTest, TicketsSurviveOneRotation) {
  auto c = client();
  EXPECT_FALSE(resumed(c));
  EXPECT_TRUE(resumed(c));
  keys_->rotate();
  EXPECT_TRUE(resumed(c));  // sealed with the previous key: accepted and renewed
  keys_->rotate();
  EXPECT_TRUE(resumed(c));  // the renewed ticket used the key current at the time
  keys_->rotate();
  keys_->rotate();
  EXPECT_FALSE(resumed(c));  // two rotations later the key is gone: full handshake
  EXPECT_TRUE(resumed(c));
  EXPECT_EQ(keys_->rotations(), 4u);
}

TEST_P(ResumptionTest, AnotherSelectorSharingTheKeysResumes) {
  auto c = client();
  EXPECT_FALSE(resumed(c));
  // A reload builds new contexts and a new selector; the shared keys keep tickets valid.
  auto a2 = server_context(server_settings(certs().a, "Host/a"), keys_);
  std::string error;
  selector_ = SniSelector::create({{"a.example.com", a2}}, nullptr, keys_, &error);
  ASSERT_NE(selector_, nullptr) << error;
  EXPECT_TRUE(resumed(c));
}

TEST_P(ResumptionTest, SessionDoesNotResumeUnderAnotherCertificate) {
  auto c = client();
  auto first = connect(c, selector_);
  ASSERT_TRUE(first->outcome.ok());
  exchange(*first);
  SSL_SESSION* session = SSL_get1_session(first->client->native());
  ASSERT_NE(session, nullptr);

  auto conn = std::make_unique<Conn>();
  std::string error;
  TlsClientSettings s;
  s.max_version = GetParam();
  conn->client = TlsStream::client(client_context(s), conn->pipe.client, &error, "x.b.example.com");
  SSL_set_session(conn->client->native(), session);
  SSL_SESSION_free(session);
  conn->server = TlsStream::server(selector_, conn->pipe.server, &error);
  ASSERT_TRUE(handshake(*conn->client, *conn->server).ok()) << conn->server->error();
  EXPECT_EQ(conn->server->sni_entry(), 1u);
  EXPECT_FALSE(conn->server->session_reused());
}

TEST_P(ResumptionTest, ClientCertificatePolicyChangeForcesAFullHandshake) {
  auto c = client();
  EXPECT_FALSE(resumed(c));
  EXPECT_TRUE(resumed(c));
  // Same name, certificate and ticket keys, but now client certificates are checked: a session
  // made without that check must not skip it.
  TlsServerSettings s = server_settings(certs().a, "Host/a");
  s.ca_pem = certs().ca.cert_pem();
  auto checked = server_context(s, keys_);
  std::string error;
  selector_ = SniSelector::create({{"a.example.com", checked}}, nullptr, keys_, &error);
  ASSERT_NE(selector_, nullptr) << error;
  EXPECT_FALSE(resumed(c));
  EXPECT_TRUE(resumed(c));
}

INSTANTIATE_TEST_SUITE_P(Versions, ResumptionTest,
                         ::testing::Values(TlsVersion::k1_2, TlsVersion::k1_3),
                         [](const auto& info) {
                           return info.param == TlsVersion::k1_2 ? "Tls12" : "Tls13";
                         });

// ---- data, shutdown, sniffing ----

TEST_F(SniHandshakeTest, OneMebibyteEachWayWithBackPressure) {
  auto conn = connect(client_context(TlsClientSettings{}), selector_, "a.example.com");
  ASSERT_TRUE(conn->outcome.ok());
  int want_writes = 0;
  EXPECT_TRUE(transfer(*conn->client, *conn->server, 1 << 20, 64 * 1024, &want_writes))
      << conn->client->error() << conn->server->error();
  EXPECT_GT(want_writes, 0);  // the socket buffer is far smaller than 1 MiB
  want_writes = 0;
  EXPECT_TRUE(transfer(*conn->server, *conn->client, 1 << 20, 5000, &want_writes))
      << conn->client->error() << conn->server->error();
  EXPECT_GT(want_writes, 0);
}

TEST_F(SniHandshakeTest, CleanShutdownIsClosedAndAbruptCloseIsEof) {
  auto conn = connect(client_context(TlsClientSettings{}), selector_, "a.example.com");
  ASSERT_TRUE(conn->outcome.ok());
  exchange(*conn);
  EXPECT_EQ(conn->client->shutdown().status, TlsIo::kOk);
  char buf[64];
  EXPECT_EQ(conn->server->read(buf, sizeof(buf)).status, TlsIo::kClosed);
  // The server may still send after the client's close_notify, then closes too.
  ASSERT_TRUE(conn->server->write("bye", 3).ok());
  EXPECT_EQ(conn->server->shutdown().status, TlsIo::kClosed);
  TlsResult r = conn->client->read(buf, sizeof(buf));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buf, r.bytes), "bye");
  EXPECT_EQ(conn->client->read(buf, sizeof(buf)).status, TlsIo::kClosed);
  EXPECT_EQ(conn->client->shutdown().status, TlsIo::kClosed);

  auto abrupt = connect(client_context(TlsClientSettings{}), selector_, "a.example.com");
  ASSERT_TRUE(abrupt->outcome.ok());
  exchange(*abrupt);
  close(abrupt->pipe.client);
  abrupt->pipe.client = -1;
  EXPECT_EQ(drain(*abrupt->server).status, TlsIo::kEof);
  EXPECT_NE(abrupt->server->error().find("without close_notify"), std::string::npos);
  EXPECT_EQ(abrupt->server->shutdown().status, TlsIo::kError);  // nothing to send on a dead link
}

TEST_F(SniHandshakeTest, ShutdownWaitsForAFullSocket) {
  auto conn = connect(client_context(TlsClientSettings{}), selector_, "a.example.com");
  ASSERT_TRUE(conn->outcome.ok());
  exchange(*conn);
  // Fill the socket under the TLS layer, so only the alert itself waits.
  char junk[4096] = {};
  size_t filled = 0;
  for (ssize_t n; (n = send(conn->pipe.client, junk, sizeof(junk), 0)) > 0;) filled += n;
  ASSERT_GT(filled, 0u);
  EXPECT_EQ(conn->client->shutdown().status, TlsIo::kWantWrite);
  for (size_t got = 0; got < filled;) {
    ssize_t n = recv(conn->pipe.server, junk, std::min(sizeof(junk), filled - got), 0);
    ASSERT_GT(n, 0);
    got += static_cast<size_t>(n);
  }
  EXPECT_EQ(conn->client->shutdown().status, TlsIo::kOk);
  char buf[64];
  EXPECT_EQ(conn->server->read(buf, sizeof(buf)).status, TlsIo::kClosed) << conn->server->error();
  EXPECT_EQ(conn->client->shutdown().status, TlsIo::kOk);  // sent; the server's is still due
}

TEST_F(SniHandshakeTest, ShutdownWaitsForAPendingWrite) {
  auto conn = connect(client_context(TlsClientSettings{}), selector_, "a.example.com");
  ASSERT_TRUE(conn->outcome.ok());
  std::string chunk(16384, 'x');
  TlsResult w;
  while ((w = conn->client->write(chunk.data(), chunk.size())).ok()) {
  }
  ASSERT_EQ(w.status, TlsIo::kWantWrite);
  EXPECT_EQ(conn->client->shutdown().status, TlsIo::kError);
  EXPECT_NE(conn->client->error().find("pending write"), std::string::npos);
  std::vector<char> buf(1 << 16);
  while (conn->server->read(buf.data(), buf.size()).ok()) {
  }
  EXPECT_TRUE(conn->client->write(chunk.data(), chunk.size()).ok());  // still usable
  EXPECT_EQ(conn->client->shutdown().status, TlsIo::kOk);
  TlsResult r;
  while ((r = conn->server->read(buf.data(), buf.size())).ok()) {
  }
  EXPECT_EQ(r.status, TlsIo::kClosed) << conn->server->error();
}

TEST_F(SniHandshakeTest, PeekedOrAlreadyReadClientHelloBytes) {
  auto client_ctx = client_context(verifying_client("a.example.com"));
  {
    // The sniffing contract: peek, decide, then hand the untouched socket over.
    Pipe pipe;
    std::string error;
    auto client = TlsStream::client(client_ctx, pipe.client, &error);
    ASSERT_EQ(client->handshake().status, TlsIo::kWantRead);
    unsigned char first = 0;
    ASSERT_EQ(recv(pipe.server, &first, 1, MSG_PEEK), 1);
    EXPECT_EQ(first, 0x16);
    auto server = TlsStream::server(selector_, pipe.server, &error);
    EXPECT_TRUE(handshake(*client, *server).ok()) << server->error();
  }
  {
    // Bytes consumed before TLS (e.g. read together with a PROXY header) are handed in.
    Pipe pipe;
    std::string error;
    auto client = TlsStream::client(client_ctx, pipe.client, &error);
    ASSERT_EQ(client->handshake().status, TlsIo::kWantRead);
    char head[7];
    ASSERT_EQ(recv(pipe.server, head, sizeof(head), 0), 7);
    auto server = TlsStream::server(selector_, pipe.server, &error, std::string_view(head, 7));
    Outcome out = handshake(*client, *server);
    EXPECT_TRUE(out.ok()) << server->error();
    EXPECT_EQ(server->sni(), "a.example.com");
  }
}

TEST_F(SniHandshakeTest, CleartextOnATlsPortIsAnError) {
  Pipe pipe;
  const char request[] = "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
  ASSERT_EQ(send(pipe.client, request, sizeof(request) - 1, 0),
            static_cast<ssize_t>(sizeof(request) - 1));
  std::string error;
  auto server = TlsStream::server(selector_, pipe.server, &error);
  TlsResult r = server->handshake();
  EXPECT_EQ(r.status, TlsIo::kError);
  EXPECT_NE(server->error().find("http request"), std::string::npos) << server->error();
  EXPECT_EQ(server->sni_entry(), SniSelector::kNoEntry);
}

TEST(TlsIoTest, StatusNames) {
  EXPECT_STREQ(to_string(TlsIo::kWantWrite), "want-write");
  EXPECT_STREQ(to_string(TlsIo::kEof), "eof");
}

}  // namespace
}  // namespace proxenos::net
