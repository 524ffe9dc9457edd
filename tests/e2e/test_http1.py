"""HTTP/1.1 behaviour through the proxy: keep-alive, pipelining, bodies, 100-continue, HEAD,
hop-by-hop headers, forwarding headers, request ids, access log."""

import hashlib
import os
import re
import socket
import threading
import time

import pytest

import harness
from harness import RawConn, access_log_lines, get_request, mapping

# A random (version 4, RFC 4122 variant) UUID, as Envoy generates them.
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def gw(start_gateway, echo):
    return start_gateway([mapping("m", "/", echo.addr, rewrite="")])


def test_keep_alive_downstream(gw):
    with RawConn(gw.port) as c:
        for i in range(5):
            r = c.request(get_request(f"/ka/{i}"))
            assert r.status == 200
            assert r.json()["path"] == f"/ka/{i}"
            assert (r.header("connection") or "").lower() != "close"
        assert not c.wait_closed(0.3)


def test_client_connection_close_is_honoured(gw, T):
    with RawConn(gw.port) as c:
        r = c.request(get_request("/", headers=[("Connection", "close")]))
        assert r.status == 200
        assert (r.header("connection") or "").lower() == "close"
        assert c.wait_closed(T(3))


def test_pipelined_responses_in_order(gw, T):
    reqs = b"".join([
        get_request("/p/1", headers=[("x-echo-delay-ms", "300")]),
        get_request("/p/2", headers=[("x-echo-delay-ms", "0")]),
        get_request("/p/3", method="POST", body=b"hello"),
        get_request("/p/4", headers=[("x-echo-delay-ms", "100")]),
    ])
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(reqs)
        got = [c.read_response() for _ in range(4)]
    assert [r.status for r in got] == [200] * 4
    assert [r.json()["path"] for r in got] == ["/p/1", "/p/2", "/p/3", "/p/4"]
    assert got[2].json()["body_length"] == 5


def test_pipelined_burst_all_answered(gw, T):
    """1000 requests in one write, read as they come: every one is answered, in order."""
    n = 1000
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(b"".join(get_request(f"/b/{i}") for i in range(n)))
        for i in range(n):
            try:
                r = c.read_response(timeout=T(3))
            except TimeoutError:
                pytest.fail(f"stalled after {i} of {n} pipelined responses")
            assert r.status == 200 and r.json()["path"] == f"/b/{i}"


