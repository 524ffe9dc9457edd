#include "k8s/kubernetes_source.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "k8s/gateway_translator.h"
#include "k8s/ingress_translator.h"
#include "k8s/object_fields.h"
#include "k8s/service_annotations.h"

namespace proxenos::k8s {

namespace {

constexpr const char* kAmbassadorGroup = "getambassador.io";
constexpr const char* kGatewayApiGroupName = "gateway.networking.k8s.io";

// The getambassador.io kinds the compiler reads (others of the group, such as DevPortal, are
// not served and not watched).
constexpr std::pair<const char*, const char*> kAmbassadorKinds[] = {
    {"mappings", "Mapping"},
    {"hosts", "Host"},
    {"listeners", "Listener"},
    {"tlscontexts", "TLSContext"},
    {"tcpmappings", "TCPMapping"},
    {"modules", "Module"},
    {"authservices", "AuthService"},
    {"ratelimitservices", "RateLimitService"},
    {"logservices", "LogService"},
    {"tracingservices", "TracingService"},
    {"kubernetesserviceresolvers", "KubernetesServiceResolver"},
    {"kubernetesendpointresolvers", "KubernetesEndpointResolver"},
    {"consulresolvers", "ConsulResolver"},
};

// EndpointSlice conditions: nil ready ⇒ true, nil serving ⇒ ready, nil terminating ⇒ false.
bool condition(const YAML::Node& conditions, const char* name, bool fallback) {
  const YAML::Node c = conditions.IsMap() ? conditions[name] : YAML::Node();
  if (!c.IsDefined() || !c.IsScalar()) return fallback;
  return c.Scalar() == "true";
}

// metav1.Time: RFC 3339 in whole seconds, UTC.
std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::vector<ResourceKind> watched_kinds(const KubernetesSourceOptions& options) {
  std::vector<ResourceKind> kinds;
  for (const auto& [resource, kind] : kAmbassadorKinds) {
    kinds.push_back({kAmbassadorGroup, "v3alpha1", resource, kind, true});
  }
  kinds.push_back({"", "v1", "services", "Service", true});
  kinds.push_back({"", "v1", "secrets", "Secret", true});
  kinds.push_back({"discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true});
  if (options.watch_ingress) {
    kinds.push_back({"networking.k8s.io", "v1", "ingresses", "Ingress", true});
    // Emissary ignores IngressClasses in single-namespace mode (they are cluster-scoped, and a
    // namespaced Role cannot list them).
    if (options.namespace_.empty()) {
      kinds.push_back({"networking.k8s.io", "v1", "ingressclasses", "IngressClass", false});
    }
  }
  if (options.watch_gateway_api) {
    if (options.namespace_.empty()) {
      kinds.push_back({kGatewayApiGroupName, "v1", "gatewayclasses", "GatewayClass", false});
    }
    for (const auto& [resource, kind] :
         {std::pair{"gateways", "Gateway"}, std::pair{"httproutes", "HTTPRoute"},
          std::pair{"grpcroutes", "GRPCRoute"}, std::pair{"tlsroutes", "TLSRoute"},
          std::pair{"tcproutes", "TCPRoute"}, std::pair{"referencegrants", "ReferenceGrant"}}) {
      kinds.push_back({kGatewayApiGroupName, "v1", resource, kind, true});
    }
  }
  return kinds;
}

KubernetesSource::KubernetesSource(ApiClient& client, KubernetesSourceOptions options,
                                   KubernetesSourceCallbacks callbacks)
    : client_(client),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      config_timer_(client.loop(),
                    [this] {
                      if (config_version() == collected_version_) return;
                      ++config_changes_;
                      if (callbacks_.on_config_changed) callbacks_.on_config_changed();
                    }),
      endpoints_timer_(client.loop(), [this] {
        if (callbacks_.on_endpoints_changed) callbacks_.on_endpoints_changed();
      }) {
  for (const ResourceKind& kind : watched_kinds(options_)) {
    ReflectorOptions ro = options_.reflector;
    ro.namespace_ = options_.namespace_;
    // Status we (or others) write does not change configuration, except a Service's: the
    // publish Service's load balancer is copied into Ingress and Gateway status.
    ro.status_changes = kind.resource == "services";
    if (kind.group == kAmbassadorGroup) {
      ro.label_selector = options_.label_selector;
      ro.field_selector = options_.field_selector;
    }
    ReflectorCallbacks cb;
    cb.on_synced = [this] { on_kind_synced(); };
    cb.on_changed = [this, kind] { on_kind_changed(kind); };
    reflectors_.push_back(std::make_unique<Reflector>(client_, kind, ro, std::move(cb)));
  }
}

KubernetesSource::~KubernetesSource() {
  stop();
}

void KubernetesSource::start() {
  spdlog::info(
      "kubernetes: watching {} kinds {} at {}", reflectors_.size(),
      options_.namespace_.empty() ? "in all namespaces" : "in namespace " + options_.namespace_,
      client_.config().server);
  for (auto& r : reflectors_) r->start();
}

void KubernetesSource::stop() {
  for (auto& r : reflectors_) r->stop();
  config_timer_.cancel();
  endpoints_timer_.cancel();
}

const Reflector* KubernetesSource::find(const std::string& resource) const {
  for (const auto& r : reflectors_) {
    if (r->kind().resource == resource) return r.get();
  }
  return nullptr;
}

void KubernetesSource::on_kind_synced() {
  if (synced_) return;
  for (const auto& r : reflectors_) {
    if (!r->synced()) return;
  }
  synced_ = true;
  size_t objects = 0;
  for (const auto& r : reflectors_) objects += r->objects().size();
  spdlog::info("kubernetes: initial sync complete: {} objects", objects);
  if (callbacks_.on_synced) callbacks_.on_synced();
}

void KubernetesSource::on_kind_changed(const ResourceKind& kind) {
  if (!synced_) return;  // the first compile runs once everything is listed
  const bool endpoints = kind.resource == "endpointslices";
  // Services carry annotations (config) and port names (endpoints).
  if (endpoints || kind.resource == "services") {
    if (!endpoints_timer_.armed()) endpoints_timer_.arm(options_.coalesce_ms);
  }
  if (!endpoints && !config_timer_.armed()) config_timer_.arm(options_.coalesce_ms);
}

uint64_t KubernetesSource::config_version() const {
  uint64_t sum = 0;
  for (const auto& r : reflectors_) {
    if (r->kind().resource != "endpointslices") sum += r->version();
  }
  return sum;
}

ObjectList KubernetesSource::objects_of(const std::string& resource) const {
  ObjectList out;
  if (const Reflector* r = find(resource)) {
    out.reserve(r->objects().size());
    for (const auto& [key, object] : r->objects()) out.push_back(object);
  }
  return out;
}

void KubernetesSource::collect(config::LoadResult& out, std::vector<StatusUpdate>& statuses) const {
  collected_version_ = config_version();
  for (const auto& r : reflectors_) {
    const ResourceKind& kind = r->kind();
    if (kind.group == kAmbassadorGroup || kind.resource == "secrets") {
      for (const auto& [key, object] : r->objects()) out.resources.push_back(*object);
    } else if (kind.resource == "services") {
      for (const auto& [key, object] : r->objects()) annotation_resources(*object, out);
    }
  }
  auto add = [&](Translation t) {
    for (config::Resource& res : t.resources) out.resources.push_back(std::move(res));
    for (StatusUpdate& u : t.statuses) statuses.push_back(std::move(u));
    out.diagnostics.insert(out.diagnostics.end(), t.diagnostics.begin(), t.diagnostics.end());
  };
  const nlohmann::json load_balancer = publish_load_balancer();
  if (options_.watch_ingress) {
    IngressInputs in;
    in.ingresses = objects_of("ingresses");
    in.ingress_classes = objects_of("ingressclasses");
    in.services = objects_of("services");
    in.ambassador_id = options_.ambassador_id;
    in.single_namespace = !options_.namespace_.empty();
    in.load_balancer = load_balancer;
    if (!in.ingresses.empty()) add(translate_ingresses(in));
  }
  if (options_.watch_gateway_api) {
    GatewayInputs in;
    in.gateway_classes = objects_of("gatewayclasses");
    in.gateways = objects_of("gateways");
    in.http_routes = objects_of("httproutes");
    in.grpc_routes = objects_of("grpcroutes");
    in.tls_routes = objects_of("tlsroutes");
    in.tcp_routes = objects_of("tcproutes");
    in.reference_grants = objects_of("referencegrants");
    in.services = objects_of("services");
    in.secrets = objects_of("secrets");
    in.controller_name = options_.gateway_controller;
    in.ambassador_id = options_.ambassador_id;
    in.load_balancer = load_balancer;
    in.now = now_rfc3339();
    // Routes are translated even with no Gateway left, so our stale status entries go away.
    if (!in.gateway_classes.empty() || !in.gateways.empty() || !in.http_routes.empty() ||
        !in.grpc_routes.empty() || !in.tls_routes.empty() || !in.tcp_routes.empty()) {
      add(translate_gateway_api(in));
    }
  }
}

std::vector<net::Address> KubernetesSource::endpoints(const std::string& namespace_,
                                                      const std::string& service,
                                                      uint16_t port) const {
  // The Service port's name picks the EndpointSlice port; without the Service (or an unnamed
  // single port) the slice port is matched by name "" or by number.
  std::optional<std::string> port_name;
  if (const Reflector* services = find("services")) {
    auto it = services->objects().find(namespace_ + "/" + service);
    if (it != services->objects().end()) {
      const YAML::Node ports = it->second->spec.IsMap() ? it->second->spec["ports"] : YAML::Node();
      if (ports.IsSequence()) {
        for (const YAML::Node& p : ports) {
          if (scalar(p["port"]) == std::to_string(port)) port_name = scalar(p["name"]);
        }
      }
    }
  }
  std::vector<net::Address> ready;
  std::vector<net::Address> serving;
  const Reflector* slices = find("endpointslices");
  if (slices == nullptr) return ready;
  for (const auto& [key, slice] : slices->objects()) {
    if (slice->namespace_ != namespace_) continue;
    auto label = slice->labels.find("kubernetes.io/service-name");
    if (label == slice->labels.end() || label->second != service) continue;
    const YAML::Node& object = slice->object;
    const std::string type = scalar(object["addressType"]);
    if (type != "IPv4" && type != "IPv6") continue;
    uint16_t target = 0;
    const YAML::Node ports = object["ports"];
    if (ports.IsSequence()) {
      for (const YAML::Node& p : ports) {
        const std::string name = scalar(p["name"]);
        const std::string number = scalar(p["port"]);
        bool match =
            port_name ? name == *port_name : (number == std::to_string(port) || ports.size() == 1);
        if (match && !number.empty()) {
          target = static_cast<uint16_t>(std::strtoul(number.c_str(), nullptr, 10));
          break;
        }
      }
    }
    if (target == 0) continue;
    const YAML::Node list = object["endpoints"];
    if (!list.IsSequence()) continue;
    for (const YAML::Node& e : list) {
      const YAML::Node conditions = e["conditions"];
      bool is_ready = condition(conditions, "ready", true);
      bool is_serving = condition(conditions, "serving", is_ready);
      const YAML::Node addresses = e["addresses"];
      if (!addresses.IsSequence()) continue;
      for (const YAML::Node& a : addresses) {
        bool ok = false;
        net::Address address = net::Address::from_ip_port(scalar(a), target, &ok);
        if (!ok) continue;
        if (is_ready) {
          ready.push_back(address);
        } else if (is_serving) {
          serving.push_back(address);
        }
      }
    }
  }
  return ready.empty() ? serving : ready;
}

nlohmann::json KubernetesSource::publish_load_balancer() const {
  if (options_.publish_service.empty()) return nullptr;
  const Reflector* services = find("services");
  if (services == nullptr) return nullptr;
  auto it = services->objects().find(options_.publish_service);
  if (it == services->objects().end()) return nullptr;
  const YAML::Node lb = it->second->object["status"]["loadBalancer"];
  if (!lb.IsDefined()) return nlohmann::json::object();
  return to_json(lb);
}

}  // namespace proxenos::k8s
