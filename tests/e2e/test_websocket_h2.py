"""WebSockets over HTTP/2 (RFC 8441 extended CONNECT) from the client to an HTTP/1.1 upstream.

The gateway advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, turns `:method CONNECT` + `:protocol
websocket` into an RFC 6455 GET/Upgrade (with a Sec-WebSocket-Key of its own), answers the
upstream's 101 with 200 and then carries the stream's DATA as the upgraded connection's bytes.
The client is written here on python3-h2 and raw sockets; the upstream is the echo backend's
WebSocket echo. Also: Listener http2MaxConcurrentStreams and the HTTP/2 counters on /metrics."""

import json
import os
import socket
import struct
import time
import urllib.request

import pytest

h2 = pytest.importorskip("h2")
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.errors  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402

from harness import free_port, listener, mapping, wait_until  # noqa: E402


class H2Client:
    """A blocking HTTP/2 client over h2c prior knowledge that records every event per stream."""

    def __init__(self, port, timeout, validate=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.settings_seen = False
        self.headers = {}  # stream -> dict of the response head
        self.data = {}  # stream -> bytearray
        self.ended = set()
        self.resets = {}  # stream -> error code
        self.closed = False
        self.auto_ack = True  # False: play a client that stops reading (no WINDOW_UPDATE)
        self.unacked = []  # (stream, length) held back while auto_ack is off
        self.pump_until(lambda: self.settings_seen)

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not chunk:
            self.closed = True
            return False
        for ev in self.conn.receive_data(chunk):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
            elif isinstance(ev, h2.events.ResponseReceived):
                self.headers[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                if self.auto_ack:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                else:
                    self.unacked.append((ev.stream_id, ev.flow_controlled_length))
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.resets[ev.stream_id] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True
        self.flush()
        return True

    def pump_until(self, done, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not done():
            assert time.monotonic() < deadline, "timed out waiting on the HTTP/2 connection"
            if not self.pump() and self.closed:
                break
        return done()

    def connect(self, path, protocol="websocket", extra=(), authority="gw"):
        sid = self.conn.get_next_available_stream_id()
        head = [(":method", "CONNECT"), (":protocol", protocol), (":scheme", "http"),
                (":path", path), (":authority", authority),
                ("sec-websocket-version", "13")] + list(extra)
        self.conn.send_headers(sid, head)
        self.flush()
        return sid

    def send(self, sid, data, end=False):
        """Sends all of `data`, waiting for window as the gateway grants it."""
        view = memoryview(data)
        while view:
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump()
                continue
            n = min(window, len(view))
            self.conn.send_data(sid, bytes(view[:n]))
            view = view[n:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def resume_reading(self):
        self.auto_ack = True
        for sid, n in self.unacked:
            self.conn.acknowledge_received_data(n, sid)
        self.unacked = []
        self.flush()

    def close(self):
        self.sock.close()


def ws_frame(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04"):
    """A masked client frame (RFC 6455 §5.2)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def server_frame(opcode, payload, fin=True):
    """The unmasked frame the echo answers with."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", b0, n) + payload
    if n < 65536:
        return struct.pack("!BBH", b0, 126, n) + payload
    return struct.pack("!BBQ", b0, 127, n) + payload


def parse_frames(buf):
    """[(fin, opcode, payload)] of the complete server frames in buf."""
    out = []
    i = 0
    while i + 2 <= len(buf):
        b0, b1 = buf[i], buf[i + 1]
        n = b1 & 0x7F
        p = i + 2
        if n == 126:
            n = struct.unpack("!H", buf[p:p + 2])[0]
            p += 2
        elif n == 127:
            n = struct.unpack("!Q", buf[p:p + 8])[0]
            p += 8
        if p + n > len(buf):
            break
        out.append((bool(b0 & 0x80), b0 & 0x0F, bytes(buf[p:p + n])))
        i = p + n
    return out


def _zero_mask_head(opcode, n):
    b0 = 0x80 | opcode
    if n < 126:
        return struct.pack("!BB", b0, 0x80 | n) + b"\0\0\0\0"
    if n < 65536:
        return struct.pack("!BBH", b0, 0x80 | 126, n) + b"\0\0\0\0"
    return struct.pack("!BBQ", b0, 0x80 | 127, n) + b"\0\0\0\0"


@pytest.fixture
def ws_gw(start_gateway, echo):
    return start_gateway([
        mapping("ws", "/ws/", echo.addr, rewrite="/echo/", allow_upgrade=["websocket"]),
        mapping("legacy", "/legacy/", echo.addr, use_websocket=True, timeout_ms=300),
        mapping("plain", "/plain/", echo.addr),
        mapping("idle", "/idle/", echo.addr, allow_upgrade=["websocket"], idle_timeout_ms=400),
        mapping("noup", "/no-upgrade/", echo.addr, rewrite="/no-upgrade/",
                allow_upgrade=["websocket"]),
    ])


def test_settings_advertise_extended_connect_and_default_stream_limit(ws_gw, T):
    c = H2Client(ws_gw.port, T(10))
    try:
        rs = c.conn.remote_settings
        assert rs.enable_connect_protocol == 1
        assert rs.max_concurrent_streams == 100
    finally:
        c.close()


def test_websocket_over_h2_echo_byte_for_byte(ws_gw, T):
    c = H2Client(ws_gw.port, T(20))
    try:
        sid = c.connect("/ws/chat?room=1",
                        extra=[("sec-websocket-protocol", "chat, superchat"),
                               ("x-echo-ws-info", "1")])
        assert c.pump_until(lambda: sid in c.headers or sid in c.resets)
        head = c.headers[sid]
        assert head[":status"] == "200", head
        assert "sec-websocket-accept" not in head  # answered our key, not the client's
        assert "upgrade" not in head and "connection" not in head
        assert head.get("sec-websocket-protocol") == "chat"

        # First message: the echo's JSON account of the HTTP/1.1 handshake it received.
        assert c.pump_until(lambda: parse_frames(c.data.get(sid, b"")))
        fin, op, payload = parse_frames(c.data[sid])[0]
        info = json.loads(payload)
        first_len = len(server_frame(op, payload))
        assert info["method"] == "GET"
        assert info["path"] == "/echo/chat?room=1"
        hdrs = {k.lower(): v for k, v in info["headers"].items()}
        assert hdrs["upgrade"].lower() == "websocket"
        assert "upgrade" in hdrs["connection"].lower()
        assert len(hdrs["sec-websocket-key"]) == 24
        assert hdrs["sec-websocket-version"] == "13"
        assert hdrs["sec-websocket-protocol"] == "chat, superchat"
        assert "transfer-encoding" not in hdrs and "content-length" not in hdrs

        # Frames of several sizes, one larger than the 64 KiB stream window both ways; the
        # echo answers each with the same frame unmasked, so the bytes are known exactly.
        big = os.urandom(300 * 1024)
        frames = [(0x1, b"hello"), (0x2, b"\x00\x01binary\xff"), (0x2, big), (0x9, b"ping!")]
        expected = bytearray()
        for op, payload in frames:
            c.send(sid, _zero_mask_head(op, len(payload)) + payload)
            expected += server_frame(0xA if op == 0x9 else op, payload)
        assert c.pump_until(lambda: len(c.data[sid]) >= first_len + len(expected), T(20))
        assert bytes(c.data[sid][first_len:]) == bytes(expected)

        # Close handshake: our close (code 4001) is answered with the same code, then the
        # upstream closes its connection, which ends the stream's server side.
        c.send(sid, ws_frame(0x8, struct.pack("!H", 4001) + b"client-bye"))
        assert c.pump_until(lambda: sid in c.ended or sid in c.resets, T(10))
        assert sid not in c.resets
        last = parse_frames(c.data[sid][first_len + len(expected):])
        assert last and last[-1][1] == 0x8
        assert struct.unpack("!H", last[-1][2][:2])[0] == 4001
        # Our END_STREAM completes the stream; the connection stays usable.
        c.send(sid, b"", end=True)
        sid2 = c.connect("/ws/again")
        assert c.pump_until(lambda: sid2 in c.headers)
        assert c.headers[sid2][":status"] == "200"
        c.send(sid2, ws_frame(0x1, b"second"))
        assert c.pump_until(lambda: parse_frames(c.data.get(sid2, b"")))
        assert parse_frames(c.data[sid2])[0] == (True, 0x1, b"second")
        c.conn.reset_stream(sid2, h2.errors.ErrorCodes.CANCEL)
        c.flush()
    finally:
        c.close()


def test_half_close_from_the_client_keeps_the_other_direction(ws_gw, T):
    c = H2Client(ws_gw.port, T(10))
    try:
        sid = c.connect("/legacy/")  # use_websocket: true; a 300 ms route timeout
        assert c.pump_until(lambda: sid in c.headers)
        assert c.headers[sid][":status"] == "200"
        time.sleep(0.5)  # longer than the route timeout: it does not apply to a tunnel
        # Frame, then END_STREAM right behind it: the upstream sees the bytes, then a FIN, and
        # its echo still comes back on the stream.
        c.send(sid, ws_frame(0x1, b"last words"), end=True)
        assert c.pump_until(lambda: parse_frames(c.data.get(sid, b"")), T(10))
        assert parse_frames(c.data[sid])[0] == (True, 0x1, b"last words")
        assert sid not in c.resets
    finally:
        c.close()


def test_bytes_and_end_stream_sent_before_the_200_follow_the_101(ws_gw, T):
    c = H2Client(ws_gw.port, T(10))
    try:
        sid = c.connect("/ws/early")
        # No waiting for the 200: the frame and the END_STREAM wait in the gateway for the 101.
        c.send(sid, ws_frame(0x1, b"early") + ws_frame(0x2, b"\x00early2"), end=True)
        assert c.pump_until(lambda: len(parse_frames(c.data.get(sid, b""))) >= 2, T(10))
        assert c.headers[sid][":status"] == "200"
        assert parse_frames(c.data[sid])[:2] == [(True, 0x1, b"early"), (True, 0x2, b"\x00early2")]
        assert sid not in c.resets
    finally:
        c.close()


def test_idle_timeout_resets_a_silent_tunnel(ws_gw, T):
    c = H2Client(ws_gw.port, T(10))
    try:
        sid = c.connect("/idle/")
        assert c.pump_until(lambda: sid in c.headers)
        c.send(sid, ws_frame(0x1, b"hi"))
        assert c.pump_until(lambda: parse_frames(c.data.get(sid, b"")))
        started = time.monotonic()
        assert c.pump_until(lambda: sid in c.resets, T(5))
        assert time.monotonic() - started >= 0.3
        assert c.resets[sid] == h2.errors.ErrorCodes.CANCEL
    finally:
        c.close()


def test_route_without_allow_upgrade_refuses_with_403(ws_gw, echo, T):
    c = H2Client(ws_gw.port, T(10))
    try:
        sid = c.connect("/plain/x")
        assert c.pump_until(lambda: sid in c.ended or sid in c.resets)
        assert c.headers[sid][":status"] == "403"
        # The refused stream's client side is closed for it (nothing more is wanted).
        assert c.pump_until(lambda: sid in c.resets, T(5))
        assert c.resets[sid] == h2.errors.ErrorCodes.NO_ERROR
        # The connection still serves ordinary requests.
        sid2 = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid2, [(":method", "GET"), (":scheme", "http"), (":path", "/plain/y"),
                                   (":authority", "gw")], end_stream=True)
        c.flush()
        assert c.pump_until(lambda: sid2 in c.ended)
        assert c.headers[sid2][":status"] == "200"
    finally:
        c.close()


def test_plain_connect_is_refused(ws_gw, T):
    c = H2Client(ws_gw.port, T(10), validate=False)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")])
        c.flush()
        assert c.pump_until(lambda: sid in c.ended or sid in c.resets)
        assert c.headers[sid][":status"] == "403"
    finally:
        c.close()


def test_upstream_answering_without_101_passes_through(ws_gw, T):
    c = H2Client(ws_gw.port, T(10))
    try:
        # The echo backend answers upgrades under /no-upgrade/ as ordinary requests (a 200 with
        # its JSON description), which is not a tunnel.
        sid = c.connect("/no-upgrade/x")
        c.send(sid, ws_frame(0x1, b"early bytes are dropped"))
        assert c.pump_until(lambda: sid in c.ended or sid in c.resets)
        assert c.headers[sid][":status"] == "200"
        body = json.loads(bytes(c.data[sid]))
        assert body["method"] == "GET"
        assert c.pump_until(lambda: sid in c.resets, T(5))
        assert c.resets[sid] == h2.errors.ErrorCodes.NO_ERROR
    finally:
        c.close()


def test_extended_connect_with_other_protocol_needs_it_allowed(ws_gw, T):
    c = H2Client(ws_gw.port, T(10))
    try:
        sid = c.connect("/ws/x", protocol="my-proto")
        assert c.pump_until(lambda: sid in c.ended or sid in c.resets)
        assert c.headers[sid][":status"] == "403"
    finally:
        c.close()


def test_client_reset_closes_the_upstream_and_counters_show_it(ws_gw, T):
    c = H2Client(ws_gw.port, T(10))
    try:
        sids = []
        for i in range(3):
            sid = c.connect(f"/ws/r{i}")
            sids.append(sid)
        assert c.pump_until(lambda: all(s in c.headers for s in sids))
        for sid in sids:
            c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        c.flush()
        sid = c.connect("/ws/after")
        assert c.pump_until(lambda: sid in c.headers)
        refused = c.connect("/plain/")  # 403, then RST_STREAM(NO_ERROR) from the gateway
        assert c.pump_until(lambda: refused in c.resets)
    finally:
        c.close()

    def metrics():
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(ws_gw.admin_url + "/metrics", timeout=T(5)) as r:
            return r.read().decode()

    def value(text, name):
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    assert wait_until(lambda: value(metrics(), "envoy_http2_rx_reset") >= 3, T(5))
    text = metrics()
    assert value(text, "envoy_http2_tx_reset") >= 1
    assert "# TYPE envoy_http2_streams_active gauge" in text
    assert "# TYPE envoy_http2_header_overflow counter" in text
    assert "# TYPE envoy_http_downstream_rq_too_many_premature_resets counter" in text
    # Every stream ended with the connection.
    assert wait_until(lambda: value(metrics(), "envoy_http2_streams_active") == 0, T(5))


def test_listener_http2_max_concurrent_streams(start_gateway, echo, T):
    port = free_port("0.0.0.0")
    start_gateway([listener("l", port, http2MaxConcurrentStreams=3),
                   mapping("ws", "/ws/", echo.addr, allow_upgrade=["websocket"])], listen=False)
    c = H2Client(port, T(10))
    try:
        assert c.conn.remote_settings.max_concurrent_streams == 3
        # Three tunnels are open; a fourth stream is refused, the others are unaffected.
        sids = [c.connect(f"/ws/{i}") for i in range(3)]
        assert c.pump_until(lambda: all(s in c.headers for s in sids))
        # Bypass h2's own limit check to play a client that ignores the setting.
        c.conn.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 100
        c.conn.remote_settings.acknowledge()
        extra = c.connect("/ws/extra")
        assert c.pump_until(lambda: extra in c.resets)
        assert c.resets[extra] == h2.errors.ErrorCodes.REFUSED_STREAM
        c.send(sids[0], ws_frame(0x1, b"still here"))
        assert c.pump_until(lambda: parse_frames(c.data.get(sids[0], b"")))
        assert parse_frames(c.data[sids[0]])[0] == (True, 0x1, b"still here")
    finally:
        c.close()


@pytest.mark.slow
def test_a_client_that_stops_reading_holds_back_the_tunnel(ws_gw, T):
    """Flow control end to end: the echo sends everything back, the client stops granting
    window, so the gateway stops reading the upstream, the upstream stops reading, and the
    gateway stops granting the client window: the client's sending stalls with the gateway's
    memory bounded. Once the client reads again, every byte arrives intact."""
    c = H2Client(ws_gw.port, T(30))
    try:
        sid = c.connect("/ws/flow")
        assert c.pump_until(lambda: sid in c.headers)
        assert c.headers[sid][":status"] == "200"
        rss_before = ws_gw.rss_kib()
        # 32 MiB in one binary message: more than the kernel's socket buffers on the way take
        # (about 10 MiB on loopback) before the stall.
        payload = os.urandom(1024 * 1024) * 32
        wire = _zero_mask_head(0x2, len(payload)) + payload
        view = memoryview(wire)
        c.auto_ack = False
        c.sock.settimeout(0.2)
        sent = 0
        quiet_since = None
        while sent < len(wire):
            window = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
            if window > 0:
                n = min(window, len(wire) - sent)
                c.conn.send_data(sid, bytes(view[sent:sent + n]))
                c.flush()
                sent += n
                quiet_since = None
                continue
            c.pump()
            if quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 1.0:
                break  # no window for a second: stalled
        assert sent < len(wire), "the client was never held back"
        grown_kib = ws_gw.rss_kib() - rss_before
        assert grown_kib < 32 * 1024, f"gateway grew {grown_kib} KiB while the client stalled"
        # Read again: the rest goes through and the echo comes back byte for byte.
        c.resume_reading()
        c.sock.settimeout(T(30))
        c.send(sid, bytes(view[sent:]))
        expected = server_frame(0x2, payload)
        assert c.pump_until(lambda: len(c.data.get(sid, b"")) >= len(expected), T(60))
        assert bytes(c.data[sid]) == expected
    finally:
        c.close()
