#pragma once
// The `ambassador` Module (`spec.config`): global knobs for the data plane and the defaults the
// compiler applies to every Mapping.

#include <optional>
#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/header_fields.h"
#include "config/mapping.h"
#include "config/resource.h"
#include "config/snapshot.h"

namespace proxenos::config {

// Module `defaults.httpmapping` (or plain `defaults`): used by a Mapping that does not set the
// field itself. A Mapping's own value replaces the default; it never merges with it.
struct MappingDefaults {
  std::optional<std::vector<AddedHeader>> add_request_headers;
  std::optional<std::vector<AddedHeader>> add_response_headers;
  std::optional<std::vector<std::string>> remove_request_headers;
  std::optional<std::vector<std::string>> remove_response_headers;
  std::optional<std::string> stats_name;
  // Module `cors`: the policy of every Mapping without its own (whole, never merged).
  std::optional<CorsSpec> cors;
};

struct AmbassadorModule {
  ModuleSettings settings;
  MappingDefaults defaults;
  // The resolver Mappings and TCPMappings use when they name none (default kubernetes-service).
  std::optional<std::string> resolver;
};

// True for a Module that configures the whole gateway (named `ambassador`).
bool is_ambassador_module(const Resource& resource);

// Decodes an `ambassador` Module; nullopt (with errors reported) when it is invalid.
std::optional<AmbassadorModule> decode_ambassador_module(const Resource& resource,
                                                         Diagnostics* diagnostics);

}  // namespace proxenos::config
