#include <gtest/gtest.h>

#include "test_util.h"

namespace proxenos::config {
namespace {

TEST(FormatRoutesTest, ListsListenersHostsAndRoutesInMatchOrder) {
  testing::Compiled c = testing::compile_text(R"(apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: raw}
spec: {port: 9000, protocol: TCP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: any}
spec: {hostname: "*", requestPolicy: {insecure: {action: Route}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: api}
spec: {hostname: api.example.com}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: echo}
spec: {prefix: /echo/, service: "127.0.0.1:9001", hostname: "*"}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: canary}
spec: {prefix: /echo/, service: "127.0.0.1:9002", hostname: "*", weight: 10, rewrite: /v2/}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: api}
spec:
  prefix: /api/
  service: api:8080
  hostname: api.example.com
  method: POST
  headers: {x-team: a}
  query_parameters: {debug: true}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: exact}
spec: {prefix: /health, prefix_exact: true, service: h, hostname: "*", precedence: 5}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: old}
spec: {prefix: /old/, service: new.example.com, hostname: "*", host_redirect: true,
       path_redirect: /new}
)",
                                              "default");
  EXPECT_TRUE(testing::errors(c).empty()) << testing::dump(c.result.diagnostics);
  // /echo/ (longer prefix) sorts before /api/ despite the latter's headers; the canary member
  // with a weight comes first; `hostname: "*"` adds no predicate.
  std::string routes =
      "    * exact:/health [precedence 5] -> cluster_h_default rewrite / "
      "(Mapping/default/exact test.yaml:42)\n"
      "    * /echo/ -> cluster_127_0_0_1_9002_default weight 10% rewrite /v2/ "
      "(Mapping/default/canary test.yaml:26)\n"
      "    * /echo/ -> cluster_127_0_0_1_9001_default weight 90% rewrite / "
      "(Mapping/default/echo test.yaml:21)\n"
      "    POST /api/ x-team=a :authority=api.example.com ?debug -> cluster_api_8080_default "
      "rewrite / (Mapping/default/api test.yaml:31)\n"
      "    * /old/ -> redirect 301 http://new.example.com path /new "
      "(Mapping/default/old test.yaml:47)\n";
  EXPECT_EQ(format_routes(c.snap()),
            "Listener 8080 HTTP (Listener/default/http)\n"
            "  Host * (Host/default/any)\n" +
                routes + "  Host api.example.com (Host/default/api) insecure Redirect\n" + routes +
                "Listener 9000 TCP (Listener/default/raw)\n"
                "  (no HTTP routes)\n");
}

}  // namespace
}  // namespace proxenos::config
