// Route matching cost against table size: the per-match time on a 10,000-route table should stay
// within ~10% of a 1-route table, for a hit on the last inserted route and for a miss.

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "router/route_table.h"

namespace {

using proxenos::router::PathMatchKind;
using proxenos::router::RequestView;
using proxenos::router::Route;
using proxenos::router::RouteTable;
using proxenos::router::RouteTarget;
using proxenos::router::VirtualHostSpec;

std::string service_prefix(int i) {
  return "/api/service-" + std::to_string(i) + "/";
}

std::shared_ptr<Route> make_route(PathMatchKind kind, std::string value) {
  auto route = std::make_shared<Route>();
  route->path.kind = kind;
  route->path.value = std::move(value);
  if (kind == PathMatchKind::kRegex) route->path.regex = std::make_shared<RE2>(route->path.value);
  RouteTarget target;
  target.cluster_name = "cluster";
  route->targets.push_back(target);
  return route;
}

// `count` routes; the last one inserted is the prefix the hit benchmark requests. With `mixed`,
// a quarter of the others are exact paths and a quarter regexes.
std::shared_ptr<const RouteTable> make_table(int count, bool mixed) {
  VirtualHostSpec host;
  host.hostname = "example.com";
  for (int i = 0; i < count - 1; ++i) {
    PathMatchKind kind = PathMatchKind::kPrefix;
    std::string value = service_prefix(i);
    if (mixed && i % 4 == 2) {
      kind = PathMatchKind::kExact;
      value = "/exact/service-" + std::to_string(i);
    } else if (mixed && i % 4 == 3) {
      kind = PathMatchKind::kRegex;
      value = "/regex/service-" + std::to_string(i) + "/[0-9]+";
    }
    host.routes.push_back(make_route(kind, value));
  }
  host.routes.push_back(make_route(PathMatchKind::kPrefix, service_prefix(count * 10)));
  std::vector<VirtualHostSpec> hosts;
  hosts.push_back(std::move(host));
  return RouteTable::build(std::move(hosts));
}

void run(benchmark::State& state, bool hit, bool mixed) {
  int count = static_cast<int>(state.range(0));
  auto table = make_table(count, mixed);
  std::string path = hit ? service_prefix(count * 10) + "v1/items/42" : "/nothing/here/v1/items/42";
  proxenos::http::HeaderList headers = {
      {"Host", "example.com"},     {"User-Agent", "bench/1.0"}, {"Accept", "*/*"},
      {"Accept-Encoding", "gzip"}, {"X-Request-Id", "abc"},     {"Connection", "keep-alive"},
  };
  RequestView request;
  request.method = "GET";
  request.path = path;
  request.query = "page=2&sort=asc";
  request.authority = "example.com:8080";
  request.headers = &headers;
  uint32_t draw = 0;
  for (auto _ : state) {
    RouteTable::Match m = table->match(request, draw);
    benchmark::DoNotOptimize(m);
    if ((m.route != nullptr) != hit) state.SkipWithError("unexpected match result");
    draw = (draw + 37) % 100;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RouterHitLastPrefix(benchmark::State& state) {
  run(state, true, false);
}
void BM_RouterMiss(benchmark::State& state) {
  run(state, false, false);
}
void BM_RouterMixedHitLastPrefix(benchmark::State& state) {
  run(state, true, true);
}
void BM_RouterMixedMiss(benchmark::State& state) {
  run(state, false, true);
}

BENCHMARK(BM_RouterHitLastPrefix)->Arg(1)->Arg(10000)->Arg(100000);
BENCHMARK(BM_RouterMiss)->Arg(1)->Arg(10000);
BENCHMARK(BM_RouterMixedHitLastPrefix)->Arg(1)->Arg(10000);
BENCHMARK(BM_RouterMixedMiss)->Arg(1)->Arg(10000);

}  // namespace
