// Large multi-document files are parsed block by block on several threads. These tests check
// that the result is the one a single yaml-cpp pass gives: same documents in the same order,
// same nodes at the same lines and columns, same diagnostics, same error for invalid YAML.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config/decode.h"
#include "config/file_source.h"
#include "test_util.h"

namespace proxenos::config {
namespace {

// Well above the size from which parse_documents goes parallel.
constexpr int kDocs = 1500;

// A file of varied documents (comments, empty documents, CRLF lines, flow style, a List,
// anchors, block scalars, resources with envelope errors). Records, for each document that lacks
// a name, the 1-based line its metadata map starts on (where that error points).
std::string big_file(std::vector<int>* missing_name_lines) {
  std::string text;
  int line = 1;
  auto add = [&](const std::string& s) {
    text += s;
    for (char c : s) line += c == '\n' ? 1 : 0;
  };
  for (int i = 0; i < kDocs; ++i) {
    std::string name = "svc-" + std::to_string(i);
    if (i > 0) add(i % 29 == 0 ? "--- # next\n" : "---\n");
    if (i % 11 == 0) add("# an empty document\n---\n");
    if (i % 7 == 0) add("# comment\n\n");
    if (i % 13 == 0) {
      add("{apiVersion: getambassador.io/v3alpha1, kind: Mapping, metadata: {name: " + name +
          "}, spec: {prefix: /" + name + "/, service: 'echo:80'}}\n");
      continue;
    }
    if (i % 19 == 0) {
      add("apiVersion: v1\nkind: List\nitems:\n");
      for (int j = 0; j < 2; ++j) {
        add("- apiVersion: getambassador.io/v3alpha1\n  kind: Mapping\n  metadata:\n    name: " +
            name + "-" + std::to_string(j) + "\n  spec:\n    prefix: /" + name + "/" +
            std::to_string(j) + "/\n    service: echo\n");
      }
      continue;
    }
    std::string eol = i % 5 == 0 ? "\r\n" : "\n";
    add("apiVersion: getambassador.io/v3alpha1" + eol + "kind: Mapping" + eol);
    if (i % 17 == 0) {
      missing_name_lines->push_back(line + 1);
      add("metadata:" + eol + "  namespace: other" + eol);
    } else {
      add("metadata:" + eol + "  name: " + name + eol + "  labels: &l {app: \"" + name + "\"}" +
          eol);
    }
    add("spec:" + eol + "  hostname: \"*\"" + eol + "  prefix: /" + name + "/" + eol +
        "  service: 127.0.0.1:19001" + eol);
    if (i % 23 == 0) add("  docs: |" + eol + "    some text" + eol + "    ---" + eol);
  }
  return text;
}

// Deep comparison, marks included.
void expect_same_node(const YAML::Node& got, const YAML::Node& want, const std::string& where) {
  ASSERT_EQ(got.Type(), want.Type()) << where;
  EXPECT_EQ(got.Mark().line, want.Mark().line) << where;
  EXPECT_EQ(got.Mark().column, want.Mark().column) << where;
  EXPECT_EQ(got.Tag(), want.Tag()) << where;
  if (got.IsScalar()) {
    EXPECT_EQ(got.Scalar(), want.Scalar()) << where;
  }
  ASSERT_EQ(got.size(), want.size()) << where;
  if (got.IsSequence()) {
    for (size_t i = 0; i < got.size(); ++i) {
      expect_same_node(got[i], want[i], where + "[" + std::to_string(i) + "]");
    }
  } else if (got.IsMap()) {
    auto g = got.begin();
    auto w = want.begin();
    for (; g != got.end() && w != want.end(); ++g, ++w) {
      std::string key = w->first.IsScalar() ? w->first.Scalar() : "?";
      expect_same_node(g->first, w->first, where + "." + key + "(key)");
      expect_same_node(g->second, w->second, where + "." + key);
    }
  }
}

TEST(ParallelLoadTest, SameDocumentsNodesAndLinesAsOnePass) {
  std::vector<int> missing;
  const std::string text = big_file(&missing);
  ASSERT_GT(text.size(), 128u * 1024u);

  LoadResult r = testing::load_text(text, "big.yaml");

  // The objects yaml-cpp gives in one pass, Lists expanded as decode_document does.
  std::vector<YAML::Node> want;
  for (const YAML::Node& doc : YAML::LoadAll(text)) {
    if (!doc.IsMap()) continue;
    if (doc["kind"].as<std::string>() == "List") {
      for (const YAML::Node& item : doc["items"]) want.push_back(item);
    } else if (doc["metadata"]["name"].IsDefined()) {
      want.push_back(doc);
    }
  }
  ASSERT_EQ(r.resources.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const Resource& res = r.resources[i];
    EXPECT_EQ(res.name, want[i]["metadata"]["name"].as<std::string>());
    EXPECT_EQ(res.origin.line, want[i].Mark().line + 1) << res.name;
    expect_same_node(res.object, want[i], res.name);
    if (::testing::Test::HasFailure()) return;
  }

  ASSERT_EQ(r.diagnostics.size(), missing.size()) << testing::dump(r.diagnostics);
  for (size_t i = 0; i < missing.size(); ++i) {
    EXPECT_EQ(r.diagnostics[i].to_string(),
              "big.yaml:" + std::to_string(missing[i]) + ": error: metadata.name: is required");
  }
}

TEST(ParallelLoadTest, FieldDiagnosticsCarryFileLines) {
  std::vector<int> missing;
  std::string text = big_file(&missing);
  int line = 1;
  for (char c : text) line += c == '\n' ? 1 : 0;
  text +=
      "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: last}\n"
      "spec:\n  prefix: /last/\n  service: s\n  bogus: 1\n";
  testing::Compiled c;
  c.loaded = testing::load_text(text, "big.yaml");
  c.result = compile(c.loaded.resources, CompileOptions{});
  std::vector<std::string> bogus = testing::diags_for(c, "spec.bogus");
  ASSERT_EQ(bogus.size(), 1u);
  EXPECT_EQ(bogus[0], "big.yaml:" + std::to_string(line + 7) +
                          ": warning: Mapping/default/last: spec.bogus: unknown field; ignored");
}

// The error yaml-cpp reports for the whole text, as parse_documents words it.
std::string one_pass_error(const std::string& text) {
  try {
    YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return "big.yaml:" + std::to_string(e.mark.line + 1) + ": error: invalid YAML: " + e.msg;
  }
  return "no error";
}

TEST(ParallelLoadTest, InvalidYamlIsReportedAsInOnePass) {
  std::vector<int> missing;
  const std::string good = big_file(&missing);
  // A broken flow map late in the file; a quoted scalar that runs into the next `---` (an error
  // for the whole text, while each half alone parses up to its end).
  for (const std::string& bad :
       {std::string("---\nkind: Mapping\nspec: {prefix: /x/\n"),
        std::string("---\nkind: Mapping\nmetadata: {name: 'open\n---\n  quote'}\n")}) {
    const std::string text = good + bad + "---\nkind: Mapping\nmetadata: {name: after}\n";
    LoadResult r = testing::load_text(text, "big.yaml");
    EXPECT_TRUE(r.resources.empty());
    ASSERT_EQ(r.diagnostics.size(), 1u) << testing::dump(r.diagnostics);
    EXPECT_EQ(r.diagnostics[0].to_string(), one_pass_error(text));
  }
}

TEST(ParallelLoadTest, DirectivesCarryOverToLaterDocuments) {
  // %TAG applies to every later document without directives of its own (here: `!!` means
  // something else than by default, so a block read alone would silently differ).
  std::string text = "%TAG !! tag:example.com,2000:\n";
  for (int i = 0; i < kDocs; ++i) {
    text +=
        "--- !!thing\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: "
        "{name: m" +
        std::to_string(i) + "}\nspec: {prefix: /, service: s}\n";
  }
  LoadResult r = testing::load_text(text, "big.yaml");
  EXPECT_TRUE(r.diagnostics.empty()) << testing::dump(r.diagnostics);
  ASSERT_EQ(r.resources.size(), static_cast<size_t>(kDocs));
  EXPECT_EQ(r.resources.back().object.Tag(), "tag:example.com,2000:thing");
}

TEST(DecodeTest, AbsentNodesStayUndefinedAfterAWriteThroughACopy) {
  YAML::Node map = YAML::Load("a: 1");
  YAML::Node absent = child(map, "nope");
  ASSERT_FALSE(absent.IsDefined());
  // Forbidden (it writes through to every holder of the shared absent node), but must not make
  // later lookups find something.
  absent = YAML::Node("oops");
  EXPECT_FALSE(child(map, "other").IsDefined());
  EXPECT_FALSE(child(map, "nope").IsDefined());
  EXPECT_EQ(child(map, "a").Scalar(), "1");
}

}  // namespace
}  // namespace proxenos::config
