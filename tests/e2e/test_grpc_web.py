"""gRPC-Web through the gateway (Module enable_grpc_web: true): requests built by hand, over
HTTP/1.1 and h2c, to a `grpc: true` Mapping whose upstream is the echo backend's gRPC service
(which serves only content-type application/grpc over HTTP/2, so an answer proves the
translation). Response framing is checked byte for byte: messages, then the trailers frame
(flag 0x80, "name: value\\r\\n" lines), base64 for the -text variant."""

import base64
import subprocess
import time
from urllib.parse import unquote

import pytest

import harness
from harness import mapping, module
from test_grpc import _parse_chunked_with_trailers, _read_chunked_with_trailers


def frame(payload, flags=0):
    return bytes([flags]) + len(payload).to_bytes(4, "big") + payload


def trailer_frame(lines):
    return frame(b"".join(b"%s: %s\r\n" % (k, v) for k, v in lines), flags=0x80)


OK_TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b""), (b"x-message-count", b"1")]


@pytest.fixture
def gw(start_gateway, echo):
    return start_gateway([
        module({"enable_grpc_web": True}),
        mapping("grpc-echo", "/echo.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True),
    ])


def web_request(path, body, content_type="application/grpc-web+proto", extra="", chunks=None):
    head = (f"POST {path} HTTP/1.1\r\nHost: web.example\r\ncontent-type: {content_type}\r\n"
            f"x-grpc-web: 1\r\naccept: {content_type}\r\n{extra}")
    if chunks is None:
        return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body
    out = (head + "transfer-encoding: chunked\r\n\r\n").encode()
    for c in chunks:
        out += b"%x\r\n%s\r\n" % (len(c), c)
    return out + b"0\r\n\r\n"


def header(head, name):
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def test_binary_unary_over_http1(gw):
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/echo.Echo/Unary", frame(b"\x00hello\xff")))
        head, body, trailers = _read_chunked_with_trailers(c)
    assert head[0] == "HTTP/1.1 200 OK", head
    assert header(head, "content-type") == "application/grpc-web+proto"
    assert header(head, "content-length") is None
    assert header(head, "x-echo-x-grpc-web") == "1"
    assert body == frame(b"\x00hello\xff") + trailer_frame(OK_TRAILERS)
    assert trailers == []  # the status travels in the body, not as HTTP trailers


def test_text_unary_over_http1_streaming_base64(gw):
    encoded = base64.b64encode(frame(b"text message \x01\x02"))
    # The body arrives in pieces that split base64 groups: the decoder must stream.
    chunks = [encoded[:3], encoded[3:10], encoded[10:]]
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/echo.Echo/Unary", b"", "application/grpc-web-text", chunks=chunks))
        head, body, _ = _read_chunked_with_trailers(c)
    assert head[0] == "HTTP/1.1 200 OK", head
    assert header(head, "content-type") == "application/grpc-web-text+proto"
    # Each upstream chunk is encoded (and padded) on its own: the message, then the trailers.
    assert body == (base64.b64encode(frame(b"text message \x01\x02"))
                    + base64.b64encode(trailer_frame(OK_TRAILERS)))


def test_error_status_trailers_only(gw):
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/echo.Echo/Unary", frame(b"x"),
                           extra="x-fail-status: 5\r\nx-fail-message: not here\r\n"))
        head, body, _ = _read_chunked_with_trailers(c)
    assert head[0] == "HTTP/1.1 200 OK", head
    assert header(head, "content-type") == "application/grpc-web+proto"
    # Trailers-only: the status stays in the head (PROTOCOL-WEB allows it), the body is empty.
    assert header(head, "grpc-status") == "5"
    assert header(head, "grpc-message") == "not here"
    assert body == b""


def test_error_status_after_a_message_in_body(gw):
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/echo.Echo/ServerStream", frame(b"p"),
                           extra="x-count: 3\r\nx-fail-after: 1\r\nx-fail-status: 9\r\n"
                                 "x-fail-message: bad state\r\n"))
        head, body, _ = _read_chunked_with_trailers(c)
    assert head[0] == "HTTP/1.1 200 OK", head
    assert body == frame(b"p-0") + trailer_frame(
        [(b"grpc-status", b"9"), (b"grpc-message", b"bad state"), (b"x-message-count", b"1")])


