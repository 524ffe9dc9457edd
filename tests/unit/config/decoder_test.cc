// One test per kind of decoder error: each asserts the field path, the line and the message.

#include <gtest/gtest.h>

#include "test_util.h"

namespace proxenos::config {
namespace {

using testing::compile_text;
using testing::Compiled;
using testing::diags_for;
using testing::errors;

// A Mapping whose spec starts on line 5 (prefix) with `extra` lines from line 7 on.
std::string mapping(const std::string& extra, const std::string& prefix = "/m/",
                    const std::string& service = "svc") {
  return "apiVersion: getambassador.io/v3alpha1\n"
         "kind: Mapping\n"
         "metadata: {name: m}\n"
         "spec:\n"
         "  prefix: " +
         prefix +
         "\n"
         "  service: " +
         service + "\n" + extra;
}

// True when the Mapping made it into some route.
bool mapping_routed(const Compiled& c) {
  for (const ListenerSnapshot& l : c.snap().listeners) {
    if (!l.routes) continue;
    for (const auto& h : l.routes->hosts()) {
      for (const auto& r : h.routes) {
        if (r->source.starts_with("Mapping/default/m ")) return true;
      }
    }
  }
  return false;
}

TEST(DecoderTest, WrongTypeInteger) {
  Compiled c = compile_text(mapping("  timeout_ms: abc\n  hostname: \"*\"\n"));
  EXPECT_EQ(diags_for(c, "spec.timeout_ms"),
            std::vector<std::string>{"test.yaml:7: error: Mapping/default/m: spec.timeout_ms: "
                                     "must be an integer, not a string"});
  EXPECT_FALSE(mapping_routed(c));
}

TEST(DecoderTest, QuotedNumberIsAString) {
  Compiled c = compile_text(mapping("  connect_timeout_ms: \"3000\"\n"));
  EXPECT_EQ(diags_for(c, "spec.connect_timeout_ms"),
            std::vector<std::string>{"test.yaml:7: error: Mapping/default/m: "
                                     "spec.connect_timeout_ms: must be an integer, not a string"});
}

TEST(DecoderTest, WrongTypeString) {
  Compiled c = compile_text(mapping("", "[1]"));
  EXPECT_EQ(
      diags_for(c, "spec.prefix"),
      std::vector<std::string>{
          "test.yaml:5: error: Mapping/default/m: spec.prefix: must be a string, not a list"});
}

TEST(DecoderTest, WrongTypeBoolean) {
  Compiled c = compile_text(mapping("  prefix_regex: \"yes\"\n"));
  EXPECT_EQ(diags_for(c, "spec.prefix_regex"),
            std::vector<std::string>{"test.yaml:7: error: Mapping/default/m: spec.prefix_regex: "
                                     "must be true or false, not a string"});
}

TEST(DecoderTest, MissingRequiredFields) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: m}\nspec:\n"
      "  host_redirect: true\n  hostname: \"*\"\n");
  EXPECT_EQ(
      diags_for(c, "spec.prefix"),
      std::vector<std::string>{"test.yaml:5: error: Mapping/default/m: spec.prefix: is required"});
  // service is the redirect target, so host_redirect needs it too.
  EXPECT_EQ(
      diags_for(c, "spec.service"),
      std::vector<std::string>{"test.yaml:5: error: Mapping/default/m: spec.service: is required"});
  EXPECT_FALSE(mapping_routed(c));
}

TEST(DecoderTest, MissingSpec) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\n"
      "metadata: {name: m}\n");
  EXPECT_EQ(diags_for(c, "spec"),
            std::vector<std::string>{"test.yaml:1: error: Mapping/default/m: spec: is required"});
}

TEST(DecoderTest, WeightOutOfRange) {
  Compiled c = compile_text(mapping("  weight: 150\n"));
  EXPECT_EQ(diags_for(c, "spec.weight"),
            std::vector<std::string>{"test.yaml:7: error: Mapping/default/m: spec.weight: must be "
                                     "between 0 and 100 (got 150)"});
}

TEST(DecoderTest, RedirectResponseCode) {
  Compiled c = compile_text(mapping("  host_redirect: true\n  redirect_response_code: 305\n"));
  EXPECT_EQ(diags_for(c, "spec.redirect_response_code"),
            std::vector<std::string>{"test.yaml:8: error: Mapping/default/m: "
                                     "spec.redirect_response_code: must be one of 301, 302, 303, "
                                     "307, 308 (got 305)"});
}

