"""gRPC through the gateway: an h2c client (Python grpcio) to a `grpc: true` Mapping, proxied over
an HTTP/2 upstream connection to the echo backend's `echo.Echo` service. All four call kinds,
statuses passed through, the gateway's own failures answered the gRPC way (no route, upstream
down, deadline), and an HTTP/1.1 client on the same Mapping."""

import json
import signal
import subprocess
import threading
import time
import urllib.request

import grpc
import pytest

import grpc_echo
import harness
from harness import closed_port, mapping

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def gw(start_gateway, echo):
    return start_gateway([
        mapping("grpc-echo", "/echo.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True,
                add_request_headers={"x-added": "by-route"}),
        mapping("grpc-dead", "/dead.Echo/", f"127.0.0.1:{closed_port()}", rewrite="/echo.Echo/",
                grpc=True),
        mapping("grpc-slow", "/slow.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True,
                timeout_ms=300),
        mapping("json", "/json/", echo.addr, grpc=True),
    ])


@pytest.fixture
def ch(gw):
    c = grpc_echo.channel(f"127.0.0.1:{gw.port}")
    yield c
    c.close()


def test_unary(ch, gw):
    r = grpc_echo.unary(ch, b"\x00hello\xff", metadata={"x-trace": "abc"}, timeout=10)
    assert r.ok, r
    assert r.message == b"\x00hello\xff"
    assert r.initial["x-echo-x-trace"] == "abc"
    assert r.initial["x-echo-x-added"] == "by-route"  # the route's header edits apply
    assert r.initial["x-echo-authority"] == f"127.0.0.1:{gw.port}"
    assert r.initial["server"] == "envoy"
    assert r.trailing["x-message-count"] == "1"


def test_many_unary_calls_share_upstream_connections(ch):
    for i in range(50):
        r = grpc_echo.unary(ch, b"n%d" % i, timeout=10)
        assert r.ok and r.message == b"n%d" % i, r


def test_server_stream_messages_arrive_one_by_one(ch):
    r = grpc_echo.server_stream(ch, b"p", metadata={"x-count": "5", "x-delay-ms": "150"},
                                timeout=20)
    assert r.ok, r
    assert r.messages == [b"p-0", b"p-1", b"p-2", b"p-3", b"p-4"]
    gaps = [b - a for a, b in zip(r.arrivals, r.arrivals[1:])]
    assert all(g >= 0.1 for g in gaps), r.arrivals
    assert r.elapsed - r.arrivals[0] >= 0.5  # the first one did not wait for the last


def test_server_stream_large_messages(ch):
    r = grpc_echo.server_stream(ch, b"x", metadata={"x-count": "8", "x-message-bytes": "300000"},
                                timeout=20)
    assert r.ok, r
    assert r.messages == [b"a" * 300000] * 8


def test_client_stream(ch):
    r = grpc_echo.client_stream(ch, [b"ab", b"", b"cd", b"e"], timeout=10)
    assert r.ok, r
    assert r.message == b"abcde"
    assert r.trailing["x-message-count"] == "4"


def test_client_stream_large_body(ch):
    parts = [bytes([65 + i]) * 200000 for i in range(5)]
    r = grpc_echo.client_stream(ch, parts, timeout=20)
    assert r.ok, r
    assert r.message == b"".join(parts)


def test_bidi_echoes_each_message_as_it_arrives(ch):
    with grpc_echo.BidiSession(ch, metadata={"x-k": "v"}, timeout=20) as s:
        for i in range(5):
            s.send(b"m%d" % i)
            assert s.recv(timeout=5) == b"m%d" % i  # before the next is sent
        s.done_sending()
        r = s.finish()
    assert r.ok, r
    assert r.messages == [b"m%d" % i for i in range(5)]
    assert r.initial["x-echo-x-k"] == "v"
    assert r.trailing["x-message-count"] == "5"


