"""HTTP/2 bad input against the real binary: cases 17–25 of shared/spec/edge-hardening.md §7,
each test named after its number. A hand-built frame client (struct-packed frames, HPACK literals
without Huffman) talks h2c with prior knowledge to a Listener that also serves HTTP/1.1.

Each case asserts what a client sees (RST_STREAM or GOAWAY with its error code, the connection
closed or not), what the upstream sees (a recording HTTP/1.1 upstream: nothing malformed ever
reaches it), the counters on /metrics (`envoy_http_downstream_cx_protocol_error`, the premature-
reset counter and Envoy's `envoy_http2_*` codec counters), the access-log line where §7 asks for
a reason, and that the gateway keeps serving fresh connections. Known gaps are strict xfails with
the reason. The codec-level twins of these tests are in tests/unit/http/http2_frames_test.cc.
"""

import json
import os
import re
import socket
import struct
import threading
import time

import pytest

import harness
from harness import FakeUpstream, mapping, scaled

# ---------------------------------------------------------------------------------------------
# Frames (RFC 9113 §6)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

FRAME_NAMES = {DATA: "DATA", HEADERS: "HEADERS", PRIORITY: "PRIORITY", RST_STREAM: "RST_STREAM",
               SETTINGS: "SETTINGS", PUSH_PROMISE: "PUSH_PROMISE", PING: "PING",
               GOAWAY: "GOAWAY", WINDOW_UPDATE: "WINDOW_UPDATE", CONTINUATION: "CONTINUATION"}


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def settings(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def window_update(stream, increment):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def rst_stream(stream, code):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def ping(opaque=0):
    return frame(PING, 0, 0, struct.pack(">Q", opaque))


def priority(stream, depends_on):
    return frame(PRIORITY, 0, stream, struct.pack(">IB", depends_on, 15))


# HPACK (RFC 7541), encoder side only, never Huffman.
def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _b(s):
    return s if isinstance(s, bytes) else s.encode("latin-1")


def lit(name, value):
    """Literal header field without indexing, new name (§6.2.2)."""
    name, value = _b(name), _b(value)
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def lit_indexed(name, value):
    """Literal header field with incremental indexing, new name (§6.2.1): enters the table."""
    name, value = _b(name), _b(value)
    return b"\x40" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def indexed(index):
    return hpack_int(index, 7, 0x80)


def block(fields):
    return b"".join(lit(n, v) for n, v in fields)


def get_fields(path="/", method="GET", authority="example.com"):
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", authority)]


def headers_frame(stream, fields, end_stream=True):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream, block(fields))


# Static-table entries for :status (RFC 7541 Appendix A); nghttp2 sends these fully indexed.
STATIC_STATUS = {0x88: 200, 0x89: 204, 0x8A: 206, 0x8B: 304, 0x8C: 400, 0x8D: 404, 0x8E: 500}


class Frame:
    def __init__(self, ftype, flags, stream, payload):
        self.type, self.flags, self.stream, self.payload = ftype, flags, stream, payload

    @property
    def code(self):
        """The error code of a RST_STREAM or GOAWAY."""
        if self.type == RST_STREAM:
            return struct.unpack(">I", self.payload[:4])[0]
        if self.type == GOAWAY:
            return struct.unpack(">I", self.payload[4:8])[0]
        return None

    def __repr__(self):
        extra = f" code={self.code:#x}" if self.code is not None else ""
        return (f"<{FRAME_NAMES.get(self.type, self.type)} flags={self.flags:#x} "
                f"stream={self.stream} len={len(self.payload)}{extra}>")