TEST(DecoderTest, InvalidRegex) {
  Compiled c = compile_text(mapping("  prefix_regex: true\n", "\"/x/(\""));
  std::vector<std::string> d = diags_for(c, "spec.prefix");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(
      d[0].starts_with("test.yaml:5: error: Mapping/default/m: spec.prefix: invalid regex "
                       "\"/x/(\": missing )"))
      << d[0];
}

TEST(DecoderTest, RegexTooComplexForDefaultLimit) {
  Compiled c = compile_text(mapping("  regex_headers:\n    x-id: \"[a-z]{300}\"\n"));
  std::vector<std::string> d = diags_for(c, "spec.regex_headers.x-id");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(
      d[0].starts_with("test.yaml:8: error: Mapping/default/m: spec.regex_headers.x-id: "
                       "regex too complex: \"[a-z]{300}\" has program size "))
      << d[0];
  EXPECT_NE(d[0].find("above regex_max_size 200"), std::string::npos);
}

TEST(DecoderTest, RegexLimitComesFromTheModule) {
  std::string module =
      "apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {name: ambassador}\n"
      "spec: {config: {regex_max_size: 2000}}\n---\n";
  Compiled c = compile_text(module + mapping("  regex_headers:\n    x-id: \"[a-z]{300}\"\n"));
  EXPECT_TRUE(errors(c).empty()) << testing::dump(c.result.diagnostics);
}

TEST(DecoderTest, UnknownHeaderSubstitution) {
  Compiled c =
      compile_text(mapping("  add_request_headers:\n    x-a: \"%NOT_A_VAR%\"\n"
                           "    x-b: {value: \"%PROTOCOL%\", append: false}\n"));
  EXPECT_EQ(diags_for(c, "spec.add_request_headers.x-a"),
            std::vector<std::string>{"test.yaml:8: error: Mapping/default/m: "
                                     "spec.add_request_headers.x-a: unknown substitution "
                                     "%NOT_A_VAR%"});
  EXPECT_TRUE(diags_for(c, "spec.add_request_headers.x-b").empty());
}

TEST(DecoderTest, EnvoyOverrideAndOutlierDetectionAreRejected) {
  Compiled c = compile_text(mapping("  envoy_override: {foo: 1}\n  outlier_detection: x\n"));
  EXPECT_EQ(diags_for(c, "spec.envoy_override"),
            std::vector<std::string>{"test.yaml:7: error: Mapping/default/m: spec.envoy_override: "
                                     "is not supported by Proxenos (Envoy-specific)"});
  EXPECT_EQ(diags_for(c, "spec.outlier_detection"),
            std::vector<std::string>{"test.yaml:8: error: Mapping/default/m: "
                                     "spec.outlier_detection: is not supported by Proxenos"});
}

TEST(DecoderTest, LuaScriptsAreRejected) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {name: ambassador}\n"
      "spec:\n  config:\n    server_name: x\n    lua_scripts: \"print(1)\"\n");
  EXPECT_EQ(diags_for(c, "spec.config.lua_scripts"),
            std::vector<std::string>{"test.yaml:7: error: Module/default/ambassador: "
                                     "spec.config.lua_scripts: is not supported by Proxenos "
                                     "(Envoy-specific)"});
  // The Module is dropped: its settings do not apply.
  EXPECT_EQ(c.snap().module.server_name, "envoy");
}

TEST(DecoderTest, UnknownFieldIsAWarningOnly) {
  Compiled c =
      compile_text(std::string(testing::kBase) + mapping("  hostname: \"*\"\n  prefixx: /typo/\n"));
  std::vector<std::string> d = diags_for(c, "spec.prefixx");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(d[0].ends_with(": warning: Mapping/default/m: spec.prefixx: unknown field; ignored"))
      << d[0];
  EXPECT_TRUE(errors(c).empty());
  EXPECT_TRUE(mapping_routed(c));
}

TEST(DecoderTest, DirectResponseCodeIsOnlyForGeneratedMappings) {
  // The Gateway API translation's field: a user's Mapping cannot answer locally with it.
  Compiled c = compile_text(std::string(testing::kBase) +
                            mapping("  hostname: \"*\"\n  direct_response_code: 500\n"));
  std::vector<std::string> d = diags_for(c, "spec.direct_response_code");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(d[0].ends_with("spec.direct_response_code: unknown field; ignored")) << d[0];
  ASSERT_TRUE(mapping_routed(c));
  for (const ListenerSnapshot& l : c.snap().listeners) {
    if (!l.routes) continue;
    for (const auto& h : l.routes->hosts()) {
      for (const auto& r : h.routes) EXPECT_EQ(r->targets.front().direct_status, 0);
    }
  }
}

