#include "router/route_table.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <string>
#include <vector>

namespace proxenos::router {
namespace {

std::shared_ptr<Route> make_route(PathMatchKind kind, std::string value, std::string name,
                                  bool case_sensitive = true) {
  auto route = std::make_shared<Route>();
  route->path.kind = kind;
  route->path.value = std::move(value);
  route->path.case_sensitive = case_sensitive;
  if (kind == PathMatchKind::kRegex) {
    RE2::Options options;
    options.set_case_sensitive(case_sensitive);
    route->path.regex = std::make_shared<RE2>(route->path.value, options);
  }
  RouteTarget target;
  target.cluster_name = name;
  route->targets.push_back(target);
  route->source = std::move(name);
  return route;
}

std::shared_ptr<Route> prefix(std::string value, std::string name) {
  return make_route(PathMatchKind::kPrefix, std::move(value), std::move(name));
}

StringMatcher exact(std::string value, bool ignore_case = false) {
  StringMatcher m;
  m.kind = StringMatchKind::kExact;
  m.value = std::move(value);
  m.ignore_case = ignore_case;
  return m;
}

StringMatcher present() {
  StringMatcher m;
  m.kind = StringMatchKind::kPresent;
  return m;
}

StringMatcher regex(std::string pattern) {
  StringMatcher m;
  m.kind = StringMatchKind::kRegex;
  m.value = pattern;
  m.regex = std::make_shared<RE2>(pattern);
  return m;
}

StringMatcher any() {
  StringMatcher m;
  m.kind = StringMatchKind::kAny;
  return m;
}

VirtualHostSpec vhost(std::string hostname, std::vector<std::shared_ptr<Route>> routes) {
  VirtualHostSpec spec;
  spec.hostname = hostname;
  spec.source = "Host/default/" + hostname;
  for (auto& r : routes) spec.routes.push_back(r);
  return spec;
}

struct Req {
  std::string method = "GET";
  std::string path = "/";
  std::string query;
  std::string authority = "example.com";
  http::HeaderList headers;

