#pragma once
// Gateway API (gateway.networking.k8s.io/v1, ../shared/spec/kubernetes-api.md §5) ->
// getambassador.io/v3alpha1 Listeners, Hosts, TLSContexts, Mappings and TCPMappings, plus the
// status of every object we own: GatewayClasses naming our controller, their Gateways, and our
// entries in the routes' status.parents.
//
// Layout of the translation (why it cannot leak across ports):
// - One Listener per port used by our Gateways (HTTP / HTTPS / TLS / TCP), binding only Hosts
//   labelled `gateway.proxenos.dev/port: <port>` (hostBinding ALL + selector).
// - One Host per HTTP/HTTPS Gateway listener: its hostname (or `*`), the certificateRef Secret
//   for HTTPS, insecure action Route, and a mappingSelector on
//   `gateway.proxenos.dev/listener: <gateway ns>/<gateway>/<listener>`.
// - HTTPRoute/GRPCRoute rules become Mappings carrying only that listener label and no hostname,
//   so they attach to that one Host and to no user Host; a route hostname narrower than the
//   listener's becomes a case-insensitive `:authority` regex. Gateway API precedence (hostname,
//   Exact path, longest prefix, method, header and query counts) is encoded in `precedence`;
//   identical matches keep the oldest route's rule (creationTimestamp, then namespace/name, then
//   rule order). PathPrefix is element-wise (the exact path plus the prefix `path/`); paths are
//   never rewritten unless a URLRewrite says so.
// - TLSRoutes on TLS listeners with mode Terminate become TCPMappings by SNI on the listener's
//   port, with a TLSContext listing those names and holding the listener's certificate; on TLS
//   listeners with mode Passthrough they become passthrough TCPMappings (`tls_passthrough: true`)
//   by SNI: no certificate (certificateRefs there are ignored with a warning), the backends
//   terminate TLS. Both modes can share a port, told apart by SNI. TCPRoutes become raw
//   TCPMappings (one route per port: the oldest wins).
//
// Not translated (reported, route or listener not accepted): Passthrough on HTTPS listeners (the
// CRD's CEL forbids it), CORS/ExtensionRef/
// ExternalAuth filters, backendRef filters, more than one RequestMirror per rule, redirects that
// keep the request's host when no exact hostname is known, static Gateway addresses. Namespace
// selectors in allowedRoutes never match (Namespaces are not watched). The data plane has no
// local 500: an invalid backendRef's share goes to the valid backends of its rule, and a rule
// with none routes nothing (requests fall through to later routes, else 404).

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "k8s/status_update.h"

namespace proxenos::k8s {

inline constexpr const char* kGatewayApiGroup = "gateway.networking.k8s.io";
inline constexpr const char* kGatewayPortLabel = "gateway.proxenos.dev/port";
inline constexpr const char* kGatewayListenerLabel = "gateway.proxenos.dev/listener";

// The v1 kinds: "GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute",
// "ReferenceGrant".
ResourceKind gateway_api_kind(const std::string& kind);

struct GatewayInputs {
  ObjectList gateway_classes, gateways, http_routes, grpc_routes, tls_routes, tcp_routes,
      reference_grants, services;
  // Secrets, to check certificateRefs (ResolvedRefs/InvalidCertificateRef); nullopt: not checked
  // (the compiler still reports a missing Secret on the Host it generates).
  std::optional<ObjectList> secrets;
  std::string controller_name = "proxenos.dev/gateway-controller";
  std::string now;  // RFC 3339, for lastTransitionTime ("" = the epoch)
  // --ambassador-id: the generated resources carry it so the compiler selects them.
  std::string ambassador_id = "default";
  // The publish Service's status.loadBalancer: its ingress[] become the Gateways'
  // status.addresses (null: none reported).
  nlohmann::json load_balancer;
};

Translation translate_gateway_api(const GatewayInputs& inputs);

}  // namespace proxenos::k8s
