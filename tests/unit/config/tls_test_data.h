#pragma once
// Test certificates (a self-signed P-256 pair for test.example.com and a CRL it issued) and the
// YAML builders the TLS and TCPMapping tests share.

#include <string>
#include <string_view>

namespace proxenos::config::testing {

inline const char* kCertPem = R"(-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUARRMS9U91JGFrVvqop2DMnE1S2wwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQdGVzdC5leGFtcGxlLmNvbTAeFw0yNjExMjgyMzU2MzlaFw0z
NjExMjUyMzU2MzlaMBsxGTAXBgNVBAMMEHRlc3QuZXhhbXBsZS5jb20wWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAS92HfeJGpoPO/R1f4tyNkjSnPe4osUqtQw6O3/
rPj3PWd3nX7457u/fFL0phelu95YGy/RiMkArYptfctSN545o1MwUTAdBgNVHQ4E
FgQUopwqvN3kPWUQ1v1Y//Wk5d83k8wwHwYDVR0jBBgwFoAUopwqvN3kPWUQ1v1Y
//Wk5d83k8wwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBDxskM
LWjGpPc0GkQTISLrzQAgzfWyr16qpNdeZ23WDAIhAMwZKTn017HLzslOnRUaPvQP
DyJn9+K+vtFjFLGGD7m0
-----END CERTIFICATE-----
)";

inline const char* kKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9TlQAUBNJhoZ+TU/
a/fT4zyEWjleMuQknncufkDdhkChRANCAAS92HfeJGpoPO/R1f4tyNkjSnPe4osU
qtQw6O3/rPj3PWd3nX7457u/fFL0phelu95YGy/RiMkArYptfctSN545
-----END PRIVATE KEY-----
)";

// A distinctive piece of the key's body: no diagnostic may ever contain it.
inline const char* kKeyFragment = "9TlQAUBNJhoZ";

inline const char* kCrlPem = R"(-----BEGIN X509 CRL-----
MIGyMFoCAQEwCgYIKoZIzj0EAwIwGzEZMBcGA1UEAwwQdGVzdC5leGFtcGxlLmNv
bRcNMjYxMTI4MjM1NjQyWhcNMzYxMTI1MjM1NjQyWqAOMAwwCgYDVR0UBAMCAQEw
CgYIKoZIzj0EAwIDSAAwRQIhAPli5TGfQx73gfxF7/91NLbvKPMhzi0ghmT1XlH5
FbtVAiAy2Jdah5a1LE1Gsx8/JQKSyfqyKiVv3lRnTBqCsBXmJQ==
-----END X509 CRL-----
)";

inline std::string base64(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) |
                 uint32_t(uint8_t(in[i + 2]));
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// One v3alpha1 document.
inline std::string doc(const std::string& kind, const std::string& name, const std::string& spec,
                       const std::string& ns = "default") {
  return "---\napiVersion: getambassador.io/v3alpha1\nkind: " + kind +
         "\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec: " + spec + "\n";
}

// A Secret whose `data` holds the given (already encoded) entries, e.g. {"tls.crt": "..."}.
inline std::string secret_doc(const std::string& name, const std::string& type,
                              const std::string& data_entries, const std::string& ns = "default") {
  return "---\napiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\n" + (type.empty() ? "" : "type: " + type + "\n") + "data:\n" + data_entries;
}

// The test certificate and key as a kubernetes.io/tls Secret.
inline std::string tls_secret(const std::string& name, const std::string& ns = "default") {
  return secret_doc(name, "kubernetes.io/tls",
                    "  tls.crt: " + base64(kCertPem) + "\n  tls.key: " + base64(kKeyPem) + "\n",
                    ns);
}

}  // namespace proxenos::config::testing
