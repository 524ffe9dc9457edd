#include "admin/diag_page.h"

#include <gtest/gtest.h>

#include <string>

#include "app/diagnostics.h"
#include "config/compiler.h"
#include "config/file_source.h"

namespace proxenos::app {
namespace {

using nlohmann::json;

// Configuration text is user input: every piece of it must reach the page as text, never markup.
const char* kHostile = R"(apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http}
spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: any}
spec: {hostname: "*", requestPolicy: {insecure: {action: Route}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: "<script>alert(1)</script>"}
spec: {prefix: "/x/<script>alert(2)</script>", service: "127.0.0.1:9001", hostname: "*",
       headers: {x-a: "\"><img src=x onerror=alert(3)>"}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: stable}
spec: {prefix: /echo/, service: "127.0.0.1:9002", hostname: "*"}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: canary}
spec: {prefix: /echo/, service: "127.0.0.1:9003", hostname: "*", weight: 30}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: broken}
spec: {prefix: "/b/<b>(", prefix_regex: true, service: "127.0.0.1:9004", hostname: "*"}
)";

struct Rendered {
  json model;
  std::string html;
};

Rendered render(const std::string& yaml) {
  config::LoadResult loaded;
  config::parse_documents(yaml, "evil<file>.yaml", loaded);
  config::CompileOptions options;
  options.generation = 42;
  config::CompileResult compiled = config::compile(loaded.resources, options);
  config::Diagnostics diagnostics = loaded.diagnostics;
  diagnostics.insert(diagnostics.end(), compiled.diagnostics.begin(), compiled.diagnostics.end());
  proxy::EndpointMap endpoints;
  observe::MergedStats stats;
  StatsSampler sampler;
  DiagInputs in;
  in.snapshot = compiled.snapshot.get();
  in.diagnostics = &diagnostics;
  in.endpoints = &endpoints;
  in.stats = &stats;
  in.sampler = &sampler;
  in.generation = compiled.snapshot->generation;
  in.applied_unix_ms = 1'700'000'000'000;
  in.now_unix_ms = 1'700'000'065'000;
  Rendered r;
  r.model = build_diag_model(in);
  r.html = admin::render_diag_html(r.model);
  return r;
}

TEST(HtmlEscapeTest, EscapesMarkupAndQuotes) {
  EXPECT_EQ(admin::html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(admin::html_escape("plain /path"), "plain /path");
}

TEST(ResourceAnchorTest, OnlySafeCharactersAndDistinct) {
  std::string a = admin::resource_anchor("Mapping/ns/a b\"<x>");
  EXPECT_EQ(a, "res-Mapping.2fns.2fa.20b.22.3cx.3e");
  EXPECT_NE(admin::resource_anchor("Mapping/a.b"), admin::resource_anchor("Mapping/a/b"));
}

TEST(DiagPageTest, ConfigurationTextIsEscaped) {
  Rendered r = render(kHostile);
  // The model holds the raw text...
  ASSERT_NE(r.model.dump().find("/x/<script>alert(2)</script>"), std::string::npos);
  // ...the page only escaped forms of it.
  EXPECT_EQ(r.html.find("<script"), std::string::npos);
  EXPECT_EQ(r.html.find("<img"), std::string::npos);
  EXPECT_EQ(r.html.find("<file>"), std::string::npos);
  EXPECT_EQ(r.html.find("<b>"), std::string::npos);
  EXPECT_NE(r.html.find("/x/&lt;script&gt;alert(2)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(r.html.find("Mapping/default/&lt;script&gt;alert(1)&lt;/script&gt;"),
            std::string::npos);
  EXPECT_NE(r.html.find("&quot;&gt;&lt;img src=x onerror=alert(3)&gt;"), std::string::npos);
  EXPECT_NE(r.html.find("evil&lt;file&gt;.yaml"), std::string::npos);
}

TEST(DiagPageTest, SelfContained) {
  Rendered r = render(kHostile);
  EXPECT_EQ(r.html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(r.html.find("default-src 'none'"), std::string::npos);
  for (const char* external : {"<script", "<link", "src=\"http", "@import", "url("}) {
    EXPECT_EQ(r.html.find(external), std::string::npos) << external;
  }
}

TEST(DiagPageTest, ShowsSummaryRoutesWeightsErrorsAndClusters) {
  Rendered r = render(kHostile);
  const std::string& h = r.html;
  EXPECT_NE(h.find("<span class=\"value\" id=\"generation\">42</span>"), std::string::npos);
  EXPECT_NE(h.find("id=\"age\">1 min 5 s<"), std::string::npos);
  EXPECT_NE(h.find("<span class=\"value\" id=\"count-errors\">1</span>"), std::string::npos);
  EXPECT_NE(h.find("<code class=\"path\">/echo/</code>"), std::string::npos);
  EXPECT_NE(h.find(">70%<"), std::string::npos);
  EXPECT_NE(h.find(">30%<"), std::string::npos);
  // Routes link to their resource's entry, which exists.
  std::string anchor = admin::resource_anchor("Mapping/default/canary");
  EXPECT_NE(h.find("href=\"#" + anchor + "\""), std::string::npos);
  EXPECT_NE(h.find("id=\"" + anchor + "\""), std::string::npos);
  // The broken Mapping's row is flagged and carries its error.
  std::string broken = "id=\"" + admin::resource_anchor("Mapping/default/broken") + "\"";
  size_t at = h.find(broken);
  ASSERT_NE(at, std::string::npos);
  size_t row = h.rfind("<tr", at);
  EXPECT_EQ(h.compare(row, 16, "<tr class=\"error"), 0);
  size_t row_end = h.find("</tr>", at);
  EXPECT_NE(h.substr(at, row_end - at).find("spec.prefix"), std::string::npos);
  EXPECT_NE(h.find("127.0.0.1:9003"), std::string::npos);
  EXPECT_NE(h.find("unresolved"), std::string::npos);  // no endpoints were given
}

}  // namespace
}  // namespace proxenos::app
