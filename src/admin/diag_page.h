#pragma once
// The diagnostics page (`/ambassador/v0/diag/`) as one self-contained HTML document: inline CSS,
// no scripts, no fetches (a Content-Security-Policy of default-src 'none' says so to the browser),
// every value from the configuration HTML-escaped. The model is app::build_diag_model's JSON.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace proxenos::admin {

std::string render_diag_html(const nlohmann::json& model);

// &, <, >, " and ' as character references: safe in text and in quoted attribute values.
std::string html_escape(std::string_view text);

// The fragment id of a resource's entry ("Mapping/ns/name" -> "res-Mapping.2fns.2fname"): only
// letters, digits, '-', '_' and '.', so it needs no escaping in an id or in an href.
std::string resource_anchor(std::string_view resource);

}  // namespace proxenos::admin
