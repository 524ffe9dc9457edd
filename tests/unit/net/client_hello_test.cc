#include "net/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <string>
#include <vector>

namespace proxenos::net {
namespace {

// The first flight of a real OpenSSL client: SSL_connect on a memory BIO writes its ClientHello
// there and then waits for a server that never answers.
std::string openssl_client_hello(const char* sni, const std::vector<std::string>& alpn = {},
                                 int max_version = 0) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx, max_version);
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  if (sni != nullptr) SSL_set_tlsext_host_name(ssl, sni);
  if (!alpn.empty()) {
    std::string wire;
    for (const std::string& p : alpn) wire += static_cast<char>(p.size()) + p;
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  SSL_set_connect_state(ssl);
  EXPECT_LE(SSL_do_handshake(ssl), 0);  // wants to read the ServerHello
  char* data = nullptr;
  long n = BIO_get_mem_data(out, &data);
  std::string hello(data, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

// Re-frames a single-record ClientHello into records of at most `chunk` payload bytes.
std::string split_records(const std::string& hello, size_t chunk) {
  std::string message = hello.substr(5);
  std::string out;
  for (size_t at = 0; at < message.size(); at += chunk) {
    std::string part = message.substr(at, chunk);
    out += "\x16\x03\x01";
    out += static_cast<char>(part.size() >> 8);
    out += static_cast<char>(part.size() & 0xff);
    out += part;
  }
  return out;
}

TEST(ClientHello, RealOpenSslHelloGivesSniAndAlpn) {
  std::string hello = openssl_client_hello("Passthrough.Example.com", {"h2", "http/1.1"});
  ClientHelloResult r = parse_client_hello(hello);
  ASSERT_EQ(r.status, ClientHelloStatus::kDone) << r.error;
  EXPECT_EQ(r.server_name, "passthrough.example.com");
  EXPECT_EQ(r.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(r.consumed, hello.size());
}

TEST(ClientHello, Tls12HelloAndNoSni) {
  std::string hello = openssl_client_hello("old.example.com", {}, TLS1_2_VERSION);
  ClientHelloResult r = parse_client_hello(hello);
  ASSERT_EQ(r.status, ClientHelloStatus::kDone) << r.error;
  EXPECT_EQ(r.server_name, "old.example.com");
  EXPECT_TRUE(r.alpn.empty());

  r = parse_client_hello(openssl_client_hello(nullptr));
  ASSERT_EQ(r.status, ClientHelloStatus::kDone) << r.error;
  EXPECT_EQ(r.server_name, "");
}

TEST(ClientHello, EveryPrefixIsIncompleteAndTrailingBytesAreIgnored) {
  std::string hello = openssl_client_hello("a.example.com");
  for (size_t n = 0; n < hello.size(); ++n) {
    ClientHelloResult r = parse_client_hello(std::string_view(hello).substr(0, n));
    ASSERT_EQ(r.status, ClientHelloStatus::kIncomplete) << "prefix " << n << ": " << r.error;
  }
  ClientHelloResult r = parse_client_hello(hello + "\x14\x03\x03\x00\x01\x01" + "garbage");
  ASSERT_EQ(r.status, ClientHelloStatus::kDone);
  EXPECT_EQ(r.server_name, "a.example.com");
  EXPECT_EQ(r.consumed, hello.size());
}

TEST(ClientHello, SpansSeveralRecords) {
  std::string hello = openssl_client_hello("split.example.com", {"h2"});
  for (size_t chunk : {1, 3, 4, 5, 64, 200}) {
    std::string framed = split_records(hello, chunk);
    ClientHelloResult r = parse_client_hello(framed);
    ASSERT_EQ(r.status, ClientHelloStatus::kDone) << chunk << ": " << r.error;
    EXPECT_EQ(r.server_name, "split.example.com");
    EXPECT_EQ(r.consumed, framed.size());
    for (size_t n = 0; n < framed.size(); n += 7) {
      EXPECT_EQ(parse_client_hello(std::string_view(framed).substr(0, n)).status,
                ClientHelloStatus::kIncomplete);
    }
  }
}

TEST(ClientHello, NotTlsOrNotAClientHello) {
  EXPECT_EQ(parse_client_hello("GET / HTTP/1.1\r\n").status, ClientHelloStatus::kError);
  EXPECT_EQ(parse_client_hello("G").status, ClientHelloStatus::kError);
  EXPECT_EQ(parse_client_hello(std::string("\x16\x02", 2)).status, ClientHelloStatus::kError);
  // A ServerHello (type 2) in a handshake record.
  EXPECT_EQ(parse_client_hello(std::string("\x16\x03\x03\x00\x04\x02\x00\x00\x00", 9)).status,
            ClientHelloStatus::kError);
  // Zero-length and oversized records.
  EXPECT_EQ(parse_client_hello(std::string("\x16\x03\x01\x00\x00", 5)).status,
            ClientHelloStatus::kError);
  EXPECT_EQ(parse_client_hello(std::string("\x16\x03\x01\x40\x01", 5)).status,
            ClientHelloStatus::kError);
  // An alert between the records of a split ClientHello.
  std::string framed = split_records(openssl_client_hello("x.example.com"), 100);
  std::string broken =
      framed.substr(0, 105) + std::string("\x15\x03\x03\x00\x02\x02\x28", 7) + framed.substr(105);
  EXPECT_EQ(parse_client_hello(broken).status, ClientHelloStatus::kError);
}

TEST(ClientHello, LengthBeyondTheLimitFailsEarly) {
  // A ClientHello announcing 1 MiB is refused from its first 9 bytes.
  std::string head("\x16\x03\x01\x40\x00\x01\x10\x00\x00", 9);
  ClientHelloResult r = parse_client_hello(head);
  EXPECT_EQ(r.status, ClientHelloStatus::kError);
  // With a smaller limit a real one is refused too, and a split one at the limit's record.
  std::string hello = openssl_client_hello("a.example.com");
  EXPECT_EQ(parse_client_hello(hello, 64).status, ClientHelloStatus::kError);
  EXPECT_EQ(parse_client_hello(split_records(hello, 1), hello.size()).status,
            ClientHelloStatus::kError);
}

// The single-record ClientHello `hello` with its handshake body replaced by `body`.
std::string with_body(const std::string& hello, const std::string& body) {
  std::string out = hello.substr(0, 5);
  size_t len = body.size() + 4;
  out[3] = static_cast<char>(len >> 8);
  out[4] = static_cast<char>(len & 0xff);
  out += '\x01';
  out += static_cast<char>(body.size() >> 16);
  out += static_cast<char>((body.size() >> 8) & 0xff);
  out += static_cast<char>(body.size() & 0xff);
  return out + body;
}

std::string minimal_body(const std::string& extensions, bool with_block = true) {
  std::string b("\x03\x03", 2);
  b += std::string(32, 'r');
  b += '\0';                                // session id
  b += std::string("\x00\x02\x13\x01", 4);  // one suite
  b += std::string("\x01\x00", 2);          // null compression
  if (with_block) {
    b += static_cast<char>(extensions.size() >> 8);
    b += static_cast<char>(extensions.size() & 0xff);
    b += extensions;
  }
  return b;
}

std::string sni_ext(const std::string& name, char type = 0) {
  std::string entry(1, type);
  entry += static_cast<char>(name.size() >> 8);
  entry += static_cast<char>(name.size() & 0xff);
  entry += name;
  std::string list;
  list += static_cast<char>(entry.size() >> 8);
  list += static_cast<char>(entry.size() & 0xff);
  list += entry;
  std::string ext("\x00\x00", 2);
  ext += static_cast<char>(list.size() >> 8);
  ext += static_cast<char>(list.size() & 0xff);
  return ext + list;
}

TEST(ClientHello, HandBuiltBodies) {
  const std::string base = openssl_client_hello("x");
  auto parse = [&](const std::string& body) { return parse_client_hello(with_body(base, body)); };

  ClientHelloResult r = parse(minimal_body("", false));
  ASSERT_EQ(r.status, ClientHelloStatus::kDone) << r.error;  // no extension block at all
  EXPECT_EQ(r.server_name, "");
  r = parse(minimal_body(sni_ext("Host.Example")));
  ASSERT_EQ(r.status, ClientHelloStatus::kDone) << r.error;
  EXPECT_EQ(r.server_name, "host.example");
  // An unknown name type is skipped.
  r = parse(minimal_body(sni_ext("ignored", 7)));
  ASSERT_EQ(r.status, ClientHelloStatus::kDone) << r.error;
  EXPECT_EQ(r.server_name, "");

  EXPECT_EQ(parse(minimal_body(sni_ext("a") + sni_ext("b"))).status, ClientHelloStatus::kError);
  EXPECT_EQ(parse(minimal_body(sni_ext(""))).status, ClientHelloStatus::kError);
  EXPECT_EQ(parse(minimal_body(sni_ext(std::string("a\0b", 3)))).status, ClientHelloStatus::kError);
  EXPECT_EQ(parse(minimal_body(sni_ext("a b"))).status, ClientHelloStatus::kError);
  EXPECT_EQ(parse(minimal_body(sni_ext(std::string(256, 'a')))).status, ClientHelloStatus::kError);
  // Extension block length off by one either way, an extension running past it.
  std::string body = minimal_body(sni_ext("a.example"));
  std::string shorter = body;
  shorter[shorter.size() - sni_ext("a.example").size() - 1]--;
  EXPECT_EQ(parse(shorter).status, ClientHelloStatus::kError);
  EXPECT_EQ(parse(body + "x").status, ClientHelloStatus::kError);
  std::string cut = minimal_body(sni_ext("a.example"));
  cut.pop_back();
  EXPECT_EQ(parse(cut).status, ClientHelloStatus::kError);
  // Bad fixed fields: session id of 33, odd or empty cipher suites, no compression method.
  std::string b = minimal_body("", false);
  std::string bad = b;
  bad[34] = 33;
  EXPECT_EQ(parse(bad).status, ClientHelloStatus::kError);
  bad = b;
  bad[36] = 1;
  EXPECT_EQ(parse(bad).status, ClientHelloStatus::kError);
  bad = b;
  bad[36] = 0;
  EXPECT_EQ(parse(bad).status, ClientHelloStatus::kError);
  bad = b;
  bad[39] = 0;
  EXPECT_EQ(parse(bad).status, ClientHelloStatus::kError);
  EXPECT_EQ(parse(b.substr(0, 20)).status, ClientHelloStatus::kError);
  // ALPN: an empty protocol name, and a duplicate extension.
  std::string alpn_empty("\x00\x10\x00\x03\x00\x01\x00", 7);
  EXPECT_EQ(parse(minimal_body(alpn_empty)).status, ClientHelloStatus::kError);
  std::string alpn("\x00\x10\x00\x05\x00\x03\x02h2", 9);
  r = parse(minimal_body(alpn));
  ASSERT_EQ(r.status, ClientHelloStatus::kDone) << r.error;
  EXPECT_EQ(r.alpn, std::vector<std::string>{"h2"});
  EXPECT_EQ(parse(minimal_body(alpn + alpn)).status, ClientHelloStatus::kError);
}

}  // namespace
}  // namespace proxenos::net
