#include "config/label_selector.h"

#include <algorithm>

namespace proxenos::config {

bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& [k, v] : match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const SelectorRequirement& req : match_expressions) {
    auto it = labels.find(req.key);
    bool present = it != labels.end();
    bool listed =
        present && std::find(req.values.begin(), req.values.end(), it->second) != req.values.end();
    switch (req.op) {
      case SelectorOperator::kIn:
        if (!listed) return false;
        break;
      case SelectorOperator::kNotIn:
        if (listed) return false;
        break;
      case SelectorOperator::kExists:
        if (!present) return false;
        break;
      case SelectorOperator::kDoesNotExist:
        if (present) return false;
        break;
    }
  }
  return true;
}

std::string LabelSelector::to_string() const {
  std::string out;
  auto sep = [&out] {
    if (!out.empty()) out += ",";
  };
  for (const auto& [k, v] : match_labels) {
    sep();
    out += k + "=" + v;
  }
  for (const SelectorRequirement& req : match_expressions) {
    sep();
    auto list = [&req] {
      std::string l;
      for (const std::string& v : req.values) l += (l.empty() ? "" : ",") + v;
      return "(" + l + ")";
    };
    switch (req.op) {
      case SelectorOperator::kIn:
        out += req.key + " in " + list();
        break;
      case SelectorOperator::kNotIn:
        out += req.key + " notin " + list();
        break;
      case SelectorOperator::kExists:
        out += req.key;
        break;
      case SelectorOperator::kDoesNotExist:
        out += "!" + req.key;
        break;
    }
  }
  return out;
}

std::optional<LabelSelector> decode_label_selector(MapReader& parent, std::string_view key) {
  std::optional<MapReader> m = parent.map(key);
  if (!m || !m->present()) return std::nullopt;
  Reporter& r = m->reporter();
  int errors_before = r.errors();
  LabelSelector sel;

  if (auto labels = m->string_map("matchLabels", false)) {
    for (auto& [k, v] : *labels) sel.match_labels[k] = v.value_or("");
  }

  YAML::Node exprs = m->take("matchExpressions");
  if (exprs.IsDefined()) {
    std::string path = m->path("matchExpressions");
    if (!exprs.IsSequence()) {
      r.error(m->where("matchExpressions"), path, "must be a list");
    } else {
      for (size_t i = 0; i < exprs.size(); ++i) {
        std::string item_path = path + "[" + std::to_string(i) + "]";
        MapReader e(r, exprs[i], item_path, exprs[i]);
        if (!e.is_map()) {
          if (!e.present()) r.error(exprs[i], item_path, "must be a map");
          continue;
        }
        SelectorRequirement req;
        e.require("key");
        e.require("operator");
        std::optional<std::string> k = e.string("key");
        std::optional<std::string> op =
            e.one_of("operator", {"In", "NotIn", "Exists", "DoesNotExist"});
        std::optional<std::vector<std::string>> values = e.string_list("values");
        e.finish();
        if (!k || !op) continue;
        req.key = *k;
        if (values) req.values = *values;
        if (*op == "In") req.op = SelectorOperator::kIn;
        if (*op == "NotIn") req.op = SelectorOperator::kNotIn;
        if (*op == "Exists") req.op = SelectorOperator::kExists;
        if (*op == "DoesNotExist") req.op = SelectorOperator::kDoesNotExist;
        bool needs_values = req.op == SelectorOperator::kIn || req.op == SelectorOperator::kNotIn;
        if (needs_values && req.values.empty()) {
          r.error(e.where("values"), e.path("values"), "must not be empty for operator " + *op);
          continue;
        }
        if (!needs_values && !req.values.empty()) {
          r.error(e.where("values"), e.path("values"), "must be empty for operator " + *op);
          continue;
        }
        sel.match_expressions.push_back(std::move(req));
      }
    }
  }
  m->finish();
  if (r.errors() != errors_before) return std::nullopt;
  return sel;
}

}  // namespace proxenos::config