class H2:
    """One raw h2c connection. Every frame received is kept in `frames`; SETTINGS are ACKed.

    The client preface opens big windows (1 MiB per stream, 16 MiB on the connection) so
    responses never wait on us, unless `stream_window` says otherwise."""

    def __init__(self, port, preface=True, stream_window=1 << 20, rcvbuf=None, timeout=None,
                 ack_settings=True):
        self.timeout = timeout or scaled(5)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect, so the window scale is chosen for the small buffer.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(self.timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.frames = []
        self.closed = False  # EOF or reset seen
        self.reset = False  # the close was a TCP RST
        self.ack_settings = ack_settings
        if preface:
            self.send(PREFACE + settings([(0x4, stream_window), (0x2, 0)]) +
                      window_update(0, (16 << 20) - 65535))

    def send(self, data):
        """Sends all of `data`; False when the peer has closed (EPIPE/ECONNRESET)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False
        except socket.timeout:
            return False

    def _parse(self):
        new = []
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                break
            f = Frame(self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                      self.buf[9:9 + length])
            self.buf = self.buf[9 + length:]
            if f.type == SETTINGS and not f.flags & ACK and self.ack_settings and not self.closed:
                self.send(settings(ack=True))
            new.append(f)
        self.frames += new
        return new

    def pump(self, timeout, drain=False):
        """Reads until a complete frame arrived (with `drain`: until `timeout` s passed), or the
        peer closed, or the timeout passed; returns the new frames."""
        new = []
        deadline = time.monotonic() + timeout
        while not self.closed and (drain or not new):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                break
            except ConnectionResetError:
                self.closed = self.reset = True
                break
            if not chunk:
                self.closed = True
                break
            self.buf += chunk
            new += self._parse()
        return new

    def wait(self, predicate, timeout=None):
        """The first frame (received before or now) matching `predicate`, or None once the
        connection closed or the timeout passed."""
        for f in self.frames:
            if predicate(f):
                return f
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed and time.monotonic() < deadline:
            for f in self.pump(min(0.2, max(0.0, deadline - time.monotonic()))):
                if predicate(f):
                    return f
        return None

    def wait_closed(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed and time.monotonic() < deadline:
            self.pump(deadline - time.monotonic())
        return self.closed

    def goaway(self, timeout=None):
        return self.wait(lambda f: f.type == GOAWAY, timeout)

    def rst(self, stream, timeout=None):
        return self.wait(lambda f: f.type == RST_STREAM and f.stream == stream, timeout)

    def response(self, stream, timeout=None):
        """Waits for `stream` to end; returns (status or None, body bytes, RST code or None)."""
        def done(f):
            return f.stream == stream and (f.type == RST_STREAM or (
                f.type in (HEADERS, DATA) and f.flags & END_STREAM))
        self.wait(done, timeout)
        status, body, code = None, b"", None
        for f in self.frames:
            if f.stream != stream:
                continue
            if f.type == HEADERS and status is None and f.payload:
                status = STATIC_STATUS.get(f.payload[0])
            elif f.type == DATA:
                body += f.payload
            elif f.type == RST_STREAM:
                code = f.code
        return status, body, code

    def of(self, stream, ftype=None):
        return [f for f in self.frames if f.stream == stream and (ftype is None or f.type == ftype)]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------
# A recording HTTP/1.1 upstream: proves what did (not) reach the upstream.


class Recorder:
    """Keep-alive HTTP/1.1 server answering `200 ok` to every complete request; every request it
    saw is kept as {"head": bytes, "body": bytes, "complete": bool}. Bodies are framed by
    content-length or chunked encoding; a connection that ends mid-body leaves `complete` False."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.upstream = FakeUpstream(self._serve)
        # Module-scoped: the fixture stops it, not the per-test teardown.
        FakeUpstream.registry.remove(self.upstream)

    @property
    def addr(self):
        return self.upstream.addr

    def stop(self):
        self.upstream.stop()

    def matching(self, marker):
        marker = _b(marker)
        with self.lock:
            return [r for r in self.requests if marker in r["head"]]

    def _serve(self, conn, data):
        conn.settimeout(30)  # keep-alive: idle upstream connections stay open
        buf = data  # the head, read by FakeUpstream

        def more():
            nonlocal buf
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk

        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    more()
                head, buf = buf.split(b"\r\n\r\n", 1)
                rec = {"head": head, "body": b"", "complete": False}
                with self.lock:
                    self.requests.append(rec)
                lower = head.lower()
                if b"transfer-encoding: chunked" in lower:
                    while True:
                        while b"\r\n" not in buf:
                            more()
                        size_line, buf = buf.split(b"\r\n", 1)
                        size = int(size_line.split(b";")[0], 16)
                        while len(buf) < size + 2:
                            more()
                        rec["body"] += buf[:size]
                        buf = buf[size + 2:]
                        if size == 0:
                            break
                else:
                    n = 0
                    for line in lower.split(b"\r\n")[1:]:
                        if line.startswith(b"content-length:"):
                            n = int(line.split(b":", 1)[1])
                    while len(buf) < n:
                        more()
                    rec["body"], buf = buf[:n], buf[n:]
                rec["complete"] = True
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (EOFError, OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass



# ---------------------------------------------------------------------------------------------
# Fixtures and checks


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """One echo backend, one recording upstream and one gateway for the module:
    `/rec/` → recorder, `/idle/` → echo with a 500 ms stream idle timeout, `/idle-down/` → a
    closed port (500 ms too), `/watch/` → echo with a 300 ms route timeout and a 500 ms idle
    timeout, `/` → echo."""
    for path in (harness.proxenos_bin(), harness.echo_bin()):
        if not harness.BUILD or not os.access(path, os.X_OK):
            pytest.fail(f"binary not built: {path} (set PROXENOS_BUILD)", pytrace=False)
    base = tmp_path_factory.mktemp("h2edge")
    saved = harness.Proc.registry
    harness.Proc.registry = []
    procs = []
    rec = Recorder()
    try:
        echo = harness.EchoBackend(str(base / "procs"), name="echo")
        procs.append(echo)
        gw = harness.Gateway(str(base / "gw"), {"routes.yaml": [
            mapping("rec", "/rec/", rec.addr, rewrite=""),
            mapping("idle", "/idle/", echo.addr, timeout_ms=0, idle_timeout_ms=500),
            # Nothing listens on port 1: every request gets our own 503.
            mapping("idle-down", "/idle-down/", "127.0.0.1:1", idle_timeout_ms=500),
            # The route timeout is due first: the route timer alone watches the exchange.
            mapping("watch", "/watch/", echo.addr, timeout_ms=300, idle_timeout_ms=500),
            mapping("root", "/", echo.addr, rewrite=""),
        ]})
        procs.append(gw)
    except harness.HarnessError:
        rec.stop()
        for p in harness.Proc.registry:
            p.stop()
        raise
    finally:
        harness.Proc.registry = saved
    harness.Proc.shared.extend(procs)
    yield gw, echo, rec
    for p in reversed(procs):
        p.stop()
        harness.Proc.shared.remove(p)
    rec.stop()


# Sanitizer builds keep freed memory in quarantine: RSS bounds are looser there.
RSS_SLACK = 4 if harness.SANITIZED else 1

# Counters (Prometheus names on the admin /metrics), summed over listeners.
PROTOCOL_ERRORS = "envoy_http_downstream_cx_protocol_error"  # connection closed on an error
GOAWAY_SENT = "envoy_http2_goaway_sent"
TX_RESET = "envoy_http2_tx_reset"
MESSAGING_ERRORS = "envoy_http2_rx_messaging_error"  # malformed heads, bad content-length
HEADER_OVERFLOW = "envoy_http2_header_overflow"
PREMATURE_RESETS = "envoy_http_downstream_rq_too_many_premature_resets"
CONTROL_FLOOD = "envoy_http2_outbound_control_flood"
EMPTY_FRAMES_FLOOD = "envoy_http2_inbound_empty_frames_flood"
WINDOW_UPDATE_FLOOD = "envoy_http2_inbound_window_update_frames_flood"
PRIORITY_FLOOD = "envoy_http2_inbound_priority_frames_flood"
STREAMS_REFUSED = "proxenos_http2_streams_refused"


class Counters:
    """A snapshot of /metrics; grew() waits for a counter to move past its snapshot value (the
    proxy publishes a connection's codec stats as it handles it, and closes asynchronously)."""

    def __init__(self, gw):
        self.gw = gw
        self.before = self._scrape()

    def _scrape(self):
        status, body = harness.http_get_status(self.gw.admin_url + "/metrics", scaled(5))
        assert status == 200
        out = {}
        for line in body.decode("utf-8", "replace").splitlines():
            if line and not line.startswith("#"):
                name = re.split(r"[{ ]", line, 1)[0]
                out[name] = out.get(name, 0) + float(line.rsplit(" ", 1)[1])
        return out

    def grew(self, name, timeout=None):
        """How much `name` grew since the snapshot (waits up to `timeout` for it to move)."""
        assert name in self.before, f"counter {name} is not on /metrics"
        deadline = time.monotonic() + (timeout or scaled(3))
        while True:
            delta = self._scrape().get(name, 0) - self.before[name]
            if delta > 0 or time.monotonic() >= deadline:
                return delta


def assert_still_serving(gw, path="/still-serving"):
    """A fresh h2c connection gets an ordinary 200 from the echo backend."""
    with H2(gw.port) as c:
        c.send(headers_frame(1, get_fields(path)))
        status, body, code = c.response(1)
        assert code is None, f"fresh connection: stream reset {code:#x}; frames {c.frames}"
        assert status == 200, f"fresh connection: frames {c.frames}"
        assert json.loads(body)["path"] == path
        assert c.goaway(timeout=0.05) is None


def assert_connection_error(c, code, what):
    goaway = c.goaway()
    assert goaway is not None, f"{what}: no GOAWAY; frames {c.frames}"
    assert goaway.code == code, f"{what}: GOAWAY code {goaway.code:#x}, want {code:#x}"
    assert c.wait_closed(), f"{what}: connection still open after GOAWAY"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Case 17: malformed request heads → RST_STREAM(PROTOCOL_ERROR), never forwarded as HTTP/1.


def _req(marker, method="GET", path=None, authority="a.example", extra=()):
    return [(":method", method), (":scheme", "http"), (":path", path or f"/rec/{marker}"),
            (":authority", authority)] + list(extra)


MALFORMED = [
    ("method-with-space", lambda m: [(":method", "GET /admin"), (":scheme", "http"),
                                     (":path", f"/rec/{m}"), (":authority", "a.example")]),
    ("method-with-crlf",
     lambda m: _req(m, method="GET /rec/x HTTP/1.1\r\nX-Smuggled: 1\r\n\r\nGET")),
    ("cr-in-value", lambda m: _req(m, extra=[("x-a", "1\r\nx-injected: 2")])),
    ("lf-in-value", lambda m: _req(m, extra=[("x-a", "1\nx-injected: 2")])),
    ("nul-in-value", lambda m: _req(m, extra=[("x-a", "1\x00b")])),
    ("uppercase-name", lambda m: _req(m, extra=[("X-Upper", "1")])),
    ("pseudo-after-regular", lambda m: [(":method", "GET"), (":scheme", "http"), ("x-a", "1"),
                                        (":path", f"/rec/{m}"), (":authority", "a.example")]),
    ("duplicate-path", lambda m: _req(m) + [(":path", f"/rec/{m}-2")]),
    ("duplicate-method", lambda m: _req(m) + [(":method", "POST")]),
    ("missing-path", lambda m: [(":method", "GET"), (":scheme", "http"),
                                (":authority", "a.example"), ("x-marker", m)]),
    ("missing-method", lambda m: [(":scheme", "http"), (":path", f"/rec/{m}"),
                                  (":authority", "a.example")]),
    ("missing-scheme", lambda m: [(":method", "GET"), (":path", f"/rec/{m}"),
                                  (":authority", "a.example")]),
    ("unknown-pseudo", lambda m: _req(m, extra=[(":foo", "1")])),
    ("status-in-request", lambda m: _req(m, extra=[(":status", "200")])),
    ("connection", lambda m: _req(m, extra=[("connection", "close")])),
    ("transfer-encoding", lambda m: _req(m, method="POST",
                                         extra=[("transfer-encoding", "chunked")])),
    ("te-gzip", lambda m: _req(m, extra=[("te", "gzip")])),
    ("upgrade", lambda m: _req(m, extra=[("upgrade", "websocket")])),
    ("keep-alive", lambda m: _req(m, extra=[("keep-alive", "timeout=5")])),
    ("proxy-connection", lambda m: _req(m, extra=[("proxy-connection", "keep-alive")])),
    ("path-with-space", lambda m: _req(m, path=f"/rec/{m} HTTP/1.1\r\nX-Smuggled: 1")),
    ("relative-path", lambda m: _req(m, path=f"rec/{m}")),
    ("fragment-in-path", lambda m: _req(m, path=f"/rec/{m}#frag")),
    ("userinfo-in-authority", lambda m: _req(m, authority="user@a.example")),
    ("host-differs-from-authority", lambda m: _req(m, extra=[("host", "b.example")])),
    ("underscore-in-name", lambda m: _req(m, extra=[("x_user", "admin")])),
    ("content-length-not-a-number", lambda m: _req(m, method="POST",
                                                   extra=[("content-length", "+5")])),
    ("two-content-lengths", lambda m: _req(m, method="POST", extra=[
        ("content-length", "1"), ("content-length", "2")])),
]


@pytest.mark.parametrize("name,build", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_case17_malformed_request_head_is_reset(edge, name, build):
    gw, _, rec = edge
    marker = f"case17-{name}"
    m = Counters(gw)
    with H2(gw.port) as c:
        c.send(frame(HEADERS, END_HEADERS, 1, block(build(marker))))  # body may follow
        rst = c.rst(1)
        assert rst is not None, f"no RST_STREAM for stream 1; frames {c.frames}"
        assert rst.code == PROTOCOL_ERROR, f"RST_STREAM code {rst.code:#x}"
        assert not c.of(1, HEADERS), "a response head was sent for the malformed stream"
        # Stream error only: the same connection serves the next stream.
        c.send(headers_frame(3, get_fields(f"/rec/{marker}-after")))
        status, body, code = c.response(3)
        assert (status, body, code) == (200, b"ok", None), c.frames
        assert c.goaway(timeout=0.05) is None
    got = rec.matching(marker)
    assert [r["head"].split(b"\r\n")[0] for r in got] == \
        [f"GET /rec/{marker}-after HTTP/1.1".encode()], \
        f"the upstream saw the malformed request: {got!r}"
    assert all(b"x-injected" not in r["head"].lower() and b"x-smuggled" not in r["head"].lower()
               for r in rec.requests)
    assert m.grew(MESSAGING_ERRORS) == 1
    assert m.grew(TX_RESET) == 1


def test_case17_many_malformed_streams_leave_the_gateway_serving(edge):
    gw, _, _ = edge
    assert_still_serving(gw)


# ---------------------------------------------------------------------------------------------
# Case 18: content-length that disagrees with the DATA total → RST_STREAM(PROTOCOL_ERROR), the
# upstream request aborted (never completed).


@pytest.mark.parametrize("variant,data_frames", [
    ("short", [(b"abc", True)]),
    ("long", [(b"abcdefgh", False)]),
    ("long-over-two-frames", [(b"abc", False), (b"defg", True)]),
])
def test_case18_content_length_mismatch(edge, T, variant, data_frames):
    gw, _, rec = edge
    marker = f"case18-{variant}"
    fields = _req(marker, method="POST", extra=[("content-length", "5")])
    m = Counters(gw)
    with H2(gw.port) as c:
        c.send(frame(HEADERS, END_HEADERS, 1, block(fields)))
        # Let the proxy open the upstream request before the bad DATA arrives.
        harness.wait_until(lambda: rec.matching(marker), T(2))
        for payload, end in data_frames:
            c.send(frame(DATA, END_STREAM if end else 0, 1, payload))
        rst = c.rst(1)
        assert rst is not None, f"no RST_STREAM; frames {c.frames}"
        assert rst.code == PROTOCOL_ERROR
        assert not c.of(1, HEADERS), "a response was sent for a stream with a bad body length"
        # The connection keeps serving, including an exact-length POST.
        ok = _req(marker + "-exact", method="POST", extra=[("content-length", "5")])
        c.send(frame(HEADERS, END_HEADERS, 3, block(ok)) + frame(DATA, END_STREAM, 3, b"12345"))
        assert c.response(3) == (200, b"ok", None), c.frames
        assert c.goaway(timeout=0.05) is None
    time.sleep(0.2)
    bad = rec.matching(f"/rec/{marker} ")
    assert all(not r["complete"] for r in bad), f"the upstream got a complete request: {bad!r}"
    assert all(len(r["body"]) <= 5 for r in bad)
    exact = rec.matching(f"/rec/{marker}-exact ")
    assert len(exact) == 1 and exact[0]["complete"] and exact[0]["body"] == b"12345"
    assert m.grew(TX_RESET) == 1  # a body error, not counted with the malformed heads


# ---------------------------------------------------------------------------------------------
# Case 19: rapid reset → GOAWAY(ENHANCE_YOUR_CALM) after the premature-reset budget (half of 500
# streams), connection closed, counter incremented, CPU bounded.


def _rapid_reset(gw, make_round, rounds=1000, batch=25):
    """Sends `rounds` rounds in batches, reading between them; returns (connection, rounds sent,
    proxy CPU seconds used)."""
    cpu0 = cpu_seconds(gw.pid)
    c = H2(gw.port)
    sent = 0
    sid = 1
    while sent < rounds and not c.closed:
        data = b"".join(make_round(sid + 2 * i) for i in range(batch))
        if not c.send(data):
            break
        sid += 2 * batch
        sent += batch
        c.pump(0.01)
        if any(f.type == GOAWAY for f in c.frames):
            break
    c.wait_closed()
    return c, sent, cpu_seconds(gw.pid) - cpu0


def test_case19_rapid_reset_loop_ends_with_goaway(edge):
    gw, _, _ = edge
    m = Counters(gw)
    c, sent, cpu = _rapid_reset(
        gw, lambda sid: headers_frame(sid, get_fields(f"/rr/{sid}")) + rst_stream(sid, CANCEL))
    with c:
        assert_connection_error(c, ENHANCE_YOUR_CALM, "HEADERS+RST_STREAM loop")
        # The guard trips after 250 premature resets; the batch in flight may add a few more.
        assert 250 <= sent <= 300, f"connection ended after {sent} rounds"
        last = struct.unpack(">I", c.goaway().payload[:4])[0] & 0x7FFFFFFF
        assert last <= 2 * 300, f"GOAWAY last-stream-id {last}"
    assert cpu < scaled(3), f"proxy burnt {cpu:.2f} s of CPU on {sent} reset streams"
    assert m.grew(PREMATURE_RESETS) == 1
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert m.grew(GOAWAY_SENT) == 1
    assert_still_serving(gw)


def test_case19_server_reset_variant_ends_with_goaway(edge):
    """No client RST_STREAM: every HEADERS is malformed, so the server resets each stream."""
    gw, _, _ = edge
    m = Counters(gw)
    c, sent, cpu = _rapid_reset(
        gw, lambda sid: headers_frame(sid, get_fields(f"/rr/{sid}") + [("connection", "close")]))
    with c:
        assert_connection_error(c, ENHANCE_YOUR_CALM, "malformed HEADERS loop")
        assert 250 <= sent <= 300, f"connection ended after {sent} rounds"
        assert len([f for f in c.frames if f.type == RST_STREAM]) >= 249
    assert cpu < scaled(3)
    assert m.grew(PREMATURE_RESETS) == 1
    assert m.grew(MESSAGING_ERRORS) >= 249
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert_still_serving(gw)


def test_case19_resets_after_responses_are_not_premature(edge):
    """300 streams that each got their response before the client reset them: not an attack."""
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        for i in range(300):
            sid = 1 + 2 * i
            c.send(headers_frame(sid, get_fields(f"/ok/{i}")))
            status, _, code = c.response(sid)
            assert status == 200 and code is None, f"stream {sid}: {c.of(sid)}"
            c.send(rst_stream(sid, CANCEL))  # late: the stream is already closed
        assert c.goaway(timeout=0.2) is None
        assert not c.closed
    assert m.grew(PREMATURE_RESETS, timeout=0.2) == 0


# ---------------------------------------------------------------------------------------------
# Case 20: CONTINUATION flood, HPACK bomb, cookie crumbs: decoded header bytes are capped.


def test_case20_continuation_flood_is_a_connection_error(edge):
    gw, _, rec = edge
    m = Counters(gw)
    rss0 = gw.rss_kib()
    with H2(gw.port) as c:
        data = frame(HEADERS, END_STREAM, 1, block(get_fields("/rec/case20-continuation")))
        for i in range(200):  # never END_HEADERS
            data += frame(CONTINUATION, 0, 1, lit(f"x-c{i}", "v" * 8000))
            if not c.send(data):
                break
            data = b""
            c.pump(0.001)
            if c.closed:
                break
        goaway = c.goaway()
        assert goaway is not None, c.frames
        assert goaway.code != NO_ERROR
        assert c.wait_closed()
    assert not rec.matching("case20-continuation")
    assert gw.rss_kib() - rss0 < RSS_SLACK * 8 * 1024
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert_still_serving(gw)


def test_case20_interrupted_continuation_is_a_protocol_error(edge):
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        c.send(frame(HEADERS, END_STREAM, 1, block(get_fields("/rec/case20-interrupted"))) +
               frame(DATA, 0, 3, b"x"))
        assert_connection_error(c, PROTOCOL_ERROR, "CONTINUATION sequence interrupted")
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert_still_serving(gw)


def test_case20_hpack_bomb_resets_the_stream_and_keeps_hpack_in_sync(edge):
    gw, _, rec = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        # A 4000-byte value enters the dynamic table (index 62); 20 one-byte references would
        # decode to 80 KB of headers, over the 60 KiB limit.
        b = block(get_fields("/rec/case20-bomb")) + lit_indexed("x-bomb", "b" * 4000)
        b += indexed(62) * 20
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b))
        rst = c.rst(1)
        assert rst is not None, c.frames
        assert not c.of(1, HEADERS)
        # The decoder state survived: one reference to the same entry decodes on stream 3.
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3,
                     block(get_fields("/rec/case20-bomb-after")) + indexed(62)))
        assert c.response(3) == (200, b"ok", None), c.frames
        assert c.goaway(timeout=0.05) is None
    assert not rec.matching("/rec/case20-bomb ")
    after = rec.matching("/rec/case20-bomb-after ")
    assert len(after) == 1 and b"x-bomb: " + b"b" * 4000 in after[0]["head"]
    assert m.grew(HEADER_OVERFLOW) == 1


