"""Traffic shadowing: a `shadow: true` Mapping mirrors the requests its group matches to its own
service, with `-shadow` appended to the Host; the mirror's response is thrown away and its
slowness or failure never reaches the client."""

import hashlib
import subprocess
import threading
import time

import pytest
import requests

import harness
from harness import FakeUpstream, free_port, mapping


class Recorder:
    """A keep-alive HTTP/1.1 upstream that records each request (host, path, body digest) and
    answers after `delay` seconds with `status` (or resets the connection when status is None).
    It speaks real HTTP/1.1 framing (Content-Length and chunked)."""

    def __init__(self, status=200, delay=0.0):
        self.status = status
        self.delay = delay
        self.requests = []
        self.lock = threading.Lock()
        self.upstream = FakeUpstream(self._serve)

    @property
    def addr(self):
        return self.upstream.addr

    def count(self):
        with self.lock:
            return len(self.requests)

    def _serve(self, conn, data):
        while True:
            if not data:
                return  # a connection the proxy opened and abandoned without a request
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body, rest = self._read_body(conn, headers, rest)
            with self.lock:
                self.requests.append({
                    "method": method, "path": path, "host": headers.get("host"),
                    "length": len(body), "sha": hashlib.sha256(body).hexdigest(),
                    "headers": headers,
                })
            if self.delay:
                time.sleep(self.delay)
            if self.status is None:
                harness.rst_close(conn)
                return
            conn.sendall(b"HTTP/1.1 %d X\r\ncontent-length: 6\r\n\r\nshadow" % self.status)
            data = rest
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk

    @staticmethod
    def _recv_exact(conn, buf, n):
        while len(buf) < n:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("closed mid-body")
            buf += chunk
        return buf

    def _read_body(self, conn, headers, buf):
        if "content-length" in headers:
            n = int(headers["content-length"])
            buf = self._recv_exact(conn, buf, n)
            return buf[:n], buf[n:]
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        raise OSError("closed mid-body")
                    buf += chunk
                size_line, _, buf = buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                buf = self._recv_exact(conn, buf, size + 2)
                body += buf[:size]
                buf = buf[size + 2:]
                if size == 0:
                    return body, buf
        return b"", buf


def shadowed_gateway(start_gateway, echo, shadow_addr, weight=None, prefix="/svc/"):
    fields = {"shadow": True}
    if weight is not None:
        fields["weight"] = weight
    return start_gateway({"m.yaml": [
        mapping("main", prefix, echo.addr),
        mapping("mirror", prefix, shadow_addr, **fields),
    ]})


def test_requests_are_mirrored_with_shadow_host(start_gateway, echo, http, T):
    rec = Recorder()
    gw = shadowed_gateway(start_gateway, echo, rec.addr)
    for i in range(20):
        r = http.get(f"{gw.url()}svc/item/{i}?q=1", headers={"Host": "shop.example.com"},
                     timeout=T(5))
        assert r.status_code == 200
    assert harness.wait_until(lambda: rec.count() == 20, T(5)), rec.count()
    # The mirror is a copy of what the real upstream gets, rewrites included (the default
    # prefix_rewrite "/" here), as Envoy's request mirroring sends it.
    assert sorted(r["path"] for r in rec.requests) == sorted(f"/item/{i}?q=1" for i in range(20))
    assert {r["host"] for r in rec.requests} == {"shop.example.com-shadow"}
    # The port stays after the suffix, as Envoy does.
    http.get(f"{gw.url()}svc/port", headers={"Host": "shop.example.com:8443"}, timeout=T(5))
    assert harness.wait_until(lambda: rec.count() == 21, T(5))
    assert rec.requests[-1]["host"] == "shop.example.com-shadow:8443"
    # Only the group's matches are mirrored.
    assert http.get(f"{gw.url()}other/", timeout=T(5)).status_code == 404
    assert rec.count() == 21