def test_error_status_passed_through(ch):
    r = grpc_echo.unary(ch, b"x", metadata={"x-fail-status": "7",
                                                "x-fail-message": "nope %C3%BC"},
                        timeout=10)
    assert r.code == grpc.StatusCode.PERMISSION_DENIED, r
    assert r.details == "nope ü"
    r = grpc_echo.server_stream(ch, b"x", metadata={"x-count": "3", "x-fail-status": "9",
                                                    "x-fail-after": "2"}, timeout=10)
    assert r.code == grpc.StatusCode.FAILED_PRECONDITION, r
    assert r.messages == [b"x-0", b"x-1"]


def test_deadline_exceeded_from_grpc_timeout(ch):
    r = grpc_echo.unary(ch, b"x", metadata={"x-delay-ms": "3000"}, timeout=0.4)
    assert r.code == grpc.StatusCode.DEADLINE_EXCEEDED, r
    assert r.elapsed < 2.5


def test_deadline_exceeded_from_route_timeout(ch):
    # /slow.Echo/ has a 300 ms route timeout, smaller than the client's 10 s deadline.
    call = ch.unary_unary("/slow.Echo/Unary", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        call.with_call(b"x", metadata=(("x-delay-ms", "2000"),), timeout=10)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timeout" in err.value.details()
    assert time.monotonic() - start < 1.5


def test_deadline_exceeded_after_headers_ends_with_trailers(ch):
    r = grpc_echo.server_stream(ch, b"s", metadata={"x-count": "20", "x-delay-ms": "100"},
                                timeout=0.55)
    assert r.code == grpc.StatusCode.DEADLINE_EXCEEDED, r
    assert 1 <= len(r.messages) < 20


def test_route_timeout_spans_the_whole_streamed_response(ch):
    # /slow.Echo/'s 300 ms route timeout runs until the response is complete (Envoy's), not
    # just until its head: a 2 s stream is ended with DEADLINE_EXCEEDED trailers after a few
    # messages, though the client's own deadline is far away.
    call = ch.unary_stream("/slow.Echo/ServerStream", request_serializer=lambda b: b,
                           response_deserializer=lambda b: b)
    start = time.monotonic()
    got = []
    with pytest.raises(grpc.RpcError) as err:
        for m in call(b"s", metadata=(("x-count", "20"), ("x-delay-ms", "100")), timeout=10):
            got.append(m)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.value
    assert err.value.details() == "upstream request timeout"
    assert 1 <= len(got) < 20
    assert time.monotonic() - start < 1.5


def test_no_route_is_unimplemented(ch):
    call = ch.unary_unary("/nothing.Here/Call", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        call(b"x", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_upstream_down_is_unavailable(ch):
    call = ch.unary_unary("/dead.Echo/Unary", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        call(b"x", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "upstream connect error" in err.value.details()


def test_concurrent_calls_multiplexed(ch):
    calls = [grpc_echo.server_stream_call(ch, b"c%d" % i, metadata={"x-count": "3",
                                                                    "x-delay-ms": "50"},
                                          timeout=20) for i in range(20)]
    for i, call in enumerate(calls):
        assert list(call) == [b"c%d-%d" % (i, k) for k in range(3)]
        assert call.code() == grpc.StatusCode.OK


def test_client_cancel_resets_upstream_and_gateway_stays_healthy(ch):
    call = grpc_echo.server_stream_call(ch, b"z", metadata={"x-count": "100",
                                                            "x-delay-ms": "20"}, timeout=20)
    it = iter(call)
    assert next(it) == b"z-0"
    call.cancel()
    r = grpc_echo.unary(ch, b"after", timeout=10)
    assert r.ok and r.message == b"after", r


def test_http1_client_on_grpc_mapping(gw):
    # An HTTP/1.1 client on a grpc: true Mapping goes upstream over HTTP/2 too.
    req = urllib.request.Request(gw.url("/json/hello"), data=b'{"a": 1}', method="POST",
                                 headers={"content-type": "application/json"})
    with _OPENER.open(req, timeout=10) as r:
        assert r.status == 200
        info = json.loads(r.read())
    assert info["protocol"] == "HTTP/2"
    assert info["method"] == "POST"
    assert info["path"] == "/hello"
    assert info["body_length"] == 8


def test_curl_http1_to_http2_upstream(gw):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http1.1", "-m", "10", "-i",
                        "-H", "content-type: application/json", "--data-binary", '{"b": 2}',
                        gw.url("/json/x?q=1")], capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    info = json.loads(body)
    assert info["protocol"] == "HTTP/2"
    assert info["method"] == "POST"
    assert info["body_length"] == 8
    assert info["path"] == "/x?q=1"
    assert info["headers"]["x-forwarded-proto"] == "http"
    assert "transfer-encoding" not in info["headers"]


def test_curl_http1_large_chunked_upload_to_http2_upstream(gw, tmp_path):
    # 3 MiB, chunked by curl: far beyond the stream windows and our buffers, so the body must
    # stream through submit_data's back-pressure.
    data = tmp_path / "body.bin"
    data.write_bytes(bytes(range(256)) * (3 * 4096))
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http1.1", "-m", "20",
                        "-H", "transfer-encoding: chunked", "-H", "content-type: application/x",
                        "--data-binary", f"@{data}", gw.url("/json/up")],
                       capture_output=True, timeout=25)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["protocol"] == "HTTP/2"
    assert info["body_length"] == 3 * 1024 * 1024


def _grpc_frame(payload, flags=0):
    return bytes([flags]) + len(payload).to_bytes(4, "big") + payload


def _parse_chunked_with_trailers(buf):
    """(head lines, body, trailer lines, bytes used) of one chunked response, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    pos = end + 4
    body = b""
    while True:
        le = buf.find(b"\r\n", pos)
        if le < 0:
            return None
        size = int(buf[pos:le], 16)
        if size == 0:
            # "0" CRLF, trailer lines each ending in CRLF, then an empty line.
            tend = buf.find(b"\r\n\r\n", le)
            if tend < 0:
                return None
            trailers = buf[le + 2:tend].decode("latin-1").split("\r\n") if tend > le else []
            return head, body, trailers, tend + 4
        if len(buf) < le + 2 + size + 2:
            return None
        body += buf[le + 2:le + 2 + size]
        pos = le + 2 + size + 2


def _read_chunked_with_trailers(conn):
    deadline = time.monotonic() + 10
    while True:
        parsed = _parse_chunked_with_trailers(bytes(conn.buf))
        if parsed is not None:
            head, body, trailers, used = parsed
            del conn.buf[:used]
            return head, body, trailers
        assert not conn.eof, bytes(conn.buf)
        assert time.monotonic() < deadline, bytes(conn.buf)
        conn._fill(deadline)


def _h1_grpc_request(path, payload, te=True, extra=""):
    body = _grpc_frame(payload)
    return (f"POST {path} HTTP/1.1\r\nHost: h1.example\r\ncontent-type: application/grpc\r\n"
            + ("te: trailers\r\n" if te else "") + extra
            + f"content-length: {len(body)}\r\n\r\n").encode() + body


def test_http1_grpc_call_gets_trailers_as_chunked_trailers(gw):
    with harness.RawConn(gw.port) as c:
        c.send(_h1_grpc_request("/echo.Echo/Unary", b"\x00hi\xff", extra="x-trace: t1\r\n"))
        head, body, trailers = _read_chunked_with_trailers(c)
        assert head[0] == "HTTP/1.1 200 OK", head
        lower = [h.lower() for h in head]
        assert "transfer-encoding: chunked" in lower
        assert "content-type: application/grpc" in lower
        assert "x-echo-x-trace: t1" in lower
        assert body == _grpc_frame(b"\x00hi\xff")
        assert "grpc-status: 0" in trailers, trailers
        assert "x-message-count: 1" in trailers, trailers
        # Keep-alive: the next exchange on the same connection, without te: trailers, gets the
        # same body and no trailers.
        c.send(_h1_grpc_request("/echo.Echo/Unary", b"second", te=False))
        head, body, trailers = _read_chunked_with_trailers(c)
        assert head[0] == "HTTP/1.1 200 OK", head
        assert body == _grpc_frame(b"second")
        assert trailers == []


def test_http1_grpc_trailers_only_failure(gw):
    with harness.RawConn(gw.port) as c:
        c.send(_h1_grpc_request("/echo.Echo/Unary", b"x",
                                extra="x-fail-status: 7\r\nx-fail-message: nope\r\n"))
        head, body, trailers = _read_chunked_with_trailers(c)
        assert head[0] == "HTTP/1.1 200 OK", head
        lower = [h.lower() for h in head]
        assert "grpc-status: 7" in lower, head  # trailers-only: the status is in the head
        assert body == b""


def test_h2c_json_request_on_grpc_mapping_goes_upstream_over_http2(gw):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m", "10",
                        "-H", "content-type: application/json", "--data-binary", '{"b": 2}',
                        gw.url("/json/x?q=1")], capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["protocol"] == "HTTP/2"
    assert info["method"] == "POST"
    assert info["body_length"] == 8
    assert info["path"] == "/x?q=1"
    assert info["headers"]["x-forwarded-proto"] == "http"
    assert info["headers"]["x-request-id"]


# ---------------------------------------------------------------------------------------------
# The upstream HTTP/2 connections: concurrency limit, GOAWAY, resets.


def _cx_total(gw):
    """upstream_cx_total summed over the gateway's clusters (Prometheus scrape)."""
    with _OPENER.open(gw.admin_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("envoy_cluster_upstream_cx_total"))


@pytest.fixture
def limited_echo(tmp_path):
    port = harness.free_port()
    proc = harness.Proc([harness.echo_bin(), "--listen", f"127.0.0.1:{port}", "--name", "lim",
                         "--h2-max-streams", "1"], str(tmp_path / "lim"), "echo-lim")
    assert harness.wait_for_tcp("127.0.0.1", port, harness.scaled(10), proc)
    yield f"127.0.0.1:{port}"
    proc.stop()


def test_max_concurrent_streams_spreads_over_connections(start_gateway, limited_echo):
    gw = start_gateway([mapping("g", "/echo.Echo/", limited_echo, rewrite="/echo.Echo/",
                                grpc=True)], workers=1)
    ch = grpc_echo.channel(f"127.0.0.1:{gw.port}")
    assert grpc_echo.unary(ch, b"warm", timeout=10).ok  # the first connection, with SETTINGS
    results = [None] * 4

    def run(i):
        results[i] = grpc_echo.server_stream(ch, b"c%d" % i, metadata={"x-count": "3",
                                                                       "x-delay-ms": "300"},
                                             timeout=20)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    for i, r in enumerate(results):
        assert r.ok and r.messages == [b"c%d-%d" % (i, k) for k in range(3)], r
    # One stream per upstream connection: the four calls ran side by side on four connections
    # instead of one after another on one.
    assert elapsed < 2.5, elapsed
    assert _cx_total(gw) >= 4
    ch.close()


def _h2c(gw, path, *args):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m", "10",
                        "-o", "/dev/null", "-w", "%{http_code}"] + list(args) + [gw.url(path)],
                       capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


def test_upstream_goaway_moves_new_requests_to_a_new_connection(start_gateway, echo):
    gw = start_gateway([mapping("json", "/json/", echo.addr, grpc=True)], workers=1)
    assert _h2c(gw, "/json/a") == 200
    before = _cx_total(gw)
    assert _h2c(gw, "/json/b", "-H", "x-echo-close: 1") == 200  # the upstream sends GOAWAY
    for i in range(5):
        assert _h2c(gw, f"/json/c{i}") == 200
    assert _cx_total(gw) == before + 1


def test_upstream_reset_before_headers_is_503(start_gateway, echo):
    gw = start_gateway([mapping("json", "/json/", echo.addr, grpc=True)], workers=1)
    assert _h2c(gw, "/json/r", "-H", "x-echo-reset: 1") == 503
    assert _h2c(gw, "/json/ok") == 200


def _cx_active(gw):
    with _OPENER.open(gw.admin_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("envoy_cluster_upstream_cx_active"))


def test_idle_upstream_connection_closes_after_cluster_idle_timeout(start_gateway, echo):
    gw = start_gateway([mapping("g", "/echo.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True,
                                cluster_idle_timeout_ms=300)], workers=1)
    ch = grpc_echo.channel(f"127.0.0.1:{gw.port}")
    assert grpc_echo.unary(ch, b"x", timeout=10).ok
    assert _cx_active(gw) == 1
    assert harness.wait_until(lambda: _cx_active(gw) == 0, harness.scaled(5))
    assert grpc_echo.unary(ch, b"again", timeout=10).ok  # a fresh connection
    ch.close()


def test_grpc_to_tls_upstream_negotiates_h2(start_gateway, tmp_path):
    from pki import Pki
    pki = Pki(tmp_path / "pki")
    crt, key = pki.server("up", "up.example.com", ips=("127.0.0.1",))
    port = harness.free_port()
    proc = harness.Proc([harness.echo_bin(), "--listen", f"127.0.0.1:{port}", "--name", "tls",
                         "--tls-cert", crt, "--tls-key", key], str(tmp_path / "tlsup"), "echo-tls")
    try:
        assert harness.wait_for_tcp("127.0.0.1", port, harness.scaled(10), proc)
        gw = start_gateway([mapping("g", "/echo.Echo/", f"https://127.0.0.1:{port}",
                                    rewrite="/echo.Echo/", grpc=True),
                            mapping("j", "/json/", f"https://127.0.0.1:{port}", grpc=True)])
        r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m",
                            "10", gw.url("/json/t")], capture_output=True, timeout=15)
        info = json.loads(r.stdout)
        assert info["protocol"] == "HTTP/2" and info["scheme"] == "https", info
        ch = grpc_echo.channel(f"127.0.0.1:{gw.port}")
        r = grpc_echo.server_stream(ch, b"t", metadata={"x-count": "3"}, timeout=10)
        assert r.ok and r.messages == [b"t-0", b"t-1", b"t-2"], r
        r = grpc_echo.client_stream(ch, [b"a" * 100000] * 5, timeout=10)
        assert r.ok and r.message == b"a" * 500000, r
        ch.close()
    finally:
        proc.stop()