def test_case20_cookie_crumbs_count_toward_the_limit(edge):
    gw, _, rec = edge
    b = block(get_fields("/rec/case20-cookies"))
    for i in range(2000):  # ~100 KB decoded (each crumb counts name + value + 32)
        b += lit("cookie", f"c{i}=xxxxxxxx")
    data = b""
    chunk = 16000
    for off in range(0, len(b), chunk):
        first, last = off == 0, off + chunk >= len(b)
        data += frame(HEADERS if first else CONTINUATION,
                      (END_STREAM if first else 0) | (END_HEADERS if last else 0), 1,
                      b[off:off + chunk])
    m = Counters(gw)
    with H2(gw.port) as c:
        c.send(data)
        rst = c.rst(1)
        assert rst is not None, c.frames
        assert not c.of(1, HEADERS)
        c.send(headers_frame(3, get_fields("/rec/case20-cookies-after") +
                             [("cookie", "a=1"), ("cookie", "b=2")]))
        assert c.response(3) == (200, b"ok", None), c.frames
    assert not rec.matching("/rec/case20-cookies ")
    after = rec.matching("/rec/case20-cookies-after ")
    assert len(after) == 1 and b"cookie: a=1; b=2" in after[0]["head"].lower()
    assert m.grew(HEADER_OVERFLOW) == 1


