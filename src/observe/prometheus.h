#pragma once
// Prometheus text exposition (format 0.0.4) of the merged worker stats, under Envoy's names and
// tags as Emissary exports them, so existing Emissary/Envoy dashboards keep working.

#include <cstdint>
#include <string>
#include <string_view>

#include "observe/stats.h"

namespace proxenos::observe {

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

struct PrometheusOptions {
  uint64_t config_generation = 0;
  uint64_t config_reloads = 0;
  uint64_t config_errors = 0;
  uint64_t config_kept_last_good = 0;
};

// A label value with \, " and newline escaped as the text format requires.
std::string escape_label_value(std::string_view value);

std::string render_prometheus(const MergedStats& stats, const PrometheusOptions& options);

}  // namespace proxenos::observe
