"""The echo backend itself, without the proxy: h2c and HTTP/1.1 on one port, the gRPC echo service,
the WebSocket echo and TLS. Later protocol tests rely on every behaviour checked here."""

import asyncio
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import grpc
import pytest
import websockets

import grpc_echo
import harness
from harness import RawConn, get_request

H1_KEYS = {"backend", "method", "path", "host", "headers", "body_length", "body_sha256",
           "http_version", "remote_address"}


# ---------------------------------------------------------------------------------------------
# Helpers


def curl(*args, timeout=None):
    """curl -sS (no proxy) -> CompletedProcess with bytes output."""
    return subprocess.run(
        ["curl", "-sS", "--noproxy", "*", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        timeout=timeout or harness.scaled(30),
    )


def curl_json(*args):
    """Runs curl with -w appending the status and HTTP version; returns (status, version, json)."""
    r = curl("-w", "\n%{http_code} %{http_version}", *args)
    assert r.returncode == 0, r.stderr.decode()
    body, _, tail = r.stdout.rpartition(b"\n")
    status, version = tail.decode().split()
    return int(status), version, json.loads(body)


def start_echo_with(tmp_path, *extra, name="x"):
    """An echo backend with extra command-line flags (harness.EchoBackend takes none)."""
    if not harness.BUILD or not os.access(harness.echo_bin(), os.X_OK):
        pytest.fail(f"binary not built: {harness.echo_bin()}", pytrace=False)
    port = harness.free_port()
    proc = harness.Proc(
        [harness.echo_bin(), "--listen", f"127.0.0.1:{port}", "--name", name, *extra],
        str(tmp_path / "procs"), f"echo-{name}",
    )
    if not harness.wait_for_tcp("127.0.0.1", port, harness.scaled(10), proc):
        raise harness.HarnessError(f"echo-backend {name} did not start\n" + proc.describe())
    proc.port = port
    proc.addr = f"127.0.0.1:{port}"
    return proc


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, harness.scaled(timeout)))


def read_h2_frame(sock):
    """(type, flags, stream_id, payload) of the next HTTP/2 frame."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        return buf

    head = exact(9)
    length = int.from_bytes(head[:3], "big")
    return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, exact(length)


def ws_handshake(key="dGhlIHNhbXBsZSBub25jZQ==", path="/ws", version="13", extra=()):
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Version", version)]
    if key is not None:
        headers.append(("Sec-WebSocket-Key", key))
    return get_request(path, headers=headers + list(extra))


def ws_frame(opcode, payload, fin=True, mask=b"\x00\x00\x00\x00", masked=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not masked:
        return head + payload
    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload)) if any(mask) else payload
    return head + mask + body


def read_ws_frame(conn, timeout=None):
    """(fin, opcode, payload) of the next server frame from a RawConn's buffer/socket."""
    deadline = time.monotonic() + (timeout or harness.scaled(5))

    def need(n):
        while len(conn.buf) < n:
            if not conn._fill(deadline):
                raise TimeoutError(f"frame incomplete: {bytes(conn.buf)!r}")

    need(2)
    b0, b1 = conn.buf[0], conn.buf[1]
    assert b1 & 0x80 == 0, "server frames are not masked"
    n, pos = b1 & 0x7F, 2
    if n == 126:
        need(4)
        n, pos = struct.unpack("!H", conn.buf[2:4])[0], 4
    elif n == 127:
        need(10)
        n, pos = struct.unpack("!Q", conn.buf[2:10])[0], 10
    need(pos + n)
    payload = bytes(conn.buf[pos:pos + n])
    del conn.buf[:pos + n]
    return bool(b0 & 0x80), b0 & 0x0F, payload


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 and h2c on one port


def test_http1_json_shape_is_unchanged(echo, http):
    r = http.get(f"http://{echo.addr}/p?q=1", headers={"X-Test": "a"})
    assert r.status_code == 200
    j = r.json()
    assert set(j) == H1_KEYS  # no protocol/scheme/tls keys on plain HTTP/1
    assert j["http_version"] == "HTTP/1.1"
    assert j["path"] == "/p?q=1"
    assert j["headers"]["x-test"] == "a"


