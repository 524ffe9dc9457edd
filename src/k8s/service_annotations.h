#pragma once
// Resources embedded in a Service's `getambassador.io/config` annotation, as Emissary reads
// them: a multi-document YAML string whose documents may be full objects (apiVersion, kind,
// metadata, spec) or Emissary's flat form (apiVersion, kind, name and the spec's fields at the
// top level). A resource without a namespace takes the Service's.

#include <string_view>

#include "config/file_source.h"
#include "config/resource.h"

namespace proxenos::k8s {

inline constexpr std::string_view kConfigAnnotation = "getambassador.io/config";

// Appends the annotation's resources (and its problems, located at the Service) to `out`.
// Does nothing when the Service has no such annotation.
void annotation_resources(const config::Resource& service, config::LoadResult& out);

}  // namespace proxenos::k8s