# ---------------------------------------------------------------------------------------------
# Case 21: PING / SETTINGS floods from a peer that never reads; oversized SETTINGS.


def _flood_without_reading(gw, unit, max_bytes=64 << 20):
    """Writes `unit` frames while never reading (small receive buffer), until the gateway closes
    the connection or `max_bytes` went out; returns (closed, bytes sent, frames read after)."""
    c = H2(gw.port, rcvbuf=4096)
    c.sock.setblocking(False)
    batch = unit * 256
    sent = 0
    deadline = time.monotonic() + scaled(15)
    closed = False
    while sent < max_bytes and time.monotonic() < deadline:
        try:
            n = c.sock.send(batch)
            sent += n
        except BlockingIOError:
            # The gateway stopped reading: fine, as long as it closes soon (checked below).
            time.sleep(0.01)
            if _peer_closed(c.sock):
                closed = True
                break
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    c.sock.setblocking(True)
    if not closed:
        closed = c.wait_closed(scaled(5))
    else:
        c.wait_closed(scaled(5))
    return c, closed, sent


def _peer_closed(sock):
    """True when the peer has closed (EOF or RST pending), without consuming data we need."""
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        return True
    with open("/proc/net/tcp") as f:
        local = sock.getsockname()[1]
        for line in f.readlines()[1:]:
            parts = line.split()
            if int(parts[1].split(":")[1], 16) == local:
                return parts[3] in ("08", "07")  # CLOSE_WAIT, CLOSE
    return True


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_case21_control_flood_while_not_reading_closes(edge, kind):
    gw, _, _ = edge
    m = Counters(gw)
    unit = ping(7) if kind == "ping" else settings([(0x4, 1 << 20)])
    c, closed, sent = _flood_without_reading(gw, unit)
    with c:
        assert closed, f"still open after {sent} bytes of {kind} frames"
        # 1 000 queued ACKs plus what the socket buffers hold: far less than 64 MiB.
        assert sent < 16 << 20, f"closed only after {sent} bytes"
        goaway = [f for f in c.frames if f.type == GOAWAY]
        if goaway:  # the GOAWAY sits behind the unread ACKs; a reset may discard it
            assert goaway[-1].code == ENHANCE_YOUR_CALM
    assert m.grew(CONTROL_FLOOD) == 1
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert_still_serving(gw)


