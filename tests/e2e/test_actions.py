"""Mapping actions: rewrites, header edits, redirects, host rewrites, Module knobs."""

import re
import time

import pytest

import harness
from harness import RawConn, get_request, mapping, module, tcp_connections


def echo_json(http, gw, path, T, headers=None, method="GET"):
    r = http.request(method, gw.url(path), headers=headers or {}, timeout=T(5),
                     allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()


def header_values(info, name):
    """The values the echo backend saw for `name`, as a list (proxies may join with commas)."""
    v = info["headers"].get(name)
    if v is None:
        return []
    vals = v if isinstance(v, list) else [v]
    out = []
    for x in vals:
        out += [p.strip() for p in x.split(",")]
    return out


# ---------------------------------------------------------------------------------------------
# Path rewrites


def test_default_rewrite_replaces_prefix_with_slash(start_gateway, echo, http, T):
    gw = start_gateway([mapping("foo", "/foo/", echo.addr)])
    assert echo_json(http, gw, "/foo/bar", T)["path"] == "/bar"
    assert echo_json(http, gw, "/foo/bar/baz?x=1&y=2", T)["path"] == "/bar/baz?x=1&y=2"
    assert echo_json(http, gw, "/foo/", T)["path"] == "/"


def test_default_rewrite_is_literal(start_gateway, echo, http, T):
    # Confirmed Emissary behaviour: prefix /server-name, request /server-name/ -> "//".
    gw = start_gateway([mapping("sn", "/server-name", echo.addr)])
    assert echo_json(http, gw, "/server-name/", T)["path"] == "//"
    assert echo_json(http, gw, "/server-name", T)["path"] == "/"


def test_explicit_rewrite(start_gateway, echo, http, T):
    gw = start_gateway([
        mapping("v2", "/foo/", echo.addr, rewrite="/v2/"),
        mapping("none", "/keep/", echo.addr, rewrite=""),
    ])
    assert echo_json(http, gw, "/foo/bar", T)["path"] == "/v2/bar"
    assert echo_json(http, gw, "/keep/bar?q=1", T)["path"] == "/keep/bar?q=1"


def test_regex_rewrite(start_gateway, echo, http, T):
    gw = start_gateway([
        mapping("re", "/re/", echo.addr,
                regex_rewrite={"pattern": "^/re/([^/]+)/(.*)$", "substitution": "/\\2/\\1"}),
    ])
    assert echo_json(http, gw, "/re/a/b", T)["path"] == "/b/a"
    assert echo_json(http, gw, "/re/a/b?k=v", T)["path"] == "/b/a?k=v"
    # Not matched by the pattern: unchanged, and the default rewrite is not applied either.
    assert echo_json(http, gw, "/re/onlyone", T)["path"] == "/re/onlyone"


# ---------------------------------------------------------------------------------------------
# Host header


def test_host_passes_through_by_default(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    assert echo_json(http, gw, "/", T, headers={"Host": "client.example.com"})["host"] == \
        "client.example.com"


def test_host_rewrite(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, host_rewrite="rewritten.example.com")])
    info = echo_json(http, gw, "/", T, headers={"Host": "client.example.com"})
    assert info["host"] == "rewritten.example.com"


def test_auto_host_rewrite_uses_service_name_without_port(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", f"localhost:{echo.port}", auto_host_rewrite=True)])
    info = echo_json(http, gw, "/", T, headers={"Host": "client.example.com"})
    assert info["host"] == "localhost"


def test_service_with_http_scheme(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", f"http://127.0.0.1:{echo.port}")])
    assert echo_json(http, gw, "/x", T)["backend"] == "echo"


# ---------------------------------------------------------------------------------------------
# Header edits


def test_add_request_headers(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, add_request_headers={
        "x-plain": "v1",
        "x-appended": {"value": "added"},
        "x-replaced": {"value": "new", "append": False},
        "x-remote": "%DOWNSTREAM_REMOTE_ADDRESS%",
        "x-remote-ip": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    })])
    info = echo_json(http, gw, "/", T, headers={"x-appended": "client", "x-replaced": "old"})
    assert header_values(info, "x-plain") == ["v1"]
    assert sorted(header_values(info, "x-appended")) == ["added", "client"]
    assert header_values(info, "x-replaced") == ["new"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", info["headers"]["x-remote"]), info["headers"]
    assert info["headers"]["x-remote-ip"] == "127.0.0.1"


def test_remove_request_headers(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, remove_request_headers=["x-secret", "X-Other"])])
    info = echo_json(http, gw, "/", T, headers={"x-secret": "s", "x-other": "o", "x-kept": "k"})
    assert "x-secret" not in info["headers"]
    assert "x-other" not in info["headers"]
    assert info["headers"]["x-kept"] == "k"


