"""HTTP/2 downstream: h2c with prior knowledge on a cleartext port that also serves HTTP/1.1, and h2
over TLS by ALPN, each stream proxied to an HTTP/1.1 upstream (the echo backend). Real clients:
curl, nghttp and h2load; a hand-built frame client for stream resets."""

import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import time

import pytest

import harness
from harness import access_log_lines, closed_port, free_port, host, listener, mapping
from pki import Pki, tls_secret
from test_http2_edge import block, frame  # raw-frame helpers


def curl(args, timeout=20):
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", str(timeout)] + args,
                          capture_output=True, timeout=timeout + 5)


def h2c(gw, path, *args, timeout=20):
    """curl --http2-prior-knowledge; returns (status, headers dict, body bytes, http_version)."""
    r = curl(["--http2-prior-knowledge", "-i", "-w", "\n%{http_version}"] + list(args) +
             [gw.url(path)], timeout=timeout)
    assert r.returncode == 0, r.stderr.decode("latin-1")
    return parse_curl_i(r.stdout)


def parse_curl_i(out):
    out, _, version = out.rpartition(b"\n")
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body, version.decode()


@pytest.fixture
def gw(start_gateway, echo):
    return start_gateway([
        mapping("m", "/", echo.addr, rewrite=""),
        mapping("dead", "/dead/", f"127.0.0.1:{closed_port()}"),
        mapping("slow", "/slow/", echo.addr, timeout_ms=300),
        mapping("idle", "/idle/", echo.addr, timeout_ms=0, idle_timeout_ms=300),
    ])


@pytest.fixture
def narrow_gw(start_gateway, echo):
    """Only /only/ is routed."""
    return start_gateway([mapping("only", "/only/", echo.addr)])


def test_get_with_prior_knowledge(gw):
    status, headers, body, version = h2c(
        gw, "/hello?x=1", "-H", "cookie: a=1", "-H", "cookie: b=2", "-H", "te: trailers",
        "-H", "x-custom: yes")
    assert version == "2"
    assert status == 200
    assert headers["server"] == "envoy"
    assert "x-envoy-upstream-service-time" in headers
    info = json.loads(body)
    assert info["http_version"] == "HTTP/1.1"  # the upstream leg stays HTTP/1.1
    assert info["method"] == "GET"
    assert info["path"] == "/hello?x=1"
    h = info["headers"]
    assert h["host"] == f"127.0.0.1:{gw.port}"  # :authority became Host
    assert h["cookie"] == "a=1; b=2"  # crumbs joined (RFC 9113 §8.2.3)
    assert h["te"] == "trailers"  # all that is kept of the hop-by-hop TE (as Envoy does)
    assert h["x-custom"] == "yes"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-request-id"]


def test_same_port_still_serves_http11(gw, http):
    r = http.get(gw.url("/h1"), timeout=10)
    assert r.status_code == 200 and r.json()["path"] == "/h1"
    status, _, body, version = h2c(gw, "/h2")
    assert version == "2" and status == 200 and json.loads(body)["path"] == "/h2"