def test_case21_pings_from_a_reading_peer_are_answered(edge):
    gw, _, _ = edge
    with H2(gw.port) as c:
        for round_ in range(20):
            c.send(b"".join(ping(round_ * 100 + i) for i in range(100)))
            c.wait(lambda f, r=round_: f.type == PING and f.flags & ACK and
                   struct.unpack(">Q", f.payload)[0] == r * 100 + 99)
        acks = [f for f in c.frames if f.type == PING and f.flags & ACK]
        assert len(acks) == 2000
        assert not c.closed and c.goaway(timeout=0.05) is None


def test_case21_oversized_settings_closes(edge):
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        c.send(settings([(0x100 + i, 1) for i in range(1000)]))
        assert_connection_error(c, ENHANCE_YOUR_CALM, "SETTINGS with 1000 parameters")
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert_still_serving(gw)


# ---------------------------------------------------------------------------------------------
# Case 22: empty DATA frames, WINDOW_UPDATE and PRIORITY floods.


def test_case22_consecutive_empty_data_frames_close(edge):
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        c.send(frame(HEADERS, END_HEADERS, 1, block(get_fields("/rec/case22-empty", "POST"))))
        c.send(frame(DATA, 0, 1, b"") + frame(DATA, 0, 1, b"x") + frame(DATA, 0, 1, b""))
        assert c.goaway(timeout=0.3) is None, "one empty frame at a time is tolerated"
        c.send(frame(DATA, 0, 1, b""))
        assert_connection_error(c, ENHANCE_YOUR_CALM, "two consecutive empty DATA frames")
    assert m.grew(EMPTY_FRAMES_FLOOD) == 1
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert_still_serving(gw)


