"""Listeners: explicit ports, defaults, Host binding, l7Depth and forwarding headers."""

import pytest

import harness
from harness import free_port, host, listener, mapping, module, port_is_free, resource


def get(http, port, path="/", T=harness.scaled, **kw):
    return http.get(f"http://127.0.0.1:{port}{path}", timeout=T(5), allow_redirects=False, **kw)


def test_explicit_listener_ports(start_gateway, echo, http, T):
    p1, p2 = free_port("0.0.0.0"), free_port("0.0.0.0")
    gw = start_gateway([listener("one", p1), listener("two", p2), mapping("m", "/", echo.addr)],
                       listen=False)
    for p in (p1, p2):
        r = get(http, p, "/x")
        assert r.status_code == 200 and r.json()["backend"] == "echo"
    assert gw.alive()


def test_default_listeners_when_none_defined(start_gateway, echo, http, T):
    if not (port_is_free(8080) and port_is_free(8443)):
        pytest.skip("default listener ports 8080/8443 are in use on this machine")
    gw = start_gateway([mapping("m", "/", echo.addr)], listen=False)
    r = get(http, 8080, "/default")
    assert r.status_code == 200 and r.json()["path"] == "/default"
    assert harness.tcp_connections(local_port=8443, state="0A"), "8443 not listening"
    assert "8080" in gw.output(), "starting the default listeners must be logged"


def test_listener_host_binding_selector(start_gateway, start_echo, http, T):
    a, b = start_echo("a"), start_echo("b")
    pa, pall = free_port("0.0.0.0"), free_port("0.0.0.0")
    gw = start_gateway([
        resource("Listener", "only-a", {
            "port": pa, "protocol": "HTTP", "securityModel": "XFP",
            "hostBinding": {"namespace": {"from": "ALL"},
                            "selector": {"matchLabels": {"listener": "a"}}}}),
        listener("all", pall),
        host("host-a", "a.example.com", labels={"listener": "a"}),
        host("host-b", "b.example.com"),
        mapping("ma", "/", a.addr, hostname="a.example.com"),
        mapping("mb", "/", b.addr, hostname="b.example.com"),
    ], listen=False)
    assert get(http, pa, headers={"Host": "a.example.com"}).json()["backend"] == "a"
    assert get(http, pa, headers={"Host": "b.example.com"}).status_code == 404
    assert get(http, pall, headers={"Host": "a.example.com"}).json()["backend"] == "a"
    assert get(http, pall, headers={"Host": "b.example.com"}).json()["backend"] == "b"
    assert gw.alive()


