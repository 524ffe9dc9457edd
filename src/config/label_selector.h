#pragma once
// Kubernetes label selectors with their full semantics (matchLabels and matchExpressions with In,
// NotIn, Exists, DoesNotExist), used by Host.mappingSelector and Listener.hostBinding.selector.
// Emissary honours matchLabels only; Proxenos deliberately supports the whole selector.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/decode.h"

namespace proxenos::config {

using Labels = std::map<std::string, std::string>;

enum class SelectorOperator : uint8_t { kIn, kNotIn, kExists, kDoesNotExist };

struct SelectorRequirement {
  std::string key;
  SelectorOperator op = SelectorOperator::kIn;
  std::vector<std::string> values;
  bool operator==(const SelectorRequirement&) const = default;
};

struct LabelSelector {
  Labels match_labels;
  std::vector<SelectorRequirement> match_expressions;

  // An empty selector selects everything, as in Kubernetes.
  bool empty() const { return match_labels.empty() && match_expressions.empty(); }
  bool matches(const Labels& labels) const;
  // Stable text form, e.g. "app=foo,tier in (a,b),!legacy", for identities and listings.
  std::string to_string() const;
  bool operator==(const LabelSelector&) const = default;
};

// Decodes the selector at `key` of `parent`; nullopt when absent or invalid (errors reported).
std::optional<LabelSelector> decode_label_selector(MapReader& parent, std::string_view key);

}  // namespace proxenos::config
