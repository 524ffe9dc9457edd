// `proxenos routes`: the compiled tables as a person reads them.

#include <algorithm>
#include <string>

#include "config/compiler.h"
#include "config/listener.h"

namespace proxenos::config {

namespace {

std::string matcher_text(const std::string& name, const router::StringMatcher& m) {
  switch (m.kind) {
    case router::StringMatchKind::kExact:
      return name + "=" + m.value;
    case router::StringMatchKind::kPresent:
      return name;
    case router::StringMatchKind::kRegex:
      return name + "~" + m.value;
    case router::StringMatchKind::kPrefix:
      return name + "=" + m.value + "*";
    case router::StringMatchKind::kSuffix:
      return name + "=*" + m.value;
    case router::StringMatchKind::kAny:
      return name + "=*";
  }
  return name;
}

std::string match_text(const router::Route& route) {
  std::string method = "*";
  std::string extra;
  for (const router::HeaderMatcher& h : route.headers) {
    if (h.name == ":method") {
      method =
          h.match.kind == router::StringMatchKind::kRegex ? "~" + h.match.value : h.match.value;
      continue;
    }
    extra += " " + matcher_text(h.name, h.match);
  }
  for (const router::QueryMatcher& q : route.query) extra += " ?" + matcher_text(q.name, q.match);
  std::string path;
  switch (route.path.kind) {
    case router::PathMatchKind::kPrefix:
      path = route.path.value;
      break;
    case router::PathMatchKind::kExact:
      path = "exact:" + route.path.value;
      break;
    case router::PathMatchKind::kRegex:
      path = "regex:" + route.path.value;
      break;
  }
  if (!route.path.case_sensitive) path += " (case-insensitive)";
  std::string out = method + " " + path + extra;
  if (route.precedence != 0) out += " [precedence " + std::to_string(route.precedence) + "]";
  return out;
}

std::string source_text(const Snapshot& snapshot, const std::string& source) {
  auto it = snapshot.resource_origins.find(source);
  if (it == snapshot.resource_origins.end()) return "(" + source + ")";
  std::string where = it->second.to_string();
  return "(" + source + (where.empty() ? "" : " " + where) + ")";
}

std::string target_text(const Snapshot& snapshot, const router::RouteTarget& t, uint32_t share,
                        bool show_weight) {
  std::string out;
  if (t.redirect) {
    const router::Redirect& r = *t.redirect;
    out =
        "redirect " + std::to_string(r.status) + " " + (r.https ? "https://" : "http://") + r.host;
    if (r.path) out += " path " + *r.path;
    if (r.prefix) out += " prefix " + *r.prefix;
    if (r.regex && r.regex->pattern) {
      out += " regex " + r.regex->pattern->pattern() + " -> " + r.regex->substitution;
    }
  } else if (t.direct_status != 0) {
    out = "direct " + std::to_string(t.direct_status);
    if (show_weight) out += " weight " + std::to_string(share) + "%";
  } else {
    out = t.cluster_name;
    if (show_weight) out += " weight " + std::to_string(share) + "%";
    if (t.regex_rewrite && t.regex_rewrite->pattern) {
      out += " regex_rewrite " + t.regex_rewrite->pattern->pattern() + " -> " +
             t.regex_rewrite->substitution;
    } else if (t.prefix_rewrite) {
      out += " rewrite " + *t.prefix_rewrite;
    }
    if (t.host_rewrite) out += " host_rewrite " + *t.host_rewrite;
  }
  return out + " " + source_text(snapshot, t.source);
}

}  // namespace

std::string format_routes(const Snapshot& snapshot) {
  std::string out;
  for (const ListenerSnapshot& l : snapshot.listeners) {
    out += "Listener ";
    if (l.bind_address != "0.0.0.0") out += l.bind_address + ":";
    out += std::to_string(l.port) + " " + protocol_name(l.protocol) + " (" + l.name + ")\n";
    if (!l.routes) {
      out += "  (no HTTP routes)\n";
      continue;
    }
    if (l.routes->hosts().empty()) out += "  (no Hosts)\n";
    for (const router::VirtualHostSpec& h : l.routes->hosts()) {
      out += "  Host " + h.hostname + " (" + h.source + ")";
      if (h.insecure_action != router::InsecureAction::kRoute) {
        out += std::string(" insecure ") + router::to_string(h.insecure_action);
      }
      out += "\n";
      if (h.routes.empty()) out += "    (no routes)\n";
      for (const auto& route : h.routes) {
        if (!route) continue;
        std::string match = match_text(*route);
        uint32_t previous = 0;
        bool canary = route->targets.size() > 1;
        for (const router::RouteTarget& t : route->targets) {
          uint32_t share = t.cumulative_weight > previous ? t.cumulative_weight - previous : 0;
          previous = std::max(previous, t.cumulative_weight);
          out += "    " + match + " -> " + target_text(snapshot, t, share, canary) + "\n";
        }
        if (route->shadow) {
          out += "    " + match + " shadow -> " +
                 target_text(snapshot, *route->shadow, route->shadow->cumulative_weight,
                             route->shadow->cumulative_weight != 100) +
                 "\n";
        }
      }
    }
  }
  return out;
}

}  // namespace proxenos::config