def test_content_length_upload(gw, http, T):
    body = os.urandom(1 << 20)
    r = http.post(gw.url("/up"), data=body, timeout=T(10))
    assert r.status_code == 200
    info = r.json()
    assert info["body_length"] == len(body)
    assert info["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert info["method"] == "POST"


def test_chunked_upload(gw, T):
    pieces = [os.urandom(n) for n in (1, 100, 70000, 3, 4096)]
    whole = b"".join(pieces)
    data = (b"POST /chunked HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n")
    for p in pieces:
        data += b"%x\r\n" % len(p) + p + b"\r\n"
    data += b"0\r\n\r\n"
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200
        info = r.json()
        assert info["body_length"] == len(whole)
        assert info["body_sha256"] == hashlib.sha256(whole).hexdigest()
        # The connection is still usable afterwards.
        assert c.request(get_request("/after")).json()["path"] == "/after"


def test_chunked_upload_with_generator(gw, http, T):
    parts = [b"a" * 1000, b"b" * 50000, b"c"]

    def gen():
        yield from parts

    r = http.post(gw.url("/gen"), data=gen(), timeout=T(10))
    assert r.status_code == 200
    assert r.json()["body_length"] == sum(map(len, parts))
    assert r.json()["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_content_length_download(gw, T):
    n = 3 * 1024 * 1024 + 7
    with RawConn(gw.port, timeout=T(10)) as c:
        c.send(get_request("/dl", headers=[("x-echo-response-bytes", str(n))]))
        r = c.read_response(timeout=T(10))
        assert r.status == 200
        assert r.header("content-length") == str(n)
        assert len(r.body) == n


def test_chunked_download(gw, T):
    n = 1000 * 1000 + 3
    with RawConn(gw.port, timeout=T(10)) as c:
        c.send(get_request("/dl", headers=[("x-echo-response-bytes", str(n)),
                                           ("x-echo-chunked", "1")]))
        r = c.read_response(timeout=T(10))
        assert r.status == 200
        assert "chunked" in (r.header("transfer-encoding") or "").lower()
        assert r.header("content-length") is None
        assert len(r.body) == n
        assert c.request(get_request("/after")).status == 200


BIG = int(os.environ.get("PROXENOS_E2E_BIG_MB", "512")) * 1024 * 1024
RSS_LIMIT_KIB = (350 if harness.SANITIZED else 100) * 1024


def _sample_peak(proc, stop, out):
    while not stop.is_set():
        v = proc.rss_kib()
        if v:
            out.append(v)
        stop.wait(0.05)


def test_large_upload_streams_in_bounded_memory(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr, timeout_ms=0)])
    block = bytes(range(256)) * 4096  # 1 MiB
    h = hashlib.sha256()
    samples, stop = [], threading.Event()
    sampler = threading.Thread(target=_sample_peak, args=(gw, stop, samples), daemon=True)
    sampler.start()
    try:
        with RawConn(gw.port, timeout=T(60)) as c:
            c.send(f"PUT /big HTTP/1.1\r\nHost: example.com\r\nContent-Length: {BIG}\r\n\r\n")
            sent = 0
            while sent < BIG:
                chunk = block[: min(len(block), BIG - sent)]
                c.sock.sendall(chunk)
                h.update(chunk)
                sent += len(chunk)
            r = c.read_response(timeout=T(60))
    finally:
        stop.set()
        sampler.join()
    assert r.status == 200, r
    assert r.json()["body_length"] == BIG
    assert r.json()["body_sha256"] == h.hexdigest()
    peak = max([gw.peak_rss_kib() or 0] + samples)
    assert peak < RSS_LIMIT_KIB, f"proxenos peak RSS {peak} KiB for a {BIG >> 20} MiB upload"


def test_large_download_streams_in_bounded_memory(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr, timeout_ms=0)])
    samples, stop = [], threading.Event()
    sampler = threading.Thread(target=_sample_peak, args=(gw, stop, samples), daemon=True)
    sampler.start()
    received = 0
    try:
        with RawConn(gw.port, timeout=T(60)) as c:
            c.send(get_request("/big", headers=[("x-echo-response-bytes", str(BIG))]))
            # Read the head, then stream the body without keeping it.
            while b"\r\n\r\n" not in c.buf:
                assert c._fill(time.monotonic() + T(30)), "no response head"
            head, _, rest = bytes(c.buf).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            assert re.search(rb"(?i)content-length: *%d\r?$" % BIG, head + b"\r\n", re.M), head
            received = len(rest)
            c.sock.settimeout(T(30))
            buf = bytearray(1 << 20)
            while received < BIG:
                n = c.sock.recv_into(buf)
                assert n > 0, f"connection closed after {received} bytes"
                received += n
    finally:
        stop.set()
        sampler.join()
    assert received == BIG
    peak = max([gw.peak_rss_kib() or 0] + samples)
    assert peak < RSS_LIMIT_KIB, f"proxenos peak RSS {peak} KiB for a {BIG >> 20} MiB download"


def test_expect_100_continue(gw, T):
    body = b"x" * 5000
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(f"POST /expect HTTP/1.1\r\nHost: example.com\r\nContent-Length: {len(body)}\r\n"
               "Expect: 100-continue\r\n\r\n")
        interim = c.read_response(timeout=T(3))  # must come before we send the body
        assert interim.status == 100
        c.send(body)
        r = c.read_final_response()
        assert r.status == 200
        assert r.json()["body_length"] == len(body)