def test_add_and_remove_response_headers(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr,
                                add_response_headers={"x-resp": "r1",
                                                      "x-resp-replace": {"value": "mine",
                                                                         "append": False}},
                                remove_response_headers=["content-type"])])
    r = http.get(gw.url("/"), timeout=T(5))
    assert r.status_code == 200
    assert r.headers.get("x-resp") == "r1"
    assert r.headers.get("x-resp-replace") == "mine"
    assert "content-type" not in {k.lower() for k in r.headers}
    assert r.json()["backend"] == "echo"  # the body is untouched


def test_module_default_headers_are_replaced_not_merged(start_gateway, echo, http, T):
    gw = start_gateway([
        module({"defaults": {"httpmapping": {"add_request_headers": {"x-default": "d"}}}}),
        mapping("inherits", "/inherit/", echo.addr),
        mapping("own", "/own/", echo.addr, add_request_headers={"x-own": "o"}),
        mapping("empty", "/empty/", echo.addr, add_request_headers={}),
    ])
    assert echo_json(http, gw, "/inherit/", T)["headers"].get("x-default") == "d"
    own = echo_json(http, gw, "/own/", T)["headers"]
    assert own.get("x-own") == "o" and "x-default" not in own
    assert "x-default" not in echo_json(http, gw, "/empty/", T)["headers"]


# ---------------------------------------------------------------------------------------------
# Redirects


def redirect(http, gw, path, T, host_header=None):
    h = {"Host": host_header} if host_header else {}
    r = http.get(gw.url(path), headers=h, timeout=T(5), allow_redirects=False)
    return r.status_code, r.headers.get("location")


def test_host_redirect_keeps_path(start_gateway, http, T):
    gw = start_gateway([mapping("hr", "/hr/", "redirect.example.com", host_redirect=True)])
    status, loc = redirect(http, gw, "/hr/x?q=1", T)
    assert status == 301
    assert loc == "http://redirect.example.com/hr/x?q=1"


def test_host_redirect_https_service(start_gateway, http, T):
    gw = start_gateway([mapping("hr", "/hr/", "https://secure.example.com", host_redirect=True)])
    status, loc = redirect(http, gw, "/hr/x", T)
    assert status == 301
    assert loc == "https://secure.example.com/hr/x"


def test_path_redirect(start_gateway, http, T):
    gw = start_gateway([mapping("pr", "/pr/", "redirect.example.com", host_redirect=True,
                                path_redirect="/new/path")])
    status, loc = redirect(http, gw, "/pr/anything", T)
    assert status == 301
    assert loc.startswith("http://redirect.example.com/new/path"), loc


def test_prefix_redirect(start_gateway, http, T):
    gw = start_gateway([mapping("pfx", "/old/", "redirect.example.com", host_redirect=True,
                                prefix_redirect="/new/")])
    status, loc = redirect(http, gw, "/old/x/y", T)
    assert status == 301
    assert loc == "http://redirect.example.com/new/x/y"


def test_regex_redirect_keeps_query(start_gateway, http, T):
    gw = start_gateway([mapping("rr", "/rr/", "redirect.example.com", host_redirect=True,
                                regex_redirect={"pattern": "^/rr/(.*)$",
                                                "substitution": "/moved/\\1"})])
    status, loc = redirect(http, gw, "/rr/abc?q=1", T)
    assert status == 301
    assert loc == "http://redirect.example.com/moved/abc?q=1"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_response_code(start_gateway, http, T, code):
    gw = start_gateway([mapping("rc", "/rc/", "redirect.example.com", host_redirect=True,
                                redirect_response_code=code)])
    status, loc = redirect(http, gw, "/rc/", T)
    assert status == code
    assert loc.startswith("http://redirect.example.com/")


# ---------------------------------------------------------------------------------------------
# Module knobs