def test_h2c_prior_knowledge_with_curl(echo):
    body = b"hello h2"
    status, version, j = curl_json(
        "--http2-prior-knowledge", "-H", "X-Custom: v1", "-H", "Cookie: a=1",
        "--data-binary", body, f"http://{echo.addr}/h2/path?x=y")
    assert (status, version) == (200, "2")
    assert j["protocol"] == "HTTP/2" and j["http_version"] == "HTTP/2"
    assert j["scheme"] == "http"
    assert j["method"] == "POST"
    assert j["path"] == "/h2/path?x=y"
    assert j["host"] == echo.addr  # :authority
    assert j["headers"]["x-custom"] == "v1"
    assert j["headers"]["cookie"] == "a=1"
    assert not any(k.startswith(":") for k in j["headers"])
    assert j["body_length"] == len(body)
    assert j["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert j["backend"] == "echo"
    assert "tls" not in j
    # and HTTP/1.1 on the same port, right after
    status, version, j = curl_json("--http1.1", f"http://{echo.addr}/again")
    assert (status, version) == (200, "1.1")
    assert "protocol" not in j


def test_nghttp_multiplexes_on_one_connection(echo):
    urls = [f"http://{echo.addr}/n/{i}" for i in range(6)]
    r = subprocess.run(["nghttp", "-v", "-H", "x-from: nghttp", *urls], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=harness.scaled(20))
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):1000" in out
    bodies = [json.loads(line) for line in out.splitlines() if line.startswith('{"backend"')]
    assert sorted(b["path"] for b in bodies) == sorted(f"/n/{i}" for i in range(6))
    for b in bodies:
        assert b["protocol"] == "HTTP/2"
        assert b["headers"]["x-from"] == "nghttp"
    assert len({b["remote_address"] for b in bodies}) == 1  # one connection


