#pragma once
// Helpers shared by tls_context.cc and tls_stream.cc; not part of the net interface.

#include <openssl/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "net/tls_context.h"

namespace proxenos::net::tls_internal {

// Drains this thread's OpenSSL error queue into "reason (detail); reason". `verify_failed` is
// set when one of them is SSL's "certificate verify failed".
std::string drain_errors(bool* verify_failed = nullptr);

std::string rfc2253(const X509_NAME* name);
std::string to_pem(X509* cert);
std::string sha256_hex(X509* cert);
// Subject alternative names of one GENERAL_NAME type (GEN_DNS, GEN_URI); names with an embedded
// NUL are skipped rather than truncated.
std::vector<std::string> subject_alt_names(X509* cert, int type);
CertificateSummary summarize(X509* cert);

// SSL ex_data slot holding the TlsStream of an SSL object.
int stream_index();

}  // namespace proxenos::net::tls_internal
