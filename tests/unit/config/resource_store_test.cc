#include "config/resource_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

#include "test_util.h"

namespace proxenos::config {
namespace {

using testing::kBase;

// What load_path gives for a folder holding these files.
LoadResult load_files(const std::map<std::string, std::string>& files) {
  LoadResult out;
  for (const auto& [name, text] : files) {
    parse_documents(text, name, out);
    out.file_texts.emplace(name, std::make_shared<const std::string>(text));
  }
  return out;
}

std::string mapping(const std::string& name, const std::string& prefix,
                    const std::string& extra = "", const std::string& service = "echo:9000") {
  return "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: " + name +
         "}\nspec:\n  hostname: \"*\"\n  prefix: " + prefix + "\n  service: " + service + "\n" +
         extra;
}

// Prefixes of the routes served on 8080 for any host.
std::vector<std::string> prefixes(const StoreResult& r) {
  std::vector<std::string> out;
  const auto* h = testing::vhost(*r.compiled.snapshot, 8080, "*");
  if (h == nullptr) return out;
  for (const auto& route : h->routes) out.push_back(route->path.value);
  std::sort(out.begin(), out.end());
  return out;
}

size_t count_errors(const Diagnostics& ds) {
  size_t n = 0;
  for (const Diagnostic& d : ds) n += d.severity == Severity::kError ? 1 : 0;
  return n;
}

TEST(ResourceStore, InvalidUpdateKeepsTheLastGoodVersionServing) {
  ResourceStore store;
  CompileOptions options;
  StoreResult r1 = store.compile(
      load_files(
          {{"base.yaml", kBase}, {"a.yaml", mapping("a", "/a/")}, {"b.yaml", mapping("b", "/b/")}}),
      options);
  EXPECT_EQ(count_errors(r1.diagnostics), 0u) << testing::dump(r1.diagnostics);
  EXPECT_EQ(prefixes(r1), (std::vector<std::string>{"/a/", "/b/"}));

  // `a` gets a field with a wrong type; `b` moves to a new prefix.
  StoreResult r2 =
      store.compile(load_files({{"base.yaml", kBase},
                                {"a.yaml", mapping("a", "/a2/", "  timeout_ms: soon\n")},
                                {"b.yaml", mapping("b", "/b2/")}}),
                    options);
  EXPECT_EQ(prefixes(r2), (std::vector<std::string>{"/a/", "/b2/"}));
  EXPECT_EQ(r2.kept, (std::vector<std::string>{"Mapping/default/a"}));
  std::string all = testing::dump(r2.diagnostics);
  EXPECT_NE(all.find("a.yaml:8: error: Mapping/default/a: spec.timeout_ms"), std::string::npos)
      << all;
  EXPECT_NE(all.find("serving its last good version"), std::string::npos) << all;
  EXPECT_EQ(r2.changes.changed, 1u);  // b; a still serves what it served

  // Still broken on the next reload: still reported, still the old version.
  StoreResult r3 =
      store.compile(load_files({{"base.yaml", kBase},
                                {"a.yaml", mapping("a", "/a2/", "  timeout_ms: soon\n")},
                                {"b.yaml", mapping("b", "/b2/")}}),
                    options);
  EXPECT_EQ(prefixes(r3), (std::vector<std::string>{"/a/", "/b2/"}));
  EXPECT_EQ(count_errors(r3.diagnostics), 1u);
  EXPECT_EQ(r3.changes.added + r3.changes.changed + r3.changes.removed, 0u);

  // Fixed: the new version serves and the report is gone.
  StoreResult r4 = store.compile(load_files({{"base.yaml", kBase},
                                             {"a.yaml", mapping("a", "/a2/")},
                                             {"b.yaml", mapping("b", "/b2/")}}),
                                 options);
  EXPECT_EQ(prefixes(r4), (std::vector<std::string>{"/a2/", "/b2/"}));
  EXPECT_TRUE(r4.kept.empty());
  EXPECT_EQ(count_errors(r4.diagnostics), 0u);
}

TEST(ResourceStore, NewInvalidResourceWithoutHistoryIsDropped) {
  ResourceStore store;
  StoreResult r = store.compile(
      load_files({{"base.yaml", kBase}, {"a.yaml", mapping("a", "/a/", "  weight: 300\n")}}),
      CompileOptions{});
  EXPECT_TRUE(prefixes(r).empty());
  EXPECT_TRUE(r.kept.empty());
  EXPECT_EQ(count_errors(r.diagnostics), 1u) << testing::dump(r.diagnostics);
}

TEST(ResourceStore, FileThatStopsParsingKeepsItsResources) {
  ResourceStore store;
  CompileOptions options;
  store.compile(load_files({{"base.yaml", kBase},
                            {"a.yaml", mapping("a", "/a/") + "---\n" + mapping("a2", "/a2/")},
                            {"b.yaml", mapping("b", "/b/")}}),
                options);
  StoreResult r = store.compile(load_files({{"base.yaml", kBase},
                                            {"a.yaml", "kind: Mapping\nspec: [unclosed\n"},
                                            {"b.yaml", mapping("b", "/b/")}}),
                                options);
  EXPECT_EQ(prefixes(r), (std::vector<std::string>{"/a/", "/a2/", "/b/"}));
  EXPECT_EQ(r.kept.size(), 2u);
  std::string all = testing::dump(r.diagnostics);
  EXPECT_NE(all.find("a.yaml:"), std::string::npos) << all;

  // Removing the file (rather than breaking it) removes its resources.
  StoreResult gone =
      store.compile(load_files({{"base.yaml", kBase}, {"b.yaml", mapping("b", "/b/")}}), options);
  EXPECT_EQ(prefixes(gone), (std::vector<std::string>{"/b/"}));
  EXPECT_EQ(gone.changes.removed, 2u);
}

TEST(ResourceStore, CanaryWeightOverflowRevertsTheChangedMember) {
  ResourceStore store;
  CompileOptions options;
  auto files = [](const std::string& canary_weight) {
    return load_files(
        {{"base.yaml", kBase},
         {"main.yaml", mapping("main", "/svc/", "  weight: 50\n")},
         {"canary.yaml",
          mapping("canary", "/svc/", "  weight: " + canary_weight + "\n", "canary:9000")}});
  };
  StoreResult r1 = store.compile(files("50"), options);
  ASSERT_EQ(count_errors(r1.diagnostics), 0u) << testing::dump(r1.diagnostics);
  StoreResult r2 = store.compile(files("80"), options);
  EXPECT_EQ(r2.kept, (std::vector<std::string>{"Mapping/default/canary"}));
  ASSERT_EQ(prefixes(r2), (std::vector<std::string>{"/svc/"}));
  const auto* h = testing::vhost(*r2.compiled.snapshot, 8080, "*");
  ASSERT_EQ(h->routes[0]->targets.size(), 2u);
  EXPECT_EQ(h->routes[0]->targets[0].cumulative_weight, 50u);
  EXPECT_EQ(h->routes[0]->targets[1].cumulative_weight, 100u);
}

TEST(ResourceStore, CountsAddedChangedRemoved) {
  ResourceStore store;
  CompileOptions options;
  StoreResult r1 = store.compile(
      load_files(
          {{"base.yaml", kBase}, {"a.yaml", mapping("a", "/a/")}, {"b.yaml", mapping("b", "/b/")}}),
      options);
  EXPECT_EQ(r1.changes.added, 4u);
  StoreResult r2 = store.compile(
      load_files({{"base.yaml", kBase},
                  {"a.yaml", mapping("a", "/a/")},
                  {"c.yaml", mapping("c", "/c/")},
                  {"b.yaml", "# reformatted\n" + mapping("b", "/b/", "  timeout_ms: 10\n")}}),
      options);
  EXPECT_EQ(r2.changes.added, 1u);
  EXPECT_EQ(r2.changes.changed, 1u);
  EXPECT_EQ(r2.changes.removed, 0u);
}

TEST(ResourceStore, FingerprintIgnoresLayoutNotContent) {
  EXPECT_EQ(fingerprint(YAML::Load("{a: 1, b: [x, y]}")),
            fingerprint(YAML::Load("a: 1\nb:\n  - x\n  - y\n")));
  EXPECT_NE(fingerprint(YAML::Load("{a: 1, b: [x, y]}")),
            fingerprint(YAML::Load("{a: 1, b: [xy]}")));
  EXPECT_NE(fingerprint(YAML::Load("{a: 1}")), fingerprint(YAML::Load("{a: 2}")));
}

}  // namespace
}  // namespace proxenos::config