def test_request_bodies_are_mirrored(start_gateway, echo, http, T):
    rec = Recorder()
    gw = shadowed_gateway(start_gateway, echo, rec.addr)
    # Bodies stay under the 256 KiB a mirror may lag behind before it is abandoned (by design),
    # so a slow machine cannot turn this into a test of that bound.
    body = bytes(range(256)) * 800  # 200 KiB
    r = http.post(f"{gw.url()}svc/upload", data=body, timeout=T(10))
    assert r.status_code == 200
    assert harness.wait_until(lambda: rec.count() == 1, T(5))
    assert rec.requests[0]["length"] == len(body)
    assert rec.requests[0]["sha"] == hashlib.sha256(body).hexdigest()

    def chunks():
        for i in range(64):
            yield bytes([i]) * 3000

    r = http.post(f"{gw.url()}svc/chunked", data=chunks(), timeout=T(10))
    assert r.status_code == 200
    assert harness.wait_until(lambda: rec.count() == 2, T(5))
    expected = b"".join(chunks())
    assert rec.requests[1]["length"] == len(expected)
    assert rec.requests[1]["sha"] == hashlib.sha256(expected).hexdigest()
    assert rec.requests[1]["headers"].get("transfer-encoding") == "chunked"


@pytest.mark.parametrize("behaviour", ["slow", "error", "reset", "refused"])
def test_shadow_trouble_never_reaches_the_client(start_gateway, echo, http, T, behaviour):
    if behaviour == "refused":
        addr = f"127.0.0.1:{free_port()}"
        rec = None
    else:
        rec = Recorder(status={"slow": 200, "error": 503, "reset": None}[behaviour],
                       delay=3.0 if behaviour == "slow" else 0.0)
        addr = rec.addr
    gw = shadowed_gateway(start_gateway, echo, addr)
    started = time.monotonic()
    for i in range(10):
        r = http.post(f"{gw.url()}svc/{i}", data=b"x" * 1000, timeout=T(5))
        assert r.status_code == 200, r.text
        assert r.headers.get("content-length") != "6"  # never the shadow's answer
    elapsed = time.monotonic() - started
    if behaviour == "slow":
        # Ten requests against a mirror that takes 3 s each: the client never waits for it.
        assert elapsed < 3.0, elapsed
        assert harness.wait_until(lambda: rec.count() >= 1, T(5))
    assert gw.alive()


def requests_started(gw, upstream):
    """envoy_cluster_upstream_rq_total of the cluster for `upstream` (stats name host_port)."""
    body = requests.get(gw.admin_url + "/metrics", timeout=5).text
    label = 'envoy_cluster_name="%s"' % upstream.addr.replace(".", "_").replace(":", "_")
    total = 0
    for line in body.splitlines():
        if line.startswith("envoy_cluster_upstream_rq_total{") and label in line:
            total += int(float(line.split()[-1]))
    return total


def test_weight_samples_the_mirrored_share(start_gateway, echo, T):
    rec = Recorder()
    gw = shadowed_gateway(start_gateway, echo, rec.addr, weight=30)
    n = 2000 if not harness.SANITIZED else 600
    with requests.Session() as s:
        s.trust_env = False
        for i in range(n):
            assert s.get(f"{gw.url()}svc/{i}", timeout=T(5)).status_code == 200
    # Mirrors may still be in flight when the last client response arrives: wait until the
    # recorder has seen every mirror the gateway started (its shadow cluster's request count).
    assert harness.wait_until(lambda: rec.count() == requests_started(gw, rec), T(5)), (
        rec.count(), requests_started(gw, rec))
    share = rec.count() / n
    assert 0.25 <= share <= 0.35, share


def test_second_shadow_in_a_group_is_an_error(start_gateway, echo, T):
    rec = Recorder()
    gw = start_gateway({"m.yaml": [
        mapping("main", "/svc/", echo.addr),
        mapping("mirror-a", "/svc/", rec.addr, shadow=True),
        mapping("mirror-b", "/svc/", rec.addr, shadow=True),
    ]})
    log = gw.stderr()
    assert "Mapping/default/mirror-b: spec.shadow: a canary group takes one shadow" in log, log


# ---------------------------------------------------------------------------------------------
# HTTP/2 clients are mirrored the same way.

def h2c_curl(args, timeout=20, stdin=None):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m",
                        str(timeout), "-o", "/dev/null", "-w", "%{http_code} %{http_version}"]
                       + args, capture_output=True, timeout=timeout + 5, input=stdin)
    assert r.returncode == 0, r.stderr.decode("latin-1")
    return r.stdout.decode()


