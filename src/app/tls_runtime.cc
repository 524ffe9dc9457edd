#include "app/tls_runtime.h"

#include <algorithm>

namespace proxenos::app {

namespace {

// Downstream HTTP/2 is served (TlsHandshake hands "h2" connections to Http2Connection), so h2 is
// offered by ALPN wherever the TLS settings list it.
constexpr bool kDownstreamHttp2 = true;

config::Diagnostic tls_problem(config::Severity severity, const std::string& resource,
                               std::string message) {
  config::Diagnostic d;
  d.severity = severity;
  d.resource = resource;
  d.field = "tls";
  d.message = std::move(message);
  return d;
}

// HTTPS and TLS listeners, and any listener where a certificate or an SNI-routed TCPMapping
// was bound (an HTTP listener then sniffs: cleartext stays HTTP).
bool terminates_tls(const config::ListenerSnapshot& l) {
  if (l.protocol == config::ListenerProtocol::kHttps ||
      l.protocol == config::ListenerProtocol::kHttpsProxy ||
      l.protocol == config::ListenerProtocol::kTls || !l.sni.empty()) {
    return true;
  }
  return std::any_of(l.tcp.begin(), l.tcp.end(),
                     [](const config::TcpRoute& r) { return !r.sni.empty(); });
}

}  // namespace

std::shared_ptr<const proxy::TlsRuntime> build_tls_runtime(
    const config::Snapshot& snapshot, const std::shared_ptr<net::TicketKeys>& ticket_keys,
    const proxy::TlsRuntime* previous, config::Diagnostics& diagnostics) {
  auto runtime = std::make_shared<proxy::TlsRuntime>();

  std::vector<std::shared_ptr<const net::TlsServerContext>> contexts(snapshot.tls.size());
  for (size_t i = 0; i < snapshot.tls.size(); ++i) {
    net::TlsServerSettings settings = snapshot.tls[i];
    if (!kDownstreamHttp2) std::erase(settings.alpn, "h2");
    std::string error;
    contexts[i] = net::TlsServerContext::create(settings, ticket_keys, &error);
    if (!contexts[i]) {
      std::shared_ptr<const net::TlsServerContext> last_good;
      if (previous != nullptr) {
        auto it = previous->contexts.find(settings.name);
        if (it != previous->contexts.end()) last_good = it->second;
      }
      if (last_good) {
        contexts[i] = last_good;
        runtime->contexts.emplace(settings.name, last_good);
        diagnostics.push_back(
            tls_problem(config::Severity::kError, settings.name,
                        error + "; serving its last good certificate until this is fixed"));
      } else {
        diagnostics.push_back(tls_problem(config::Severity::kError, settings.name,
                                          error + "; its hostnames are not served over TLS"));
      }
      continue;
    }
    runtime->contexts.emplace(settings.name, contexts[i]);
    for (const std::string& w : contexts[i]->warnings()) {
      diagnostics.push_back(tls_problem(config::Severity::kWarning, settings.name, w));
    }
  }

  runtime->listeners.resize(snapshot.listeners.size());
  runtime->terminates.resize(snapshot.listeners.size());
  for (size_t li = 0; li < snapshot.listeners.size(); ++li) {
    const config::ListenerSnapshot& l = snapshot.listeners[li];
    if (!terminates_tls(l)) continue;
    runtime->terminates[li] = true;
    // TCPMappings first: they win over Hosts with the same name.
    std::vector<net::SniEntry> entries;
    for (const config::TcpRoute& r : l.tcp) {
      if (r.sni.empty() || !r.tls || *r.tls >= contexts.size() || !contexts[*r.tls]) continue;
      entries.push_back({r.sni, contexts[*r.tls]});
    }
    for (const config::SniCertificate& c : l.sni) {
      if (c.tls >= contexts.size() || !contexts[c.tls]) continue;
      entries.push_back({c.hostname, contexts[c.tls]});
    }
    std::shared_ptr<const net::TlsServerContext> fallback;
    if (l.default_tls && *l.default_tls < contexts.size()) fallback = contexts[*l.default_tls];
    if (!fallback && !entries.empty()) fallback = entries.back().context;
    if (entries.empty() && !fallback) continue;  // nothing usable: the listener stays cleartext
    std::string error;
    runtime->listeners[li] =
        net::SniSelector::create(std::move(entries), fallback, ticket_keys, &error);
    if (!runtime->listeners[li]) {
      diagnostics.push_back(tls_problem(config::Severity::kError, l.name, error));
    }
  }

  for (const upstream::ClusterSpec& c : snapshot.clusters) {
    if (!c.tls || runtime->clusters.count(c.name) != 0) continue;
    std::string error;
    auto context = net::TlsClientContext::create(c.tls_settings, &error);
    if (!context) {
      std::string owner = c.tls_settings.name.empty() ? "cluster " + c.name : c.tls_settings.name;
      diagnostics.push_back(
          tls_problem(config::Severity::kError, owner,
                      error + "; requests to " + c.host + " fail until this is fixed"));
      continue;
    }
    runtime->clusters.emplace(c.name, std::move(context));
  }
  return runtime;
}

}  // namespace proxenos::app
