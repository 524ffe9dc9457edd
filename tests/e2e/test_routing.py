"""Route matching: every Mapping match field, Emissary's order, Host/Mapping attachment."""

import pytest

import harness
from harness import host, mapping, resource


@pytest.fixture
def backends(start_echo):
    """Four echo backends named a, b, c, d."""
    return {n: start_echo(n) for n in "abcd"}


def which(http, gw, path, host_header=None, headers=None, method="GET", T=harness.scaled):
    """The name of the backend that answered, or the status code when none did."""
    h = dict(headers or {})
    if host_header:
        h["Host"] = host_header
    r = http.request(method, gw.url(path), headers=h, timeout=T(5), allow_redirects=False)
    if r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json"):
        return r.json()["backend"]
    return r.status_code


def test_prefix_routes_and_404(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("foo", "/foo/", b["a"].addr),
        mapping("bar", "/bar/", b["b"].addr),
    ])
    assert which(http, gw, "/foo/x") == "a"
    assert which(http, gw, "/foo/") == "a"
    assert which(http, gw, "/bar/y/z?q=1") == "b"
    assert which(http, gw, "/baz") == 404
    assert which(http, gw, "/foo") == 404  # "/foo/" is a string prefix: "/foo" does not match


def test_longest_prefix_wins_regardless_of_file_order(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("short", "/api/", b["a"].addr),
        mapping("long", "/api/v2/", b["b"].addr),
        mapping("root", "/", b["c"].addr),
    ])
    assert which(http, gw, "/api/v2/users") == "b"
    assert which(http, gw, "/api/v1/users") == "a"
    assert which(http, gw, "/other") == "c"


def test_prefix_exact(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("exact", "/exact", b["a"].addr, prefix_exact=True),
        mapping("root", "/", b["b"].addr),
    ])
    assert which(http, gw, "/exact") == "a"
    assert which(http, gw, "/exact?x=1") == "a"
    assert which(http, gw, "/exact/more") == "b"
    assert which(http, gw, "/exactly") == "b"


def test_prefix_regex_matches_whole_path(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("re", "/re/[0-9]+", b["a"].addr, prefix_regex=True, precedence=1),
        mapping("root", "/", b["b"].addr),
    ])
    assert which(http, gw, "/re/123") == "a"
    assert which(http, gw, "/re/123?x=y") == "a"  # the query is not part of the path
    assert which(http, gw, "/re/abc") == "b"
    assert which(http, gw, "/re/123/tail") == "b"  # anchored at both ends


def test_case_sensitive(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("insens", "/CaSe/", b["a"].addr, case_sensitive=False),
        mapping("sens", "/Sens/", b["b"].addr),
        mapping("root", "/", b["c"].addr),
    ])
    assert which(http, gw, "/case/x") == "a"
    assert which(http, gw, "/CASE/x") == "a"
    assert which(http, gw, "/Sens/x") == "b"
    assert which(http, gw, "/sens/x") == "c"


def test_hostname_globs(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("exact", "/", b["a"].addr, hostname="exact.example.com"),
        mapping("suffix", "/", b["b"].addr, hostname="*.wild.example.com"),
        mapping("prefix", "/", b["c"].addr, hostname="prefix.*"),
        mapping("any", "/", b["d"].addr, hostname="*"),
    ])
    assert which(http, gw, "/", "exact.example.com") == "a"
    assert which(http, gw, "/", "EXACT.Example.COM") == "a"  # authority matching ignores case
    assert which(http, gw, "/", "x.wild.example.com") == "b"
    assert which(http, gw, "/", "a.b.wild.example.com") == "b"
    assert which(http, gw, "/", "wild.example.com") == "d"  # `*` never matches the empty label
    assert which(http, gw, "/", "prefix.anything.org") == "c"
    assert which(http, gw, "/", "other.org") == "d"