def test_server_header_defaults_to_envoy(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/m/", echo.addr)])
    assert http.get(gw.url("/m/"), timeout=T(5)).headers.get("server") == "envoy"
    assert http.get(gw.url("/nothing"), timeout=T(5)).headers.get("server") == "envoy"


def test_module_server_name(start_gateway, echo, http, T):
    gw = start_gateway([module({"server_name": "proxenos-e2e"}), mapping("m", "/m/", echo.addr)])
    r = http.get(gw.url("/m/"), timeout=T(5))
    assert r.status_code == 200 and r.headers.get("server") == "proxenos-e2e"
    r = http.get(gw.url("/nothing"), timeout=T(5))
    assert r.status_code == 404 and r.headers.get("server") == "proxenos-e2e"


def test_upstream_server_header_is_overwritten(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/m/", echo.addr)])
    r = http.get(gw.url("/m/"), headers={"x-echo-header-Server": "upstream/1.0"}, timeout=T(5))
    assert r.headers.get("server") == "envoy"


def test_merge_slashes(start_gateway, echo, T):
    plain = start_gateway([mapping("ms", "/ms/", echo.addr, rewrite="")])
    with RawConn(plain.port) as c:
        assert c.request(get_request("//ms//x")).status == 404
    merged = start_gateway([module({"merge_slashes": True}), mapping("ms", "/ms/", echo.addr,
                                                                     rewrite="")])
    with RawConn(merged.port) as c:
        r = c.request(get_request("//ms//x"))
        assert r.status == 200
        assert r.json()["path"] == "/ms/x"


def test_http10_rejected_by_default(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    with RawConn(gw.port) as c:
        c.send(b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")
        r = c.read_response()
        assert r.status == 426


def test_enable_http10(start_gateway, echo, T):
    gw = start_gateway([module({"enable_http10": True}), mapping("m", "/", echo.addr)])
    with RawConn(gw.port) as c:
        c.send(b"GET /ten HTTP/1.0\r\nHost: example.com\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.json()["path"] == "/ten"
        assert c.wait_closed(T(3)), "HTTP/1.0 without keep-alive must close after the response"


def test_max_request_headers_kb(start_gateway, echo, T):
    gw = start_gateway([module({"max_request_headers_kb": 8}), mapping("m", "/", echo.addr)])
    with RawConn(gw.port) as c:
        assert c.request(get_request("/", headers=[("x-big", "a" * 4000)])).status == 200
    with RawConn(gw.port) as c:
        assert c.request(get_request("/", headers=[("x-big", "a" * 10000)])).status == 431


# ---------------------------------------------------------------------------------------------
# Upstream timeouts


def test_connect_timeout_ms(start_gateway, http, T):
    hole = harness.Blackhole()
    try:
        gw = start_gateway([mapping("m", "/", hole.addr, connect_timeout_ms=300,
                                    timeout_ms=10000)])
        t0 = time.monotonic()
        r = http.get(gw.url("/"), timeout=T(10))
        elapsed = time.monotonic() - t0
    finally:
        hole.close()
    assert r.status_code == 503
    assert 0.25 < elapsed < T(2.5), f"connect timeout took {elapsed:.1f}s"


def test_idle_timeout_ms(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, idle_timeout_ms=300, timeout_ms=20000)])
    t0 = time.monotonic()
    r = http.get(gw.url("/"), headers={"x-echo-delay-ms": "3000"}, timeout=T(10))
    elapsed = time.monotonic() - t0
    assert r.status_code in (504, 408), r.status_code
    assert elapsed < T(2.0), f"idle timeout took {elapsed:.1f}s"


def test_cluster_idle_timeout_closes_pooled_connections(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, cluster_idle_timeout_ms=300)],
                       workers=1)
    assert http.get(gw.url("/"), timeout=T(5)).status_code == 200
    closed = harness.wait_until(
        lambda: not tcp_connections(remote_port=echo.port, state="01"), T(3))
    assert closed, "pooled upstream connection still open after cluster_idle_timeout_ms"


def test_upstream_connections_are_pooled_by_default(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)], workers=1)
    seen = set()
    for _ in range(5):
        with RawConn(gw.port) as c:
            r = c.request(get_request("/"))
            assert r.status == 200
            seen.add(r.json()["remote_address"])
    assert len(seen) == 1, f"upstream connection not reused: {seen}"
    time.sleep(0.5)
    assert tcp_connections(remote_port=echo.port, state="01"), "pooled connection was closed"
