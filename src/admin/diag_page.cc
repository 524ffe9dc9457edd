#include "admin/diag_page.h"

#include <cinttypes>
#include <cstdio>

namespace proxenos::admin {

namespace {

using nlohmann::json;

const json& field(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// A scalar as text; structures as compact JSON. Never throws (bad UTF-8 is replaced).
std::string text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "";
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number_unsigned()) return std::to_string(j.get<uint64_t>());
  if (j.is_number_integer()) return std::to_string(j.get<int64_t>());
  if (j.is_number_float()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3g", j.get<double>());
    return buf;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string esc(const json& j) {
  return html_escape(text(j));
}

uint64_t count(const json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer())
    return j.get<int64_t>() < 0 ? 0 : static_cast<uint64_t>(j.get<int64_t>());
  return 0;
}

double number(const json& j) {
  return j.is_number() ? j.get<double>() : 0.0;
}

const json& array(const json& j, const char* key) {
  static const json kEmpty = json::array();
  const json& a = field(j, key);
  return a.is_array() ? a : kEmpty;
}

std::string duration_text(double seconds) {
  char buf[64];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof buf, "%.0f min %.0f s",
                  static_cast<double>(static_cast<int64_t>(seconds) / 60),
                  static_cast<double>(static_cast<int64_t>(seconds) % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
  }
  return buf;
}

std::string percent_text(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", share * 100);
  return buf;
}

// "exact GET", "~^(GET|HEAD)$", "*.example.com" and so on, as a person reads a matcher.
std::string matcher_text(const json& m) {
  std::string kind = text(field(m, "kind"));
  std::string value = text(field(m, "value"));
  if (kind == "present") return "(present)";
  if (kind == "any") return "*";
  if (kind == "regex") return "~ " + value;
  if (kind == "prefix") return value + "*";
  if (kind == "suffix") return "*" + value;
  return value;
}

// "/etc/proxenos/routes.yaml:12" -> "routes.yaml:12": the route tables stay narrow; the full
// origin is in the title and in the resource's entry the link leads to.
std::string short_origin(const std::string& origin) {
  size_t slash = origin.rfind('/');
  return slash == std::string::npos ? origin : origin.substr(slash + 1);
}

// A resource name linked to its entry in the resources list, with where it came from. Names
// without a kind ("default-host", synthesized by the compiler) have no entry to link to.
std::string source_link(const json& source, const json& origin, bool short_form = false) {
  std::string s = text(source);
  if (s.empty()) return "";
  std::string out =
      s.find('/') == std::string::npos
          ? "<span class=\"src\">" + html_escape(s) + "</span>"
          : "<a class=\"src\" href=\"#" + resource_anchor(s) + "\">" + html_escape(s) + "</a>";
  std::string o = text(origin);
  if (!o.empty()) {
    out += " <span class=\"origin\" title=\"" + html_escape(o) + "\">" +
           html_escape(short_form ? short_origin(o) : o) + "</span>";
  }
  return out;
}

std::string target_html(const json& t, bool shadow, bool show_weight) {
  std::string out = shadow ? "<div class=\"target shadow\">" : "<div class=\"target\">";
  if (shadow) out += "<span class=\"tag shadow\">shadow</span> ";
  if (show_weight) {
    uint64_t w = count(field(t, "weight"));
    out += "<span class=\"weight\"><span class=\"bar\" style=\"width:" +
           std::to_string(w > 100 ? 100 : w) + "%\"></span><span class=\"pct\">" +
           std::to_string(w) + "%</span></span> ";
  }
  const json& redirect = field(t, "redirect");
  if (redirect.is_object()) {
    out += "<span class=\"tag\">redirect " + esc(field(redirect, "status")) + "</span> " +
           (field(redirect, "https").is_boolean() && field(redirect, "https").get<bool>()
                ? "https://"
                : "http://") +
           esc(field(redirect, "host"));
    if (!field(redirect, "path").is_null())
      out += " path <code>" + esc(field(redirect, "path")) + "</code>";
    if (!field(redirect, "prefix").is_null()) {
      out += " prefix <code>" + esc(field(redirect, "prefix")) + "</code>";
    }
  } else if (field(t, "directStatus").is_number()) {
    out += "<span class=\"tag\">direct " + esc(field(t, "directStatus")) + "</span>";
  } else {
    out += "&rarr; <a class=\"cluster\" href=\"#cluster-" +
           resource_anchor(text(field(t, "cluster"))) + "\">" + esc(field(t, "cluster")) + "</a>";
  }
  if (!field(t, "rewrite").is_null())
    out += " rewrite <code>" + esc(field(t, "rewrite")) + "</code>";
  const json& rr = field(t, "regexRewrite");
  if (rr.is_object()) {
    out += " regex_rewrite <code>" + esc(field(rr, "pattern")) + "</code> &rarr; <code>" +
           esc(field(rr, "substitution")) + "</code>";
  }
  if (!field(t, "hostRewrite").is_null()) {
    out += " host_rewrite <code>" + esc(field(t, "hostRewrite")) + "</code>";
  }
  out += " <span class=\"from\">from " + source_link(field(t, "source"), field(t, "origin"), true) +
         "</span>";
  out += "</div>";
  return out;
}

std::string route_row(const json& r) {
  const json& match = field(r, "match");
  std::string out = "<tr><td class=\"num\">" + esc(field(r, "index")) + "</td><td>";
  const json& method = field(match, "method");
  out += "<span class=\"method\">" +
         (method.is_object() ? html_escape(matcher_text(method)) : "*") +
         "</span> <code class=\"path\">" + esc(field(match, "path")) + "</code>";
  std::string kind = text(field(match, "kind"));
  if (kind != "prefix") out += " <span class=\"tag\">" + html_escape(kind) + "</span>";
  if (field(match, "caseSensitive").is_boolean() && !field(match, "caseSensitive").get<bool>()) {
    out += " <span class=\"tag\">case-insensitive</span>";
  }
  out += "</td><td>";
  std::string conditions;
  const json& host = field(match, "host");
  if (host.is_object())
    conditions += "<div>host <code>" + html_escape(matcher_text(host)) + "</code></div>";
  for (const json& h : array(match, "headers")) {
    conditions += "<div>header <code>" + esc(field(h, "name")) + "</code> " + "<code>" +
                  html_escape(matcher_text(h)) + "</code></div>";
  }
  for (const json& q : array(match, "query")) {
    conditions += "<div>query <code>" + esc(field(q, "name")) + "</code> " + "<code>" +
                  html_escape(matcher_text(q)) + "</code></div>";
  }
  if (number(field(r, "precedence")) != 0) {
    conditions += "<div>precedence " + esc(field(r, "precedence")) + "</div>";
  }
  out += conditions + "</td><td>";
  const json& targets = array(r, "targets");
  bool canary = targets.size() > 1;
  for (const json& t : targets)
    out += target_html(t, false, canary || count(field(t, "weight")) != 100);
  const json& shadow = field(r, "shadow");
  if (shadow.is_object()) out += target_html(shadow, true, true);
  out += "</td></tr>\n";
  return out;
}

const char* kStyle = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{margin:0 0 8px;font-size:20px;font-weight:600}
header a{color:#9fc5ff}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0}
.stat{background:#2c3446;border-radius:6px;padding:6px 12px;min-width:80px}
.stat .label{display:block;font-size:11px;text-transform:uppercase;color:#aab3c5}
.stat .value{font-size:18px;font-weight:600}
.stat.bad{background:#a3242f}.stat.warn{background:#8a6500}
nav{margin-top:6px;font-size:13px}nav a{margin-right:14px}
main{padding:8px 24px 32px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:16px 0;padding:8px 16px 14px}
h2{font-size:17px;margin:8px 0}
h3{font-size:14px;margin:14px 0 6px;font-weight:600}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid #eceef2}
th{font-size:12px;color:#5a6272;font-weight:600;background:#fafbfc}
td.num{text-align:right;color:#5a6272;width:2em}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f0f2f5;padding:0 3px;border-radius:3px;overflow-wrap:break-word}
.method{font-weight:600;color:#2a5db0}
.tag{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;background:#e4e8ef;color:#3b4252}
.tag.shadow{background:#e9ddff;color:#4b2a8a}
.target{margin:1px 0}.target.shadow{color:#4b2a8a}
.weight{display:inline-block;position:relative;width:64px;height:16px;background:#e4e8ef;border-radius:3px;vertical-align:middle;overflow:hidden}
.weight .bar{position:absolute;left:0;top:0;bottom:0;background:#6aa0f0}
.weight .pct{position:relative;font-size:11px;font-weight:600;padding-left:4px}
.from{color:#6b7383;font-size:12px}.origin{color:#6b7383;font-size:12px}
tr.error td{background:#fff0f0}tr.warning td{background:#fff9e6}
.status{font-weight:600;font-size:12px;text-transform:uppercase}
.status.error{color:#b3202c}.status.warning{color:#8a6500}.status.ok{color:#2f7d32}
.problem.error{color:#b3202c}.problem.warning{color:#8a6500}
.muted{color:#6b7383}
.rate.bad{color:#b3202c;font-weight:600}
footer{color:#6b7383;font-size:12px;padding:0 24px 24px}
)";

}  // namespace

std::string html_escape(std::string_view in) {
  std::string out;
  out.reserve(in.size() + 16);
  for (char c : in) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string resource_anchor(std::string_view resource) {
  static const char* kHex = "0123456789abcdef";
  std::string out = "res-";
  for (char c : resource) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '_') {
      out += c;
    } else {
      out += '.';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string render_diag_html(const nlohmann::json& model) {
  const json& summary = field(model, "summary");
  std::string out;
  out.reserve(16384);
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
      "'unsafe-inline'\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>Proxenos diagnostics: generation " +
      esc(field(model, "generation")) + "</title>\n<style>" + kStyle + "</style></head>\n<body>\n";

  // --- summary ---------------------------------------------------------------------------------
  uint64_t errors = count(field(summary, "errors"));
  uint64_t warnings = count(field(summary, "warnings"));
  auto stat = [](const std::string& id, const char* label, const std::string& value,
                 const char* cls = "") {
    return std::string("<div class=\"stat ") + cls + "\"><span class=\"label\">" + label +
           "</span><span class=\"value\" id=\"" + id + "\">" + value + "</span></div>";
  };
  out += "<header><h1>Proxenos diagnostics</h1>\n<div class=\"summary\">";
  out += stat("generation", "generation", esc(field(model, "generation")));
  out +=
      stat("age", "snapshot age", html_escape(duration_text(number(field(model, "ageSeconds")))));
  out += stat("count-listeners", "listeners", esc(field(summary, "listeners")));
  out += stat("count-hosts", "hosts", esc(field(summary, "hosts")));
  out += stat("count-routes", "routes", esc(field(summary, "routes")));
  out += stat("count-clusters", "clusters", esc(field(summary, "clusters")));
  out += stat("count-resources", "resources", esc(field(summary, "resources")));
  out += stat("count-errors", "errors", std::to_string(errors), errors > 0 ? "bad" : "");
  out += stat("count-warnings", "warnings", std::to_string(warnings), warnings > 0 ? "warn" : "");
  out += "</div>\n<div>Applied <span id=\"applied-at\">" + esc(field(model, "appliedAt")) +
         "</span>; page rendered " + esc(field(model, "now")) + "</div>\n";
  out +=
      "<nav><a href=\"#listeners\">Listeners</a><a href=\"#routes\">Routes</a>"
      "<a href=\"#resources\">Resources</a><a href=\"#clusters\">Clusters</a>"
      "<a href=\"/ambassador/v0/diag/?json=true\">JSON</a><a href=\"/config_dump\">config_dump</a>"
      "<a href=\"/metrics\">metrics</a></nav></header>\n<main>\n";

  // --- listeners -------------------------------------------------------------------------------
  out +=
      "<section id=\"listeners\"><h2>Listeners</h2>\n<table><tr><th>Name</th><th>Address</th>"
      "<th>Protocol</th><th>Security model</th><th>Stats prefix</th><th>Hosts</th></tr>\n";
  const json& listeners = array(model, "listeners");
  for (const json& l : listeners) {
    std::string hosts;
    for (const json& h : array(l, "hosts")) {
      if (!hosts.empty()) hosts += ", ";
      hosts += "<code>" + esc(field(h, "hostname")) + "</code>";
    }
    out += "<tr><td>" + esc(field(l, "name")) + "</td><td><code>" + esc(field(l, "address")) + ":" +
           esc(field(l, "port")) + "</code></td><td>" + esc(field(l, "protocol")) + "</td><td>" +
           esc(field(l, "securityModel")) + "</td><td>" + esc(field(l, "statsPrefix")) +
           "</td><td>" + (hosts.empty() ? "<span class=\"muted\">none</span>" : hosts) +
           "</td></tr>\n";
  }
  if (listeners.empty()) out += "<tr><td colspan=\"6\" class=\"muted\">no listeners</td></tr>\n";
  out += "</table></section>\n";

  // --- routes ----------------------------------------------------------------------------------
  out += "<section id=\"routes\"><h2>Routes, in match order</h2>\n";
  bool any_host = false;
  for (const json& l : listeners) {
    for (const json& h : array(l, "hosts")) {
      any_host = true;
      const json& routes = array(h, "routes");
      out += "<h3>Listener " + esc(field(l, "name")) + " (port " + esc(field(l, "port")) +
             ") &middot; Host <code>" + esc(field(h, "hostname")) + "</code> " +
             source_link(field(h, "source"), field(h, "origin"), true);
      std::string action = text(field(h, "insecureAction"));
      if (!action.empty() && action != "Route") {
        out += " <span class=\"tag\">insecure: " + html_escape(action) + "</span>";
      }
      out += "</h3>\n";
      if (routes.empty()) {
        out += "<p class=\"muted\">no routes</p>\n";
        continue;
      }
      out +=
          "<table class=\"routes\"><tr><th>#</th><th>Match</th><th>Conditions</th>"
          "<th>Targets (weight, cluster, rewrite, source)</th></tr>\n";
      for (const json& r : routes) out += route_row(r);
      out += "</table>\n";
    }
  }
  if (!any_host) out += "<p class=\"muted\">no HTTP hosts</p>\n";
  out += "</section>\n";

  // --- resources -------------------------------------------------------------------------------
  out +=
      "<section id=\"resources\"><h2>Resources</h2>\n<table><tr><th>Status</th><th>Resource</th>"
      "<th>Origin</th><th>Errors and warnings</th></tr>\n";
  for (const json& r : array(model, "resources")) {
    std::string status = text(field(r, "status"));
    std::string resource = text(field(r, "resource"));
    out += "<tr class=\"" + html_escape(status) + "\" id=\"" + resource_anchor(resource) +
           "\"><td><span class=\"status " + html_escape(status) + "\">" + html_escape(status) +
           "</span>";
    if (field(r, "applied").is_boolean() && !field(r, "applied").get<bool>()) {
      out += " <span class=\"tag\">not applied</span>";
    }
    out += "</td><td><code>" + html_escape(resource) + "</code></td><td class=\"origin\">" +
           esc(field(r, "origin")) + "</td><td>";
    for (const char* severity : {"errors", "warnings"}) {
      const char* cls = severity[0] == 'e' ? "error" : "warning";
      for (const json& d : array(r, severity)) {
        out += std::string("<div class=\"problem ") + cls + "\">" + cls + ": ";
        std::string f = text(field(d, "field"));
        if (!f.empty()) out += "<code>" + html_escape(f) + "</code>: ";
        out += esc(field(d, "message"));
        std::string o = text(field(d, "origin"));
        if (!o.empty() && o != text(field(r, "origin"))) {
          out += " <span class=\"origin\">(" + html_escape(o) + ")</span>";
        }
        out += "</div>";
      }
    }
    out += "</td></tr>\n";
  }
  out += "</table>\n";
  const json& file_errors = array(model, "fileErrors");
  if (!file_errors.empty()) {
    out += "<h3>Files</h3>\n<table><tr><th>Status</th><th>Where</th><th>Problem</th></tr>\n";
    for (const json& f : file_errors) {
      std::string severity = text(field(f, "severity"));
      out += "<tr class=\"" + html_escape(severity) + "\"><td><span class=\"status " +
             html_escape(severity) + "\">" + html_escape(severity) +
             "</span></td><td class=\"origin\">" + esc(field(f, "origin")) +
             "</td><td class=\"problem " + html_escape(severity) + "\">" +
             esc(field(f, "message")) + "</td></tr>\n";
    }
    out += "</table>\n";
  }
  out += "</section>\n";

  // --- clusters --------------------------------------------------------------------------------
  out +=
      "<section id=\"clusters\"><h2>Clusters</h2>\n<table><tr><th>Cluster</th><th>Service</th>"
      "<th>Endpoints</th><th>Used by</th><th>Requests</th><th>5xx</th>"
      "<th>Recent error rate</th></tr>\n";
  for (const json& c : array(model, "clusters")) {
    std::string endpoints;
    for (const json& e : array(c, "endpoints"))
      endpoints += "<div><code>" + esc(e) + "</code></div>";
    if (endpoints.empty()) endpoints = "<span class=\"rate bad\">unresolved</span>";
    std::string used;
    for (const json& m : array(c, "mappings")) used += "<div>" + source_link(m, nullptr) + "</div>";
    const json& recent = field(c, "recent");
    const json& rate = field(c, "recentErrorRate");
    std::string window = duration_text(number(field(recent, "windowSeconds")));
    std::string rate_html;
    if (rate.is_number()) {
      double r = rate.get<double>();
      rate_html = std::string("<span class=\"rate") + (r > 0 ? " bad" : "") + "\">" +
                  percent_text(r) + "</span> <span class=\"muted\">(" +
                  esc(field(recent, "errors5xx")) + " of " + esc(field(recent, "requests")) +
                  " in the last " + html_escape(window) + ")</span>";
    } else {
      rate_html =
          "<span class=\"muted\">no requests in the last " + html_escape(window) + "</span>";
    }
    out += "<tr id=\"cluster-" + resource_anchor(text(field(c, "name"))) + "\"><td><code>" +
           esc(field(c, "name")) + "</code></td><td><code>" + esc(field(c, "service")) + "</code>" +
           (field(c, "tls").is_boolean() && field(c, "tls").get<bool>()
                ? " <span class=\"tag\">tls</span>"
                : "") +
           "</td><td>" + endpoints + "</td><td>" + used + "</td><td class=\"num\">" +
           esc(field(c, "requestsTotal")) + "</td><td class=\"num\">" +
           esc(field(c, "responses5xx")) + "</td><td>" + rate_html + "</td></tr>\n";
  }
  if (array(model, "clusters").empty()) {
    out += "<tr><td colspan=\"7\" class=\"muted\">no clusters</td></tr>\n";
  }
  out += "</table></section>\n</main>\n";
  out +=
      "<footer>Recent error rate: share of 5xx responses among the cluster's requests over the "
      "last minute (samples every 10 s). This page is served by the gateway itself and loads "
      "nothing from elsewhere.</footer>\n</body></html>\n";
  return out;
}

}  // namespace proxenos::admin