def test_host_and_host_regex(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("h", "/", b["a"].addr, hostname=None, host="h.example.com"),
        mapping("hr", "/", b["b"].addr, hostname=None, host=r"^r[0-9]+\.example\.com$",
                host_regex=True),
        mapping("root", "/", b["c"].addr),
    ])
    assert which(http, gw, "/", "h.example.com") == "a"
    assert which(http, gw, "/", "r42.example.com") == "b"
    assert which(http, gw, "/", "rx.example.com") == "c"
    assert which(http, gw, "/", "hh.example.com") == "c"


def test_hostname_wins_over_host(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("both", "/", b["a"].addr, hostname="win.example.com", host="lose.example.com"),
        mapping("root", "/", b["b"].addr),
    ])
    assert which(http, gw, "/", "win.example.com") == "a"
    assert which(http, gw, "/", "lose.example.com") == "b"


def test_method_and_method_regex(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("post", "/m/", b["a"].addr, method="POST"),
        mapping("putpatch", "/m/", b["c"].addr, method="P(UT|ATCH)", method_regex=True),
        mapping("any", "/m/", b["b"].addr),
    ])
    assert which(http, gw, "/m/x", method="POST") == "a"
    assert which(http, gw, "/m/x", method="PUT") == "c"
    assert which(http, gw, "/m/x", method="PATCH") == "c"
    assert which(http, gw, "/m/x", method="GET") == "b"
    assert which(http, gw, "/m/x", method="DELETE") == "b"


def test_headers_exact_and_presence(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("blue", "/h/", b["a"].addr, headers={"x-team": "blue"}),
        mapping("present", "/h/", b["c"].addr, headers={"x-present": True}),
        mapping("plain", "/h/", b["b"].addr),
    ])
    assert which(http, gw, "/h/", headers={"x-team": "blue"}) == "a"
    assert which(http, gw, "/h/", headers={"X-Team": "blue"}) == "a"  # names are case-insensitive
    assert which(http, gw, "/h/", headers={"x-team": "Blue"}) == "b"  # values are not
    assert which(http, gw, "/h/", headers={"x-team": "red"}) == "b"
    assert which(http, gw, "/h/", headers={"x-present": "anything"}) == "c"
    assert which(http, gw, "/h/") == "b"


def test_regex_headers(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("ver", "/h/", b["a"].addr, regex_headers={"x-ver": "v[0-9]+"}),
        mapping("plain", "/h/", b["b"].addr),
    ])
    assert which(http, gw, "/h/", headers={"x-ver": "v12"}) == "a"
    assert which(http, gw, "/h/", headers={"x-ver": "v12x"}) == "b"  # full match
    assert which(http, gw, "/h/", headers={"x-ver": "vx"}) == "b"
    assert which(http, gw, "/h/") == "b"


def test_query_parameters(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("debug", "/q/", b["a"].addr, query_parameters={"debug": "1"}),
        mapping("flag", "/q/", b["c"].addr, query_parameters={"flag": True}),
        mapping("plain", "/q/", b["b"].addr),
    ])
    assert which(http, gw, "/q/?debug=1") == "a"
    assert which(http, gw, "/q/?x=y&debug=1") == "a"
    assert which(http, gw, "/q/?debug=2") == "b"
    assert which(http, gw, "/q/?flag=whatever") == "c"
    assert which(http, gw, "/q/") == "b"


def test_regex_query_parameters_require_presence(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("id", "/q/", b["a"].addr, regex_query_parameters={"id": "[0-9]+"}),
        mapping("any-p", "/q/", b["c"].addr, regex_query_parameters={"p": ".*"}),
        mapping("plain", "/q/", b["b"].addr),
    ])
    assert which(http, gw, "/q/?id=42") == "a"
    assert which(http, gw, "/q/?id=4x") == "b"
    assert which(http, gw, "/q/?p=") == "c"
    assert which(http, gw, "/q/?p=anything") == "c"
    assert which(http, gw, "/q/") == "b"  # `.*` still needs p to be present


