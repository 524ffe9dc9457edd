#pragma once
// Emissary's canary groups and route order (irhttpmapping.py _group_id/_route_weight,
// irbasemappinggroup.py normalize_weights_in_mappings, ir.py ordered_groups): spec §2.1, §2.2.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/host.h"
#include "config/mapping.h"

namespace proxenos::config {

// The header matchers of a Mapping in Emissary's order: `headers` (without an exact
// :authority), `regex_headers`, then `:authority` (hostname > host > headers[:authority]) and
// `:method`.
std::vector<KeyValueMatch> header_matchers(const MappingSpec& mapping);

// The host glob a Mapping attaches by ("" = none): hostname, else a non-regex host, else an
// exact :authority header.
std::string mapping_host_glob(const MappingSpec& mapping);

// The sort key of §2.1, compared as Emissary compares its Python lists; bigger sorts first.
struct RouteKey {
  int64_t precedence = 0;
  size_t prefix_length = 0;
  size_t header_length = 0;
  size_t query_length = 0;
  std::string prefix;
  std::string method;
  std::vector<std::string> keys;  // header keys, then query keys ("name-value")

  bool operator<(const RouteKey& o) const;
  bool operator==(const RouteKey& o) const = default;
};

RouteKey route_key(const MappingSpec& mapping);

// Group identity (§2.2): method, prefix, header and query matchers, the mappingSelector labels
// of the Hosts that select the Mapping when it has no host, and a non-zero precedence.
std::string group_id(const MappingSpec& mapping, const std::vector<HostSpec>& hosts);

struct WeightedMember {
  const MappingSpec* mapping = nullptr;
  uint32_t cumulative_weight = 100;
};

// Canary weight normalization: one member is 100%; otherwise members with a weight come first
// with running totals, then the others share the rest evenly (Python rounding), the last pinned
// to 100. A total above 100 fails with `error` naming the member that crossed it.
// The same rule over plain weights (TCPMapping groups): `out` gets (input index, cumulative
// weight) in the order above; `noun` names a member in the error ("Mapping").
bool normalize_weight_list(const std::vector<std::optional<uint32_t>>& weights,
                           std::vector<std::pair<size_t, uint32_t>>* out, std::string* error,
                           size_t* culprit, const std::string& noun);

bool normalize_weights(const std::vector<const MappingSpec*>& members,
                       std::vector<WeightedMember>* out, std::string* error,
                       const MappingSpec** culprit);

}  // namespace proxenos::config
