"""Upgrade handling at the edges: which Upgrade values a Mapping's allow_upgrade admits (Envoy's
whole-value, case-insensitive match), which upstream 101s become tunnels, and that a request that
asked for an upgrade and did not get one closes the client connection (bytes sent behind it are
never parsed as a next request: edge-hardening §7 row 16). Raw sockets and a scripted upstream."""

import base64
import hashlib
import threading
import time

import pytest

import harness
from harness import FakeUpstream, RawConn, mapping, raw_exchange, wait_until

WS_HEADERS = (b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


def upgrade_request(path, protocol=b"websocket", extra=b""):
    if isinstance(protocol, str):
        protocol = protocol.encode()
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            b"Upgrade: " + protocol + b"\r\n" + extra + WS_HEADERS + b"\r\n")


def header_value(head, name):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


class ScriptedUpstream:
    """Records every request head it receives (all connections) and answers each with
    `answer(head)`: bytes to send, plus whether the connection then becomes a byte echo (a
    tunnel) or waits for the next request. `answer` returning None sends nothing and waits for
    the peer to close."""

    def __init__(self, answer):
        self.answer = answer
        self.heads = []
        self.closed = 0  # connections whose peer (the gateway) closed them
        self.lock = threading.Lock()
        self.up = FakeUpstream(self._serve)

    @property
    def addr(self):
        return self.up.addr

    @property
    def connections(self):
        return self.up.connections

    def lines(self):
        with self.lock:
            return [h.split(b"\r\n")[0] for h in self.heads]

    def _serve(self, conn, data):
        try:
            while True:
                head, _, data = data.partition(b"\r\n\r\n")
                with self.lock:
                    self.heads.append(head)
                reply = self.answer(head)
                if reply is None:
                    while conn.recv(65536):
                        pass
                    return
                out, tunnel = reply
                conn.sendall(out)
                if tunnel:
                    if data:
                        conn.sendall(data)
                    while True:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        conn.sendall(chunk)
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
        finally:
            with self.lock:
                self.closed += 1


def switch(head, upgrade=None):
    """A 101 naming `upgrade` (default: whatever the request's Upgrade said), as a tunnel."""
    if upgrade is None:
        upgrade = header_value(head, b"upgrade")
    key = header_value(head, b"sec-websocket-key")
    out = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
    if upgrade:
        out += b"Upgrade: " + upgrade + b"\r\n"
    if key:
        accept = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        out += b"Sec-WebSocket-Accept: " + accept + b"\r\n"
    return out + b"\r\n", True


def ok(head):
    return b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", False


def read_until(c, needle, timeout):
    """What a RawConn has read once `needle` arrived (or the peer closed, or time ran out)."""
    deadline = time.monotonic() + timeout
    while needle not in c.buf and not c.eof and time.monotonic() < deadline:
        c._fill(deadline)
    return bytes(c.buf)


def access_log(gw, path, T):
    lines = wait_until(lambda: [l for l in harness.access_log_lines(gw.stdout())
                                if l["path"] == path], T(5))
    assert lines, gw.stdout()[-2000:]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# 1, 2: allow_upgrade matches the whole Upgrade value, case-insensitively.


@pytest.mark.parametrize("allowed,sent", [
    ("spdy/3.1", "SPDY/3.1"),  # kubectl exec / port-forward
    ("spdy/3.1", "spdy/3.1"),
    ("SPDY/3.1", "spdy/3.1"),
    ("websocket", "websocket"),
    ("websocket", "WebSocket"),
    ("WebSocket", "websocket"),
])
def test_allow_upgrade_matches_the_whole_value(start_gateway, T, allowed, sent):
    up = ScriptedUpstream(switch)
    gw = start_gateway([mapping("u", "/u/", up.addr, allow_upgrade=[allowed])])
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(upgrade_request("/u/a", sent))
        assert r.status == 101, r
        assert r.header("upgrade").lower() == sent.lower()
        c.send(b"tunnel bytes")
        assert read_until(c, b"tunnel bytes", T(5)) == b"tunnel bytes"
    assert header_value(up.heads[0], b"upgrade") == sent.encode()