def test_precedence_beats_prefix_length(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        mapping("long", "/p/longer/", b["b"].addr),
        mapping("prec", "/p/", b["a"].addr, precedence=10),
        mapping("neg", "/", b["c"].addr, precedence=-1),
        mapping("other", "/o/", b["d"].addr),
    ])
    assert which(http, gw, "/p/longer/x") == "a"
    assert which(http, gw, "/p/x") == "a"
    assert which(http, gw, "/o/x") == "d"
    assert which(http, gw, "/zzz") == "c"


def test_more_specific_constraints_sort_first(start_gateway, backends, http):
    """Same prefix: header and method constraints make a route more specific than a plain one,
    whatever the file order (spec 2.1)."""
    b = backends
    gw = start_gateway([
        mapping("plain", "/s/", b["b"].addr),
        mapping("get-only", "/s/", b["c"].addr, method="GET"),
        mapping("hdr", "/s/", b["a"].addr, headers={"x-a": "1"}),
    ])
    assert which(http, gw, "/s/", headers={"x-a": "1"}, method="POST") == "a"
    assert which(http, gw, "/s/", method="GET") == "c"
    # len(":method") + len("GET") = 10 outweighs len("x-a") + len("1") = 4.
    assert which(http, gw, "/s/", headers={"x-a": "1"}, method="GET") == "c"
    assert which(http, gw, "/s/", method="POST") == "b"


def test_regex_prefix_sorted_by_string_length(start_gateway, backends, http):
    """Emissary orders regex prefixes by their string length like plain prefixes (spec 2.1)."""
    b = backends
    gw = start_gateway([
        mapping("short-re", "/r/.*", b["a"].addr, prefix_regex=True),
        mapping("plain-r", "/r/abc/", b["b"].addr),
        mapping("long-re", "/s/[a-z]+/.*", b["c"].addr, prefix_regex=True),
        mapping("plain-s", "/s/abc/", b["d"].addr),
    ])
    assert which(http, gw, "/r/abc/x") == "b"  # len("/r/abc/") 7 > len("/r/.*") 5
    assert which(http, gw, "/r/zzz") == "a"
    assert which(http, gw, "/s/abc/x") == "c"  # len("/s/[a-z]+/.*") 12 > 7


def test_host_mapping_attachment_and_mapping_selector(start_gateway, backends, start_echo, http):
    b = backends
    e = start_echo("e")
    gw = start_gateway([
        host("h1", "one.example.com"),
        host("h2", "two.example.com", mappingSelector={"matchLabels": {"team": "two"}}),
        mapping("m1", "/one/", b["a"].addr, hostname="one.example.com"),
        mapping("m2", "/two/", b["b"].addr, hostname=None, labels={"team": "two"}),
        mapping("m3", "/three/", b["c"].addr, hostname="two.example.com"),  # lacks the label
        mapping("m4", "/four/", b["d"].addr, hostname=None),  # attaches nowhere
        mapping("m5", "/five/", e.addr, hostname="two.example.com", labels={"team": "two"}),
    ])
    assert which(http, gw, "/one/", "one.example.com") == "a"
    assert which(http, gw, "/two/", "one.example.com") == 404
    assert which(http, gw, "/two/", "two.example.com") == "b"
    assert which(http, gw, "/three/", "two.example.com") == 404
    assert which(http, gw, "/five/", "two.example.com") == "e"
    assert which(http, gw, "/one/", "two.example.com") == 404
    for h in ("one.example.com", "two.example.com", "three.example.com"):
        assert which(http, gw, "/four/", h) == 404
    assert which(http, gw, "/one/", "three.example.com") == 404  # no Host for this authority