def test_post_body_echoed(gw, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 11)
    f = tmp_path / "up.bin"
    f.write_bytes(data)
    status, _, body, _ = h2c(gw, "/post", "--data-binary", f"@{f}")
    info = json.loads(body)
    assert status == 200
    assert info["method"] == "POST"
    assert info["body_length"] == len(data)
    assert info["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert info["headers"]["content-length"] == str(len(data))


def test_post_unknown_length_is_rechunked(gw, tmp_path):
    data = os.urandom(700 * 1024)
    f = tmp_path / "up.bin"
    f.write_bytes(data)
    # -T with stdin: curl sends DATA frames without a content-length.
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", "20", "--http2-prior-knowledge",
                        "-X", "POST", "-T", "-", gw.url("/chunked")], input=data,
                       capture_output=True, timeout=25)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["body_length"] == len(data)
    assert info["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert info["headers"].get("transfer-encoding") == "chunked"
    assert "content-length" not in info["headers"]


def test_large_download_streamed(gw, tmp_path):
    n = 20 * 1024 * 1024
    out = tmp_path / "big.out"
    r = curl(["--http2-prior-knowledge", "-H", f"x-echo-response-bytes: {n}", "-o", str(out),
              "-w", "%{http_code} %{size_download} %{http_version}", gw.url("/big")], timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == f"200 {n} 2"
    assert out.stat().st_size == n


def test_head_request(gw):
    r = curl(["--http2-prior-knowledge", "-I", gw.url("/head")])
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode("latin-1")
    assert text.startswith("HTTP/2 200")
    assert "content-length:" in text


def test_nghttp(gw):
    r = subprocess.run(["nghttp", "-nv", gw.url("/nghttp")], capture_output=True, timeout=20)
    out = r.stdout.decode("latin-1")
    assert r.returncode == 0, out + r.stderr.decode("latin-1")
    # nghttp opens its request on stream 13 after its priority-anchor streams.
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    assert "END_STREAM" in out


def h2load(args, timeout=60):
    r = subprocess.run(["h2load"] + args, capture_output=True, timeout=timeout)
    out = r.stdout.decode("latin-1")
    assert r.returncode == 0, out + r.stderr.decode("latin-1")
    return out


def test_h2load_all_2xx(gw):
    out = h2load(["-n", "2000", "-c", "10", "-m", "10", gw.url("/load")])
    assert "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded" in out, out
    assert "status codes: 2000 2xx" in out, out


def test_many_concurrent_streams_on_one_connection(gw):
    # 100 streams in flight at once on one connection, each held 50 ms by the upstream.
    out = h2load(["-n", "500", "-c", "1", "-m", "100", "-H", "x-echo-delay-ms: 50",
                  gw.url("/many")])
    assert "status codes: 500 2xx" in out, out


def test_access_log_says_http2(gw, T):
    h2c(gw, "/logged", "-A", "h2-log-e2e")
    deadline = time.monotonic() + T(5)
    while time.monotonic() < deadline:
        lines = [l for l in access_log_lines(gw.stdout()) if l["ua"] == "h2-log-e2e"]
        if lines:
            break
        time.sleep(0.05)
    assert lines, gw.stdout()
    assert lines[0]["protocol"] == "HTTP/2"
    assert lines[0]["path"] == "/logged"
    assert lines[0]["code"] == "200"


# ---------------------------------------------------------------------------------------------
# Errors the gateway produces.


def test_upstream_connect_failure_is_503(gw):
    status, headers, body, _ = h2c(gw, "/dead/x")
    assert status == 503
    assert body == (b"upstream connect error or disconnect/reset before headers. reset reason: "
                    b"connection failure\n")
    assert headers["content-type"] == "text/plain"


def test_route_timeout_is_504(gw):
    status, _, body, _ = h2c(gw, "/slow/x", "-H", "x-echo-delay-ms: 2000")
    assert status == 504
    assert body == b"upstream request timeout\n"


def test_stream_idle_timeout_is_408(gw):
    status, _, body, _ = h2c(gw, "/idle/x", "-H", "x-echo-delay-ms: 2000")
    assert status == 408
    assert body == b"stream timeout\n"


def test_no_route_is_404(narrow_gw):
    status, _, body, _ = h2c(narrow_gw, "/svc.Echo/M")
    assert status == 404
    status, _, _, _ = h2c(narrow_gw, "/only/x")
    assert status == 200


def grpc_call(gw, path, *extra):
    status, headers, body, _ = h2c(gw, path, "-X", "POST", "-H", "content-type: application/grpc",
                                   "-H", "te: trailers", "--data-binary", "", *extra)
    assert status == 200
    assert headers["content-type"] == "application/grpc"
    assert body == b""
    return headers


def test_grpc_upstream_unavailable(gw):
    headers = grpc_call(gw, "/dead/svc.Echo/Unary")
    assert headers["grpc-status"] == "14"  # UNAVAILABLE
    assert headers["grpc-message"].startswith("upstream connect error")


def test_grpc_no_route_is_unimplemented(narrow_gw):
    headers = grpc_call(narrow_gw, "/svc.Echo/Unary")
    assert headers["grpc-status"] == "12"  # UNIMPLEMENTED


# Answered at the request head while the client is still uploading: the gateway takes the rest of
# the body until the client's END_STREAM and a frame follows it, so curl 7.88 (which notices a
# stream its own END_STREAM closed only when input arrives) finishes instead of waiting for -m.
# A 2xx answer keeps curl uploading; a 404 makes it stop ("HTTP error before end of send").
EARLY_ANSWERS = [
    ("/nowhere.Svc/Call", ["-H", "content-type: application/grpc", "-H", "te: trailers"], 200,
     "12"),
    ("/nowhere/plain", [], 404, None),
]


def upload_runs(url, extra, body, status, grpc_status, runs, *curl_args, stdin=False):
    args = ["curl", "-sS", "--noproxy", "*", "-m", "5", "-D", "-", "-o", "/dev/null"]
    args += list(curl_args) + extra
    args += ["-T", "-", "-X", "POST"] if stdin else ["--data-binary", "@-"]
    for i in range(runs):
        r = subprocess.run(args + [url], input=body, capture_output=True, timeout=15)
        assert r.returncode == 0, (i, r.returncode, r.stderr)
        lines = r.stdout.decode("latin-1").split("\r\n")
        assert lines[0].split()[:2] == ["HTTP/2", str(status)], (i, lines)
        found = [l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("grpc-status:")]
        assert found == ([grpc_status] if grpc_status else []), (i, lines)


@pytest.mark.parametrize("path,extra,status,grpc_status", EARLY_ANSWERS)
@pytest.mark.parametrize("size", [3 * 1024, 200 * 1024])  # 200 KB: past the 64 KiB window
def test_upload_still_going_when_answered_at_the_head(narrow_gw, path, extra, status,
                                                      grpc_status, size):
    body = b"\x00" + (size - 5).to_bytes(4, "big") + os.urandom(size - 5)
    upload_runs(narrow_gw.url(path), extra, body, status, grpc_status, 30,
                "--http2-prior-knowledge")


def test_upload_of_unknown_length_answered_at_the_head(narrow_gw):
    # -T -: no content-length, and curl ends the body with an empty END_STREAM DATA frame.
    path, extra, status, grpc_status = EARLY_ANSWERS[0]
    upload_runs(narrow_gw.url(path), extra, os.urandom(200 * 1024), status, grpc_status, 30,
                "--http2-prior-knowledge", stdin=True)


def test_upload_past_the_drain_limit_is_stopped_with_no_error(narrow_gw):
    # More than 4 MiB after the answer: RST_STREAM(NO_ERROR) stops the upload (RFC 9113 §8.1).
    # nghttp takes the complete answer and exits cleanly; the gateway keeps serving.
    path = "/nowhere.Svc/Call"
    r = subprocess.run(["nghttp", "-v", "-H", "content-type: application/grpc", "-d", "-",
                        narrow_gw.url(path)], input=os.urandom(8 * 1024 * 1024),
                       capture_output=True, timeout=30)
    out = r.stdout.decode("latin-1")
    assert "grpc-status: 12" in out, out[-2000:]
    assert re.search(r"recv RST_STREAM frame <length=4, flags=0x00, stream_id=\d+>\s+"
                     r"\(error_code=NO_ERROR", out), out[-2000:]
    grpc_call(narrow_gw, "/svc.Echo/Unary")


def test_a_request_left_unfinished_after_its_answer_is_reset_after_the_drain(narrow_gw, T):
    # Answered at its head (no route: UNIMPLEMENTED), then the client goes silent without
    # ending the request: after the 5 s drain the gateway resets the stream with NO_ERROR, so
    # the stream neither holds one of the 100 slots nor its access-log line until the
    # connection closes. The connection goes on serving.
    c = RawH2(narrow_gw.port, timeout=T(15))
    try:
        c.request(1, "/nowhere.Svc/Call", [("content-type", "application/grpc"),
                                           ("te", "trailers")], end_stream=False)
        answered_at = None
        reset = None
        while reset is None:
            ftype, flags, sid, payload = c.read_frame()
            if sid == 1 and ftype == 1 and flags & 1:
                answered_at = time.monotonic()
            elif sid == 1 and ftype == 3:
                reset = (time.monotonic(), int.from_bytes(payload, "big"))
        assert answered_at is not None, "the answer comes before the reset"
        waited, code = reset[0] - answered_at, reset[1]
        assert code == 0, code  # NO_ERROR: "stop sending", not a failure
        assert waited > 4, waited
        assert harness.wait_until(lambda: [l for l in access_log_lines(narrow_gw.stdout())
                                           if l["path"] == "/nowhere.Svc/Call"], T(3))
        c.request(3, "/only/after")
        assert json.loads(c.read_response_body(3))["path"] == "/after"  # prefix rewritten
    finally:
        c.close()


@pytest.mark.parametrize("method,length", [("POST", "0"), ("PUT", "0"), ("PATCH", "0"),
                                           ("GET", None), ("DELETE", None)])
def test_a_request_ended_with_its_head_tells_an_http1_upstream_its_length(gw, method, length):
    # HEADERS with END_STREAM and no content-length: a method that expects a body goes to the
    # HTTP/1.1 upstream with content-length: 0 (as Envoy's codec sends it; some servers answer
    # 411 without), the others with no framing field at all.
    status, _, body, version = h2c(gw, "/bodiless", "-X", method)
    assert (status, version) == (200, "2")
    info = json.loads(body)
    assert info["method"] == method
    assert info["headers"].get("content-length") == length
    assert "transfer-encoding" not in info["headers"]


def test_grpc_timeout_is_deadline_exceeded(gw):
    headers = grpc_call(gw, "/slow/svc.Echo/Unary", "-H", "x-echo-delay-ms: 2000")
    assert headers["grpc-status"] == "4"  # DEADLINE_EXCEEDED
    assert headers["grpc-message"] == "upstream request timeout"


# ---------------------------------------------------------------------------------------------
# A hand-built client: stream resets.


class RawH2:
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))

    def request(self, stream, path, headers=(), end_stream=True, authority="example.com"):
        fields = [(":method", "GET"), (":scheme", "http"), (":path", path),
                  (":authority", authority)] + list(headers)
        flags = 0x4 | (0x1 if end_stream else 0)
        self.sock.sendall(frame(1, flags, stream, block(fields)))

    def reset(self, stream, code=8):
        self.sock.sendall(frame(3, 0, stream, struct.pack(">I", code)))

    def read_frame(self):
        while len(self.buf) < 9:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        length = int.from_bytes(self.buf[:3], "big")
        while len(self.buf) < 9 + length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        ftype, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload = self.buf[9:9 + length]
        self.buf = self.buf[9 + length:]
        if ftype == 4 and not flags & 1:
            self.sock.sendall(frame(4, 1, 0))  # SETTINGS ACK
        return ftype, flags, stream, payload

    def read_response_body(self, stream):
        """DATA of `stream` until END_STREAM (other streams' frames are skipped)."""
        body = b""
        while True:
            ftype, flags, sid, payload = self.read_frame()
            if sid != stream:
                continue
            if ftype == 3:
                raise ConnectionError(f"stream {stream} reset")
            if ftype == 0:
                body += payload
            if ftype in (0, 1) and flags & 1:
                return body

    def close(self):
        self.sock.close()


