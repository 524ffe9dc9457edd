#include "proxy/client_cert_header.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace proxenos::proxy {
namespace {

using Mode = ForwardClientCertDetails;

constexpr std::string_view kPem =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB+jCCAaCgAwIBAgIU/a==\n"
    "-----END CERTIFICATE-----\n";
constexpr std::string_view kPemEncoded =
    "-----BEGIN%20CERTIFICATE-----%0A"
    "MIIB%2BjCCAaCgAwIBAgIU%2Fa%3D%3D%0A"
    "-----END%20CERTIFICATE-----%0A";
constexpr std::string_view kIntermediate =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIC/zCC+A==\n"
    "-----END CERTIFICATE-----\n";
constexpr std::string_view kIntermediateEncoded =
    "-----BEGIN%20CERTIFICATE-----%0A"
    "MIIC%2FzCC%2BA%3D%3D%0A"
    "-----END%20CERTIFICATE-----%0A";
constexpr std::string_view kHash =
    "c4fc4d1e0f7b9a1f2b4f4e6b1c8f4a9f20a1f0e2b5b0d1c6e3a7e9f0c1d2e3f4";
const std::vector<std::string> kLocalSans = {"spiffe://cluster.local/ns/edge/sa/proxenos"};

net::PeerCertificateInfo client_cert() {
  net::PeerCertificateInfo p;
  p.presented = true;
  p.verified = true;
  p.sha256_hex = std::string(kHash);
  p.pem = std::string(kPem);
  p.chain_pem = std::string(kPem) + std::string(kIntermediate);
  p.subject = "CN=Test Client,OU=Lyft,L=San Francisco,ST=CA,C=US";
  p.issuer = "CN=Test CA";
  p.uri_sans = {"spiffe://acme.example/client"};
  p.dns_sans = {"client.acme.example", "www.client.acme.example"};
  return p;
}

ClientCertSettings settings(Mode mode, SetCurrentClientCertDetails details = {}) {
  ClientCertSettings s;
  s.forward = mode;
  s.set_current = details;
  return s;
}

std::string element(SetCurrentClientCertDetails details,
                    const net::PeerCertificateInfo& peer = client_cert(),
                    const std::vector<std::string>& local = kLocalSans) {
  return client_cert_element(details, peer, local);
}

const std::string kBy = "By=spiffe://cluster.local/ns/edge/sa/proxenos";
const std::string kHashKv = "Hash=" + std::string(kHash);

TEST(ClientCertHeader, UrlEncodesPemLikeEnvoy) {
  EXPECT_EQ(url_encode_pem(kPem), kPemEncoded);
  EXPECT_EQ(url_encode_pem(""), "");
  // Only those five characters: '%' and quotes stay as they are.
  EXPECT_EQ(url_encode_pem("a b+c/d=e\nf%g\"h"), "a%20b%2Bc%2Fd%3De%0Af%g\"h");
}

TEST(ClientCertHeader, ModeNamesRoundTrip) {
  for (Mode m : {Mode::kSanitize, Mode::kForwardOnly, Mode::kAppendForward, Mode::kSanitizeSet,
                 Mode::kAlwaysForwardOnly}) {
    EXPECT_EQ(parse_forward_client_cert_details(to_string(m)), m);
  }
  EXPECT_EQ(to_string(Mode::kAppendForward), "APPEND_FORWARD");
  EXPECT_EQ(parse_forward_client_cert_details("sanitize"), std::nullopt);
  EXPECT_EQ(parse_forward_client_cert_details(""), std::nullopt);
  EXPECT_EQ(parse_forward_client_cert_details("SANITIZE "), std::nullopt);
  EXPECT_EQ(ClientCertSettings().forward, Mode::kSanitize);
}

TEST(ClientCertHeader, ElementWithoutDetailsIsByAndHash) {
  EXPECT_EQ(element({}), kBy + ";" + kHashKv);
  // No URI SAN on the proxy's certificate: no By.
  EXPECT_EQ(element({}, client_cert(), {}), kHashKv);
  // Several: one By each, in order.
  EXPECT_EQ(element({}, client_cert(), {"spiffe://a", "https://b.example/x"}),
            "By=spiffe://a;By=https://b.example/x;" + kHashKv);
}

TEST(ClientCertHeader, EachDetailAlone) {
  EXPECT_EQ(element({.cert = true}),
            kBy + ";" + kHashKv + ";Cert=\"" + std::string(kPemEncoded) + "\"");
  EXPECT_EQ(element({.chain = true}), kBy + ";" + kHashKv + ";Chain=\"" + std::string(kPemEncoded) +
                                          std::string(kIntermediateEncoded) + "\"");
  EXPECT_EQ(element({.subject = true}),
            kBy + ";" + kHashKv + ";Subject=\"CN=Test Client,OU=Lyft,L=San Francisco,ST=CA,C=US\"");
  EXPECT_EQ(element({.uri = true}), kBy + ";" + kHashKv + ";URI=spiffe://acme.example/client");
  EXPECT_EQ(element({.dns = true}),
            kBy + ";" + kHashKv + ";DNS=client.acme.example;DNS=www.client.acme.example");
}

TEST(ClientCertHeader, AllDetailsInEnvoysOrder) {
  EXPECT_EQ(element({.subject = true, .cert = true, .chain = true, .dns = true, .uri = true}),
            kBy + ";" + kHashKv + ";Cert=\"" + std::string(kPemEncoded) + "\";Chain=\"" +
                std::string(kPemEncoded) + std::string(kIntermediateEncoded) +
                "\";Subject=\"CN=Test Client,OU=Lyft,L=San Francisco,ST=CA,C=US\""
                ";URI=spiffe://acme.example/client"
                ";DNS=client.acme.example;DNS=www.client.acme.example");
}

TEST(ClientCertHeader, EmptyValues) {
  net::PeerCertificateInfo bare;
  bare.presented = true;
  bare.verified = true;
  bare.sha256_hex = "ab";
  // Subject and URI keys stay when empty; Cert, Chain and DNS go.
  EXPECT_EQ(
      element({.subject = true, .cert = true, .chain = true, .dns = true, .uri = true}, bare, {}),
      "Hash=ab;Subject=\"\";URI=");
  // Several URI SANs on the client: one URI each.
  bare.uri_sans = {"spiffe://a", "spiffe://b"};
  EXPECT_EQ(element({.uri = true}, bare, {}), "Hash=ab;URI=spiffe://a;URI=spiffe://b");
  bare.sha256_hex.clear();
  EXPECT_EQ(element({}, bare, {}), "");
}

// --- the action per mode and connection ---

struct Connection {
  const char* name;
  std::optional<net::PeerCertificateInfo> peer;  // nullopt: cleartext
};

std::vector<Connection> non_mtls_connections() {
  net::PeerCertificateInfo no_cert;  // TLS, no client certificate
  net::PeerCertificateInfo unverified = client_cert();
  unverified.verified = false;
  return {{"cleartext", std::nullopt}, {"tls-no-cert", no_cert}, {"unverified", unverified}};
}

const net::PeerCertificateInfo* ptr(const std::optional<net::PeerCertificateInfo>& p) {
  return p ? &*p : nullptr;
}

TEST(ClientCertHeader, AlwaysForwardOnlyKeepsEverything) {
  const net::PeerCertificateInfo mtls = client_cert();
  for (const auto& c : non_mtls_connections()) {
    for (auto existing :
         {std::optional<std::string_view>(), std::optional<std::string_view>("x")}) {
      XfccResult r = compute_forwarded_client_cert(settings(Mode::kAlwaysForwardOnly), existing,
                                                   ptr(c.peer), kLocalSans);
      EXPECT_EQ(r.action, XfccAction::kKeep) << c.name;
      EXPECT_EQ(r.value, "");
    }
  }
  XfccResult r = compute_forwarded_client_cert(
      settings(Mode::kAlwaysForwardOnly, {.subject = true}), "Hash=1", &mtls, kLocalSans);
  EXPECT_EQ(r.action, XfccAction::kKeep);
}

TEST(ClientCertHeader, EveryOtherModeRemovesWithoutMtls) {
  for (Mode m : {Mode::kSanitize, Mode::kForwardOnly, Mode::kAppendForward, Mode::kSanitizeSet}) {
    for (const auto& c : non_mtls_connections()) {
      for (auto existing :
           {std::optional<std::string_view>(), std::optional<std::string_view>("By=evil;Hash=1")}) {
        XfccResult r = compute_forwarded_client_cert(settings(m, {.subject = true, .uri = true}),
                                                     existing, ptr(c.peer), kLocalSans);
        EXPECT_EQ(r.action, XfccAction::kRemove) << to_string(m) << " " << c.name;
        EXPECT_EQ(r.value, "");
      }
    }
  }
}

TEST(ClientCertHeader, SanitizeRemovesOnMtls) {
  const net::PeerCertificateInfo mtls = client_cert();
  XfccResult r = compute_forwarded_client_cert(settings(Mode::kSanitize, {.cert = true}),
                                               "Hash=spoofed", &mtls, kLocalSans);
  EXPECT_EQ(r.action, XfccAction::kRemove);
  EXPECT_EQ(r.value, "");
}

TEST(ClientCertHeader, ForwardOnlyKeepsOnMtls) {
  const net::PeerCertificateInfo mtls = client_cert();
  for (auto existing : {std::optional<std::string_view>(), std::optional<std::string_view>("x")}) {
    XfccResult r = compute_forwarded_client_cert(settings(Mode::kForwardOnly, {.uri = true}),
                                                 existing, &mtls, kLocalSans);
    EXPECT_EQ(r.action, XfccAction::kKeep);
    EXPECT_EQ(r.value, "");
  }
}

TEST(ClientCertHeader, SanitizeSetReplacesOnMtls) {
  const net::PeerCertificateInfo mtls = client_cert();
  const std::string want = kBy + ";" + kHashKv +
                           ";Subject=\"CN=Test Client,OU=Lyft,L=San Francisco,ST=CA,C=US\""
                           ";URI=spiffe://acme.example/client";
  for (auto existing : {std::optional<std::string_view>(), std::optional<std::string_view>(""),
                        std::optional<std::string_view>("By=evil;Hash=00")}) {
    XfccResult r = compute_forwarded_client_cert(
        settings(Mode::kSanitizeSet, {.subject = true, .uri = true}), existing, &mtls, kLocalSans);
    EXPECT_EQ(r.action, XfccAction::kReplace);
    EXPECT_EQ(r.value, want);
  }
  // No details and no By: the hash alone.
  XfccResult r = compute_forwarded_client_cert(settings(Mode::kSanitizeSet), "x", &mtls, {});
  EXPECT_EQ(r.action, XfccAction::kReplace);
  EXPECT_EQ(r.value, kHashKv);
}

TEST(ClientCertHeader, AppendForwardAppendsOnMtls) {
  const net::PeerCertificateInfo mtls = client_cert();
  const ClientCertSettings s = settings(Mode::kAppendForward, {.dns = true});
  const std::string mine =
      kBy + ";" + kHashKv + ";DNS=client.acme.example;DNS=www.client.acme.example";

  XfccResult r = compute_forwarded_client_cert(s, std::nullopt, &mtls, kLocalSans);
  EXPECT_EQ(r.action, XfccAction::kAppend);
  EXPECT_EQ(r.value, mine);

  r = compute_forwarded_client_cert(s, "", &mtls, kLocalSans);
  EXPECT_EQ(r.action, XfccAction::kAppend);
  EXPECT_EQ(r.value, mine);

  r = compute_forwarded_client_cert(s, "By=spiffe://front;Hash=0123;URI=spiffe://user", &mtls,
                                    kLocalSans);
  EXPECT_EQ(r.action, XfccAction::kAppend);
  EXPECT_EQ(r.value, "By=spiffe://front;Hash=0123;URI=spiffe://user," + mine);

  // Two earlier hops (several header lines joined by the caller): appended after both.
  r = compute_forwarded_client_cert(settings(Mode::kAppendForward), "Hash=01,Hash=02", &mtls, {});
  EXPECT_EQ(r.action, XfccAction::kAppend);
  EXPECT_EQ(r.value, "Hash=01,Hash=02," + kHashKv);
}

TEST(ClientCertHeader, AppendForwardWithNothingToAddKeeps) {
  net::PeerCertificateInfo no_hash = client_cert();
  no_hash.sha256_hex.clear();
  XfccResult r =
      compute_forwarded_client_cert(settings(Mode::kAppendForward), "Hash=01", &no_hash, {});
  EXPECT_EQ(r.action, XfccAction::kKeep);
  r = compute_forwarded_client_cert(settings(Mode::kSanitizeSet), "Hash=01", &no_hash, {});
  EXPECT_EQ(r.action, XfccAction::kReplace);
  EXPECT_EQ(r.value, "");
}

}  // namespace
}  // namespace proxenos::proxy