def test_wildcard_host_and_mapping_hostname_glob(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        host("wild", "*.example.com"),
        mapping("foo", "/", b["a"].addr, hostname="foo.example.com"),
        mapping("every", "/all/", b["b"].addr, hostname="*"),
    ])
    assert which(http, gw, "/", "foo.example.com") == "a"
    assert which(http, gw, "/", "bar.example.com") == 404
    assert which(http, gw, "/all/", "bar.example.com") == "b"
    assert which(http, gw, "/all/", "elsewhere.org") == 404  # no Host matches the authority


def test_host_regex_mapping_attaches_to_every_host(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        host("h1", "one.example.com"),
        host("h2", "two.example.com"),
        mapping("hr", "/", b["a"].addr, hostname=None, host=r".*\.example\.com", host_regex=True),
    ])
    assert which(http, gw, "/", "one.example.com") == "a"
    assert which(http, gw, "/", "two.example.com") == "a"


def test_ambassador_id_filtering(start_gateway, backends, http):
    b = backends
    resources = [
        mapping("mine", "/mine/", b["a"].addr),
        mapping("default-id", "/default/", b["b"].addr, ambassador_id=["default"]),
        mapping("other", "/other/", b["c"].addr, ambassador_id=["other"]),
        mapping("auto", "/auto/", b["d"].addr, ambassador_id=["_automatic_"]),
    ]
    gw = start_gateway(resources)
    assert which(http, gw, "/mine/") == "a"
    assert which(http, gw, "/default/") == "b"
    assert which(http, gw, "/other/") == 404
    assert which(http, gw, "/auto/") == "d"


def test_ambassador_id_flag(start_gateway, backends, http):
    b = backends
    port = harness.free_port("0.0.0.0")
    gw = start_gateway({
        "00-listener.yaml": [resource("Listener", "l", {
            "port": port, "protocol": "HTTP", "securityModel": "XFP",
            "hostBinding": {"namespace": {"from": "ALL"}}, "ambassador_id": ["other"]})],
        "routes.yaml": [
            mapping("unlabelled", "/unlabelled/", b["a"].addr),
            mapping("other", "/other/", b["c"].addr, ambassador_id=["other", "third"]),
            mapping("auto", "/auto/", b["d"].addr, ambassador_id=["_automatic_"]),
        ],
    }, listen=False, extra_args=["--ambassador-id", "other"])
    gw.port = port
    assert which(http, gw, "/other/") == "c"
    assert which(http, gw, "/auto/") == "d"
    assert which(http, gw, "/unlabelled/") == 404


def test_v2_api_version_accepted(start_gateway, backends, http):
    b = backends
    gw = start_gateway([
        resource("Mapping", "v2", {"prefix": "/v2/", "service": b["a"].addr,
                                   "host": "v2.example.com"}, api="getambassador.io/v2"),
    ])
    assert which(http, gw, "/v2/x", "v2.example.com") == "a"


def test_config_single_file_json_and_nested_folders(start_gateway, backends, http, tmp_path):
    import json

    b = backends
    gw = start_gateway({
        "deep/er/one.yaml": [mapping("one", "/one/", b["a"].addr)],
        "two.json": json.dumps(mapping("two", "/two/", b["b"].addr)),
        "multi.yml": [mapping("three", "/three/", b["c"].addr),
                      mapping("four", "/four/", b["d"].addr)],
        "ignored.txt": "not: [yaml",
    })
    assert which(http, gw, "/one/") == "a"
    assert which(http, gw, "/two/") == "b"
    assert which(http, gw, "/three/") == "c"
    assert which(http, gw, "/four/") == "d"


def test_config_path_may_be_a_single_file(start_gateway, backends, http):
    b = backends
    port = harness.free_port("0.0.0.0")
    gw = start_gateway({"all.yaml": [harness.listener("l", port), mapping("one", "/one/", b["a"].addr)],
                        "not-read.yaml": [mapping("two", "/two/", b["b"].addr)]},
                       listen=False, config_file="all.yaml")
    gw.port = port
    assert which(http, gw, "/one/") == "a"
    assert which(http, gw, "/two/") == 404