def test_upstream_dies_mid_stream_then_unavailable(start_gateway, tmp_path):
    port = harness.free_port()
    proc = harness.Proc([harness.echo_bin(), "--listen", f"127.0.0.1:{port}", "--name", "die"],
                        str(tmp_path / "die"), "echo-die")
    assert harness.wait_for_tcp("127.0.0.1", port, harness.scaled(10), proc)
    gw = start_gateway([mapping("g", "/echo.Echo/", f"127.0.0.1:{port}", rewrite="/echo.Echo/",
                                grpc=True)], workers=1)
    ch = grpc_echo.channel(f"127.0.0.1:{gw.port}")
    call = grpc_echo.server_stream_call(ch, b"d", metadata={"x-count": "100",
                                                            "x-delay-ms": "50"}, timeout=20)
    it = iter(call)
    assert next(it) == b"d-0"
    proc.signal(signal.SIGKILL)
    proc.wait(harness.scaled(5))
    with pytest.raises(grpc.RpcError):
        for _ in it:
            pass
    assert call.code() != grpc.StatusCode.OK  # reset after headers, not a clean end
    r = grpc_echo.unary(ch, b"x", timeout=10)
    assert r.code == grpc.StatusCode.UNAVAILABLE, r
    assert gw.alive()
    ch.close()


def test_http1_grpc_large_server_stream_with_slow_reader(gw):
    # 2.4 MB of messages to a client that reads late: held back by flow control, then whole.
    with harness.RawConn(gw.port, timeout=20) as c:
        c.send(_h1_grpc_request("/echo.Echo/ServerStream", b"x",
                                extra="x-count: 8\r\nx-message-bytes: 300000\r\n"))
        time.sleep(1.0)
        head, body, trailers = _read_chunked_with_trailers(c)
    assert head[0] == "HTTP/1.1 200 OK", head
    assert body == _grpc_frame(b"a" * 300000) * 8
    assert "grpc-status: 0" in trailers, trailers


def test_http1_to_unreachable_http2_upstream(gw):
    with harness.RawConn(gw.port) as c:
        r = c.request("GET /dead.Echo/Unary HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 503, r
    assert b"upstream connect error" in r.body