TEST(DecoderTest, ServiceAddress) {
  Compiled c = compile_text(mapping("", "/m/", "svc:99999"));
  EXPECT_EQ(diags_for(c, "spec.service"),
            std::vector<std::string>{"test.yaml:6: error: Mapping/default/m: spec.service: "
                                     "\"svc:99999\" port \"99999\" is not between 1 and 65535"});
  c = compile_text(mapping("", "/m/", "ftp://svc"));
  EXPECT_EQ(diags_for(c, "spec.service").size(), 1u);
  c = compile_text(mapping("", "/m/", "svc/path"));
  EXPECT_EQ(diags_for(c, "spec.service").size(), 1u);
}

TEST(DecoderTest, HostExactMatchWithStar) {
  Compiled c = compile_text(mapping("  host: \"*.example.com\"\n"));
  EXPECT_EQ(diags_for(c, "spec.host"),
            std::vector<std::string>{"test.yaml:7: error: Mapping/default/m: spec.host: exact "
                                     "match \"*.example.com\" contains *, which cannot match "
                                     "anything (use hostname for globs)"});
}

TEST(DecoderTest, UnsupportedApiVersion) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v1\nkind: Mapping\nmetadata: {name: m}\n"
      "spec: {prefix: /, service: s}\n");
  EXPECT_EQ(diags_for(c, "apiVersion"),
            std::vector<std::string>{"test.yaml:1: error: Mapping/default/m: apiVersion: "
                                     "\"getambassador.io/v1\" is not supported (use "
                                     "getambassador.io/v3alpha1)"});
}

TEST(DecoderTest, ListenerPortRange) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: l}\nspec:\n"
      "  port: 70000\n  protocol: HTTP\n  securityModel: XFP\n"
      "  hostBinding: {namespace: {from: ALL}}\n");
  EXPECT_EQ(diags_for(c, "spec.port"),
            std::vector<std::string>{"test.yaml:5: error: Listener/default/l: spec.port: must be "
                                     "between 1 and 65535 (got 70000)"});
  // An invalid Listener is still a Listener resource: no defaults are opened in its place.
  EXPECT_TRUE(c.snap().listeners.empty());
}

TEST(DecoderTest, ListenerEnums) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: l}\nspec:\n"
      "  port: 8080\n  protocol: HTTP2\n  securityModel: xfp\n"
      "  hostBinding: {namespace: {from: SELECTOR}}\n");
  EXPECT_EQ(diags_for(c, "spec.protocol"),
            std::vector<std::string>{"test.yaml:6: error: Listener/default/l: spec.protocol: must "
                                     "be one of HTTP, HTTPS, HTTPPROXY, HTTPSPROXY, TCP, TLS, UDP "
                                     "(got \"HTTP2\")"});
  EXPECT_EQ(diags_for(c, "spec.securityModel"),
            std::vector<std::string>{"test.yaml:7: error: Listener/default/l: spec.securityModel: "
                                     "must be one of XFP, SECURE, INSECURE (got \"xfp\")"});
  EXPECT_EQ(diags_for(c, "spec.hostBinding.namespace.from"),
            std::vector<std::string>{"test.yaml:8: error: Listener/default/l: "
                                     "spec.hostBinding.namespace.from: SELECTOR is not supported "
                                     "(use SELF, ALL, or hostBinding.selector)"});
}

TEST(DecoderTest, ListenerNeedsProtocolAndSecurityModel) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: l}\nspec:\n"
      "  port: 8080\n  hostBinding: {namespace: {from: ALL}}\n");
  EXPECT_EQ(diags_for(c, "spec.protocol"),
            std::vector<std::string>{"test.yaml:5: error: Listener/default/l: spec.protocol: is "
                                     "required (or spec.protocolStack)"});
  EXPECT_EQ(diags_for(c, "spec.securityModel"),
            std::vector<std::string>{
                "test.yaml:5: error: Listener/default/l: spec.securityModel: is required"});
}

TEST(DecoderTest, InsecureActionIsCaseSensitive) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: h}\nspec:\n"
      "  hostname: a.example.com\n  requestPolicy:\n    insecure:\n      action: redirect\n");
  EXPECT_EQ(diags_for(c, "spec.requestPolicy.insecure.action"),
            std::vector<std::string>{"test.yaml:8: error: Host/default/h: "
                                     "spec.requestPolicy.insecure.action: must be one of Redirect, "
                                     "Reject, Route (got \"redirect\")"});
}

