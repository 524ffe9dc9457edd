#pragma once
// The immutable result of compiling the resource store: everything a worker needs to serve.
// Workers hold shared_ptr<const Snapshot>; each request keeps the one it started with.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "http/http1_parser.h"
#include "net/tls_settings.h"
#include "router/route_table.h"
#include "upstream/cluster_spec.h"

namespace proxenos::config {

enum class SecurityModel : uint8_t { kXfp, kSecure, kInsecure };
const char* to_string(SecurityModel m);  // "XFP", "SECURE", "INSECURE"
enum class ListenerProtocol : uint8_t { kHttp, kHttps, kHttpProxy, kHttpsProxy, kTcp, kTls };

// The `ambassador` Module keys that reach the data plane, with their defaults.
struct ModuleSettings {
  std::string server_name = "envoy";  // Server response header
  bool enable_http10 = false;
  uint32_t max_request_headers_kb = 60;
  bool merge_slashes = false;
  bool use_remote_address = true;
  uint32_t xff_num_trusted_hops = 0;
  http::UnderscoreAction headers_with_underscores = http::UnderscoreAction::kReject;
  uint32_t listener_idle_timeout_ms = 300 * 1000;  // downstream idle keep-alive connection
  bool strip_matching_host_port = false;
  bool preserve_external_request_id = false;
  std::string log_type = "text";  // envoy_log_type
  std::string log_format;         // envoy_log_format ("" = Emissary's default text format)
  std::string log_path;           // envoy_log_path ("" = stdout)
  // Defaults the compiler applies to Mappings, kept here for config dumps and diagnostics.
  uint32_t cluster_request_timeout_ms = 3000;       // default Mapping timeout_ms
  uint32_t cluster_idle_timeout_ms = 3600 * 1000;   // default upstream idle timeout
  uint32_t cluster_max_connection_lifetime_ms = 0;  // 0 = unlimited
  bool add_linkerd_headers = false;
  // Emissary routes /ambassador/v0/check_alive and check_ready on every Host; we answer them on
  // the edge listeners unless the Module's liveness_probe/readiness_probe say enabled: false.
  bool liveness_probe = true;
  bool readiness_probe = true;
  // x-forwarded-client-cert: Envoy's forward_client_cert_details mode and which details of the
  // client certificate set_current_client_cert_details adds.
  std::string forward_client_cert_details = "SANITIZE";
  bool xfcc_subject = false, xfcc_cert = false, xfcc_chain = false, xfcc_dns = false,
       xfcc_uri = false;
  bool enable_ipv4 = true;
  bool enable_grpc_web = false;  // gRPC-Web requests translated to gRPC on HTTP/2 clusters
  // HTTP/1.1 gRPC clients get the call's grpc-status/grpc-message in the response head (and 503
  // when it is not 0), the body buffered until the trailers, as Envoy's grpc_http1_bridge.
  bool enable_grpc_http11_bridge = false;
  bool enable_ipv6 = false;
  uint32_t regex_max_size = 200;  // RE2 program size limit for every regex in the config
  std::string source;             // "Module/ns/ambassador", "" when no Module applies
};

// TLS termination on a listener: the certificate for a server name (SNI). `hostname` is a Host
// glob as in route matching: exact, `*.suffix`, or `*`. Entries are in match order (exact names
// first, then longer suffixes, `*` last).
struct SniCertificate {
  std::string hostname;
  uint32_t tls = 0;  // index into Snapshot::tls
};

// One member of a TCPMapping canary group.
struct TcpTarget {
  uint32_t cluster = 0;              // index into Snapshot::clusters
  uint32_t cumulative_weight = 100;  // as RouteTarget: pick when draw (0..99) < this
  std::string source;                // "TCPMapping/ns/name"
};

// A TCPMapping (group) on a listener's port. Without `sni`, it takes every connection on the port
// as raw bytes; with it, TLS is terminated (certificate `tls`) and connections whose SNI matches
// go to it (TCPMappings win over Hosts with the same name on a shared port). A `passthrough`
// route has an `sni` and no `tls`: the SNI is read from the ClientHello without terminating TLS,
// and the connection's bytes, ClientHello included, are relayed as they are.
struct TcpRoute {
  std::string sni;                 // Host glob; "" = any connection, no TLS termination
  std::optional<uint32_t> tls;     // index into Snapshot::tls when TLS is terminated here
  bool passthrough = false;        // routed by the ClientHello's SNI, TLS left to the upstream
  std::vector<TcpTarget> targets;  // by cumulative weight
  uint32_t idle_timeout_ms = 0;    // 0 = none
  std::string source;              // "TCPMapping/ns/name (file:line)"
};

struct ListenerSnapshot {
  std::string name;  // "Listener/ns/name" or "default-8080"
  std::string bind_address = "0.0.0.0";
  uint16_t port = 8080;
  ListenerProtocol protocol = ListenerProtocol::kHttp;
  SecurityModel security_model = SecurityModel::kXfp;
  uint32_t l7_depth = 0;
  std::string stats_prefix;  // ingress_http etc.
  std::shared_ptr<const router::RouteTable> routes;
  // TLS (protocol HTTPS/TLS, or any listener with TCPMappings that set `host`): certificates by
  // SNI, and the one for clients that send no SNI or one that matches nothing.
  std::vector<SniCertificate> sni;
  std::optional<uint32_t> default_tls;
  std::vector<TcpRoute> tcp;  // TCPMappings on this port, in match order
  // SETTINGS_MAX_CONCURRENT_STREAMS of downstream HTTP/2 sessions (Listener
  // http2MaxConcurrentStreams; 100 as edge-hardening.md recommends).
  uint32_t http2_max_concurrent_streams = 100;
};

struct Snapshot {
  uint64_t generation = 0;
  ModuleSettings module;
  std::vector<ListenerSnapshot> listeners;
  std::vector<upstream::ClusterSpec> clusters;  // RouteTarget::cluster indexes this
  std::vector<std::string> route_stats_names;   // Route::stats_index indexes this
  std::vector<net::TlsServerSettings> tls;      // SniCertificate::tls and TcpRoute::tls index this
  // Where each applied resource came from ("Mapping/ns/name" -> file:line), for `proxenos
  // routes` and diagnostics.
  std::map<std::string, Origin> resource_origins;
};

}  // namespace proxenos::config
