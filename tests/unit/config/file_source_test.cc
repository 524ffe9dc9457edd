#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/diagnostic.h"
#include "config/file_source.h"
#include "test_util.h"

namespace proxenos::config {
namespace {

using testing::load_text;

class TempDir {
 public:
  TempDir() {
    path_ =
        std::filesystem::temp_directory_path() /
        ("proxenos-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& rel, const std::string& text) {
    std::filesystem::path p = path_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(DiagnosticTest, FormatsWithOriginResourceAndField) {
  Diagnostic d;
  d.origin.file = "a.yaml";
  d.origin.line = 7;
  d.resource = "Mapping/default/foo";
  d.field = "spec.prefix";
  d.message = "is required";
  EXPECT_EQ(d.to_string(), "a.yaml:7: error: Mapping/default/foo: spec.prefix: is required");
  d.severity = Severity::kWarning;
  d.field.clear();
  EXPECT_EQ(d.to_string(), "a.yaml:7: warning: Mapping/default/foo: is required");
  Diagnostic k8s;
  k8s.origin.object = "ns/foo";
  k8s.origin.resource_version = "42";
  k8s.message = "x";
  EXPECT_EQ(k8s.to_string(), "k8s ns/foo@42: error: x");
  EXPECT_TRUE(has_errors({k8s}));
  EXPECT_FALSE(has_errors({d}));
}

TEST(FileSourceTest, MultiDocumentFileWithEmptyDocuments) {
  LoadResult r = load_text(R"(---
# only a comment
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: one
  namespace: team-a
  labels: {app: echo}
  annotations: {note: hi}
spec:
  prefix: /one/
  service: echo
  ambassador_id: [blue, green]
---
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: two}
spec:
  hostname: two.example.com
  ambassador_id: red
...
)");
  EXPECT_TRUE(r.diagnostics.empty()) << testing::dump(r.diagnostics);
  ASSERT_EQ(r.resources.size(), 2u);
  const Resource& one = r.resources[0];
  EXPECT_EQ(one.key(), "Mapping/team-a/one");
  EXPECT_EQ(one.api_version, "getambassador.io/v3alpha1");
  EXPECT_EQ(one.labels.at("app"), "echo");
  EXPECT_EQ(one.annotations.at("note"), "hi");
  EXPECT_EQ(one.ambassador_id, (std::vector<std::string>{"blue", "green"}));
  EXPECT_EQ(one.origin.file, "test.yaml");
  EXPECT_EQ(one.origin.line, 4);
  EXPECT_EQ(one.source_id, "file");
  EXPECT_EQ(one.spec["prefix"].as<std::string>(), "/one/");
  const Resource& two = r.resources[1];
  EXPECT_EQ(two.key(), "Host/default/two");
  EXPECT_EQ(two.ambassador_id, (std::vector<std::string>{"red"}));
  EXPECT_EQ(two.origin.line, 17);
}

TEST(FileSourceTest, MissingIdentityDropsTheDocumentWithItsLine) {
  LoadResult r = load_text(R"(apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  namespace: x
spec: {prefix: /, service: s}
---
kind: Mapping
metadata: {name: noversion}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: fine}
spec: {prefix: /, service: s}
---
- just
- a list
)");
  ASSERT_EQ(r.resources.size(), 1u);
  EXPECT_EQ(r.resources[0].name, "fine");
  ASSERT_EQ(r.diagnostics.size(), 3u);
  EXPECT_EQ(r.diagnostics[0].to_string(), "test.yaml:4: error: metadata.name: is required");
  EXPECT_EQ(r.diagnostics[1].to_string(),
            "test.yaml:7: error: Mapping/default/noversion: apiVersion: is required");
  EXPECT_EQ(r.diagnostics[2].to_string(),
            "test.yaml:15: error: a document must be a map (a Kubernetes object)");
}

TEST(FileSourceTest, KubectlListIsExpanded) {
  LoadResult r = load_text(R"(apiVersion: v1
kind: List
items:
- apiVersion: getambassador.io/v3alpha1
  kind: Mapping
  metadata: {name: a}
  spec: {prefix: /a/, service: a}
- apiVersion: getambassador.io/v3alpha1
  kind: Mapping
  metadata: {name: b}
  spec: {prefix: /b/, service: b}
)");
  EXPECT_TRUE(r.diagnostics.empty()) << testing::dump(r.diagnostics);
  ASSERT_EQ(r.resources.size(), 2u);
  EXPECT_EQ(r.resources[0].name, "a");
  EXPECT_EQ(r.resources[1].name, "b");
  EXPECT_EQ(r.resources[1].origin.line, 8);
}

TEST(FileSourceTest, BadAmbassadorIdIsAnError) {
  LoadResult r = load_text(R"(apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: a}
spec:
  prefix: /
  service: s
  ambassador_id: {x: 1}
)");
  EXPECT_TRUE(r.resources.empty());
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].to_string(),
            "test.yaml:7: error: Mapping/default/a: spec.ambassador_id: must be a string or a "
            "list of strings");
}

TEST(FileSourceTest, JsonParses) {
  LoadResult r = load_text(
      "{\n\t\"apiVersion\": \"getambassador.io/v3alpha1\",\n\t\"kind\": \"Mapping\",\n"
      "\t\"metadata\": {\"name\": \"j\"},\n\t\"spec\": {\"prefix\": \"/j/\", \"service\": "
      "\"s\", \"timeout_ms\": 10}\n}\n",
      "m.json");
  EXPECT_TRUE(r.diagnostics.empty()) << testing::dump(r.diagnostics);
  ASSERT_EQ(r.resources.size(), 1u);
  EXPECT_EQ(r.resources[0].key(), "Mapping/default/j");
}

TEST(FileSourceTest, FolderLoadsRecursivelyInOrderSkippingHiddenAndBadFiles) {
  TempDir dir;
  dir.write("b.yaml", R"(apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: b}
spec: {prefix: /b/, service: b}
)");
  dir.write("a/nested.yml", R"(apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: nested}
spec: {prefix: /n/, service: n}
)");
  dir.write("broken.yaml", "apiVersion: v1\nkind: Mapping\nspec: [unclosed\n");
  dir.write("c.json", R"({"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
  "metadata": {"name": "c"}, "spec": {}})");
  dir.write(".hidden.yaml", "apiVersion: x\nkind: Mapping\nmetadata: {name: hidden}\n");
  dir.write(".git/config.yaml", "apiVersion: x\nkind: Mapping\nmetadata: {name: git}\n");
  dir.write("README.md", "not: yaml: at: all: [");

  LoadResult r = load_path(dir.path());
  std::vector<std::string> names;
  for (const Resource& res : r.resources) names.push_back(res.name);
  EXPECT_EQ(names, (std::vector<std::string>{"nested", "b", "c"}));
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].origin.file, dir.path() + "/broken.yaml");
  EXPECT_EQ(r.diagnostics[0].origin.line, 4);
  EXPECT_NE(r.diagnostics[0].message.find("invalid YAML"), std::string::npos);
}

TEST(FileSourceTest, SingleFileAndMissingPath) {
  TempDir dir;
  std::string file = dir.write("one.txt", R"(apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: one}
spec: {prefix: /, service: s}
)");
  EXPECT_EQ(load_path(file).resources.size(), 1u);
  LoadResult missing = load_path(dir.path() + "/nope");
  EXPECT_TRUE(missing.resources.empty());
  ASSERT_EQ(missing.diagnostics.size(), 1u);
  EXPECT_EQ(missing.diagnostics[0].severity, Severity::kError);
}

}  // namespace
}  // namespace proxenos::config