def test_head_request(gw, T):
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(get_request("/h", method="HEAD", headers=[("x-echo-response-bytes", "1234")]))
        r = c.read_response(head_request=True)
        assert r.status == 200
        assert r.header("content-length") == "1234"
        # No body followed: the next response on the connection parses cleanly.
        r2 = c.request(get_request("/after"))
        assert r2.status == 200 and r2.json()["path"] == "/after"


def test_hop_by_hop_headers_removed(gw, T):
    with RawConn(gw.port, timeout=T(5)) as c:
        c.send(get_request("/hop", headers=[
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("TE", "trailers"),
            ("X-End-To-End", "kept"),
        ]))
        r = c.read_response()
    seen = r.json()["headers"]
    assert seen.get("x-end-to-end") == "kept"
    for h in ("x-hop", "keep-alive", "proxy-connection"):
        assert h not in seen, f"hop-by-hop header {h} reached the upstream: {seen}"
    assert "x-hop" not in (seen.get("connection") or "").lower()
    # TE is hop-by-hop; "trailers" (a client taking trailers, as gRPC needs) is all that is kept
    # of it, as Envoy does.
    assert seen.get("te") == "trailers"


@pytest.mark.parametrize("te,forwarded", [("trailers, deflate;q=0.5", "trailers"),
                                          ("gzip", None)])
def test_te_keeps_only_trailers(gw, T, te, forwarded):
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(get_request("/te", headers=[("TE", te), ("Connection", "TE")]))
    assert r.json()["headers"].get("te") == forwarded


def test_hop_by_hop_response_headers_removed(gw, T):
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(get_request("/hop", headers=[
            ("x-echo-header-Keep-Alive", "timeout=99"),
            ("x-echo-header-Proxy-Connection", "keep-alive"),
            ("x-echo-header-X-Kept", "yes"),
        ]))
    assert r.status == 200
    assert r.header("x-kept") == "yes"
    assert r.header("keep-alive") is None
    assert r.header("proxy-connection") is None


def test_forwarding_headers_added(gw, http, T):
    r = http.get(gw.url("/fwd"), timeout=T(5))
    seen = r.json()["headers"]
    assert seen.get("x-forwarded-proto") == "http"
    xff = [p.strip() for p in seen.get("x-forwarded-for", "").split(",")]
    assert xff[-1] == "127.0.0.1", seen


def test_client_xfp_not_trusted_without_l7depth(gw, http, T):
    r = http.get(gw.url("/fwd"), headers={"X-Forwarded-Proto": "https",
                                          "X-Forwarded-For": "203.0.113.9"}, timeout=T(5))
    seen = r.json()["headers"]
    assert seen.get("x-forwarded-proto") == "http"
    xff = [p.strip() for p in seen.get("x-forwarded-for", "").split(",")]
    assert xff[-1] == "127.0.0.1", seen


def test_request_id_generated(gw, http, T):
    ids = set()
    for _ in range(20):
        seen = http.get(gw.url("/rid"), timeout=T(5)).json()["headers"]
        rid = seen.get("x-request-id", "")
        assert UUID_RE.match(rid), f"x-request-id {rid!r} is not a UUID"
        ids.add(rid)
    assert len(ids) == 20
    # Every hex digit position varies (not a fixed pattern with one counter in it).
    for at in [i for i in range(36) if i not in (8, 13, 14, 18, 19, 23)]:
        assert len({rid[at] for rid in ids}) > 1, f"position {at} never changes: {sorted(ids)}"


