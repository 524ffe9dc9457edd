"""Request trailers towards HTTP/1.1 upstreams: a request whose upstream leg is chunked carries the
client's trailers after its last chunk (RFC 9112 §7.1.2), whether they came as an HTTP/2 HEADERS
frame ending the stream or as a chunked HTTP/1.1 trailer section; an upstream request framed by
content-length cannot carry them, so they are dropped (as Envoy does). Clients: python3-h2 over
h2c, a raw HTTP/1.1 socket and curl; the upstream is a recorder that keeps the raw trailer
section it received."""

import hashlib
import json
import threading

import pytest

import harness
from harness import FakeUpstream, mapping

h2 = pytest.importorskip("h2")
from test_websocket_h2 import H2Client  # noqa: E402


class TrailerRecorder:
    """A keep-alive HTTP/1.1 upstream that records each request's framing, body digest and raw
    trailer section, and answers 200 with that record as JSON."""

    def __init__(self, drop_reused=False):
        # drop_reused: the first connection closes, unanswered, when its second request comes
        # (an upstream closing an idle keep-alive connection just as it is reused).
        self.drop_reused = drop_reused
        self.requests = []
        self.lock = threading.Lock()
        self.upstream = FakeUpstream(self._serve)

    @property
    def addr(self):
        return self.upstream.addr

    def count(self):
        with self.lock:
            return len(self.requests)

    @staticmethod
    def _fill(conn, buf, until):
        while not until(buf):
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("closed")
            buf += chunk
        return buf

    def _serve(self, conn, data):
        first_connection = self.upstream.connections == 1
        served = 0
        while True:
            if self.drop_reused and first_connection and served == 1:
                return  # closed by FakeUpstream
            served += 1
            head, _, buf = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body, trailers = b"", None
            if "content-length" in headers:
                n = int(headers["content-length"])
                buf = self._fill(conn, buf, lambda b: len(b) >= n)
                body, buf = buf[:n], buf[n:]
            elif headers.get("transfer-encoding") == "chunked":
                while True:
                    buf = self._fill(conn, buf, lambda b: b"\r\n" in b)
                    size_line, _, buf = buf.partition(b"\r\n")
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        # The trailer section: field lines up to an empty line.
                        buf = self._fill(conn, buf, lambda b: b.startswith(b"\r\n")
                                         or b"\r\n\r\n" in b)
                        if buf.startswith(b"\r\n"):
                            trailers, buf = "", buf[2:]
                        else:
                            section, _, buf = buf.partition(b"\r\n\r\n")
                            trailers = section.decode("latin-1") + "\r\n"
                        break
                    buf = self._fill(conn, buf, lambda b: len(b) >= size + 2)
                    body += buf[:size]
                    buf = buf[size + 2:]
            record = {"path": lines[0].split(" ")[1], "host": headers.get("host"),
                      "content-length": headers.get("content-length"),
                      "transfer-encoding": headers.get("transfer-encoding"),
                      "length": len(body), "sha": hashlib.sha256(body).hexdigest(),
                      "trailers": trailers}
            with self.lock:
                self.requests.append(record)
            out = json.dumps(record).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(out), out))
            data = self._fill(conn, buf, lambda b: b"\r\n\r\n" in b)


@pytest.fixture
def rec():
    return TrailerRecorder()


@pytest.fixture
def gw(start_gateway, rec):
    return start_gateway([mapping("rec", "/", rec.addr, rewrite="")])


def h2_post(gw, path, chunks, trailers, content_length=None, T=lambda s: s):
    head, body = h2_post_raw(gw.port, path, chunks, trailers, content_length, T)
    return head, json.loads(body)


def h2_post_raw(port, path, chunks, trailers, content_length=None, T=lambda s: s):
    """A POST from python3-h2 over h2c whose stream ends with `trailers`: (response head fields,
    body bytes)."""
    c = H2Client(port, T(10))
    try:
        sid = c.conn.get_next_available_stream_id()
        head = [(":method", "POST"), (":scheme", "http"), (":path", path),
                (":authority", "trailers.example")]
        if content_length is not None:
            head.append(("content-length", str(content_length)))
        c.conn.send_headers(sid, head)
        for chunk in chunks:
            c.send(sid, chunk)
        c.conn.send_headers(sid, trailers, end_stream=True)
        c.flush()
        assert c.pump_until(lambda: sid in c.ended or sid in c.resets)
        assert sid not in c.resets, c.resets
        return c.headers[sid], bytes(c.data[sid])
    finally:
        c.close()


