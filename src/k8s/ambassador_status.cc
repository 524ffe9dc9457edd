#include "k8s/ambassador_status.h"

#include <unordered_map>

namespace proxenos::k8s {

namespace {

ResourceKind ambassador_kind(const std::string& kind) {
  return {"getambassador.io", "v3alpha1", kind == "Host" ? "hosts" : "mappings", kind, true};
}

bool host_has_tls(const config::Resource& r) {
  if (!r.spec.IsMap()) return false;
  return r.spec["tlsSecret"].IsDefined() || r.spec["tls"].IsDefined() ||
         r.spec["tlsContext"].IsDefined();
}

}  // namespace

std::vector<StatusTarget> status_targets(const std::vector<config::Resource>& resources,
                                         bool mappings) {
  std::vector<StatusTarget> out;
  for (const config::Resource& r : resources) {
    if (r.origin.object.empty() || !r.origin.file.empty()) continue;
    if (r.kind == "Host" || (mappings && r.kind == "Mapping")) {
      out.push_back({r.kind, r.namespace_, r.name, r.kind == "Host" && host_has_tls(r)});
    }
  }
  return out;
}

std::vector<StatusUpdate> ambassador_statuses(const std::vector<StatusTarget>& targets,
                                              const config::Diagnostics& diagnostics) {
  std::unordered_map<std::string, const config::Diagnostic*> first_error;
  for (const config::Diagnostic& d : diagnostics) {
    if (d.severity == config::Severity::kError && !d.resource.empty()) {
      first_error.emplace(d.resource, &d);
    }
  }
  std::vector<StatusUpdate> out;
  out.reserve(targets.size());
  for (const StatusTarget& t : targets) {
    StatusUpdate u;
    u.kind = ambassador_kind(t.kind);
    u.namespace_ = t.namespace_;
    u.name = t.name;
    auto it = first_error.find(t.kind + "/" + t.namespace_ + "/" + t.name);
    std::string reason;
    if (it != first_error.end()) {
      const config::Diagnostic& d = *it->second;
      reason = d.field.empty() ? d.message : d.field + ": " + d.message;
    }
    if (t.kind == "Mapping") {
      u.status = reason.empty() ? nlohmann::json{{"state", "Running"}}
                                : nlohmann::json{{"state", "Inactive"}, {"reason", reason}};
    } else {
      u.status = {{"state", reason.empty() ? "Ready" : "Error"},
                  {"phaseCompleted", "NA"},
                  {"phasePending", "NA"},
                  {"tlsCertificateSource", t.tls ? "Other" : "None"}};
      if (!reason.empty()) u.status["errorReason"] = reason;
    }
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace proxenos::k8s