def test_h2_max_streams_flag(tmp_path):
    e = start_echo_with(tmp_path, "--h2-max-streams", "3")
    r = subprocess.run(["nghttp", "-v", f"http://{e.addr}/"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=harness.scaled(20))
    assert "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):3" in r.stdout.decode()


def test_h2_echo_controls(echo, T):
    r = curl("--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-H", "x-echo-status: 503",
             "-H", "x-echo-header-X-Foo: bar", f"http://{echo.addr}/s")
    head = r.stdout.decode().lower()
    assert head.startswith("http/2 503"), head
    assert "x-foo: bar" in head
    # a large pattern body through the peer's flow-control windows
    r = curl("--http2-prior-knowledge", "-H", "x-echo-response-bytes: 3000000",
             f"http://{echo.addr}/big")
    assert r.returncode == 0 and r.stdout == b"a" * 3000000
    # delay
    t0 = time.monotonic()
    status, _, j = curl_json("--http2-prior-knowledge", "-H", "x-echo-delay-ms: 300",
                             f"http://{echo.addr}/slow")
    assert status == 200 and time.monotonic() - t0 >= 0.3
    # HEAD: the head only
    r = curl("--http2-prior-knowledge", "-I", f"http://{echo.addr}/h")
    assert r.returncode == 0 and r.stdout.decode().lower().startswith("http/2 200")
    # a malformed control is a 400, as on HTTP/1
    r = curl("--http2-prior-knowledge", "-w", "%{http_code}", "-o", "/dev/null",
             "-H", "x-echo-status: abc", f"http://{echo.addr}/bad")
    assert r.stdout == b"400"


def test_h2_reset_and_partial(echo):
    r = curl("--http2-prior-knowledge", "-H", "x-echo-reset: 1", f"http://{echo.addr}/r")
    assert r.returncode != 0
    assert b"INTERNAL_ERROR" in r.stderr or b"stream" in r.stderr.lower(), r.stderr
    r = curl("--http2-prior-knowledge", "-H", "x-echo-partial: 1",
             "-H", "x-echo-response-bytes: 100000", f"http://{echo.addr}/p")
    assert r.returncode != 0
    assert len(r.stdout) <= 50000
    # the connection-level failure of one stream leaves the server serving
    status, _, _ = curl_json("--http2-prior-knowledge", f"http://{echo.addr}/after")
    assert status == 200


def test_h2_large_upload_is_hashed_through_flow_control(echo, tmp_path):
    data = os.urandom(20 * 1024 * 1024)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    status, _, j = curl_json("--http2-prior-knowledge", "--data-binary", f"@{path}",
                             f"http://{echo.addr}/up")
    assert status == 200
    assert j["body_length"] == len(data)
    assert j["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_h2_close_control_sends_goaway(echo):
    r = subprocess.run(["nghttp", "-v", "-H", "x-echo-close: 1", f"http://{echo.addr}/"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=harness.scaled(20))
    out = r.stdout.decode()
    assert "recv GOAWAY frame" in out
    assert "error_code=NO_ERROR" in out


def test_preface_split_across_reads_still_selects_h2(echo):
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    with socket.create_connection(("127.0.0.1", echo.port), timeout=harness.scaled(5)) as s:
        for piece in (preface[:3], preface[3:10], preface[10:]):
            s.sendall(piece)
            time.sleep(0.05)
        s.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # empty SETTINGS
        ftype, flags, sid, payload = read_h2_frame(s)
        assert (ftype, sid) == (0x4, 0) and not flags & 0x1  # the server's own SETTINGS
        settings = {struct.unpack("!H", payload[i:i + 2])[0]:
                    struct.unpack("!I", payload[i + 2:i + 6])[0] for i in range(0, len(payload), 6)}
        assert settings.get(0x3) == 1000


def test_pri_method_over_http1_is_not_h2(echo):
    with RawConn(echo.port) as c:
        r = c.request(b"PRI /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert r.status == 200
        assert r.json()["method"] == "PRI"


# ---------------------------------------------------------------------------------------------
# gRPC


@pytest.fixture
def ch(echo):
    c = grpc_echo.channel(echo.addr)
    yield c
    c.close()


def test_grpc_unary_echoes_payload_and_metadata(ch, echo):
    r = grpc_echo.unary(ch, b"\x00hello\xff", metadata={"x-trace": "abc"}, timeout=10)
    assert r.ok, r
    assert r.message == b"\x00hello\xff"
    assert r.initial["x-echo-x-trace"] == "abc"
    assert r.initial["x-echo-authority"] == echo.addr
    assert "x-echo-te" not in r.initial and "x-echo-content-type" not in r.initial
    assert r.trailing["x-message-count"] == "1"


def test_grpc_echo_metadata_off_answers_like_a_plain_service(tmp_path):
    # What the HTTP/2 benchmark runs: answers that do not grow with what a proxy adds.
    e = start_echo_with(tmp_path, "--grpc-echo-metadata", "off")
    c = grpc_echo.channel(e.addr)
    try:
        r = grpc_echo.unary(c, b"abc", metadata={"x-trace": "abc"}, timeout=10)
    finally:
        c.close()
    assert r.ok and r.message == b"abc", r
    assert not [k for k in r.initial if k.startswith("x-echo-")], r.initial
    assert r.trailing["x-message-count"] == "1"
    bad = subprocess.run([harness.echo_bin(), "--listen", "127.0.0.1:0",
                          "--grpc-echo-metadata", "maybe"], capture_output=True, text=True,
                         timeout=harness.scaled(10))
    assert bad.returncode == 2 and "--grpc-echo-metadata must be on or off" in bad.stderr


def test_grpc_server_stream_messages_arrive_one_by_one(ch, T):
    r = grpc_echo.server_stream(ch, b"p", metadata={"x-count": "5", "x-delay-ms": "150"},
                                timeout=T(20))
    assert r.ok, r
    assert r.messages == [b"p-0", b"p-1", b"p-2", b"p-3", b"p-4"]
    gaps = [b - a for a, b in zip(r.arrivals, r.arrivals[1:])]
    assert all(g >= 0.1 for g in gaps), r.arrivals
    assert r.elapsed - r.arrivals[0] >= 0.5  # the first one did not wait for the last


def test_grpc_server_stream_count_from_payload_and_sized_messages(ch):
    r = grpc_echo.server_stream(ch, b"3", timeout=10)
    assert r.messages == [b"3-0", b"3-1", b"3-2"]
    r = grpc_echo.server_stream(ch, b"x", metadata={"x-count": "4", "x-message-bytes": "100000"},
                                timeout=10)
    assert r.ok and r.messages == [b"a" * 100000] * 4


def test_grpc_client_stream_concatenates(ch):
    r = grpc_echo.client_stream(ch, [b"ab", b"", b"cd", b"e"], timeout=10)
    assert r.ok, r
    assert r.message == b"abcde"
    assert r.trailing["x-message-count"] == "4"


def test_grpc_bidi_echoes_each_message_as_it_arrives(ch):
    with grpc_echo.BidiSession(ch, metadata={"x-k": "v"}, timeout=20) as s:
        for i in range(5):
            s.send(b"m%d" % i)
            assert s.recv(timeout=harness.scaled(5)) == b"m%d" % i  # before the next is sent
        s.done_sending()
        r = s.finish()
    assert r.ok, r
    assert r.messages == [b"m%d" % i for i in range(5)]
    assert r.initial["x-echo-x-k"] == "v"
    assert r.trailing["x-message-count"] == "5"


def test_grpc_error_status_trailers_only(ch):
    r = grpc_echo.unary(ch, b"x", metadata={"x-fail-status": "7",
                                            "x-fail-message": "denied%21 %C3%BC"}, timeout=10)
    assert r.code == grpc.StatusCode.PERMISSION_DENIED
    assert r.details == "denied! ü"
    assert r.messages == []
    for kind in (grpc_echo.server_stream, grpc_echo.bidi):
        arg = b"y" if kind is grpc_echo.server_stream else [b"y"]
        r = kind(ch, arg, metadata={"x-fail-status": "14"}, timeout=10)
        assert r.code == grpc.StatusCode.UNAVAILABLE and r.messages == []


def test_grpc_error_after_messages(ch):
    r = grpc_echo.server_stream(ch, b"q", metadata={"x-count": "5", "x-fail-status": "9",
                                                    "x-fail-message": "stop", "x-fail-after": "2"},
                                timeout=10)
    assert r.code == grpc.StatusCode.FAILED_PRECONDITION and r.details == "stop"
    assert r.messages == [b"q-0", b"q-1"]
    r = grpc_echo.bidi(ch, [b"a", b"b", b"c"], metadata={"x-fail-status": "10",
                                                         "x-fail-after": "1"}, timeout=10)
    assert r.code == grpc.StatusCode.ABORTED
    assert r.messages == [b"a"]
    r = grpc_echo.unary(ch, b"u", metadata={"x-fail-status": "2", "x-fail-after": "1"},
                        timeout=10)
    assert r.code == grpc.StatusCode.UNKNOWN


def test_grpc_deadline_exceeded_and_backend_survives(ch, T):
    r = grpc_echo.unary(ch, b"x", metadata={"x-delay-ms": "3000"}, timeout=0.3)
    assert r.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert r.elapsed < 2.5
    r = grpc_echo.server_stream(ch, b"s", metadata={"x-count": "100", "x-delay-ms": "100"},
                                timeout=0.35)
    assert r.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 1 <= len(r.messages) <= 4
    t0 = time.monotonic()
    r = grpc_echo.unary(ch, b"ok", metadata={"x-delay-ms": "200"}, timeout=T(10))
    assert r.ok and r.message == b"ok" and time.monotonic() - t0 >= 0.2


def test_grpc_unknown_method_and_wrong_message_count(ch):
    r = grpc_echo.unary(ch, b"x", method="Nope", timeout=10)
    assert r.code == grpc.StatusCode.UNIMPLEMENTED
    assert "Nope" in r.details
    r = grpc_echo.client_stream(ch, [b"a", b"b"], method="Unary", timeout=10)
    assert r.code == grpc.StatusCode.INTERNAL
    r = grpc_echo.unary(ch, b"x", metadata={"x-count": "many"}, method="ServerStream", timeout=10)
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_large_messages(ch):
    big = os.urandom(8 * 1024 * 1024)
    r = grpc_echo.unary(ch, big, timeout=30)
    assert r.ok and r.message == big
    r = grpc_echo.bidi(ch, [big, b"small", big[:1000]], timeout=30)
    assert r.ok and r.messages == [big, b"small", big[:1000]]
    r = grpc_echo.client_stream(ch, [big[:3000000]] * 3, timeout=30)
    assert r.ok and r.message == big[:3000000] * 3


def test_grpc_server_stream_respects_flow_control(ch, echo, T):
    """A client that stops reading holds the backend back: 256 MiB requested, memory stays flat."""
    grpc_echo.unary(ch, b"warm", timeout=10)
    base = echo.rss_kib()
    call = grpc_echo.server_stream_call(
        ch, b"x", metadata={"x-count": "4096", "x-message-bytes": "65536"}, timeout=T(30))
    try:
        got = [next(call) for _ in range(5)]
        assert all(len(m) == 65536 for m in got)
        time.sleep(1.0)  # not reading
        grown = echo.rss_kib() - base
        assert grown < 40 * 1024, f"backend grew by {grown} KiB while the client was not reading"
    finally:
        call.cancel()
    r = grpc_echo.unary(ch, b"still here", timeout=10)
    assert r.ok


def test_grpc_many_concurrent_calls(ch):
    results = []

    def worker(i):
        results.append(grpc_echo.unary(ch, b"c%d" % i, metadata={"x-delay-ms": "50"}, timeout=20))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40 and all(r.ok for r in results)
    assert sorted(r.message for r in results) == sorted(b"c%d" % i for i in range(40))


def test_grpc_web_content_type_is_not_treated_as_grpc(echo, tmp_path):
    """An untranslated gRPC-Web request gets the JSON echo: a proxy test sees it was not
    translated."""
    frame = tmp_path / "frame.bin"
    frame.write_bytes(b"\x00\x00\x00\x00\x02hi")
    status, version, j = curl_json("--http2-prior-knowledge", "-H",
                                   "content-type: application/grpc-web+proto",
                                   "--data-binary", f"@{frame}",
                                   f"http://{echo.addr}/echo.Echo/Unary")
    assert status == 200 and j["headers"]["content-type"] == "application/grpc-web+proto"
    assert j["body_length"] == 7


# ---------------------------------------------------------------------------------------------
# WebSocket


def test_ws_echo_text_binary_and_fragmented(echo):
    async def go():
        async with websockets.connect(f"ws://{echo.addr}/chat", max_size=None,
                                      open_timeout=10) as ws:
            await ws.send("hello ☃")
            assert await ws.recv() == "hello ☃"
            await ws.send(b"\x00\x01\xfe")
            assert await ws.recv() == b"\x00\x01\xfe"
            await ws.send(["frag-1 ", "frag-2 ", "frag-3"])  # one message in three frames
            assert await ws.recv() == "frag-1 frag-2 frag-3"
            await ws.send("")
            assert await ws.recv() == ""

    run(go())


def test_ws_large_message_16mib(echo):
    big = os.urandom(16 * 1024 * 1024)

    async def go():
        async with websockets.connect(f"ws://{echo.addr}/big", max_size=None,
                                      open_timeout=10) as ws:
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send([big[:5000000], big[5000000:]])
            assert await ws.recv() == big

    run(go(), timeout=120)


def test_ws_ping_pong_and_close_handshake(echo):
    async def go():
        ws = await websockets.connect(f"ws://{echo.addr}/pc", open_timeout=10)
        waiter = await ws.ping(b"payload")
        await asyncio.wait_for(waiter, 5)
        await ws.close(code=4001, reason="bye")
        await ws.wait_closed()
        return ws.close_code

    assert run(go()) == 4001  # the server answered with the same code


def test_ws_raw_frames_handshake_close_and_protocol_error(echo):
    with RawConn(echo.port) as c:
        r = c.request(ws_handshake(extra=[("x-echo-header-X-Hs", "1")]))
        assert r.status == 101
        # RFC 6455 §1.3 example key
        assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert r.header("upgrade").lower() == "websocket"
        assert r.header("x-hs") == "1"
        c.send(ws_frame(0x9, b"pi", mask=b"\x01\x02\x03\x04"))
        assert read_ws_frame(c) == (True, 0xA, b"pi")
        # fragmented text with a ping between the fragments, echoed frame by frame
        c.send(ws_frame(0x1, b"ab", fin=False, mask=b"\x05\x06\x07\x08"))
        c.send(ws_frame(0x9, b""))
        c.send(ws_frame(0x0, b"cd", fin=True, mask=b"\x09\x0a\x0b\x0c"))
        assert read_ws_frame(c) == (False, 0x1, b"ab")
        assert read_ws_frame(c) == (True, 0xA, b"")
        assert read_ws_frame(c) == (True, 0x0, b"cd")
        c.send(ws_frame(0x8, struct.pack("!H", 1000) + b"done"))
        assert read_ws_frame(c) == (True, 0x8, struct.pack("!H", 1000))
        assert c.wait_closed(harness.scaled(5))  # the server closes TCP after the close handshake
    with RawConn(echo.port) as c:
        assert c.request(ws_handshake()).status == 101
        c.send(ws_frame(0x1, b"x", masked=False))
        fin, op, payload = read_ws_frame(c)
        assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == 1002
        assert c.wait_closed(harness.scaled(5))
    with RawConn(echo.port) as c:
        assert c.request(ws_handshake()).status == 101
        c.send(ws_frame(0x0, b"x"))  # continuation without a message
        assert read_ws_frame(c)[1:] == (0x8, struct.pack("!H", 1002) + b"continuation frame "
                                        b"outside a fragmented message")


def test_ws_bad_handshakes(echo):
    with RawConn(echo.port) as c:
        r = c.request(ws_handshake(version="8"))
        assert r.status == 426 and r.header("sec-websocket-version") == "13"
        assert c.wait_closed(harness.scaled(5))
    with RawConn(echo.port) as c:
        r = c.request(ws_handshake(key=None))
        assert r.status == 400
    with RawConn(echo.port) as c:
        r = c.request(ws_handshake(key="short"))
        assert r.status == 400
    with RawConn(echo.port) as c:
        r = c.request(get_request("/ws", method="POST", body="x", headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]))
        assert r.status == 400


def test_ws_no_upgrade_prefix_answers_plain_200(echo):
    with RawConn(echo.port) as c:
        r = c.request(ws_handshake(path="/no-upgrade/x"))
        assert r.status == 200
        j = r.json()
        assert j["path"] == "/no-upgrade/x" and j["headers"]["upgrade"] == "websocket"
        # still HTTP/1 on this connection: not a tunnel
        r = c.request(get_request("/next"))
        assert r.status == 200 and r.json()["path"] == "/next"


def test_ws_info_message_and_subprotocol(echo):
    async def go():
        async with websockets.connect(
                f"ws://{echo.addr}/info?a=1", subprotocols=["chat.v2", "chat.v1"],
                extra_headers={"x-echo-ws-info": "1", "X-Client": "c"}, open_timeout=10) as ws:
            info = json.loads(await ws.recv())
            await ws.send("after")
            return ws.subprotocol, info, await ws.recv()

    sub, info, after = run(go())
    assert sub == "chat.v2"
    assert info["path"] == "/info?a=1" and info["method"] == "GET"
    assert info["headers"]["x-client"] == "c"
    assert info["headers"]["sec-websocket-protocol"] == "chat.v2, chat.v1"
    assert after == "after"


def test_ws_many_concurrent_sockets(echo):
    async def one(i):
        async with websockets.connect(f"ws://{echo.addr}/m/{i}", open_timeout=20) as ws:
            for k in range(10):
                await ws.send(f"{i}:{k}")
                assert await ws.recv() == f"{i}:{k}"
        return i

    async def go():
        return await asyncio.gather(*(one(i) for i in range(60)))

    assert sorted(run(go())) == list(range(60))


def test_ws_client_that_does_not_read_is_held_back(echo):
    """Frame-by-frame echo in bounded memory: a client sending 96 MiB without reading the echo
    stalls on TCP back-pressure; the backend does not buffer it."""
    base = echo.rss_kib()
    sent = {"n": 0}
    sock = socket.create_connection(("127.0.0.1", echo.port), timeout=harness.scaled(5))
    try:
        sock.sendall(ws_handshake())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        frame = ws_frame(0x2, b"z" * (1 << 20))  # zero mask: payload as is
        sock.settimeout(0.5)

        def sender():
            try:
                for _ in range(96):
                    sock.sendall(frame)
                    sent["n"] += 1
            except OSError:
                pass

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        t.join(harness.scaled(2))
        assert sent["n"] < 96, "96 MiB went through although nobody read the echo"
        grown = echo.rss_kib() - base
        assert grown < 24 * 1024, f"backend grew by {grown} KiB"
    finally:
        sock.close()


# ---------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, made with the
    openssl command."""
    d = tmp_path_factory.mktemp("certs")

    def sh(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)

    sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
       "-days", "2", "-subj", "/CN=Echo Test CA")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                  "extendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subj in (("server", "/CN=localhost"), ("client", "/O=Echo Test/CN=client-1")):
        sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
           f"{name}.csr", "-subj", subj)
        sh("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
           "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {k: str(d / f"{k}") for k in ("ca.pem", "server.pem", "server.key", "client.pem",
                                         "client.key")}


def tls_echo(tmp_path, certs, *extra):
    return start_echo_with(tmp_path, "--tls-cert", certs["server.pem"], "--tls-key",
                           certs["server.key"], *extra, name="tls")


def https(e, certs, *args, path="/t"):
    return curl_json("--cacert", certs["ca.pem"], "--resolve", f"localhost:{e.port}:127.0.0.1",
                     *args, f"https://localhost:{e.port}{path}")


def test_tls_http1_and_h2_by_alpn(tmp_path, certs):
    e = tls_echo(tmp_path, certs)
    status, version, j = https(e, certs, "--http1.1")
    assert (status, version) == (200, "1.1")
    assert j["http_version"] == "HTTP/1.1" and "protocol" not in j
    assert j["tls"]["sni"] == "localhost"
    assert j["tls"]["alpn"] == "http/1.1"
    assert j["tls"]["version"] in ("TLSv1.3", "TLSv1.2")
    assert j["tls"]["client_subject"] == ""
    status, version, j = https(e, certs, "--http2", "--data-binary", "abc")
    assert (status, version) == (200, "2")
    assert j["protocol"] == "HTTP/2" and j["scheme"] == "https"
    assert j["tls"]["alpn"] == "h2"
    assert j["body_sha256"] == hashlib.sha256(b"abc").hexdigest()
    # large body both ways over TLS
    r = curl("--cacert", certs["ca.pem"], "--resolve", f"localhost:{e.port}:127.0.0.1",
             "--http1.1", "-H", "x-echo-response-bytes: 5000000", f"https://localhost:{e.port}/")
    assert r.returncode == 0 and len(r.stdout) == 5000000
    # TLS 1.2 also works
    status, _, j = https(e, certs, "--http1.1", "--tls-max", "1.2")
    assert j["tls"]["version"] == "TLSv1.2"


def test_tls_client_certificate_required(tmp_path, certs):
    e = tls_echo(tmp_path, certs, "--tls-client-ca", certs["ca.pem"])
    r = curl("--cacert", certs["ca.pem"], "--resolve", f"localhost:{e.port}:127.0.0.1",
             f"https://localhost:{e.port}/")
    assert r.returncode != 0
    status, _, j = https(e, certs, "--cert", certs["client.pem"], "--key", certs["client.key"])
    assert status == 200
    assert "CN=client-1" in j["tls"]["client_subject"]
    assert "O=Echo Test" in j["tls"]["client_subject"]


def test_tls_alpn_flag_limits_protocols(tmp_path, certs):
    e = tls_echo(tmp_path, certs, "--tls-alpn", "http/1.1")
    status, version, j = https(e, certs, "--http2")
    assert version == "1.1" and j["tls"]["alpn"] == "http/1.1"


def test_tls_grpc_over_h2(tmp_path, certs):
    e = tls_echo(tmp_path, certs)
    with open(certs["ca.pem"], "rb") as f:
        ca = f.read()
    c = grpc_echo.channel(f"localhost:{e.port}", tls=ca)
    try:
        r = grpc_echo.unary(c, b"secure", timeout=20)
        assert r.ok, r
        assert r.message == b"secure"
        r = grpc_echo.bidi(c, [b"1", b"2"], timeout=20)
        assert r.messages == [b"1", b"2"]
    finally:
        c.close()


def test_tls_websocket(tmp_path, certs):
    e = tls_echo(tmp_path, certs)
    ctx = ssl.create_default_context(cafile=certs["ca.pem"])

    async def go():
        async with websockets.connect(f"wss://localhost:{e.port}/s", ssl=ctx, open_timeout=10,
                                      extra_headers={"x-echo-ws-info": "1"},
                                      max_size=None) as ws:
            info = json.loads(await ws.recv())
            big = os.urandom(3 * 1024 * 1024)
            await ws.send(big)
            return info, await ws.recv() == big

    info, same = run(go())
    assert info["tls"]["sni"] == "localhost"
    assert info["tls"]["alpn"] == ""  # websockets offers no ALPN: none is selected
    assert same


def test_bad_tls_flags_fail_at_start(tmp_path, certs):
    if not harness.BUILD or not os.access(harness.echo_bin(), os.X_OK):
        pytest.fail("echo-backend not built", pytrace=False)

    def start(*args):
        return subprocess.run([harness.echo_bin(), "--listen", "127.0.0.1:0", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10,
                              text=True)

    r = start("--tls-cert", certs["server.pem"])
    assert r.returncode == 2 and "--tls-key" in r.stderr
    r = start("--tls-cert", certs["server.pem"], "--tls-key", certs["client.key"])
    assert r.returncode == 2 and "does not match" in r.stderr
    r = start("--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", certs["server.key"])
    assert r.returncode == 2 and "--tls-cert" in r.stderr