def test_http2_trailers_follow_the_last_chunk(gw, T):
    chunks = [b"a" * 1000, b"b" * 70000, b"c"]
    head, got = h2_post(gw, "/up", chunks, [("x-checksum", "abc123"), ("x-count", "3")], T=T)
    assert head[":status"] == "200"
    assert got["transfer-encoding"] == "chunked"
    assert got["content-length"] is None
    assert got["length"] == 71001
    assert got["sha"] == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert got["trailers"] == "x-checksum: abc123\r\nx-count: 3\r\n"


def test_http2_trailers_without_a_body(gw, T):
    head, got = h2_post(gw, "/empty", [], [("x-only", "trailers")], T=T)
    assert head[":status"] == "200"
    assert got["length"] == 0
    assert got["trailers"] == "x-only: trailers\r\n"


def test_http2_trailers_are_dropped_when_the_body_has_a_length(gw, T):
    head, got = h2_post(gw, "/sized", [b"12345"], [("x-checksum", "abc")], content_length=5,
                        T=T)
    assert head[":status"] == "200"
    assert got["content-length"] == "5"
    assert got["length"] == 5
    assert got["trailers"] is None


def test_http1_chunked_trailers_are_forwarded(gw, rec, T):
    req = (b"POST /h1 HTTP/1.1\r\nHost: trailers.example\r\ntransfer-encoding: chunked\r\n"
           b"trailer: x-sig\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sig: s1\r\nx-more: two words\r\n\r\n")
    with harness.RawConn(gw.port) as c:
        c.send(req)
        r = c.read_response()
        assert r.status == 200, r
        got = r.json()
        assert got["transfer-encoding"] == "chunked"
        assert got["length"] == 11
        assert got["trailers"] == "X-Sig: s1\r\nx-more: two words\r\n"
        # Without trailers the last chunk ends the same way as ever, and the connection goes on.
        c.send(b"POST /h1 HTTP/1.1\r\nHost: trailers.example\r\ntransfer-encoding: chunked\r\n"
               b"\r\n3\r\nabc\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["trailers"] == ""
    assert rec.count() == 2


def test_trailers_reach_a_shadow_too(start_gateway, rec, T):
    mirror = TrailerRecorder()
    gw = start_gateway([mapping("rec", "/", rec.addr, rewrite=""),
                        mapping("mirror", "/", mirror.addr, rewrite="", shadow=True)])
    head, got = h2_post(gw, "/m", [b"x" * 100], [("x-checksum", "m1")], T=T)
    assert got["trailers"] == "x-checksum: m1\r\n"
    assert harness.wait_until(lambda: mirror.count() == 1, T(5))
    assert mirror.requests[0]["host"] == "trailers.example-shadow"
    assert mirror.requests[0]["trailers"] == "x-checksum: m1\r\n"
    assert mirror.requests[0]["length"] == 100
    with harness.RawConn(gw.port) as c:
        c.send(b"POST /h1 HTTP/1.1\r\nHost: h1.example\r\ntransfer-encoding: chunked\r\n\r\n"
               b"2\r\nhi\r\n0\r\nx-sig: h1\r\n\r\n")
        assert c.read_response().status == 200
    assert harness.wait_until(lambda: mirror.count() == 2, T(5))
    assert mirror.requests[1]["trailers"] == "x-sig: h1\r\n"


def test_a_replayed_chunked_request_keeps_its_end_and_trailers(start_gateway, T):
    # The upstream closes the reused connection as the request reaches it: the request (nothing
    # of its body taken yet but its end) is replayed on a new connection, last chunk and
    # trailers included, instead of leaving the upstream waiting for the end of the body.
    rec = TrailerRecorder(drop_reused=True)
    gw = start_gateway([mapping("rec", "/", rec.addr, rewrite="")], workers=1)
    with harness.RawConn(gw.port) as c:
        r = c.request(b"GET /warm HTTP/1.1\r\nHost: r.example\r\n\r\n")
        assert r.status == 200, r
        c.send(b"POST /again HTTP/1.1\r\nHost: r.example\r\ntransfer-encoding: chunked\r\n\r\n"
               b"0\r\nx-sig: replayed\r\n\r\n")
        r = c.read_response(timeout=T(5))
        assert r.status == 200, r
        got = r.json()
    assert got["path"] == "/again"
    assert got["length"] == 0
    assert got["trailers"] == "x-sig: replayed\r\n"
    assert rec.upstream.connections == 2
