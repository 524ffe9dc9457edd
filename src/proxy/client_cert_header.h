#pragma once
// x-forwarded-client-cert (XFCC): what the Module's `forward_client_cert_details` and
// `set_current_client_cert_details` do to a request's header, with Envoy's semantics and format
// (Envoy's ConnectionManagerUtility::mutateXfccRequestHeader, since Envoy 1.23).
//
// Envoy's rules, by forward_client_cert_details (default SANITIZE):
// - ALWAYS_FORWARD_ONLY: the client's header goes upstream untouched, mTLS or not.
// - otherwise, if the connection is not mTLS (cleartext, or TLS without a client certificate),
//   the header is removed whatever the mode: only a verified peer may vouch for certificates.
// - SANITIZE: always removed.
// - FORWARD_ONLY: on mTLS, forwarded untouched.
// - APPEND_FORWARD: on mTLS, this hop's element is appended after a ',' (or becomes the header
//   when the client sent none or an empty one).
// - SANITIZE_SET: on mTLS, the header is replaced by this hop's element.
// set_current_client_cert_details only matters to APPEND_FORWARD and SANITIZE_SET.
//
// The element: `;`-separated key=value pairs in this order, elements of several hops separated
// by `,`:
//   By=<URI SAN>     one per URI SAN of the proxy's own (serving) certificate; none without one
//   Hash=<hex>       lower-case SHA-256 of the client certificate's DER (omitted if unknown)
//   Cert="<pem>"     if `cert`: the leaf PEM, URL-encoded (below); omitted if empty
//   Chain="<pem>"    if `chain`: leaf then intermediates, PEM, URL-encoded; omitted if empty
//   Subject="<dn>"   if `subject`: RFC 2253 subject, quoted; present even when empty
//   URI=<uri>        if `uri`: one per URI SAN of the client; "URI=" when it has none
//   DNS=<name>       if `dns`: one per DNS SAN of the client; none when it has none
// e.g. By=spiffe://edge;Hash=9f86…08;Subject="CN=client,O=Acme";URI=spiffe://acme/client
// Values are not escaped beyond that (Envoy does not either): certificate PEM is URL-encoded by
// replacing only "\n", " ", "+", "/" and "=" with %0A %20 %2B %2F %3D, exactly as Envoy does.
//
// A client that sent several x-forwarded-client-cert lines: join them with "," (what Envoy's
// header map does) and pass the result as `existing`.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "net/tls_stream.h"

namespace proxenos::proxy {

enum class ForwardClientCertDetails : uint8_t {
  kSanitize,  // Envoy's and Emissary's default
  kForwardOnly,
  kAppendForward,
  kSanitizeSet,
  kAlwaysForwardOnly,
};

// The Module's spelling ("SANITIZE", ...); nullopt for anything else. Inline so configuration
// decoding can use it without linking the proxy.
inline std::optional<ForwardClientCertDetails> parse_forward_client_cert_details(
    std::string_view name) {
  if (name == "SANITIZE") return ForwardClientCertDetails::kSanitize;
  if (name == "FORWARD_ONLY") return ForwardClientCertDetails::kForwardOnly;
  if (name == "APPEND_FORWARD") return ForwardClientCertDetails::kAppendForward;
  if (name == "SANITIZE_SET") return ForwardClientCertDetails::kSanitizeSet;
  if (name == "ALWAYS_FORWARD_ONLY") return ForwardClientCertDetails::kAlwaysForwardOnly;
  return std::nullopt;
}

inline std::string_view to_string(ForwardClientCertDetails mode) {
  switch (mode) {
    case ForwardClientCertDetails::kSanitize:
      return "SANITIZE";
    case ForwardClientCertDetails::kForwardOnly:
      return "FORWARD_ONLY";
    case ForwardClientCertDetails::kAppendForward:
      return "APPEND_FORWARD";
    case ForwardClientCertDetails::kSanitizeSet:
      return "SANITIZE_SET";
    case ForwardClientCertDetails::kAlwaysForwardOnly:
      return "ALWAYS_FORWARD_ONLY";
  }
  return "SANITIZE";
}

// Module `set_current_client_cert_details`; all false by default, as in Envoy.
struct SetCurrentClientCertDetails {
  bool subject = false;
  bool cert = false;
  bool chain = false;
  bool dns = false;
  bool uri = false;
};

struct ClientCertSettings {
  ForwardClientCertDetails forward = ForwardClientCertDetails::kSanitize;
  SetCurrentClientCertDetails set_current;
};

enum class XfccAction : uint8_t {
  kRemove,   // drop the client's header (nothing to do if it sent none)
  kKeep,     // forward the client's header as it is (or no header if it sent none)
  kReplace,  // set the header to `value` (SANITIZE_SET)
  kAppend,   // set the header to `value`: the client's header, ',' and this hop's element
};

struct XfccResult {
  XfccAction action = XfccAction::kRemove;
  std::string value;  // kReplace, kAppend: the header's complete new value
};

// `existing`: the client's header value, nullopt when it sent none. `peer`: the connection's peer
// certificate, nullptr on cleartext; the connection counts as mTLS when the peer presented a
// certificate that verified (Envoy tests "presented"; its handshake never completes with an
// unverified one, and ours must not forward one either). `local_uri_sans`: URI SANs of the
// certificate this listener served, for By=.
XfccResult compute_forwarded_client_cert(const ClientCertSettings& settings,
                                         std::optional<std::string_view> existing,
                                         const net::PeerCertificateInfo* peer,
                                         std::span<const std::string> local_uri_sans = {});

// This hop's element alone (By, Hash, then the details the settings select).
std::string client_cert_element(const SetCurrentClientCertDetails& details,
                                const net::PeerCertificateInfo& peer,
                                std::span<const std::string> local_uri_sans);

// Envoy's URL encoding of PEM for Cert= and Chain=.
std::string url_encode_pem(std::string_view pem);

}  // namespace proxenos::proxy