@pytest.mark.parametrize("allowed,sent", [
    ("spdy/3.1", "spdy"),
    ("spdy/3.1", "SPDY/3"),
    ("spdy/3.1", "spdy/3.1, websocket"),
    ("websocket", "websocket/13"),
    ("websocket", "websocket, foo"),
    ("websocket", "foo, websocket"),
    ("websocket", "websocket,"),
])
def test_upgrade_value_other_than_an_allowed_one_is_403(start_gateway, T, allowed, sent):
    up = ScriptedUpstream(switch)
    gw = start_gateway([mapping("u", "/u/", up.addr, allow_upgrade=[allowed])])
    responses, closed, _ = raw_exchange(gw.port, upgrade_request("/u/a", sent), timeout=T(3))
    assert [r.status for r in responses] == [403]
    assert responses[0].body == b"upgrade not allowed on this route\n"
    assert closed
    assert up.lines() == []  # never reached the upstream
    assert access_log(gw, "/u/a", T)["flags"] == "UPE"


def test_two_upgrade_fields_are_one_list_and_refused(start_gateway, T):
    # Two Upgrade lines are the list "websocket, foo" (RFC 9110 §5.3), which is not "websocket".
    up = ScriptedUpstream(switch)
    gw = start_gateway([mapping("u", "/u/", up.addr, allow_upgrade=["websocket"])])
    responses, closed, _ = raw_exchange(
        gw.port, upgrade_request("/u/a", b"websocket", extra=b"Upgrade: foo\r\n"), timeout=T(3))
    assert [r.status for r in responses] == [403]
    assert closed
    assert up.lines() == []


# ---------------------------------------------------------------------------------------------
# 3: a 101 must name the protocol asked for.


@pytest.mark.parametrize("upgrade", [b"h2c", b""], ids=["other-protocol", "no-upgrade-header"])
def test_101_not_naming_the_requested_protocol_is_502(start_gateway, T, upgrade):
    up = ScriptedUpstream(lambda head: switch(head, upgrade))
    gw = start_gateway([mapping("ws", "/ws/", up.addr, allow_upgrade=["websocket"])])
    responses, closed, rest = raw_exchange(gw.port, upgrade_request("/ws/a") + b"\x81\x00",
                                           timeout=T(3))
    assert [r.status for r in responses] == [502], (responses, rest)
    r = responses[0]
    assert r.body == b"upstream sent an invalid response\n"
    assert r.header("connection") == "close"
    assert closed and rest == b""
    assert access_log(gw, "/ws/a", T)["flags"] == "UPE"
    assert wait_until(lambda: up.closed == 1, T(5))  # the upstream connection is dropped


def test_101_naming_the_protocol_in_another_case_is_a_tunnel(start_gateway, T):
    up = ScriptedUpstream(lambda head: switch(head, b"WebSocket"))
    gw = start_gateway([mapping("ws", "/ws/", up.addr, allow_upgrade=["websocket"])])
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(upgrade_request("/ws/a"))
        assert r.status == 101
        c.send(b"\x81\x00")
        assert read_until(c, b"\x81\x00", T(5)) == b"\x81\x00"


@pytest.mark.parametrize("upgrade", [b"h2c", b""], ids=["other-protocol", "no-upgrade-header"])
def test_extended_connect_101_not_naming_the_protocol_is_502(start_gateway, T, upgrade):
    from test_websocket_h2 import H2Client

    # A correct Sec-WebSocket-Accept, but the 101 switches to something else (or says nothing).
    up = ScriptedUpstream(lambda head: switch(head, upgrade))
    gw = start_gateway([mapping("ws", "/ws/", up.addr, allow_upgrade=["websocket"])])
    c = H2Client(gw.port, T(8))
    try:
        sid = c.connect("/ws/a")
        assert c.pump_until(lambda: sid in c.ended or sid in c.resets)
        assert c.headers[sid][":status"] == "502"
    finally:
        c.close()
    assert access_log(gw, "/ws/a", T)["flags"] == "UPE"


def test_extended_connect_101_naming_the_protocol_in_another_case_is_a_tunnel(start_gateway, T):
    from test_websocket_h2 import H2Client

    up = ScriptedUpstream(lambda head: switch(head, b"WebSocket"))
    gw = start_gateway([mapping("ws", "/ws/", up.addr, allow_upgrade=["websocket"])])
    c = H2Client(gw.port, T(8))
    try:
        sid = c.connect("/ws/a")
        assert c.pump_until(lambda: sid in c.headers)
        assert c.headers[sid][":status"] == "200"
        c.send(sid, b"through")
        assert c.pump_until(lambda: bytes(c.data.get(sid, b"")) == b"through")
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# 4: an upgrade request not upgraded closes the client connection after its answer; what the
# client sent behind it (tunnel bytes, or a smuggled request) is never parsed.