DEADLINE_TRAILERS = [(b"grpc-status", b"4"), (b"grpc-message", b"upstream request timeout")]


def test_grpc_timeout_is_honoured_before_the_answer(gw):
    # gRPC-Web clients send grpc-timeout too: the call fails at 200 ms, not after the 2 s delay.
    start = time.monotonic()
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/echo.Echo/Unary", frame(b"x"),
                           extra="grpc-timeout: 200m\r\nx-delay-ms: 2000\r\n"))
        r = c.read_response()
    assert time.monotonic() - start < 1.5
    assert r.status == 200, r
    assert r.header("content-type") == "application/grpc-web+proto", r
    assert r.header("grpc-status") == "4", r
    assert unquote(r.header("grpc-message")) == "upstream request timeout", r


@pytest.mark.parametrize("content_type", ["application/grpc-web+proto",
                                          "application/grpc-web-text"])
def test_grpc_timeout_mid_stream_ends_with_a_trailer_frame(gw, content_type):
    # The deadline passes after some messages went out: the body ends with a trailer frame
    # carrying DEADLINE_EXCEEDED, which a browser can read (it cannot read HTTP trailers).
    body = frame(b"p")
    if "text" in content_type:
        body = base64.b64encode(body)
    start = time.monotonic()
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/echo.Echo/ServerStream", body, content_type,
                           extra="grpc-timeout: 350m\r\nx-count: 10\r\nx-delay-ms: 100\r\n"))
        head, got, _ = _read_chunked_with_trailers(c)
    assert time.monotonic() - start < 1.5
    assert head[0] == "HTTP/1.1 200 OK", head
    if "text" in content_type:
        got = b"".join(base64.b64decode(got[i:i + 4]) for i in range(0, len(got), 4))
    messages, trailers = [], None
    while got:
        flags, length = got[0], int.from_bytes(got[1:5], "big")
        payload, got = got[5:5 + length], got[5 + length:]
        if flags & 0x80:
            trailers = payload
        else:
            messages.append(payload)
    assert 1 <= len(messages) < 10, messages
    assert messages == [b"p-%d" % i for i in range(len(messages))]
    assert trailers == trailer_frame(DEADLINE_TRAILERS)[5:], trailers


def test_keep_alive_mixes_web_and_plain_requests(gw):
    with harness.RawConn(gw.port) as c:
        for i in range(3):
            c.send(web_request("/echo.Echo/Unary", frame(b"m%d" % i)))
            head, body, _ = _read_chunked_with_trailers(c)
            assert body == frame(b"m%d" % i) + trailer_frame(OK_TRAILERS), (i, body)


def test_invalid_base64_is_refused(gw):
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/echo.Echo/Unary", b"!!!!", "application/grpc-web-text"))
        r = c.read_response()
    assert r.status == 400, r


def test_binary_unary_over_h2c(gw):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m", "10",
                        "-D", "-", "-H", "content-type: application/grpc-web+proto",
                        "-H", "x-grpc-web: 1", "--data-binary", "@-",
                        gw.url("/echo.Echo/Unary")],
                       input=frame(b"over h2"), capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200"), head
    assert b"content-type: application/grpc-web+proto" in head.lower()
    assert body == frame(b"over h2") + trailer_frame(OK_TRAILERS)


def test_text_unary_over_h2c(gw):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m", "10",
                        "-H", "content-type: application/grpc-web-text",
                        "--data-binary", "@-", gw.url("/echo.Echo/Unary")],
                       input=base64.b64encode(frame(b"t2")), capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    assert r.stdout == base64.b64encode(frame(b"t2")) + base64.b64encode(
        trailer_frame(OK_TRAILERS))


