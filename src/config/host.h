#pragma once
// Host: a hostname (glob) the gateway answers for, which Mappings attach to it, what happens to
// cleartext requests, and the certificate it terminates TLS with (resolved by the compiler).

#include <optional>
#include <string>

#include "config/diagnostic.h"
#include "config/label_selector.h"
#include "config/resource.h"
#include "config/tls_context.h"
#include "router/route_table.h"

namespace proxenos::config {

struct HostSpec {
  std::string name;
  std::string namespace_;
  Labels labels;
  std::string source;  // "Host/ns/name"
  Origin origin;

  std::string hostname = "*";                     // glob, may carry :port
  std::optional<LabelSelector> mapping_selector;  // set and non-empty, or nullopt
  // Emissary's default is Redirect for every Host it did not synthesize itself (irhost.py).
  router::InsecureAction insecure_action = router::InsecureAction::kRedirect;
  std::optional<uint32_t> insecure_additional_port;
  bool wants_tls = false;  // tlsSecret / tlsContext / tls present
  HostTlsSpec tls;         // those fields as written
};

std::optional<HostSpec> decode_host(const Resource& resource, Diagnostics* diagnostics);

// The Host Emissary synthesizes when there are none: `*`, cleartext, insecure action Route.
HostSpec synthetic_default_host();

// Emissary's Host <-> Mapping rule (irhost.py matches_httpgroup, strict selectors): see
// spec §2.5. `mapping_host` is the Mapping's hostname/host glob ("" = none).
bool host_accepts_mapping(const HostSpec& host, const std::string& mapping_host, bool host_regex,
                          const Labels& mapping_labels);

}  // namespace proxenos::config