SMUGGLED = b"GET /u/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def test_refused_upgrade_closes_and_never_parses_what_follows(start_gateway, T):
    up = ScriptedUpstream(ok)
    gw = start_gateway([mapping("plain", "/u/", up.addr)])
    responses, closed, rest = raw_exchange(gw.port, upgrade_request("/u/a") + SMUGGLED,
                                           timeout=T(3))
    assert [r.status for r in responses] == [403], (responses, rest)
    assert responses[0].header("connection") == "close"
    assert closed and rest == b""
    assert up.lines() == []
    # An h2c offer is not an upgrade we act on: the connection stays HTTP.
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(b"GET /u/b HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                      b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
        assert r.status == 200
        assert c.request(b"GET /u/c HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    assert up.lines() == [b"GET /b HTTP/1.1", b"GET /c HTTP/1.1"]


def test_upstream_non_101_answer_closes_and_never_parses_what_follows(start_gateway, T):
    up = ScriptedUpstream(ok)
    gw = start_gateway([mapping("ws", "/u/", up.addr, allow_upgrade=["websocket"])])
    responses, closed, rest = raw_exchange(gw.port, upgrade_request("/u/a") + SMUGGLED,
                                           timeout=T(3))
    assert [r.status for r in responses] == [200], (responses, rest)
    assert responses[0].body == b"ok"
    assert responses[0].header("connection") == "close"
    assert closed and rest == b""
    time.sleep(0.2)
    assert up.lines() == [b"GET /a HTTP/1.1"]


def test_local_error_to_an_upgrade_closes_and_never_parses_what_follows(start_gateway, T):
    up = ScriptedUpstream(lambda head: None)  # never answers
    gw = start_gateway([mapping("ws", "/u/", up.addr, allow_upgrade=["websocket"],
                                timeout_ms=300)])
    responses, closed, rest = raw_exchange(gw.port, upgrade_request("/u/a") + SMUGGLED,
                                           timeout=T(3))
    assert [r.status for r in responses] == [504], (responses, rest)
    assert responses[0].header("connection") == "close"
    assert closed and rest == b""
    time.sleep(0.2)
    assert up.lines() == [b"GET /a HTTP/1.1"]


# ---------------------------------------------------------------------------------------------
# 5: a 101 to a request that asked for no upgrade is an invalid response.


def test_unsolicited_101_is_502_at_once_and_not_pooled(start_gateway, T):
    up = ScriptedUpstream(lambda head: switch(head, b"websocket"))
    gw = start_gateway([mapping("plain", "/u/", up.addr, timeout_ms=int(T(10) * 1000))])
    with RawConn(gw.port, timeout=T(8)) as c:
        t0 = time.monotonic()
        r = c.request(b"GET /u/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 502, r
        assert time.monotonic() - t0 < T(2)  # not the route timeout
        assert r.body == b"upstream sent an invalid response\n"
        # An ordinary request: the client connection carries on; the upstream one is gone.
        r2 = c.request(b"GET /u/2 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r2.status == 502
    assert wait_until(lambda: up.closed == 2, T(5))
    assert up.connections == 2
    assert access_log(gw, "/u/1", T)["flags"] == "UPE"


def test_unsolicited_101_to_an_http2_client_is_502(start_gateway, T):
    from test_websocket_h2 import H2Client

    up = ScriptedUpstream(lambda head: switch(head, b"websocket"))
    gw = start_gateway([mapping("plain", "/u/", up.addr, timeout_ms=int(T(10) * 1000))])
    c = H2Client(gw.port, T(8))
    try:
        t0 = time.monotonic()
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":path", "/u/1"),
                                  (":authority", "gw")], end_stream=True)
        c.flush()
        assert c.pump_until(lambda: sid in c.ended or sid in c.resets)
        assert c.headers[sid][":status"] == "502"
        assert time.monotonic() - t0 < T(2)
    finally:
        c.close()
    assert wait_until(lambda: up.closed == 1, T(5))
