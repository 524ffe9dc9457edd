// The shipped example must compile cleanly and route what its comments promise.

#include <gtest/gtest.h>

#include "config/compiler.h"
#include "config/file_source.h"

namespace proxenos::config {
namespace {

TEST(QuickstartTest, CompilesWithoutProblems) {
  LoadResult loaded = load_path(std::string(PROXENOS_SOURCE_DIR) + "/examples/quickstart");
  EXPECT_TRUE(loaded.diagnostics.empty());
  CompileResult result = compile(loaded.resources, CompileOptions{});
  for (const Diagnostic& d : result.diagnostics) ADD_FAILURE() << d.to_string();
  const Snapshot& s = *result.snapshot;
  ASSERT_EQ(s.listeners.size(), 1u);
  EXPECT_EQ(s.listeners[0].port, 8080);
  ASSERT_TRUE(s.listeners[0].routes);
  const auto& hosts = s.listeners[0].routes->hosts();
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0].insecure_action, router::InsecureAction::kRoute);
  ASSERT_EQ(hosts[0].routes.size(), 3u);
  ASSERT_EQ(s.clusters.size(), 1u);
  EXPECT_EQ(s.clusters[0].host, "127.0.0.1");
  EXPECT_EQ(s.clusters[0].port, 9001);
  std::string routes = format_routes(s);
  EXPECT_NE(routes.find("* /echo/ -> cluster_127_0_0_1_9001_default rewrite /"), std::string::npos)
      << routes;
  EXPECT_NE(routes.find("* /old/ -> redirect 302 http://localhost:8080 prefix /echo/"),
            std::string::npos)
      << routes;
}

}  // namespace
}  // namespace proxenos::config