def test_listener_match_expressions(start_gateway, start_echo, http, T):
    """Proxenos honours full Kubernetes selectors (matchExpressions), unlike Emissary."""
    a = start_echo("a")
    p = free_port("0.0.0.0")
    start_gateway([
        resource("Listener", "exprs", {
            "port": p, "protocol": "HTTP", "securityModel": "XFP",
            "hostBinding": {"namespace": {"from": "ALL"}, "selector": {"matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["edge", "public"]}]}}}),
        host("in", "in.example.com", labels={"tier": "public"}),
        host("out", "out.example.com", labels={"tier": "internal"}),
        mapping("m", "/", a.addr, hostname="*"),
    ], listen=False)
    assert get(http, p, headers={"Host": "in.example.com"}).status_code == 200
    assert get(http, p, headers={"Host": "out.example.com"}).status_code == 404


def _client_view(http, gw, headers):
    r = get(http, gw.port, "/", headers=headers)
    assert r.status_code == 200, r.status_code
    return r.json()["headers"]


REMOTE_HEADERS = {"x-client-ip": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}


def test_l7depth_0_does_not_trust_client_headers(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, add_request_headers=REMOTE_HEADERS)],
                       l7_depth=0)
    seen = _client_view(http, gw, {"X-Forwarded-For": "203.0.113.9",
                                   "X-Forwarded-Proto": "https"})
    assert seen["x-forwarded-proto"] == "http"
    xff = [p.strip() for p in seen["x-forwarded-for"].split(",")]
    assert xff[-1] == "127.0.0.1"
    assert seen["x-client-ip"] == "127.0.0.1"


def test_l7depth_1_trusts_one_hop(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, add_request_headers=REMOTE_HEADERS)],
                       l7_depth=1)
    seen = _client_view(http, gw, {"X-Forwarded-For": "203.0.113.9",
                                   "X-Forwarded-Proto": "https"})
    assert seen["x-forwarded-proto"] == "https"
    assert [p.strip() for p in seen["x-forwarded-for"].split(",")] == ["203.0.113.9", "127.0.0.1"]
    assert seen["x-client-ip"] == "203.0.113.9"
    # Without a client XFF there is nothing to trust: the peer address is the client.
    seen = _client_view(http, gw, {})
    assert seen["x-client-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"


def test_l7depth_2_trusts_two_hops(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, add_request_headers=REMOTE_HEADERS)],
                       l7_depth=2)
    seen = _client_view(http, gw, {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
    assert seen["x-client-ip"] == "198.51.100.1"


def test_use_remote_address_false_keeps_xff(start_gateway, echo, http, T):
    gw = start_gateway([module({"use_remote_address": False}),
                        mapping("m", "/", echo.addr, add_request_headers=REMOTE_HEADERS)])
    seen = _client_view(http, gw, {"X-Forwarded-For": "203.0.113.9"})
    assert [p.strip() for p in seen["x-forwarded-for"].split(",")] == ["203.0.113.9"]
    assert seen["x-client-ip"] == "203.0.113.9"


def _redirect_host(gw_files_extra=()):
    return [host("secure-only", "*", insecure_action=None)] + list(gw_files_extra)


def test_insecure_redirect_with_xfp_and_l7depth(start_gateway, echo, http, T):
    """A Host with the default insecure action (Redirect) on an XFP Listener: a request counts as
    secure only when a trusted X-Forwarded-Proto says https."""
    files = _redirect_host([mapping("m", "/", echo.addr)])
    trusting = start_gateway(files, l7_depth=1)
    r = get(http, trusting.port, "/p?q=1", headers={"X-Forwarded-Proto": "https",
                                                    "Host": "site.example.com"})
    assert r.status_code == 200
    r = get(http, trusting.port, "/p?q=1", headers={"Host": "site.example.com"})
    assert r.status_code == 301
    assert r.headers["location"] == "https://site.example.com/p?q=1"

    untrusting = start_gateway(files, l7_depth=0)
    r = get(http, untrusting.port, "/p", headers={"X-Forwarded-Proto": "https",
                                                  "Host": "site.example.com"})
    assert r.status_code == 301


def test_insecure_reject_is_404(start_gateway, echo, http, T):
    gw = start_gateway([host("rej", "*", insecure_action="Reject"), mapping("m", "/", echo.addr)])
    assert get(http, gw.port, "/x").status_code == 404


def test_acme_challenge_routed_on_reject_host(start_gateway, echo, http, T):
    gw = start_gateway([host("rej", "*", insecure_action="Reject"),
                        mapping("acme", "/.well-known/acme-challenge/", echo.addr),
                        mapping("m", "/", echo.addr)])
    assert get(http, gw.port, "/.well-known/acme-challenge/tok").status_code == 200
    assert get(http, gw.port, "/other").status_code == 404


def test_security_model_secure_treats_cleartext_as_secure(start_gateway, echo, http, T):
    p = free_port("0.0.0.0")
    gw = start_gateway([listener("sec", p, security_model="SECURE"),
                        host("h", "*", insecure_action=None), mapping("m", "/", echo.addr)],
                       listen=False)
    assert get(http, p, "/x").status_code == 200
    assert gw.alive()


def test_security_model_insecure_applies_insecure_action(start_gateway, echo, http, T):
    p = free_port("0.0.0.0")
    start_gateway([listener("insec", p, security_model="INSECURE"),
                   host("h", "*", insecure_action=None), mapping("m", "/", echo.addr)],
                  listen=False)
    r = get(http, p, "/x", headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 301
