#pragma once
// What the translator tests (Ingress, Gateway API) share: a Translation compiled by the real
// compiler, and where a request goes in the route table that comes out.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../config/test_util.h"
#include "config/compiler.h"
#include "http/header.h"
#include "k8s/status_update.h"

namespace proxenos::k8s::testing {

using config::testing::dump;

struct Compiled {
  Translation t;
  config::CompileResult result;
  const config::Snapshot& snap() const { return *result.snapshot; }
};

// `t` compiled with `extra` (resources that are not translated: Secrets, users' own) after it.
inline Compiled compile_translation(Translation t, const std::vector<config::Resource>& extra,
                                    const std::string& ambassador_id) {
  Compiled c;
  c.t = std::move(t);
  std::vector<config::Resource> resources = c.t.resources;
  resources.insert(resources.end(), extra.begin(), extra.end());
  config::CompileOptions options;
  options.ambassador_id = ambassador_id;
  c.result = config::compile(resources, options);
  return c;
}

struct Request {
  uint16_t port = 80;
  std::string authority;
  std::string path = "/";
  std::string method = "GET";
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  uint32_t draw = 0;
};

struct Hit {
  bool listener = false;  // a listener with routes serves the port
  const router::Route* route = nullptr;
  const router::RouteTarget* target = nullptr;
  // "host:port"; "direct <status>" for a local answer; "" when nothing matched or the target
  // redirects.
  std::string upstream;
};

inline Hit hit(const config::Snapshot& s, const Request& r) {
  Hit h;
  for (const config::ListenerSnapshot& l : s.listeners) {
    if (l.port != r.port || !l.routes) continue;
    h.listener = true;
    http::HeaderList headers;
    for (const auto& [n, v] : r.headers) headers.push_back({n, v});
    router::RequestView req;
    req.method = r.method;
    req.path = r.path;
    req.query = r.query;
    req.authority = r.authority;
    req.headers = &headers;
    router::RouteTable::Match m = l.routes->match(req, r.draw);
    if (m.target == nullptr) return h;
    h.route = m.route;
    h.target = m.target;
    if (m.target->direct_status != 0) {
      h.upstream = "direct " + std::to_string(m.target->direct_status);
    } else if (!m.target->redirect) {
      const upstream::ClusterSpec& c = s.clusters[m.target->cluster];
      h.upstream = c.host + ":" + std::to_string(c.port);
    }
  }
  return h;
}

// "host:port" a GET for `path` reaches; "" when nothing matches.
inline std::string upstream(const config::Snapshot& s, uint16_t port, const std::string& authority,
                            const std::string& path) {
  Request r;
  r.port = port;
  r.authority = authority;
  r.path = path;
  return hit(s, r).upstream;
}

}  // namespace proxenos::k8s::testing
