#include "config/mapping_group.h"

#include <cmath>
#include <tuple>

namespace proxenos::config {

std::vector<KeyValueMatch> header_matchers(const MappingSpec& m) {
  std::vector<KeyValueMatch> out = m.headers;
  out.insert(out.end(), m.regex_headers.begin(), m.regex_headers.end());
  KeyValueMatch authority;
  authority.name = ":authority";
  if (m.hostname) {
    authority.value = *m.hostname;
  } else if (m.host) {
    authority.value = *m.host;
    authority.regex = m.host_regex;
    authority.compiled = m.host_pattern;
  } else if (m.authority_header) {
    authority.value = *m.authority_header;
  }
  if (authority.value) out.push_back(std::move(authority));
  if (m.method) {
    KeyValueMatch method;
    method.name = ":method";
    method.value = *m.method;
    method.regex = m.method_regex;
    method.compiled = m.method_pattern;
    out.push_back(std::move(method));
  }
  return out;
}

std::string mapping_host_glob(const MappingSpec& m) {
  if (m.hostname) return *m.hostname;
  if (m.host && !m.host_regex) return *m.host;
  if (m.authority_header && !m.host) return *m.authority_header;
  return "";
}

bool RouteKey::operator<(const RouteKey& o) const {
  return std::tie(precedence, prefix_length, header_length, query_length, prefix, method, keys) <
         std::tie(o.precedence, o.prefix_length, o.header_length, o.query_length, o.prefix,
                  o.method, o.keys);
}

RouteKey route_key(const MappingSpec& m) {
  RouteKey k;
  k.precedence = m.precedence;
  k.prefix_length = m.prefix.size();
  k.prefix = m.prefix;
  // For the weight, an unset method counts as GET (irhttpmapping.py, "for historical reasons").
  k.method = m.method.value_or("GET");
  for (const KeyValueMatch& h : header_matchers(m)) {
    k.header_length += h.weight_length();
    k.keys.push_back(h.weight_key());
  }
  for (const KeyValueMatch& q : m.query_parameters) {
    k.query_length += q.weight_length();
    k.keys.push_back(q.weight_key());
  }
  return k;
}

std::string group_id(const MappingSpec& m, const std::vector<HostSpec>& hosts) {
  // Fields are separated so that distinct Mappings cannot collide by concatenation.
  constexpr char kSep = '\x1f';
  std::string id = "HTTP-" + m.method.value_or("GET");
  id += kSep + m.prefix;
  for (const KeyValueMatch& h : header_matchers(m)) {
    id += kSep + h.name + '\x1e' + h.value.value_or("");
  }
  for (const KeyValueMatch& q : m.query_parameters) {
    id += kSep + q.name + '\x1e' + q.value.value_or("");
  }
  // Emissary's self.host is unset for host_regex Mappings too.
  bool has_host = m.hostname || (m.host && !m.host_regex) || (m.authority_header && !m.host);
  if (!has_host && !m.labels.empty()) {
    for (const HostSpec& host : hosts) {
      if (host.mapping_selector && host.mapping_selector->matches(m.labels)) {
        id += kSep + std::string("sel:") + host.mapping_selector->to_string();
      }
    }
  }
  if (m.precedence != 0) id += kSep + std::string("prec:") + std::to_string(m.precedence);
  return id;
}

bool normalize_weight_list(const std::vector<std::optional<uint32_t>>& weights,
                           std::vector<std::pair<size_t, uint32_t>>* out, std::string* error,
                           size_t* culprit, const std::string& noun) {
  out->clear();
  if (weights.size() == 1) {
    out->emplace_back(0, 100);
    return true;
  }
  std::vector<size_t> weightless;
  uint32_t current = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!weights[i]) {
      weightless.push_back(i);
      continue;
    }
    if (*weights[i] > 100) {
      *error = "weight " + std::to_string(*weights[i]) + " is above 100";
      *culprit = i;
      return false;
    }
    current += *weights[i];
    if (current > 100) {
      *error = "the weights of the canary group add up to more than 100 (" +
               std::to_string(current) + " after this " + noun + ")";
      *culprit = i;
      return false;
    }
    out->emplace_back(i, current);
  }
  if (!weightless.empty()) {
    uint32_t remaining = 100 - current;
    // Python's round(): halves go to the even neighbour, as nearbyint does by default.
    auto share = static_cast<uint32_t>(
        std::nearbyint(static_cast<double>(remaining) / static_cast<double>(weightless.size())));
    for (size_t i = 0; i < weightless.size(); ++i) {
      current = i + 1 == weightless.size() ? 100 : current + share;
      out->emplace_back(weightless[i], current);
    }
  }
  return true;
}

bool normalize_weights(const std::vector<const MappingSpec*>& members,
                       std::vector<WeightedMember>* out, std::string* error,
                       const MappingSpec** culprit) {
  std::vector<std::optional<uint32_t>> weights;
  weights.reserve(members.size());
  for (const MappingSpec* m : members) weights.push_back(m->weight);
  std::vector<std::pair<size_t, uint32_t>> cumulative;
  size_t bad = 0;
  out->clear();
  if (!normalize_weight_list(weights, &cumulative, error, &bad, "Mapping")) {
    *culprit = members[bad];
    return false;
  }
  for (const auto& [index, weight] : cumulative) out->push_back({members[index], weight});
  return true;
}

}  // namespace proxenos::config