TEST(DecoderTest, ModuleEnum) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {name: ambassador}\n"
      "spec:\n  config:\n    headers_with_underscores_action: DROP\n");
  EXPECT_EQ(diags_for(c, "spec.config.headers_with_underscores_action"),
            std::vector<std::string>{"test.yaml:6: error: Module/default/ambassador: "
                                     "spec.config.headers_with_underscores_action: must be one of "
                                     "ALLOW, DROP_HEADER, REJECT_REQUEST (got \"DROP\")"});
}

TEST(DecoderTest, SelectorExpressions) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: h}\nspec:\n"
      "  mappingSelector:\n    matchExpressions:\n    - {key: tier, operator: In}\n"
      "    - {key: app, operator: Sometimes, values: [x]}\n");
  EXPECT_EQ(diags_for(c, "spec.mappingSelector.matchExpressions[0].values"),
            std::vector<std::string>{"test.yaml:7: error: Host/default/h: "
                                     "spec.mappingSelector.matchExpressions[0].values: must not be "
                                     "empty for operator In"});
  EXPECT_EQ(diags_for(c, "spec.mappingSelector.matchExpressions[1].operator"),
            std::vector<std::string>{"test.yaml:8: error: Host/default/h: "
                                     "spec.mappingSelector.matchExpressions[1].operator: must be "
                                     "one of In, NotIn, Exists, DoesNotExist (got \"Sometimes\")"});
}

TEST(DecoderTest, InvalidLoadBalancerDropsTheMapping) {
  Compiled c = compile_text(mapping("  load_balancer: {policy: ring_hash}\n"));
  EXPECT_EQ(diags_for(c, "spec.load_balancer"),
            std::vector<std::string>{"test.yaml:7: error: Mapping/default/m: spec.load_balancer: "
                                     "policy ring_hash needs exactly one of cookie, header, "
                                     "source_ip"});
}

TEST(DecoderTest, FieldsWithoutEffectYetWarn) {
  Compiled c = compile_text(mapping("  priority: high\n"));
  EXPECT_EQ(diags_for(c, "spec.priority"),
            std::vector<std::string>{"test.yaml:7: warning: Mapping/default/m: spec.priority: is "
                                     "accepted but has no effect in this release"});
  EXPECT_TRUE(errors(c).empty());
}

TEST(DecoderTest, BadResourceIsDroppedOthersApply) {
  Compiled c = compile_text(std::string(testing::kBase) + mapping("  timeout_ms: -1\n") +
                            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n"
                            "metadata: {name: good}\nspec: {prefix: /good/, service: g, "
                            "hostname: \"*\"}\n");
  EXPECT_EQ(errors(c).size(), 1u);
  EXPECT_EQ(testing::route_sources(testing::vhost(c.snap(), 8080, "*")),
            std::vector<std::string>{"Mapping/default/good"});
}

TEST(DecoderTest, OtherKindsAreNoted) {
  Compiled c = compile_text(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n---\n"
      "apiVersion: getambassador.io/v3alpha1\nkind: LogService\n"
      "metadata: {name: t}\n");
  EXPECT_TRUE(c.result.diagnostics.empty());
  EXPECT_NE(std::find(c.result.notes.begin(), c.result.notes.end(),
                      "ignoring ConfigMap/default/s: kind ConfigMap is not handled"),
            c.result.notes.end());
  EXPECT_NE(std::find(c.result.notes.begin(), c.result.notes.end(),
                      "ignoring LogService/default/t: kind LogService is not handled"),
            c.result.notes.end());
}

TEST(DecoderTest, HostTlsSecretIsResolved) {
  Compiled c = compile_text(
      "apiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: h}\nspec:\n"
      "  hostname: a.example.com\n  tlsSecret: {name: a-cert}\n");
  EXPECT_EQ(diags_for(c, "spec.tlsSecret"),
            std::vector<std::string>{"test.yaml:6: error: Host/default/h: spec.tlsSecret: Secret "
                                     "a-cert not found in namespace default"});
  // The Host cannot terminate TLS, so it is not served at all (as Emissary drops it).
  EXPECT_EQ(testing::vhost(c.snap(), 8080, "a.example.com"), nullptr);
}

TEST(DecoderTest, OnlyTwoPseudoHeadersCanBeMatched) {
  Compiled c = compile_text(mapping("  headers: {\":path\": /x}\n"));
  EXPECT_EQ(diags_for(c, "spec.headers.:path"),
            std::vector<std::string>{"test.yaml:7: error: Mapping/default/m: spec.headers.:path: "
                                     "only the pseudo-headers :authority and :method can be "
                                     "matched"});
}

}  // namespace
}  // namespace proxenos::config