def test_client_reset_closes_the_upstream_connection(gw, echo, T):
    c = RawH2(gw.port, timeout=T(10))
    try:
        c.request(1, "/reset-me", [("x-echo-delay-ms", "3000")])
        # The upstream connection for stream 1 is open while the upstream delays its answer.
        assert harness.wait_until(lambda: harness.tcp_connections(remote_port=echo.port,
                                                                  state="01"), T(5))
        c.reset(1)
        assert harness.wait_until(
            lambda: not harness.tcp_connections(remote_port=echo.port, state="01"), T(3)), \
            "the upstream connection of a reset stream must be closed"
        # The connection still serves new streams.
        c.request(3, "/after-reset")
        body = c.read_response_body(3)
        assert json.loads(body)["path"] == "/after-reset"
    finally:
        c.close()
    deadline = time.monotonic() + T(5)
    lines = []
    while time.monotonic() < deadline and not lines:
        lines = [l for l in access_log_lines(gw.stdout()) if l["path"] == "/reset-me"]
        time.sleep(0.05)
    assert lines and lines[0]["flags"] == "DC", gw.stdout()


def test_many_resets_then_normal_requests(gw, T):
    c = RawH2(gw.port, timeout=T(10))
    try:
        for i in range(20):
            sid = 1 + 2 * i
            c.request(sid, f"/r/{i}", [("x-echo-delay-ms", "200")])
            c.reset(sid)
        c.request(101, "/ok")
        assert json.loads(c.read_response_body(101))["path"] == "/ok"
    finally:
        c.close()


