"""Error responses (404/400/414/431/502/503/504), upstream faults (edge-hardening.md section 7,
rows 8, 30-33) and partially bad configuration."""

import select
import subprocess
import time

import pytest

import harness
from harness import (FakeUpstream, IncompleteResponse, RawConn, closed_port, get_request,
                     mapping, raw_exchange, rst_close)


def assert_plain_error(status, headers, body, expected):
    assert status == expected, (status, body[:200])
    ctype = (headers.get("content-type") or "").lower()
    assert ctype.startswith("text/plain"), headers
    assert 0 < len(body) < 512, body


def check(http, url, expected, T, **kw):
    r = http.get(url, timeout=T(10), **kw)
    assert_plain_error(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content,
                       expected)
    return r


def test_404_no_route(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/app/", echo.addr)])
    check(http, gw.url("/elsewhere"), 404, T)
    # The connection stays usable after a 404.
    with RawConn(gw.port) as c:
        assert c.request(get_request("/nope")).status == 404
        assert c.request(get_request("/app/")).status == 200


def test_503_upstream_refused(start_gateway, http, T):
    gw = start_gateway([mapping("m", "/", f"127.0.0.1:{closed_port()}")])
    t0 = time.monotonic()
    check(http, gw.url("/"), 503, T)
    assert time.monotonic() - t0 < T(3), "a refused connect must fail fast"


def test_503_upstream_reset_before_response(start_gateway, http, T):
    fake = FakeUpstream(lambda conn, req: rst_close(conn))
    gw = start_gateway([mapping("m", "/", fake.addr)])
    check(http, gw.url("/"), 503, T)


def test_503_upstream_closes_before_response(start_gateway, http, T):
    fake = FakeUpstream(lambda conn, req: conn.shutdown(2))
    gw = start_gateway([mapping("m", "/", fake.addr)])
    check(http, gw.url("/"), 503, T)


def test_upstream_reset_mid_body_is_not_completed(start_gateway, T):
    def behaviour(conn, req):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        time.sleep(0.2)
        rst_close(conn)

    fake = FakeUpstream(behaviour)
    gw = start_gateway([mapping("m", "/", fake.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(get_request("/"))
        try:
            r = c.read_response(timeout=T(5))
        except IncompleteResponse:
            r = None  # closed before the body was complete: what we want
        assert r is None, f"a truncated upstream body was passed off as complete: {r!r}"
        assert c.eof


def test_upstream_reset_mid_chunked_body_has_no_final_chunk(start_gateway, T):
    def behaviour(conn, req):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.2)
        rst_close(conn)

    fake = FakeUpstream(behaviour)
    gw = start_gateway([mapping("m", "/", fake.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(get_request("/"))
        assert c.wait_closed(T(5))
        data = bytes(c.buf)
    assert b"0\r\n\r\n" not in data.split(b"\r\n\r\n", 1)[-1], data


def test_502_garbage_from_upstream(start_gateway, http, T):
    fake = FakeUpstream(lambda conn, req: conn.sendall(b"THIS IS NOT HTTP\r\n\r\n"))
    gw = start_gateway([mapping("m", "/", fake.addr)])
    check(http, gw.url("/"), 502, T)


def test_502_crlf_injection_in_upstream_header(start_gateway, http, T):
    fake = FakeUpstream(lambda conn, req: conn.sendall(
        b"HTTP/1.1 200 OK\r\nX-A: b\rSet-Cookie: evil\r\nContent-Length: 0\r\n\r\n"))
    gw = start_gateway([mapping("m", "/", fake.addr)])
    check(http, gw.url("/"), 502, T)


def test_504_timeout_ms(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, timeout_ms=500)])
    t0 = time.monotonic()
    check(http, gw.url("/"), 504, T, headers={"x-echo-delay-ms": "4000"})
    elapsed = time.monotonic() - t0
    assert 0.4 < elapsed < T(2.5), f"504 after {elapsed:.2f}s"


def test_504_default_timeout_is_3000ms(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    t0 = time.monotonic()
    check(http, gw.url("/"), 504, T, headers={"x-echo-delay-ms": "6000"})
    elapsed = time.monotonic() - t0
    assert 2.8 < elapsed < T(4.5), f"504 after {elapsed:.2f}s"


def test_timeout_ms_zero_disables(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/", echo.addr, timeout_ms=0)])
    r = http.get(gw.url("/"), headers={"x-echo-delay-ms": "3500"}, timeout=T(10))
    assert r.status_code == 200


def test_stalled_upstream_gets_504(start_gateway, http, T):
    fake = FakeUpstream(lambda conn, req: time.sleep(5))
    gw = start_gateway([mapping("m", "/", fake.addr, timeout_ms=400)])
    check(http, gw.url("/"), 504, T)


def trickle(conn, req):
    # The head and half the promised body at once, the rest 2 s later.
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n0123456789")
    time.sleep(2)
    conn.sendall(b"abcdefghij")


@pytest.mark.parametrize("client", ["http1", "h2c"])
def test_route_timeout_cuts_a_response_still_coming(start_gateway, T, client):
    # timeout_ms spans the whole response (as Envoy's route timeout): once the head went out
    # the client cannot get a 504, so the transfer fails (connection closed, or the stream reset
    # for HTTP/2) instead of completing 2 s later; the access log says UT.
    fake = FakeUpstream(trickle)
    gw = start_gateway([mapping("m", "/", fake.addr, timeout_ms=400)])
    args = ["curl", "-sS", "--noproxy", "*", "-m", str(T(10)), "-o", "/dev/null", "-w",
            "%{http_code}"] + (["--http2-prior-knowledge"] if client == "h2c" else [])
    t0 = time.monotonic()
    r = subprocess.run(args + [gw.url("/trickle")], capture_output=True, timeout=T(15))
    elapsed = time.monotonic() - t0
    assert r.returncode in (18, 56, 92), r  # partial file / recv failure / HTTP/2 stream error
    assert r.stdout == b"200"
    assert 0.3 < elapsed < T(1.8), elapsed
    assert harness.wait_until(lambda: [l for l in harness.access_log_lines(gw.stdout())
                                       if l["path"] == "/trickle" and l["flags"] == "UT"], T(3))


def test_400_malformed(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    responses, closed, _ = raw_exchange(gw.port, b"THIS IS NOT HTTP\r\n\r\n", timeout=T(3))
    assert responses, "no response"
    r = responses[0]
    assert_plain_error(r.status, {k.lower(): v for k, v in r.headers}, r.body, 400)
    assert closed


def _limit_response(gw, data, T):
    responses, closed, rest = raw_exchange(gw.port, data, timeout=T(5))
    assert responses, f"no response (closed={closed}) {rest[:100]!r}"
    return responses[0], closed


def test_431_headers_over_60k(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    big = get_request("/", headers=[(f"x-h{i}", "v" * 1000) for i in range(70)])
    r, closed = _limit_response(gw, big, T)
    assert_plain_error(r.status, {k.lower(): v for k, v in r.headers}, r.body, 431)
    assert closed
    # Just under the limit passes.
    with RawConn(gw.port) as c:
        ok = get_request("/", headers=[(f"x-h{i}", "v" * 1000) for i in range(50)])
        assert c.request(ok).status == 200


def test_431_more_than_100_headers(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    r, closed = _limit_response(gw, get_request("/", headers=[(f"x-h{i}", "v") for i in range(101)]), T)
    assert_plain_error(r.status, {k.lower(): v for k, v in r.headers}, r.body, 431)
    assert closed
    with RawConn(gw.port) as c:
        # Host + 98 = 99 fields: accepted.
        assert c.request(get_request("/", headers=[(f"x-h{i}", "v") for i in range(98)])).status == 200


def test_431_counts_partial_headers(start_gateway, echo, T):
    """Header bytes count while they arrive (CVE-2020-12605): 431 before the head is complete."""
    gw = start_gateway([mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: example.com\r\n")
        line = b"x-trickle: " + b"v" * 1000 + b"\r\n"
        try:
            for _ in range(80):  # 80 KiB, never ending the head
                c.send(line)
                # Stop as soon as the gateway answered, so our bytes do not provoke a reset
                # that would discard its response.
                if select.select([c.sock], [], [], 0.005)[0]:
                    break
        except OSError:
            pass  # the gateway may answer and close before all of it is sent
        r = c.read_response(timeout=T(5))
        assert r.status == 431
        assert c.wait_closed(T(3))


def test_414_uri_too_long(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    r, closed = _limit_response(gw, get_request("/" + "a" * 20000), T)
    assert_plain_error(r.status, {k.lower(): v for k, v in r.headers}, r.body, 414)
    assert closed
    with RawConn(gw.port) as c:
        assert c.request(get_request("/" + "a" * 8000)).status == 200


def test_bad_file_beside_good_files(start_gateway, echo, http, T):
    gw = start_gateway({
        "good.yaml": [mapping("good", "/good/", echo.addr)],
        "broken-syntax.yaml": "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nspec: [oops\n",
    })
    assert http.get(gw.url("/good/"), timeout=T(5)).status_code == 200
    assert harness.wait_until(lambda: "broken-syntax.yaml" in gw.output(), T(3)), gw.output()


def test_bad_resource_dropped_rest_of_file_applies(start_gateway, echo, http, T):
    gw = start_gateway({"mixed.yaml": [
        mapping("fine", "/fine/", echo.addr),
        mapping("bad-regex", "/bad/([", echo.addr, prefix_regex=True),
        mapping("also-fine", "/also/", echo.addr),
    ]})
    assert http.get(gw.url("/fine/"), timeout=T(5)).status_code == 200
    assert http.get(gw.url("/also/"), timeout=T(5)).status_code == 200
    found = harness.wait_until(lambda: "Mapping/default/bad-regex" in gw.output(), T(3))
    assert found, "the dropped resource is not reported by name:\n" + gw.output()[-3000:]
    assert "mixed.yaml" in gw.output()


def test_upstream_errors_do_not_poison_later_requests(start_gateway, echo, http, T):
    gw = start_gateway([
        mapping("dead", "/dead/", f"127.0.0.1:{closed_port()}"),
        mapping("live", "/live/", echo.addr),
    ])
    with RawConn(gw.port, timeout=T(5)) as c:
        for _ in range(3):
            assert c.request(get_request("/dead/")).status == 503
            assert c.request(get_request("/live/")).status == 200


# ---------------------------------------------------------------------------------------------
# Clients that go away


def _assert_survives(gw, T):
    time.sleep(0.3)  # give a crash the chance to happen before we look
    assert gw.alive(), "proxenos died after a client disconnect\n" + gw.describe()
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/alive")).status == 200


def test_client_closes_before_response(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    with RawConn(gw.port) as c:
        c.send(get_request("/slow", headers=[("x-echo-delay-ms", "200")]))
    _assert_survives(gw, T)


def test_client_closes_right_after_request(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    for _ in range(5):
        with RawConn(gw.port) as c:
            c.send(get_request("/fast"))
    _assert_survives(gw, T)


def test_client_closes_mid_download(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(get_request("/dl", headers=[("x-echo-response-bytes", str(64 << 20))]))
        while len(c.buf) < (1 << 20):
            assert c._fill(time.monotonic() + T(5)), "download did not start"
    _assert_survives(gw, T)


def test_client_closes_mid_upload(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(b"POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10000000\r\n\r\n")
        c.send(b"x" * 100000)
    _assert_survives(gw, T)


def test_client_closes_with_pipelined_requests_pending(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(b"".join(get_request(f"/p/{i}") for i in range(100)))
        for _ in range(5):
            c.read_response()
    _assert_survives(gw, T)


@pytest.mark.slow
def test_slow_request_head_gets_408(start_gateway, echo, T):
    """Slowloris (edge-hardening row 26): a head still incomplete 10 s after its first byte is
    answered 408 and the connection closed, while other clients are served meanwhile."""
    gw = start_gateway([mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(20)) as slow:
        slow.send(b"GET / HTTP/1.1\r\nHost: a\r\nx-trickle: 1\r\n")
        t0 = time.monotonic()
        with RawConn(gw.port) as other:
            assert other.request(get_request("/ok")).status == 200
        r = slow.read_response(timeout=T(20))
        assert r.status == 408
        assert 9 <= time.monotonic() - t0 <= 15
        assert slow.wait_closed(timeout=T(5))