def test_access_log_line_per_request(gw, echo, http, T):
    r = http.get(gw.url("/logged/path?x=1"), headers={"User-Agent": "e2e-agent/1.0",
                                                      "Host": "log.example.com"}, timeout=T(5))
    assert r.status_code == 200
    rid = r.json()["headers"].get("x-request-id", "")

    def find():
        return [l for l in access_log_lines(gw.stdout()) if l["path"] == "/logged/path?x=1"]

    lines = harness.wait_until(find, T(5))
    assert lines, "no access log line on stdout:\n" + gw.stdout()[-3000:]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "GET" and line["protocol"] == "HTTP/1.1"
    assert line["code"] == "200" and line["flags"] == "-"
    assert line["ua"] == "e2e-agent/1.0"
    assert line["authority"] == "log.example.com"
    assert line["upstream"] == echo.addr
    assert int(line["tx"]) > 0
    if rid:
        assert line["request_id"] == rid


def test_access_log_original_path_and_404(start_gateway, echo, http, T):
    gw = start_gateway([mapping("m", "/foo/", echo.addr)])
    http.get(gw.url("/foo/bar"), timeout=T(5))
    http.get(gw.url("/nowhere"), timeout=T(5))

    def find():
        lines = access_log_lines(gw.stdout())
        return lines if len(lines) >= 2 else None

    lines = harness.wait_until(find, T(5))
    assert lines, gw.stdout()
    by_path = {l["path"]: l for l in lines}
    assert "/foo/bar" in by_path, lines  # logged as received, not as rewritten
    assert by_path["/nowhere"]["code"] == "404"
    assert by_path["/nowhere"]["flags"] == "NR"


def test_many_concurrent_clients(gw, T):
    errors = []

    def worker(i):
        try:
            with RawConn(gw.port, timeout=T(10)) as c:
                for j in range(10):
                    r = c.request(get_request(f"/c/{i}/{j}"))
                    if r.status != 200 or r.json()["path"] != f"/c/{i}/{j}":
                        errors.append((i, j, r.status))
        except Exception as e:  # collected and asserted below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T(30))
    assert not errors, errors[:5]


def test_many_idle_connections_do_not_block_service(gw, T):
    socks = []
    try:
        for _ in range(200):
            socks.append(socket.create_connection(("127.0.0.1", gw.port), timeout=T(2)))
        with RawConn(gw.port) as c:
            assert c.request(get_request("/still")).status == 200
    finally:
        for s in socks:
            s.close()


def test_forged_original_path_is_not_logged(gw, T):
    """A client-supplied x-envoy-original-path must not reach the access log or the upstream as if
    the gateway had set it (CVE-2023-27487)."""
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(get_request("/real", headers=[("X-Envoy-Original-Path", "/forged"),
                                                    ("User-Agent", "forger")]))
    assert r.status == 200
    line = harness.wait_until(
        lambda: [l for l in access_log_lines(gw.stdout()) if l["ua"] == "forger"], T(5))
    assert line, gw.stdout()[-2000:]
    assert line[0]["path"] == "/real"
    assert r.json()["headers"].get("x-envoy-original-path") in (None, "/real")


def test_upgrade_without_allow_upgrade_is_403(gw, T):
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(get_request("/ws", headers=[("Connection", "Upgrade"),
                                                  ("Upgrade", "websocket"),
                                                  ("Sec-WebSocket-Version", "13"),
                                                  ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]))
    assert r.status == 403
    assert r.header("upgrade") is None


def test_listener_idle_timeout_closes_idle_keepalive(start_gateway, echo, T):
    """Module listener_idle_timeout_ms closes a kept-alive connection that stays idle, and a
    connection that keeps sending requests is not closed by it."""
    from harness import module, mapping
    gw = start_gateway([module({"listener_idle_timeout_ms": 1000}), mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(10)) as busy, RawConn(gw.port, timeout=T(10)) as idle:
        assert idle.request(get_request("/idle")).status == 200
        t0 = time.monotonic()
        # The busy connection sends a request every 300 ms for 2 s: it must stay open.
        while time.monotonic() - t0 < 2.0:
            assert busy.request(get_request("/busy")).status == 200
            time.sleep(0.3)
        assert idle.wait_closed(timeout=T(3)), "idle connection was not closed"
        assert busy.request(get_request("/busy")).status == 200
