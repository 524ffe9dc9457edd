#include <gtest/gtest.h>

#include "config/compiler.h"
#include "k8s/ambassador_status.h"
#include "k8s/service_annotations.h"

namespace proxenos::k8s {
namespace {

config::Resource service(const std::string& ns, const std::string& annotation) {
  config::Resource s;
  s.api_version = "v1";
  s.kind = "Service";
  s.name = "svc";
  s.namespace_ = ns;
  s.annotations[std::string(kConfigAnnotation)] = annotation;
  return s;
}

TEST(ServiceAnnotations, FlatDocumentsTakeTheServiceNamespace) {
  config::LoadResult out;
  annotation_resources(service("team", R"(---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
name: flat
prefix: /flat/
service: flat-svc
ambassador_id: [other]
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: full}
spec: {prefix: /full/, service: full-svc}
)"),
                       out);
  ASSERT_TRUE(out.diagnostics.empty()) << out.diagnostics[0].to_string();
  ASSERT_EQ(out.resources.size(), 2u);
  EXPECT_EQ(out.resources[0].name, "flat");
  EXPECT_EQ(out.resources[0].namespace_, "team");
  EXPECT_EQ(out.resources[0].spec["prefix"].Scalar(), "/flat/");
  EXPECT_EQ(out.resources[0].ambassador_id, std::vector<std::string>{"other"});
  EXPECT_EQ(out.resources[1].name, "full");
  EXPECT_EQ(out.resources[1].namespace_, "team");
}

TEST(ServiceAnnotations, BrokenYamlIsReportedAtTheService) {
  config::LoadResult out;
  annotation_resources(service("default", "kind: Mapping\nname: [oops\n"), out);
  EXPECT_TRUE(out.resources.empty());
  ASSERT_EQ(out.diagnostics.size(), 1u);
  EXPECT_NE(out.diagnostics[0].to_string().find("Service default/svc annotation"),
            std::string::npos);
}

TEST(ServiceAnnotations, NoAnnotationNoResources) {
  config::LoadResult out;
  config::Resource s = service("default", "");
  s.annotations.clear();
  annotation_resources(s, out);
  EXPECT_TRUE(out.resources.empty());
  EXPECT_TRUE(out.diagnostics.empty());
}

config::Resource mapping(const std::string& name, const std::string& service_name) {
  config::Resource r;
  r.api_version = "getambassador.io/v3alpha1";
  r.kind = "Mapping";
  r.name = name;
  r.spec = YAML::Load("{prefix: /" + name + "/, service: " + service_name + "}");
  r.object = r.spec;
  r.origin.object = "default/" + name;
  return r;
}

TEST(AmbassadorStatus, RunningOrInactiveWithTheCompilersReason) {
  std::vector<config::Resource> resources = {mapping("good", "svc"),
                                             mapping("bad", "svc:notaport")};
  config::Resource from_file = mapping("file", "svc");
  from_file.origin.file = "routes.yaml";
  resources.push_back(from_file);
  std::vector<StatusTarget> targets = status_targets(resources, true);
  ASSERT_EQ(targets.size(), 2u);  // the file's Mapping has no object to write to
  config::CompileResult compiled = config::compile(resources, {});
  std::vector<StatusUpdate> st = ambassador_statuses(targets, compiled.diagnostics);
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].status, (nlohmann::json{{"state", "Running"}}));
  EXPECT_EQ(st[0].kind.resource, "mappings");
  EXPECT_EQ(st[1].status["state"], "Inactive");
  EXPECT_NE(st[1].status["reason"].get<std::string>().find("spec.service"), std::string::npos);
}

TEST(AmbassadorStatus, MappingsOnlyWhenEnabled) {
  std::vector<config::Resource> resources = {mapping("m", "svc")};
  EXPECT_TRUE(status_targets(resources, false).empty());
}

TEST(KubernetesResolvers, ServiceNamesQualifiedAndEndpointClusters) {
  std::vector<config::Resource> resources = {
      mapping("plain", "web"), mapping("dotted", "web.other"), mapping("ep", "web:8080")};
  resources[0].namespace_ = "team";
  resources[2].spec["resolver"] = "kubernetes-endpoint";
  resources[2].namespace_ = "shop";
  config::CompileOptions options;
  options.kubernetes = true;
  options.gateway_namespace = "ambassador";
  config::CompileResult r = config::compile(resources, options);
  ASSERT_FALSE(config::has_errors(r.diagnostics));
  std::map<std::string, const upstream::ClusterSpec*> by_host;
  for (const auto& c : r.snapshot->clusters) by_host[c.host] = &c;
  EXPECT_TRUE(by_host.count("web.team"));
  EXPECT_TRUE(by_host.count("web.other"));
  ASSERT_TRUE(by_host.count("web"));
  EXPECT_EQ(by_host["web"]->endpoint_service, "web");
  EXPECT_EQ(by_host["web"]->endpoint_namespace, "shop");
  EXPECT_EQ(by_host["web"]->port, 8080);

  // Outside Kubernetes nothing is qualified; an unknown resolver drops the Mapping.
  resources[1].spec["resolver"] = "consul-dc1";
  r = config::compile(resources, {});
  ASSERT_TRUE(config::has_errors(r.diagnostics));
  bool plain = false;
  for (const auto& c : r.snapshot->clusters) plain |= c.host == "web" && c.endpoint_service.empty();
  EXPECT_TRUE(plain);
  EXPECT_EQ(r.snapshot->clusters.size(), 2u);
}

}  // namespace
}  // namespace proxenos::k8s