def nghttp(urls, *args, timeout=20):
    """nghttp: every URL as a stream of one h2c connection; returns the :status values."""
    r = subprocess.run(["nghttp", "-nv"] + list(args) + urls, capture_output=True,
                       timeout=timeout + 5)
    assert r.returncode == 0, r.stdout.decode("latin-1")[-2000:] + r.stderr.decode("latin-1")
    return [line.split(b":status: ")[1].strip().decode()
            for line in r.stdout.splitlines() if b"recv (stream_id=" in line
            and b":status: " in line]


def test_http2_requests_are_mirrored(start_gateway, echo, T):
    rec = Recorder()
    gw = shadowed_gateway(start_gateway, echo, rec.addr)
    urls = [gw.url(f"/svc/item/{i}?q=1") for i in range(10)]
    # One connection, ten streams.
    statuses = nghttp(urls, "-H", ":authority: shop.example.com:8443", timeout=T(10))
    assert statuses == ["200"] * 10, statuses
    assert harness.wait_until(lambda: rec.count() == 10, T(5)), rec.count()
    assert sorted(r["path"] for r in rec.requests) == sorted(f"/item/{i}?q=1" for i in range(10))
    assert {r["host"] for r in rec.requests} == {"shop.example.com-shadow:8443"}
    assert {r["method"] for r in rec.requests} == {"GET"}
    assert h2c_curl([gw.url("/other/")], timeout=T(5)) == "404 2"
    assert rec.count() == 10


def test_http2_request_bodies_are_mirrored(start_gateway, echo, T, tmp_path):
    rec = Recorder()
    gw = shadowed_gateway(start_gateway, echo, rec.addr)
    # Several stream windows (64 KiB) of DATA frames, but under the 256 KiB a mirror may lag.
    body = bytes(range(256)) * 800
    path = tmp_path / "body.bin"
    path.write_bytes(body)
    # With a content-length.
    assert h2c_curl(["--data-binary", f"@{path}", gw.url("/svc/upload")], timeout=T(10)) == "200 2"
    assert harness.wait_until(lambda: rec.count() == 1, T(5))
    assert rec.requests[0]["method"] == "POST"
    assert rec.requests[0]["length"] == len(body)
    assert rec.requests[0]["sha"] == hashlib.sha256(body).hexdigest()
    assert rec.requests[0]["headers"].get("content-length") == str(len(body))
    # Without one (curl streams stdin): the mirror gets it chunked, like the real upstream.
    assert h2c_curl(["-T", "-", "-X", "POST", gw.url("/svc/stream")], timeout=T(10),
                    stdin=body) == "200 2"
    assert harness.wait_until(lambda: rec.count() == 2, T(5))
    assert rec.requests[1]["length"] == len(body)
    assert rec.requests[1]["sha"] == hashlib.sha256(body).hexdigest()
    assert rec.requests[1]["headers"].get("transfer-encoding") == "chunked"


def test_http2_slow_or_failing_shadow_never_reaches_the_client(start_gateway, echo, T, tmp_path):
    slow = Recorder(delay=3.0)
    gw = shadowed_gateway(start_gateway, echo, slow.addr)
    body = tmp_path / "body"
    body.write_bytes(b"x" * 1000)
    started = time.monotonic()
    statuses = nghttp([gw.url(f"/svc/{i}") for i in range(10)], "-d", str(body), timeout=T(10))
    assert statuses == ["200"] * 10, statuses
    assert time.monotonic() - started < 3.0
    assert harness.wait_until(lambda: slow.count() >= 1, T(5))
    refused = shadowed_gateway(start_gateway, echo, f"127.0.0.1:{free_port()}", prefix="/r/")
    statuses = nghttp([refused.url(f"/r/{i}") for i in range(5)], timeout=T(10))
    assert statuses == ["200"] * 5, statuses
    assert gw.alive() and refused.alive()


def test_http2_weight_samples_the_mirrored_share(start_gateway, echo, T):
    rec = Recorder()
    gw = shadowed_gateway(start_gateway, echo, rec.addr, weight=30)
    n = 1000 if not harness.SANITIZED else 300
    r = subprocess.run(["h2load", "-n", str(n), "-c", "4", "-m", "10", gw.url("/svc/x")],
                       capture_output=True, timeout=T(60))
    assert r.returncode == 0, r.stderr
    assert f"{n} succeeded" in r.stdout.decode(), r.stdout.decode()
    assert harness.wait_until(lambda: rec.count() == requests_started(gw, rec), T(5)), (
        rec.count(), requests_started(gw, rec))
    share = rec.count() / n
    assert 0.23 <= share <= 0.37, share
