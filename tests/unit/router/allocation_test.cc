// Matching must not allocate in the common case. Counts global operator new calls around match().

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "router/route_table.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// noinline: once inlined, GCC pairs the malloc/free inside with new/delete expressions and
// reports a mismatch.
__attribute__((noinline)) void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace proxenos::router {
namespace {

std::shared_ptr<Route> route(PathMatchKind kind, std::string value) {
  auto r = std::make_shared<Route>();
  r->path.kind = kind;
  r->path.value = std::move(value);
  if (kind == PathMatchKind::kRegex) r->path.regex = std::make_shared<RE2>(r->path.value);
  r->targets.emplace_back();
  return r;
}

TEST(Allocation, CommonMatchesDoNotAllocate) {
  VirtualHostSpec host;
  host.hostname = "example.com";
  for (int i = 0; i < 200; ++i) {
    host.routes.push_back(route(PathMatchKind::kPrefix, "/svc-" + std::to_string(i) + "/"));
    host.routes.push_back(route(PathMatchKind::kExact, "/exact-" + std::to_string(i)));
    host.routes.push_back(route(PathMatchKind::kRegex, "/re-" + std::to_string(i) + "/[0-9]+"));
  }
  auto guarded = route(PathMatchKind::kPrefix, "/guarded/");
  StringMatcher env;
  env.value = "prod";
  guarded->headers.push_back({"x-env", env});
  guarded->headers.push_back({":authority", host_glob_matcher("*.com")});
  StringMatcher id;
  id.kind = StringMatchKind::kRegex;
  id.regex = std::make_shared<RE2>("[0-9]+");
  guarded->query.push_back({"id", id});
  host.routes.push_back(guarded);
  std::vector<VirtualHostSpec> hosts;
  hosts.push_back(std::move(host));
  auto table = RouteTable::build(std::move(hosts));

  http::HeaderList headers = {{"Host", "example.com"}, {"X-Env", "prod"}, {"Accept", "*/*"}};
  RequestView request;
  request.method = "GET";
  request.authority = "Example.com:8080";
  request.headers = &headers;
  request.query = "a=b&id=42";

  const char* paths[] = {"/svc-199/x", "/exact-150", "/re-7/123", "/guarded/x", "/missing"};
  bool expect_hit[] = {true, true, true, true, false};
  for (int round = 0; round < 2; ++round) {  // the first round may warm per-thread state
    for (size_t i = 0; i < std::size(paths); ++i) {
      request.path = paths[i];
      long before = g_allocations.load();
      RouteTable::Match m = table->match(request, 50);
      long after = g_allocations.load();
      EXPECT_EQ(m.route != nullptr, expect_hit[i]) << paths[i];
      if (round == 1) {
        EXPECT_EQ(after - before, 0) << paths[i];
      }
    }
  }
}

}  // namespace
}  // namespace proxenos::router