def test_grpc_web_disabled_passes_through(start_gateway, echo):
    gw = start_gateway([
        mapping("grpc-echo", "/echo.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True),
    ])
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/echo.Echo/Unary", frame(b"x")))
        r = c.read_response()
    # Untranslated, the backend's gRPC service does not take it.
    assert r.header("content-type", "") != "application/grpc-web+proto", r
    assert not r.body.endswith(trailer_frame(OK_TRAILERS)), r


# ---------------------------------------------------------------------------------------------
# Failures the gateway itself produces reach a gRPC-Web client the gRPC way (HTTP 200, the status
# in the head, a grpc-web content-type), as Envoy's grpc_web filter turns the router's local
# replies into: a browser's grpc-web client only reads grpc-status.

@pytest.fixture
def failing_gw(start_gateway, echo):
    return start_gateway([
        module({"enable_grpc_web": True}),
        mapping("grpc-echo", "/echo.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True,
                timeout_ms=300),
        mapping("grpc-dead", "/dead.Echo/", f"127.0.0.1:{harness.closed_port()}",
                rewrite="/echo.Echo/", grpc=True),
    ])


FAILURES = [
    # path, extra request headers, grpc-status, grpc-message
    ("/nowhere.Svc/Call", "", "12", None),
    ("/dead.Echo/Unary", "", "14",
     "upstream connect error or disconnect/reset before headers. reset reason: connection "
     "failure"),
    ("/echo.Echo/Unary", "x-delay-ms: 3000\r\n", "4", "upstream request timeout"),
]


@pytest.mark.parametrize("path,extra,status,message", FAILURES)
@pytest.mark.parametrize("content_type,answer_type", [
    ("application/grpc-web+proto", "application/grpc-web+proto"),
    ("application/grpc-web-text", "application/grpc-web-text+proto"),
])
def test_gateway_failures_over_http1(failing_gw, path, extra, status, message, content_type,
                                     answer_type):
    body = frame(b"x")
    if "text" in content_type:
        body = base64.b64encode(body)
    with harness.RawConn(failing_gw.port) as c:
        c.send(web_request(path, body, content_type, extra=extra))
        r = c.read_response()
        assert r.status == 200, r
        assert r.header("content-type") == answer_type, r
        assert r.header("grpc-status") == status, r
        if message is not None:
            assert unquote(r.header("grpc-message")) == message, r
        assert r.header("content-length") == "0", r
        assert r.body == b""


@pytest.mark.parametrize("path,extra,status,message", FAILURES)
def test_gateway_failures_over_h2c(failing_gw, path, extra, status, message):
    # A call with a message, also when the answer comes at the request head (no route), before
    # curl has sent it: the gateway takes the rest of the upload and curl finishes.
    args = ["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m", "10", "-D", "-",
            "-H", "content-type: application/grpc-web+proto", "-H", "x-grpc-web: 1",
            "--data-binary", "@-"]
    if extra:
        args += ["-H", extra.strip()]
    r = subprocess.run(args + [failing_gw.url(path)], input=frame(b"x" * 100_000),
                       capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/2 200"), head
    assert header(lines, "content-type") == "application/grpc-web+proto"
    assert header(lines, "grpc-status") == status, head
    if message is not None:
        assert unquote(header(lines, "grpc-message")) == message, head
    assert body == b""


def test_gateway_failures_stay_plain_http_without_grpc_web(start_gateway, echo):
    gw = start_gateway([
        mapping("grpc-echo", "/echo.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True),
    ])
    with harness.RawConn(gw.port) as c:
        c.send(web_request("/nowhere.Svc/Call", frame(b"x")))
        r = c.read_response()
    assert r.status == 404, r
    assert r.header("grpc-status") is None, r


def test_invalid_base64_is_refused_over_h2c(gw):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m", "10",
                        "-o", "/dev/null", "-w", "%{http_code}",
                        "-H", "content-type: application/grpc-web-text",
                        "--data-binary", "!!!!", gw.url("/echo.Echo/Unary")],
                       capture_output=True, timeout=15)
    assert r.stdout == b"400", r
