#pragma once
// Helpers for the config tests: inline YAML in, resources / compile results out.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/compiler.h"
#include "config/file_source.h"

namespace proxenos::config::testing {

inline LoadResult load_text(const std::string& yaml, const std::string& file = "test.yaml") {
  LoadResult out;
  parse_documents(yaml, file, out);
  return out;
}

inline std::string dump(const Diagnostics& ds) {
  std::string out;
  for (const Diagnostic& d : ds) out += d.to_string() + "\n";
  return out;
}

struct Compiled {
  LoadResult loaded;
  CompileResult result;
  const Snapshot& snap() const { return *result.snapshot; }
};

inline Compiled compile_text(const std::string& yaml,
                             const std::string& ambassador_id = "default") {
  Compiled c;
  c.loaded = load_text(yaml);
  CompileOptions options;
  options.ambassador_id = ambassador_id;
  c.result = compile(c.loaded.resources, options);
  return c;
}

// The diagnostics (load and compile) whose field equals `field`, as strings.
inline std::vector<std::string> diags_for(const Compiled& c, const std::string& field) {
  std::vector<std::string> out;
  for (const Diagnostics* ds : {&c.loaded.diagnostics, &c.result.diagnostics}) {
    for (const Diagnostic& d : *ds) {
      if (d.field == field) out.push_back(d.to_string());
    }
  }
  return out;
}

inline std::vector<std::string> all_diags(const Compiled& c) {
  std::vector<std::string> out;
  for (const Diagnostics* ds : {&c.loaded.diagnostics, &c.result.diagnostics}) {
    for (const Diagnostic& d : *ds) out.push_back(d.to_string());
  }
  return out;
}

inline std::vector<std::string> errors(const Compiled& c) {
  std::vector<std::string> out;
  for (const Diagnostics* ds : {&c.loaded.diagnostics, &c.result.diagnostics}) {
    for (const Diagnostic& d : *ds) {
      if (d.severity == Severity::kError) out.push_back(d.to_string());
    }
  }
  return out;
}

inline const ListenerSnapshot* listener(const Snapshot& s, uint16_t port) {
  for (const ListenerSnapshot& l : s.listeners) {
    if (l.port == port) return &l;
  }
  return nullptr;
}

inline const router::VirtualHostSpec* vhost(const Snapshot& s, uint16_t port,
                                            const std::string& hostname) {
  const ListenerSnapshot* l = listener(s, port);
  if (l == nullptr || !l->routes) return nullptr;
  for (const router::VirtualHostSpec& h : l->routes->hosts()) {
    if (h.hostname == hostname) return &h;
  }
  return nullptr;
}

// Sources ("Mapping/ns/name") of the first target of each route of a virtual host, in order.
inline std::vector<std::string> route_sources(const router::VirtualHostSpec* h) {
  std::vector<std::string> out;
  if (h == nullptr) return out;
  for (const auto& r : h->routes) out.push_back(r->targets.empty() ? "" : r->targets[0].source);
  return out;
}

// A Listener on 8080 taking Hosts from all namespaces, and a Host `*` with insecure Route, so
// tests about Mappings need not repeat them.
inline const char* kBase = R"(
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: any}
spec: {hostname: "*", requestPolicy: {insecure: {action: Route}}}
---
)";

}  // namespace proxenos::config::testing