def test_case22_empty_headers_flood_closes(edge):
    """HEADERS + CONTINUATION frames with empty payloads: the empty-frame cap applies too."""
    gw, _, _ = edge
    with H2(gw.port) as c:
        c.send(frame(HEADERS, 0, 1, b"") + frame(CONTINUATION, 0, 1, b"") +
               frame(CONTINUATION, 0, 1, b"") + frame(CONTINUATION, 0, 1, b""))
        goaway = c.goaway()
        assert goaway is not None and goaway.code != NO_ERROR, c.frames
        assert c.wait_closed()
    assert_still_serving(gw)


def test_case22_window_update_flood_closes(edge):
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        c.pump(0.1, drain=True)  # the client preface's own WINDOW_UPDATE is in the budget
        for _ in range(100):
            if not c.send(window_update(0, 1) * 10) or c.closed:
                break
            c.pump(0.005)
        assert_connection_error(c, ENHANCE_YOUR_CALM, "WINDOW_UPDATE flood")
    assert m.grew(WINDOW_UPDATE_FLOOD) == 1
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert_still_serving(gw)


def test_case22_window_updates_scale_with_data_sent(edge):
    """A client acknowledging every DATA frame with WINDOW_UPDATEs is not a flood."""
    gw, _, _ = edge
    n = 1 << 20
    with H2(gw.port, stream_window=65535) as c:
        c.send(headers_frame(1, get_fields("/big") + [("x-echo-response-bytes", str(n))]))
        got = 0
        ended = False
        deadline = time.monotonic() + scaled(10)
        while not ended and not c.closed and time.monotonic() < deadline:
            for f in c.pump(0.05):
                if f.stream == 1 and f.type == DATA:
                    got += len(f.payload)
                    ended = bool(f.flags & END_STREAM)
                    if f.payload:  # a browser-like client: both windows back after every frame
                        c.send(window_update(1, len(f.payload)) +
                               window_update(0, len(f.payload)))
        assert got == n and ended, f"got {got} of {n}; last frames {c.frames[-5:]}"
        assert c.goaway(timeout=0.1) is None


def test_case22_priority_flood_closes(edge):
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        c.send(priority(3, 0) * 100)
        assert c.goaway(timeout=0.3) is None, "100 PRIORITY frames are within the budget"
        c.send(priority(3, 0) * 10)
        assert_connection_error(c, ENHANCE_YOUR_CALM, "PRIORITY flood")
    assert m.grew(PRIORITY_FLOOD) == 1
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert_still_serving(gw)


# ---------------------------------------------------------------------------------------------
# Case 23: streams over max_concurrent_streams (100) get REFUSED_STREAM; the others are served.


def test_case23_streams_over_the_limit_are_refused(edge):
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        settings_frame = c.wait(lambda f: f.type == SETTINGS and not f.flags & ACK)
        values = dict(struct.unpack(">HI", settings_frame.payload[i:i + 6])
                      for i in range(0, len(settings_frame.payload), 6))
        assert values.get(0x3) == 100, values  # SETTINGS_MAX_CONCURRENT_STREAMS
        # 101 streams each held open 500 ms by the upstream.
        c.send(b"".join(headers_frame(1 + 2 * i, get_fields(f"/slow/{i}") +
                                      [("x-echo-delay-ms", "500")]) for i in range(101)))
        rst = c.rst(201)
        assert rst is not None, c.frames
        assert rst.code == REFUSED_STREAM
        for i in range(100):
            status, body, code = c.response(1 + 2 * i, timeout=scaled(10))
            assert (status, code) == (200, None), f"stream {1 + 2 * i}: {c.of(1 + 2 * i)}"
            assert json.loads(body)["path"] == f"/slow/{i}"
        assert [f.stream for f in c.frames if f.type == RST_STREAM] == [201]
        assert c.goaway(timeout=0.05) is None
        # Slots freed: a new stream is served.
        c.send(headers_frame(203, get_fields("/after")))
        assert c.response(203)[0] == 200
    assert m.grew(STREAMS_REFUSED) == 1
    assert m.grew(PREMATURE_RESETS, timeout=0.2) == 0


# ---------------------------------------------------------------------------------------------
# Case 24: zero-window reader on a large response.


def _proxy_upstream_rx_queue(echo_port):
    """Bytes waiting in the receive queues of the proxy's sockets connected to the echo backend."""
    total = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if int(parts[2].split(":")[1], 16) == echo_port and parts[3] == "01":
                total += int(parts[4].split(":")[1], 16)
    return total


def _assert_stalled_stream_reset(c, t0, T):
    """Stream 1 of a zero-window client is reset about 500 ms (the route's idle timeout) after
    `t0`, with no DATA sent and the connection kept."""
    rst = c.rst(1, timeout=T(5))
    waited = time.monotonic() - t0
    assert rst is not None, c.frames
    assert 0.4 <= waited < T(3), f"reset after {waited:.2f} s"
    assert not [f for f in c.of(1, DATA) if f.payload], "DATA beyond a zero window"
    assert c.goaway(timeout=0.05) is None


