#include "proxy/client_cert_header.h"

namespace proxenos::proxy {

namespace {

bool is_mtls(const net::PeerCertificateInfo* peer) {
  return peer != nullptr && peer->presented && peer->verified;
}

void add(std::string& out, std::string_view key, std::string_view value, bool quoted = false) {
  if (!out.empty()) out.push_back(';');
  out.append(key);
  out.push_back('=');
  if (quoted) out.push_back('"');
  out.append(value);
  if (quoted) out.push_back('"');
}

}  // namespace

std::string url_encode_pem(std::string_view pem) {
  std::string out;
  out.reserve(pem.size() + pem.size() / 16 + 16);
  for (char c : pem) {
    switch (c) {
      case '\n':
        out.append("%0A");
        break;
      case ' ':
        out.append("%20");
        break;
      case '+':
        out.append("%2B");
        break;
      case '/':
        out.append("%2F");
        break;
      case '=':
        out.append("%3D");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string client_cert_element(const SetCurrentClientCertDetails& details,
                                const net::PeerCertificateInfo& peer,
                                std::span<const std::string> local_uri_sans) {
  std::string out;
  for (const std::string& uri : local_uri_sans) add(out, "By", uri);
  if (!peer.sha256_hex.empty()) add(out, "Hash", peer.sha256_hex);
  // Envoy's order of the details is fixed (cert, chain, subject, uri, dns), not the config's.
  if (details.cert && !peer.pem.empty()) add(out, "Cert", url_encode_pem(peer.pem), true);
  if (details.chain && !peer.chain_pem.empty()) {
    add(out, "Chain", url_encode_pem(peer.chain_pem), true);
  }
  if (details.subject) add(out, "Subject", peer.subject, true);
  if (details.uri) {
    if (peer.uri_sans.empty()) add(out, "URI", "");
    for (const std::string& uri : peer.uri_sans) add(out, "URI", uri);
  }
  if (details.dns) {
    for (const std::string& dns : peer.dns_sans) add(out, "DNS", dns);
  }
  return out;
}

XfccResult compute_forwarded_client_cert(const ClientCertSettings& settings,
                                         std::optional<std::string_view> existing,
                                         const net::PeerCertificateInfo* peer,
                                         std::span<const std::string> local_uri_sans) {
  XfccResult r;
  const ForwardClientCertDetails mode = settings.forward;
  if (mode == ForwardClientCertDetails::kAlwaysForwardOnly) {
    r.action = XfccAction::kKeep;
    return r;
  }
  if (mode == ForwardClientCertDetails::kSanitize || !is_mtls(peer)) {
    r.action = XfccAction::kRemove;
    return r;
  }
  if (mode == ForwardClientCertDetails::kForwardOnly) {
    r.action = XfccAction::kKeep;
    return r;
  }
  std::string element = client_cert_element(settings.set_current, *peer, local_uri_sans);
  if (mode == ForwardClientCertDetails::kSanitizeSet) {
    // Envoy sets the header even to an empty element (impossible with a real certificate, which
    // always has a hash).
    r.action = XfccAction::kReplace;
    r.value = std::move(element);
    return r;
  }
  // APPEND_FORWARD, with Envoy's append rule: nothing to add leaves the header alone; an absent or
  // empty header takes the element without a leading ','.
  if (element.empty()) {
    r.action = XfccAction::kKeep;
    return r;
  }
  r.action = XfccAction::kAppend;
  if (existing && !existing->empty()) {
    r.value.reserve(existing->size() + 1 + element.size());
    r.value.append(*existing);
    r.value.push_back(',');
    r.value.append(element);
  } else {
    r.value = std::move(element);
  }
  return r;
}

}  // namespace proxenos::proxy
