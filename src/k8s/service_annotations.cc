#include "k8s/service_annotations.h"

#include <yaml-cpp/yaml.h>

#include <string>

namespace proxenos::k8s {

namespace {

bool is_flat(const YAML::Node& doc) {
  return doc.IsMap() && !doc["metadata"].IsDefined() && !doc["spec"].IsDefined();
}

// Flat form → object form: `name`/`namespace` go to metadata, `metadata_labels` to labels, and
// every other field (ambassador_id included) to spec.
YAML::Node unflatten(const YAML::Node& doc, const std::string& default_namespace) {
  YAML::Node object(YAML::NodeType::Map);
  YAML::Node metadata(YAML::NodeType::Map);
  YAML::Node spec(YAML::NodeType::Map);
  for (const auto& entry : doc) {
    const std::string key = entry.first.Scalar();
    if (key == "apiVersion" || key == "kind") {
      object[key] = entry.second;
    } else if (key == "name" || key == "namespace") {
      metadata[key] = entry.second;
    } else if (key == "metadata_labels") {
      metadata["labels"] = entry.second;
    } else {
      spec[key] = entry.second;
    }
  }
  if (!metadata["namespace"].IsDefined()) metadata["namespace"] = default_namespace;
  object["metadata"] = metadata;
  object["spec"] = spec;
  return object;
}

}  // namespace

void annotation_resources(const config::Resource& service, config::LoadResult& out) {
  auto it = service.annotations.find(std::string(kConfigAnnotation));
  if (it == service.annotations.end()) return;
  const std::string where =
      "Service " + service.namespace_ + "/" + service.name + " annotation " + it->first;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(it->second);
  } catch (const YAML::Exception& e) {
    config::Diagnostic d;
    d.origin.file = where;
    d.origin.line = e.mark.is_null() ? 0 : e.mark.line + 1;
    d.message = std::string("is not valid YAML: ") + e.msg;
    out.diagnostics.push_back(std::move(d));
    return;
  }
  // Re-emit the normalised documents so the file source decodes them exactly as it decodes a
  // folder (envelope checks, ambassador_id, lists).
  YAML::Emitter emitter;
  for (YAML::Node& doc : docs) {
    if (!doc.IsDefined() || doc.IsNull()) continue;
    if (is_flat(doc)) {
      doc = unflatten(doc, service.namespace_);
    } else if (doc.IsMap() && doc["metadata"].IsMap() && !doc["metadata"]["namespace"]) {
      doc["metadata"]["namespace"] = service.namespace_;
    }
    emitter << YAML::BeginDoc << doc;
  }
  if (!emitter.good()) return;
  config::parse_documents(emitter.c_str(), where, out);
}

}  // namespace proxenos::k8s