def test_upstream_reset_mid_response_resets_the_stream(start_gateway, T):
    # An upstream that sends a head promising 1000 bytes, 10 of them, then closes.
    fake = harness.FakeUpstream(
        lambda conn, request: conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789"))
    gw = start_gateway([mapping("m", "/", fake.addr)])
    c = RawH2(gw.port, timeout=T(10))
    try:
        c.request(1, "/cut")
        with pytest.raises(ConnectionError, match="stream 1 reset"):
            c.read_response_body(1)
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# h2 over TLS, by ALPN.


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki-h2"))
    p.a = p.server("a", "a.example.com")
    return p


def tls_gateway(start_gateway, echo, pki):
    """An HTTPS Listener serving a.example.com with /t/ to the echo backend; its port."""
    port = free_port("0.0.0.0")
    start_gateway([listener("e2e-https", port, protocol="HTTPS"),
                   tls_secret("a-cert", *pki.a),
                   host("a", "a.example.com", tlsSecret={"name": "a-cert"}),
                   mapping("echo", "/t/", echo.addr)])
    return port


def test_tls_alpn_negotiates_h2(start_gateway, echo, pki):
    port = tls_gateway(start_gateway, echo, pki)
    base = ["--cacert", pki.ca_crt, "--resolve", f"a.example.com:{port}:127.0.0.1"]
    url = f"https://a.example.com:{port}/t/x"
    r = curl(base + ["--http2", "-w", "\n%{http_version} %{http_code}", url])
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition(b"\n")
    assert tail == b"2 200"
    info = json.loads(body)
    assert info["headers"]["x-forwarded-proto"] == "https"
    assert info["headers"]["host"] == f"a.example.com:{port}"
    # A large body over TLS h2 (reads until EAGAIN through the TLS stream).
    n = 5 * 1024 * 1024
    r = curl(base + ["--http2", "-H", f"x-echo-response-bytes: {n}", "-o", "/dev/null",
                     "-w", "%{http_version} %{http_code} %{size_download}", url], timeout=60)
    assert r.stdout == f"2 200 {n}".encode(), r.stderr
    # A client that only speaks HTTP/1.1 still gets it.
    r = curl(base + ["--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", url])
    assert r.stdout == b"1.1 200", r.stderr


def test_upload_still_going_when_answered_at_the_head_over_tls(start_gateway, echo, pki):
    port = tls_gateway(start_gateway, echo, pki)
    path, extra, status, grpc_status = EARLY_ANSWERS[0]
    upload_runs(f"https://a.example.com:{port}{path}", extra, os.urandom(200 * 1024), status,
                grpc_status, 20, "--http2", "--cacert", pki.ca_crt, "--resolve",
                f"a.example.com:{port}:127.0.0.1")


def test_client_that_stops_reading_holds_back_the_upstream(gw, T):
    """A client that never opens its window: the proxy buffers about a window's worth, not the
    100 MiB response."""
    before = gw.rss_kib()
    c = RawH2(gw.port, timeout=T(10))
    try:
        c.request(1, "/huge", [("x-echo-response-bytes", str(100 * 1024 * 1024))])
        time.sleep(T(1.5))
        got = 0
        deadline = time.monotonic() + T(2)
        c.sock.settimeout(0.3)
        while time.monotonic() < deadline:
            try:
                ftype, _, sid, payload = c.read_frame()
            except (socket.timeout, TimeoutError):
                break
            if ftype == 0 and sid == 1:
                got += len(payload)
        # The client's initial stream window (65535 bytes) is all that may reach it.
        assert got <= 65535
        grown = gw.rss_kib() - before
        assert grown < 20 * 1024, f"proxy RSS grew by {grown} KiB"
    finally:
        c.close()