  RequestView view() const {
    RequestView v;
    v.method = method;
    v.path = path;
    v.query = query;
    v.authority = authority;
    v.headers = &headers;
    return v;
  }
};

// Name of the matched route ("" when none).
std::string matched(const RouteTable& table, const Req& req, uint32_t draw = 0) {
  RouteTable::Match m = table.match(req.view(), draw);
  if (m.route == nullptr) return "";
  return m.route->source;
}

Req at(std::string path, std::string authority = "example.com") {
  Req r;
  r.path = std::move(path);
  r.authority = std::move(authority);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Virtual host selection.

std::shared_ptr<const RouteTable> host_table() {
  std::vector<VirtualHostSpec> hosts;
  hosts.push_back(vhost("*", {prefix("/", "star")}));
  hosts.push_back(vhost("foo.*", {prefix("/", "foo-prefix")}));
  hosts.push_back(vhost("foo.example.*", {prefix("/", "foo-example-prefix")}));
  hosts.push_back(vhost("*.example.com", {prefix("/", "dot-example-suffix")}));
  hosts.push_back(vhost("*.api.example.com", {prefix("/", "api-suffix")}));
  hosts.push_back(vhost("*xample.org", {prefix("/", "xample-suffix")}));
  hosts.push_back(vhost("exact.example.com", {prefix("/", "exact")}));
  hosts.push_back(vhost("exact.example.com:8443", {prefix("/", "exact-8443")}));
  return RouteTable::build(std::move(hosts));
}

TEST(VirtualHosts, ExactBeatsWildcards) {
  auto t = host_table();
  EXPECT_EQ(matched(*t, at("/", "exact.example.com")), "exact");
  EXPECT_EQ(matched(*t, at("/", "EXACT.Example.COM")), "exact");
}

TEST(VirtualHosts, PortIsStrippedUnlessTheHostNamesOne) {
  auto t = host_table();
  EXPECT_EQ(matched(*t, at("/", "exact.example.com:8080")), "exact");
  EXPECT_EQ(matched(*t, at("/", "exact.example.com:8443")), "exact-8443");
  EXPECT_EQ(matched(*t, at("/", "a.api.example.com:80")), "api-suffix");
}

TEST(VirtualHosts, LongestSuffixWins) {
  auto t = host_table();
  EXPECT_EQ(matched(*t, at("/", "x.api.example.com")), "api-suffix");
  EXPECT_EQ(matched(*t, at("/", "x.example.com")), "dot-example-suffix");
  EXPECT_EQ(matched(*t, at("/", "example.org")), "xample-suffix");
  // The wildcard must cover at least one character.
  EXPECT_EQ(matched(*t, at("/", "xample.org")), "star");
}

TEST(VirtualHosts, SuffixBeatsPrefixAndLongestPrefixWins) {
  auto t = host_table();
  // foo.example.com matches *.example.com (suffix) and foo.* (prefix): suffix first.
  EXPECT_EQ(matched(*t, at("/", "foo.example.com")), "dot-example-suffix");
  EXPECT_EQ(matched(*t, at("/", "foo.example.net")), "foo-example-prefix");
  EXPECT_EQ(matched(*t, at("/", "foo.bar")), "foo-prefix");
  EXPECT_EQ(matched(*t, at("/", "Foo.Bar:9000")), "foo-prefix");
}

TEST(VirtualHosts, StarIsTheLastResortAndMissingHostIs404) {
  auto t = host_table();
  EXPECT_EQ(matched(*t, at("/", "other.net")), "star");
  EXPECT_EQ(matched(*t, at("/", "")), "star");

  std::vector<VirtualHostSpec> hosts;
  hosts.push_back(vhost("a.example.com", {prefix("/", "a")}));
  auto only_a = RouteTable::build(std::move(hosts));
  RouteTable::Match m = only_a->match(at("/", "b.example.com").view(), 0);
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.target, nullptr);
  EXPECT_EQ(m.host, nullptr);
  m = only_a->match(at("/x", "a.example.com:81").view(), 0);
  ASSERT_NE(m.host, nullptr);
  EXPECT_EQ(m.host->hostname, "a.example.com");
  EXPECT_EQ(m.target, &m.route->targets[0]);
}

TEST(VirtualHosts, PortQualifiedWildcardBeatsPlainOne) {
  std::vector<VirtualHostSpec> hosts;
  hosts.push_back(vhost("*.example.com", {prefix("/", "plain")}));
  hosts.push_back(vhost("*.example.com:8443", {prefix("/", "ported")}));
  hosts.push_back(vhost("api.*", {prefix("/", "api-plain")}));
  auto t = RouteTable::build(std::move(hosts));
  EXPECT_EQ(matched(*t, at("/", "a.example.com:8443")), "ported");
  EXPECT_EQ(matched(*t, at("/", "a.example.com:80")), "plain");
  EXPECT_EQ(matched(*t, at("/", "a.example.com")), "plain");
  EXPECT_EQ(matched(*t, at("/", "api.example.org:8443")), "api-plain");
}

TEST(VirtualHosts, ManyHostsUseTheHashedIndexes) {
  std::vector<VirtualHostSpec> hosts;
  for (int i = 0; i < 30; ++i) {
    std::string n = std::to_string(100 + i);  // same length: one wildcard bucket
    hosts.push_back(vhost("host" + n + ".example.com", {prefix("/", "exact" + n)}));
    hosts.push_back(vhost("*.zone" + n + ".net", {prefix("/", "suffix" + n)}));
    hosts.push_back(vhost("api" + n + ".*", {prefix("/", "prefix" + n)}));
  }
  hosts.push_back(vhost("HOST105.example.com", {prefix("/", "duplicate")}));
  hosts.push_back(vhost("*", {prefix("/", "star")}));
  auto t = RouteTable::build(std::move(hosts));
  for (int i = 0; i < 30; ++i) {
    std::string n = std::to_string(100 + i);
    EXPECT_EQ(matched(*t, at("/", "Host" + n + ".Example.com:443")), "exact" + n);
    EXPECT_EQ(matched(*t, at("/", "a.b.ZONE" + n + ".net")), "suffix" + n);
    EXPECT_EQ(matched(*t, at("/", "api" + n + ".example.org")), "prefix" + n);
  }
  EXPECT_EQ(matched(*t, at("/", "host999.example.com")), "star");
  EXPECT_EQ(matched(*t, at("/", "zone105.net")), "star");
}

TEST(VirtualHosts, Ipv6AuthorityKeepsItsColons) {
  std::vector<VirtualHostSpec> hosts;
  hosts.push_back(vhost("[::1]", {prefix("/", "v6")}));
  hosts.push_back(vhost("*", {prefix("/", "star")}));
  auto t = RouteTable::build(std::move(hosts));
  EXPECT_EQ(matched(*t, at("/", "[::1]:8080")), "v6");
  EXPECT_EQ(matched(*t, at("/", "[::1]")), "v6");
  EXPECT_EQ(matched(*t, at("/", "[::2]:8080")), "star");
}

// ---------------------------------------------------------------------------------------------
// Path matching.

std::shared_ptr<const RouteTable> one_host(std::vector<std::shared_ptr<Route>> routes) {
  std::vector<VirtualHostSpec> hosts;
  hosts.push_back(vhost("*", std::move(routes)));
  return RouteTable::build(std::move(hosts));
}

TEST(Paths, PrefixIsAStringPrefixNotSegmentAware) {
  auto t = one_host({prefix("/foo", "foo")});
  EXPECT_EQ(matched(*t, at("/foo")), "foo");
  EXPECT_EQ(matched(*t, at("/foobar")), "foo");
  EXPECT_EQ(matched(*t, at("/foo/bar")), "foo");
  EXPECT_EQ(matched(*t, at("/fo")), "");
  EXPECT_EQ(matched(*t, at("/FOO")), "");
  EXPECT_EQ(matched(*t, at("/bar")), "");
}

TEST(Paths, ExactPrefixAndRegexInRouteOrder) {
  auto t = one_host({
      make_route(PathMatchKind::kExact, "/api/v1", "exact"),
      make_route(PathMatchKind::kRegex, "/api/v[0-9]+/.*", "regex"),
      prefix("/api/", "api-prefix"),
      prefix("/", "root"),
  });
  EXPECT_EQ(matched(*t, at("/api/v1")), "exact");
  EXPECT_EQ(matched(*t, at("/api/v1/")), "regex");
  EXPECT_EQ(matched(*t, at("/api/v12/users")), "regex");
  EXPECT_EQ(matched(*t, at("/api/vx/users")), "api-prefix");
  EXPECT_EQ(matched(*t, at("/api/v1x")), "api-prefix");
  EXPECT_EQ(matched(*t, at("/other")), "root");
}

TEST(Paths, ExactIsEquality) {
  auto t = one_host({make_route(PathMatchKind::kExact, "/only", "exact")});
  EXPECT_EQ(matched(*t, at("/only")), "exact");
  EXPECT_EQ(matched(*t, at("/only/")), "");
  EXPECT_EQ(matched(*t, at("/onl")), "");
}

TEST(Paths, RegexIsAFullMatch) {
  auto t = one_host({make_route(PathMatchKind::kRegex, "/[a-z]+", "regex")});
  EXPECT_EQ(matched(*t, at("/abc")), "regex");
  EXPECT_EQ(matched(*t, at("/abc/")), "");
  EXPECT_EQ(matched(*t, at("/x/abc")), "");
}

TEST(Paths, RegexWithoutCompiledPatternIsCompiledAtBuild) {
  auto route = make_route(PathMatchKind::kRegex, "/r/[0-9]+", "regex");
  route->path.regex.reset();
  auto t = one_host({route});
  EXPECT_EQ(matched(*t, at("/r/12")), "regex");
  EXPECT_EQ(matched(*t, at("/r/x")), "");
}

TEST(Paths, CaseInsensitivePrefixExactAndRegex) {
  auto t = one_host({
      make_route(PathMatchKind::kExact, "/Exact", "exact-ci", false),
      make_route(PathMatchKind::kPrefix, "/Pre/", "prefix-ci", false),
      make_route(PathMatchKind::kRegex, "/re/[a-z]+", "regex-ci", false),
      make_route(PathMatchKind::kPrefix, "/CS/", "prefix-cs"),
  });
  EXPECT_EQ(matched(*t, at("/exact")), "exact-ci");
  EXPECT_EQ(matched(*t, at("/EXACT")), "exact-ci");
  EXPECT_EQ(matched(*t, at("/pre/x")), "prefix-ci");
  EXPECT_EQ(matched(*t, at("/PRE/x")), "prefix-ci");
  EXPECT_EQ(matched(*t, at("/RE/ABC")), "regex-ci");
  EXPECT_EQ(matched(*t, at("/CS/x")), "prefix-cs");
  EXPECT_EQ(matched(*t, at("/cs/x")), "");
}

TEST(Paths, CaseSensitiveAndInsensitiveRegexSetsMergeInRouteOrder) {
  auto t = one_host({
      make_route(PathMatchKind::kRegex, "/x/[a-z]+/1", "cs-lower"),
      make_route(PathMatchKind::kRegex, "/x/[a-z]+/.*", "ci", false),
      make_route(PathMatchKind::kRegex, "/x/.*", "cs-any"),
  });
  EXPECT_EQ(matched(*t, at("/x/abc/1")), "cs-lower");
  EXPECT_EQ(matched(*t, at("/x/ABC/1")), "ci");
  EXPECT_EQ(matched(*t, at("/X/ABC/2")), "ci");
  EXPECT_EQ(matched(*t, at("/x/123")), "cs-any");
  EXPECT_EQ(matched(*t, at("/X/123")), "");
}

TEST(Paths, RegexesSharingALiteralGoThroughTheSetInOrder) {
  std::vector<std::shared_ptr<Route>> routes;
  for (int i = 0; i < 6; ++i) {
    std::string n = std::to_string(i);
    routes.push_back(make_route(PathMatchKind::kRegex, "/shared/[0-9]+/" + n + ".*", "s" + n));
  }
  routes.push_back(make_route(PathMatchKind::kRegex, "/shared/.*", "catch-all"));
  auto t = one_host(routes);
  EXPECT_EQ(matched(*t, at("/shared/12/0")), "s0");
  EXPECT_EQ(matched(*t, at("/shared/12/5x")), "s5");
  EXPECT_EQ(matched(*t, at("/shared/12/51")), "s5");
  EXPECT_EQ(matched(*t, at("/shared/12/9")), "catch-all");
  EXPECT_EQ(matched(*t, at("/shared")), "");
}

TEST(Paths, RegexLiteralFilterKeepsAlternationsAndInlineFlags) {
  auto t = one_host({
      make_route(PathMatchKind::kRegex, "/abc/.*|/abd/.*", "alternation"),
      make_route(PathMatchKind::kRegex, "(?i)/up/[a-z]+", "inline-icase"),
      make_route(PathMatchKind::kRegex, "(/opt)?/tail", "optional"),
      prefix("/ab", "prefix"),
  });
  EXPECT_EQ(matched(*t, at("/abc/x")), "alternation");
  EXPECT_EQ(matched(*t, at("/abd/x")), "alternation");
  EXPECT_EQ(matched(*t, at("/abe/x")), "prefix");
  EXPECT_EQ(matched(*t, at("/UP/ABC")), "inline-icase");
  EXPECT_EQ(matched(*t, at("/tail")), "optional");
  EXPECT_EQ(matched(*t, at("/opt/tail")), "optional");
}

TEST(Paths, SameKeyRoutesAreTriedInOrder) {
  auto first = make_route(PathMatchKind::kExact, "/same", "first");
  first->headers.push_back({"x-a", present()});
  auto t = one_host({first, make_route(PathMatchKind::kExact, "/same", "second")});
  Req r = at("/same");
  EXPECT_EQ(matched(*t, r), "second");
  r.headers.push_back({"X-A", "1"});
  EXPECT_EQ(matched(*t, r), "first");
}

TEST(Ordering, LongerPrefixPlacedFirstWins) {
  // The compiler puts the longer prefix first.
  auto t = one_host({prefix("/api/users/", "long"), prefix("/api/", "short")});
  EXPECT_EQ(matched(*t, at("/api/users/7")), "long");
  EXPECT_EQ(matched(*t, at("/api/other")), "short");
}

TEST(Ordering, PrecedenceOrderedShorterPrefixPlacedFirstWins) {
  auto high = prefix("/api/", "short-high-precedence");
  high->precedence = 10;
  auto t = one_host({high, prefix("/api/users/", "long")});
  EXPECT_EQ(matched(*t, at("/api/users/7")), "short-high-precedence");
}

TEST(Ordering, RegexPlacedBeforePrefixWinsAndViceVersa) {
  auto t1 =
      one_host({make_route(PathMatchKind::kRegex, "/a/.*", "regex"), prefix("/a/", "prefix")});
  EXPECT_EQ(matched(*t1, at("/a/b")), "regex");
  auto t2 =
      one_host({prefix("/a/", "prefix"), make_route(PathMatchKind::kRegex, "/a/.*", "regex")});
  EXPECT_EQ(matched(*t2, at("/a/b")), "prefix");
}

// ---------------------------------------------------------------------------------------------
// Header matchers.

TEST(Headers, ExactPresentRegexAndMissing) {
  auto exact_route = prefix("/", "exact");
  exact_route->headers.push_back({"x-env", exact("prod")});
  auto present_route = prefix("/", "present");
  present_route->headers.push_back({"x-debug", present()});
  auto regex_route = prefix("/", "regex");
  regex_route->headers.push_back({"x-version", regex("v[0-9]+")});
  auto any_route = prefix("/", "any");
  any_route->headers.push_back({"x-any", any()});
  auto t = one_host({exact_route, present_route, regex_route, any_route, prefix("/", "fallback")});

  Req r = at("/");
  EXPECT_EQ(matched(*t, r), "fallback");  // every matcher fails on a missing header

  r.headers = {{"X-Env", "prod"}};
  EXPECT_EQ(matched(*t, r), "exact");
  r.headers = {{"x-env", "Prod"}};
  EXPECT_EQ(matched(*t, r), "fallback");  // exact is case-sensitive unless ignore_case
  r.headers = {{"x-debug", ""}};
  EXPECT_EQ(matched(*t, r), "present");
  r.headers = {{"x-version", "v12"}};
  EXPECT_EQ(matched(*t, r), "regex");
  r.headers = {{"x-version", "v12b"}};
  EXPECT_EQ(matched(*t, r), "fallback");  // full match, not partial
  r.headers = {{"x-any", "whatever"}};
  EXPECT_EQ(matched(*t, r), "any");
}

TEST(Headers, IgnoreCaseIsHonoured) {
  auto route = prefix("/", "icase");
  route->headers.push_back({"x-env", exact("prod", true)});
  auto t = one_host({route});
  Req r = at("/");
  r.headers = {{"x-env", "PROD"}};
  EXPECT_EQ(matched(*t, r), "icase");
}

TEST(Headers, AllMatchersMustMatch) {
  auto route = prefix("/", "both");
  route->headers.push_back({"x-a", exact("1")});
  route->headers.push_back({"x-b", exact("2")});
  auto t = one_host({route});
  Req r = at("/");
  r.headers = {{"x-a", "1"}};
  EXPECT_EQ(matched(*t, r), "");
  r.headers = {{"x-a", "1"}, {"x-b", "2"}};
  EXPECT_EQ(matched(*t, r), "both");
}

TEST(Headers, DuplicatesAreJoinedWithComma) {
  auto route = prefix("/", "joined");
  route->headers.push_back({"x-tag", exact("a,b")});
  auto t = one_host({route});
  Req r = at("/");
  r.headers = {{"x-tag", "a"}, {"x-other", "z"}, {"X-Tag", "b"}};
  EXPECT_EQ(matched(*t, r), "joined");
  r.headers = {{"x-tag", "a"}};
  EXPECT_EQ(matched(*t, r), "");
}

TEST(Headers, MethodPseudoHeader) {
  auto post = prefix("/", "post");
  post->headers.push_back({":method", exact("POST")});
  auto t = one_host({post, prefix("/", "other")});
  Req r = at("/");
  r.method = "POST";
  EXPECT_EQ(matched(*t, r), "post");
  r.method = "GET";
  EXPECT_EQ(matched(*t, r), "other");
}

TEST(Headers, AuthorityGlobMatchersIgnorePortAndCase) {
  auto suffix = prefix("/", "suffix");
  suffix->headers.push_back({":authority", host_glob_matcher("*.example.com")});
  auto pfx = prefix("/", "prefix");
  pfx->headers.push_back({":authority", host_glob_matcher("api.*")});
  auto ex = prefix("/", "exact");
  ex->headers.push_back({":authority", host_glob_matcher("exact.org")});
  auto ported = prefix("/", "ported");
  ported->headers.push_back({":authority", host_glob_matcher("ported.org:8080")});
  auto star = prefix("/", "star");
  star->headers.push_back({":authority", host_glob_matcher("*")});
  auto t = one_host({suffix, pfx, ex, ported, star});

  EXPECT_EQ(matched(*t, at("/", "A.Example.COM:8443")), "suffix");
  EXPECT_EQ(matched(*t, at("/", ".example.com")), "star");  // '*' covers at least one char
  EXPECT_EQ(matched(*t, at("/", "API.svc:81")), "prefix");
  EXPECT_EQ(matched(*t, at("/", "exact.org:80")), "exact");
  EXPECT_EQ(matched(*t, at("/", "Exact.Org")), "exact");
  EXPECT_EQ(matched(*t, at("/", "ported.org:8080")), "ported");
  EXPECT_EQ(matched(*t, at("/", "ported.org")), "star");
  EXPECT_EQ(matched(*t, at("/", "ported.org:9090")), "star");
}

TEST(Headers, AuthorityRegexTriesWithAndWithoutPort) {
  auto route = prefix("/", "regex");
  route->headers.push_back({":authority", regex("[a-z]+\\.local")});
  auto t = one_host({route});
  EXPECT_EQ(matched(*t, at("/", "svc.local")), "regex");
  EXPECT_EQ(matched(*t, at("/", "svc.local:8080")), "regex");
  EXPECT_EQ(matched(*t, at("/", "svc.remote")), "");
}

// ---------------------------------------------------------------------------------------------
// Query matchers.

std::shared_ptr<Route> query_route(std::string name, StringMatcher m, std::string route_name) {
  auto route = prefix("/", std::move(route_name));
  route->query.push_back({std::move(name), std::move(m)});
  return route;
}

TEST(Query, ExactPresentRegexAndMissing) {
  auto t = one_host({
      query_route("mode", exact("debug"), "exact"),
      query_route("flag", present(), "present"),
      query_route("id", regex("[0-9]+"), "regex"),
      query_route("anything", regex(".*"), "dotstar"),
      prefix("/", "fallback"),
  });
  Req r = at("/");
  EXPECT_EQ(matched(*t, r), "fallback");  // `.*` still needs the parameter
  r.query = "a=1&mode=debug";
  EXPECT_EQ(matched(*t, r), "exact");
  r.query = "mode=debugx";
  EXPECT_EQ(matched(*t, r), "fallback");
  r.query = "flag";
  EXPECT_EQ(matched(*t, r), "present");
  r.query = "x=1&flag=";
  EXPECT_EQ(matched(*t, r), "present");
  r.query = "id=123";
  EXPECT_EQ(matched(*t, r), "regex");
  r.query = "id=12a";
  EXPECT_EQ(matched(*t, r), "fallback");
  r.query = "anything=";
  EXPECT_EQ(matched(*t, r), "dotstar");
  r.query = "flagx=1&xflag=1";
  EXPECT_EQ(matched(*t, r), "fallback");
}

TEST(Query, PercentDecodingAndPlus) {
  auto t = one_host({
      query_route("na me", exact("a/b"), "decoded"),
      query_route("q", exact("a+b"), "plus"),
      prefix("/", "fallback"),
  });
  Req r = at("/");
  r.query = "na%20me=a%2Fb";
  EXPECT_EQ(matched(*t, r), "decoded");
  r.query = "q=a+b";
  EXPECT_EQ(matched(*t, r), "plus");
  r.query = "q=a%20b";
  EXPECT_EQ(matched(*t, r), "fallback");  // '+' is not a space
  r.query = "q=a%2Bb";
  EXPECT_EQ(matched(*t, r), "plus");
  r.query = "q=%zz";
  EXPECT_EQ(matched(*t, r), "fallback");
}

TEST(Query, FirstOccurrenceWinsAndNamesAreCaseSensitive) {
  auto t = one_host({query_route("v", exact("1"), "one"), prefix("/", "fallback")});
  Req r = at("/");
  r.query = "v=1&v=2";
  EXPECT_EQ(matched(*t, r), "one");
  r.query = "v=2&v=1";
  EXPECT_EQ(matched(*t, r), "fallback");
  r.query = "V=1";
  EXPECT_EQ(matched(*t, r), "fallback");
  r.query = "&&v=1&";
  EXPECT_EQ(matched(*t, r), "one");
}

// ---------------------------------------------------------------------------------------------
// Canary draws.

TEST(Canary, DrawPicksTargetByCumulativeWeight) {
  auto route = prefix("/", "canary");
  route->targets.clear();
  RouteTarget a;
  a.cumulative_weight = 10;
  a.cluster_name = "canary-b";
  RouteTarget b;
  b.cumulative_weight = 100;
  b.cluster_name = "main-a";
  route->targets = {a, b};
  auto t = one_host({route});
  RouteTable::Match m = t->match(at("/").view(), 5);
  ASSERT_NE(m.target, nullptr);
  EXPECT_EQ(m.target->cluster_name, "canary-b");
  m = t->match(at("/").view(), 50);
  ASSERT_NE(m.target, nullptr);
  EXPECT_EQ(m.target->cluster_name, "main-a");
  m = t->match(at("/").view(), 10);
  EXPECT_EQ(m.target->cluster_name, "main-a");
  m = t->match(at("/").view(), 99);
  EXPECT_EQ(m.target->cluster_name, "main-a");
}

TEST(Canary, DrawAboveExplicitWeightsFallsThrough) {
  auto route = prefix("/svc/", "partial");
  route->targets.clear();
  RouteTarget a;
  a.cumulative_weight = 20;
  a.cluster_name = "a";
  RouteTarget b;
  b.cumulative_weight = 60;
  b.cluster_name = "b";
  route->targets = {a, b};
  auto t = one_host({route, prefix("/", "next")});
  EXPECT_EQ(matched(*t, at("/svc/x"), 70), "next");
  EXPECT_EQ(matched(*t, at("/svc/x"), 60), "next");
  EXPECT_EQ(matched(*t, at("/svc/x"), 59), "partial");
  RouteTable::Match m = t->match(at("/svc/x").view(), 30);
  ASSERT_NE(m.target, nullptr);
  EXPECT_EQ(m.target->cluster_name, "b");
}

TEST(Canary, RouteWithoutTargetsNeverMatches) {
  auto empty = prefix("/", "empty");
  empty->targets.clear();
  auto t = one_host({empty, prefix("/", "next")});
  EXPECT_EQ(matched(*t, at("/x")), "next");
}

// ---------------------------------------------------------------------------------------------
// Scale.

TEST(Scale, TenThousandRoutesFindTheLastInserted) {
  std::vector<std::shared_ptr<Route>> routes;
  for (int i = 0; i < 10000; ++i) {
    std::string n = std::to_string(i);
    switch (i % 4) {
      case 0:
      case 1:
        routes.push_back(prefix("/svc-" + n + "/", "p" + n));
        break;
      case 2:
        routes.push_back(make_route(PathMatchKind::kExact, "/exact-" + n, "e" + n));
        break;
      case 3:
        routes.push_back(make_route(PathMatchKind::kRegex, "/re-" + n + "/[0-9]+", "r" + n));
        break;
    }
  }
  routes.push_back(prefix("/last/", "last"));
  auto t = one_host(routes);
  EXPECT_EQ(matched(*t, at("/last/thing")), "last");
  EXPECT_EQ(matched(*t, at("/svc-9997/x")), "p9997");
  EXPECT_EQ(matched(*t, at("/svc-1/x")), "p1");
  EXPECT_EQ(matched(*t, at("/exact-9998")), "e9998");
  EXPECT_EQ(matched(*t, at("/re-9999/42")), "r9999");
  EXPECT_EQ(matched(*t, at("/re-9999/x")), "");
  EXPECT_EQ(matched(*t, at("/nothing")), "");
}

TEST(Scale, DeepPrefixChainEvaluatesInRouteOrder) {
  // More nested prefixes matching one path than the inline candidate buffer holds.
  std::vector<std::shared_ptr<Route>> routes;
  std::string path;
  for (int i = 0; i < 100; ++i) path += "/a";
  for (int len = 200; len >= 2; len -= 2) {
    auto r = prefix(path.substr(0, static_cast<size_t>(len)), "len" + std::to_string(len));
    if (len > 20) r->headers.push_back({"x-never", present()});
    routes.push_back(r);
  }
  auto t = one_host(routes);
  EXPECT_EQ(matched(*t, at(path)), "len20");
}

// ---------------------------------------------------------------------------------------------
// Glob helpers.

TEST(Globs, MatchesConcreteHostnames) {
  EXPECT_TRUE(glob_matches_host("*", "anything.example.com"));
  EXPECT_TRUE(glob_matches_host("*.example.com", "foo.example.com"));
  EXPECT_TRUE(glob_matches_host("*.Example.com", "FOO.example.COM"));
  EXPECT_FALSE(glob_matches_host("*.example.com", "example.com"));
  EXPECT_FALSE(glob_matches_host("*example.com", "example.com"));
  EXPECT_TRUE(glob_matches_host("*example.com", "myexample.com"));
  EXPECT_TRUE(glob_matches_host("foo.*", "foo.example.com"));
  EXPECT_FALSE(glob_matches_host("foo.*", "foo."));
  EXPECT_FALSE(glob_matches_host("foo.*", "bar.example.com"));
  EXPECT_TRUE(glob_matches_host("exact.com", "EXACT.com"));
  EXPECT_FALSE(glob_matches_host("exact.com", "other.com"));
  EXPECT_FALSE(glob_matches_host("exact.com", "exact.com:8443"));
}

TEST(Globs, MatchesOtherGlobsWhenSomeNameFitsBoth) {
  EXPECT_TRUE(glob_matches_host("*.example.com", "*"));
  EXPECT_TRUE(glob_matches_host("*.example.com", "*.example.com"));
  EXPECT_TRUE(glob_matches_host("*example.com", "*.example.com"));
  EXPECT_TRUE(glob_matches_host("*.example.com", "*example.com"));
  EXPECT_TRUE(glob_matches_host("*.example.com", "*.a.example.com"));
  EXPECT_FALSE(glob_matches_host("*.example.com", "*.example.org"));
  EXPECT_TRUE(glob_matches_host("*.example.com", "foo.*"));
  EXPECT_TRUE(glob_matches_host("foo.*", "foo.bar.*"));
  EXPECT_FALSE(glob_matches_host("foo.*", "bar.*"));
  EXPECT_FALSE(glob_matches_host(".example.com", "*.example.com"));
  EXPECT_FALSE(glob_matches_host("*.example.*", "a.example.b"));
  EXPECT_FALSE(glob_matches_host("", "example.com"));
}

TEST(Globs, AuthorityMatcherFromGlob) {
  StringMatcher m = host_glob_matcher("*");
  EXPECT_EQ(m.kind, StringMatchKind::kAny);
  m = host_glob_matcher("*.example.com");
  EXPECT_EQ(m.kind, StringMatchKind::kSuffix);
  EXPECT_EQ(m.value, ".example.com");
  EXPECT_TRUE(m.ignore_case);
  m = host_glob_matcher("*example.com");
  EXPECT_EQ(m.kind, StringMatchKind::kSuffix);
  EXPECT_EQ(m.value, "example.com");
  m = host_glob_matcher("foo.*");
  EXPECT_EQ(m.kind, StringMatchKind::kPrefix);
  EXPECT_EQ(m.value, "foo.");
  m = host_glob_matcher("Foo.Example.com");
  EXPECT_EQ(m.kind, StringMatchKind::kExact);
  EXPECT_EQ(m.value, "Foo.Example.com");
  EXPECT_TRUE(m.ignore_case);
}

}  // namespace
}  // namespace proxenos::router
