#pragma once
// Listener: a port to open, its protocol stack, how to judge requests secure, and which Hosts
// it serves.

#include <optional>
#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/host.h"
#include "config/label_selector.h"
#include "config/resource.h"
#include "config/snapshot.h"

namespace proxenos::config {

enum class NamespaceFrom : uint8_t { kSelf, kAll };

struct ListenerSpec {
  std::string name;
  std::string namespace_;
  Labels labels;
  std::string source;  // "Listener/ns/name"
  Origin origin;

  uint16_t port = 0;
  std::string bind_address = "0.0.0.0";
  std::vector<std::string> protocol_stack;  // e.g. {"TLS", "HTTP", "TCP"}
  ListenerProtocol protocol = ListenerProtocol::kHttp;
  bool udp = false;  // HTTP/3 over UDP: accepted, not opened in this release
  SecurityModel security_model = SecurityModel::kXfp;
  uint32_t l7_depth = 0;
  NamespaceFrom namespace_from = NamespaceFrom::kSelf;
  std::optional<LabelSelector> host_selector;
  std::string stats_prefix;
  std::optional<uint32_t> http2_max_concurrent_streams;

  bool serves_http() const;
  // spec §2.6.1: the Host's namespace and labels fit this Listener's hostBinding.
  bool binds_host(const HostSpec& host) const;
};

std::optional<ListenerSpec> decode_listener(const Resource& resource, Diagnostics* diagnostics);

// The Helm chart's defaults, opened when no Listener exists at all (a deliberate difference from
// Emissary, which listens nowhere): 8080 HTTP and 8443 HTTPS, XFP, Hosts from all namespaces.
std::vector<ListenerSpec> default_listeners();

const char* protocol_name(ListenerProtocol protocol);

}  // namespace proxenos::config