def test_case24_zero_window_reader_pauses_the_upstream_and_times_out(edge, T):
    gw, echo, _ = edge
    rss0 = gw.rss_kib()
    m = Counters(gw)
    with H2(gw.port, stream_window=0) as c:
        t0 = time.monotonic()
        c.send(headers_frame(1, get_fields("/idle/zero-window") +
                             [("x-echo-response-bytes", str(200 << 20))]))
        head = c.wait(lambda f: f.type == HEADERS and f.stream == 1)
        assert head is not None and STATIC_STATUS.get(head.payload[0]) == 200, c.frames
        # The proxy stops reading from the upstream: bytes pile up in its socket's receive queue.
        assert harness.wait_until(lambda: _proxy_upstream_rx_queue(echo.port) > 0, T(2)), \
            "the proxy kept reading the upstream for a client that cannot receive"
        grown = gw.rss_kib() - rss0
        assert grown < RSS_SLACK * 16 * 1024, f"proxy RSS grew by {grown} KiB"
        # The stream idle timeout (500 ms on /idle/) resets the stalled stream.
        _assert_stalled_stream_reset(c, t0, T)
    assert m.grew(TX_RESET) == 1
    assert_still_serving(gw)


@pytest.mark.parametrize("path, extra", [
    ("/idle/small", [("x-echo-response-bytes", "1000")]),  # the upstream is done at once
    ("/watch/small", [("x-echo-response-bytes", "1000")]),  # ... on a route with a timeout
    ("/idle-down/x", []),                                   # our own 503, never sent
], ids=["proxied", "proxied-with-route-timeout", "local-reply"])
def test_case24_zero_window_reader_of_a_finished_response_is_reset(edge, T, path, extra):
    """The whole response waits in the proxy (the upstream finished, or the proxy answered
    itself), held back only by the client's window: the stream idle timeout still ends it."""
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port, stream_window=0) as c:
        t0 = time.monotonic()
        c.send(headers_frame(1, get_fields(path) + extra))
        head = c.wait(lambda f: f.type == HEADERS and f.stream == 1)
        assert head is not None, c.frames
        _assert_stalled_stream_reset(c, t0, T)
    assert m.grew(TX_RESET) >= 1
    assert_still_serving(gw)


def test_case24_a_slow_reader_that_keeps_taking_bytes_is_not_cut(edge, T):
    """Delivery is activity: a client that opens its window a little at a time, each step well
    inside the 500 ms idle timeout, receives the whole finished response."""
    gw, _, _ = edge
    with H2(gw.port, stream_window=0) as c:
        c.send(headers_frame(1, get_fields("/idle/slow") + [("x-echo-response-bytes", "1000")]))
        assert c.wait(lambda f: f.type == HEADERS and f.stream == 1) is not None, c.frames
        got = 0
        for _ in range(20):  # 100 bytes per 200 ms: 2 s in all, four idle timeouts' worth
            c.send(window_update(1, 100))
            c.pump(0.2, drain=True)
            got = sum(len(f.payload) for f in c.of(1, DATA))
            if got >= 1000:
                break
        status, body, code = c.response(1, timeout=T(2))
        assert (status, len(body), code) == (200, 1000, None), c.frames


# ---------------------------------------------------------------------------------------------
# Case 25: bad preface and garbage frames → GOAWAY(PROTOCOL_ERROR or the specific code) + close.


GARBAGE = [
    ("ping-of-7-bytes", frame(PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR),
    ("data-on-stream-0", frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR),
    ("headers-on-stream-0", headers_frame(0, get_fields()), PROTOCOL_ERROR),
    ("even-stream-id", headers_frame(2, get_fields()), PROTOCOL_ERROR),
    ("frame-over-max-size", frame(DATA, 0, 1, b"x" * 20000), FRAME_SIZE_ERROR),
    ("window-update-of-0", window_update(0, 0), PROTOCOL_ERROR),
    ("settings-on-a-stream", frame(SETTINGS, 0, 1), PROTOCOL_ERROR),
    ("settings-ack-with-payload", frame(SETTINGS, ACK, 0, b"\x00\x04\x00\x00\x00\x01"),
     FRAME_SIZE_ERROR),
    ("push-promise-from-client", frame(PUSH_PROMISE, END_HEADERS, 1, b"\x00" * 4), PROTOCOL_ERROR),
    ("hpack-garbage", frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff" * 5), COMPRESSION_ERROR),
    ("data-on-idle-stream", frame(DATA, 0, 7, b"x"), PROTOCOL_ERROR),
    ("random-bytes", bytes(range(7, 64)) * 3, None),
]


@pytest.mark.parametrize("name,data,code", GARBAGE, ids=[g[0] for g in GARBAGE])
def test_case25_garbage_frames_are_a_connection_error(edge, name, data, code):
    gw, _, _ = edge
    m = Counters(gw)
    with H2(gw.port) as c:
        c.pump(0.1, drain=True)
        c.send(data)
        goaway = c.goaway()
        assert goaway is not None, f"{name}: no GOAWAY; frames {c.frames}"
        if code is None:
            assert goaway.code != NO_ERROR
        else:
            assert goaway.code == code, f"{name}: GOAWAY code {goaway.code:#x}, want {code:#x}"
        assert c.wait_closed(), f"{name}: connection still open"
    assert m.grew(PROTOCOL_ERRORS) == 1
    assert m.grew(GOAWAY_SENT) == 1
    assert_still_serving(gw)


def test_case25_first_frame_not_settings(edge):
    gw, _, _ = edge
    with H2(gw.port, preface=False) as c:
        c.send(PREFACE + ping(1))
        assert_connection_error(c, PROTOCOL_ERROR, "PING before the client SETTINGS")
    assert_still_serving(gw)


BAD_PREFACES = [
    PREFACE[:-6] + b"XX\r\n\r\n",  # "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"
    b"PRI * HTTP/2.0\r\n\r\n\r\n\r\n\r\n",
]


def _bad_preface(gw, preface):
    with H2(gw.port, preface=False) as c:
        c.send(preface + settings())
        closed = c.wait_closed()
        return closed, c.buf, [f for f in c.frames if f.type == GOAWAY]


@pytest.mark.parametrize("preface", BAD_PREFACES, ids=["XX", "empty"])
def test_case25_bad_preface_on_the_cleartext_port_closes(edge, preface):
    gw, _, rec = edge
    closed, raw, _ = _bad_preface(gw, preface)
    assert closed, f"connection still open after a bad preface; got {raw[:80]!r}"
    assert not rec.matching("PRI "), "the bad preface reached an upstream"
    assert_still_serving(gw)


@pytest.mark.parametrize("preface", BAD_PREFACES, ids=["XX", "empty"])
def test_case25_bad_preface_on_the_cleartext_port_gets_goaway(edge, preface):
    gw, _, _ = edge
    closed, raw, goaway = _bad_preface(gw, preface)
    assert closed
    assert goaway, f"no GOAWAY; got {raw[:80]!r}"
    assert goaway[0].code == PROTOCOL_ERROR


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from pki import Pki

    p = Pki(tmp_path_factory.mktemp("pki-h2edge"))
    p.a = p.server("a", "a.example.com")
    return p


def test_case25_bad_preface_after_alpn_h2(start_gateway, echo, pki):
    """Over TLS the connection is HTTP/2 from ALPN on: an HTTP/1 request instead of the preface is
    a connection error."""
    import ssl

    from harness import free_port, host, listener
    from pki import tls_secret

    port = free_port("0.0.0.0")
    gw = start_gateway([listener("e2e-https", port, protocol="HTTPS"),
                        tls_secret("a-cert", *pki.a),
                        host("a", "a.example.com", tlsSecret={"name": "a-cert"}),
                        mapping("echo", "/", echo.addr)])
    m = Counters(gw)
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
    with ctx.wrap_socket(raw, server_hostname="a.example.com") as tls:
        assert tls.selected_alpn_protocol() == "h2"
        tls.sendall(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        data = b""
        deadline = time.monotonic() + scaled(5)
        while time.monotonic() < deadline:
            try:
                chunk = tls.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            data += chunk
        else:
            pytest.fail("connection still open after a bad preface over TLS")
    frames = []
    while len(data) >= 9:
        n = int.from_bytes(data[:3], "big")
        frames.append(Frame(data[3], data[4], int.from_bytes(data[5:9], "big"), data[9:9 + n]))
        data = data[9 + n:]
    goaway = [f for f in frames if f.type == GOAWAY]
    assert goaway and goaway[0].code == PROTOCOL_ERROR, frames
    assert not data.startswith(b"HTTP/1"), "answered as HTTP/1 on an h2 connection"
    assert m.grew(PROTOCOL_ERRORS) == 1


# ---------------------------------------------------------------------------------------------
# Access-log reasons (§7: "every case also asserts ... an access-log reason").


def _access_lines(gw, marker, timeout=None):
    deadline = time.monotonic() + (timeout or scaled(2))
    while True:
        lines = [l for l in harness.access_log_lines(gw.stdout()) if marker in l["path"]]
        if lines or time.monotonic() >= deadline:
            return lines
        time.sleep(0.05)


# The client's fields before the bad one are what the line can show (%REQ(USER-AGENT)%, ...).
_LOGGED_BEFORE = [("user-agent", "case17-agent/1"), ("x-request-id", "case17-rid")]

REJECTED_LOGGED = [
    ("connection", lambda m: _req(m, extra=_LOGGED_BEFORE + [("connection", "close")])),
    ("te-gzip", lambda m: _req(m, extra=_LOGGED_BEFORE + [("te", "gzip")])),
    ("transfer-encoding", lambda m: _req(m, method="POST", extra=_LOGGED_BEFORE + [
        ("transfer-encoding", "chunked")])),
    ("uppercase-name", lambda m: _req(m, extra=_LOGGED_BEFORE + [("X-Upper", "1")])),
    # :authority after a regular field: refused there, so the line has no authority.
    ("pseudo-after-regular", lambda m: [(":method", "GET"), (":scheme", "http"),
                                        (":path", f"/rec/{m}")] + _LOGGED_BEFORE +
     [(":authority", "a.example")]),
]


@pytest.mark.parametrize("name,build", REJECTED_LOGGED, ids=[r[0] for r in REJECTED_LOGGED])
def test_case17_rejected_stream_is_logged_as_protocol_error(edge, name, build):
    """Envoy logs a stream its codec reset for a malformed head: response code 0, flag DPE, with
    what arrived of the request before the bad field."""
    gw, _, _ = edge
    marker = f"case17-log-{name}"
    fields = build(marker)
    m = Counters(gw)
    with H2(gw.port) as c:
        c.send(headers_frame(1, fields))
        rst = c.rst(1)
        assert rst is not None and rst.code == PROTOCOL_ERROR, c.frames
    lines = _access_lines(gw, marker)
    assert len(lines) == 1, f"want one access-log line for the rejected stream, got {lines}"
    line = lines[0]
    method = dict(fields)[":method"]
    authority = "-" if name == "pseudo-after-regular" else "a.example"
    assert (line["method"], line["path"], line["protocol"]) == (method, f"/rec/{marker}", "HTTP/2")
    assert (line["code"], line["flags"], line["rx"], line["tx"], line["duration"]) == \
        ("0", "DPE", "0", "0", "0"), line
    assert (line["ua"], line["request_id"], line["authority"], line["upstream"]) == \
        ("case17-agent/1", "case17-rid", authority, "-"), line
    assert m.grew("envoy_http_downstream_rq_total") == 1
    assert m.grew(MESSAGING_ERRORS) == 1


def test_case18_mismatch_is_logged_as_protocol_error(edge):
    gw, _, _ = edge
    fields = _req("case18-log", method="POST", extra=[("content-length", "5")])
    with H2(gw.port) as c:
        c.send(frame(HEADERS, END_HEADERS, 1, block(fields)) + frame(DATA, END_STREAM, 1, b"abc"))
        assert c.rst(1).code == PROTOCOL_ERROR
    lines = _access_lines(gw, "case18-log")
    assert lines, "no access-log line"
    assert lines[0]["code"] == "0"
    assert "DPE" in lines[0]["flags"], f"flags {lines[0]['flags']}"


def test_case19_reset_streams_are_logged_as_client_resets(edge):
    gw, _, _ = edge
    with H2(gw.port) as c:
        c.send(headers_frame(1, get_fields("/case19-log") + [("x-echo-delay-ms", "2000")]))
        time.sleep(0.1)
        c.send(rst_stream(1, CANCEL))
        c.send(headers_frame(3, get_fields("/case19-log-after")))
        assert c.response(3)[0] == 200
    lines = _access_lines(gw, "/case19-log")
    mine = [l for l in lines if l["path"] == "/case19-log"]
    assert mine and mine[0]["code"] == "0" and mine[0]["flags"] == "DC", lines
