"""CORS (Mapping and Module `cors`, as Envoy's cors filter), over HTTP/1.1 and h2c: preflights
answered by the gateway, actual requests answered by the echo backend with the CORS fields added,
disallowed origins left alone; gRPC-Web with CORS; and the gRPC answers an HTTP/1.1 gRPC client
gets for the gateway's own failures, grpc-timeout, and the gRPC HTTP/1.1 bridge."""

import base64
import http.client
import json
import subprocess
import time

import pytest

import harness
from harness import closed_port, mapping, module
from test_grpc import _read_chunked_with_trailers

APP = "https://app.example"
LOCAL = "http://localhost:3000"
MODULE_ORIGIN = "https://module.example"

API_CORS = {
    "origins": f"{APP}, {LOCAL}",  # a comma string, as Emissary accepts
    "methods": ["GET", "POST", "PUT"],
    "headers": ["content-type", "x-custom"],
    "exposed_headers": ["x-echo-info"],
    "credentials": True,
    "max_age": "600",
}
GRPC_WEB_CORS = {
    # What Envoy's and grpc-web's docs ask for: the browser must be allowed to send the grpc-web
    # headers and to read the status headers.
    "origins": ["*"],
    "methods": ["POST", "OPTIONS"],
    "headers": ["x-grpc-web", "x-user-agent", "content-type", "grpc-timeout"],
    "exposed_headers": ["grpc-status", "grpc-message"],
    "max_age": "1728000",
}


@pytest.fixture
def gw(start_gateway, echo):
    dead = f"127.0.0.1:{closed_port()}"
    return start_gateway([
        module({"enable_grpc_web": True,
                "cors": {"origins": [MODULE_ORIGIN], "methods": "GET", "max_age": "30"}}),
        mapping("api", "/api/", echo.addr, cors=API_CORS),
        mapping("inherit", "/inherit/", echo.addr),
        mapping("off", "/off/", echo.addr, cors={}),
        mapping("dead", "/dead/", dead, cors={"origins": [APP]}),
        mapping("grpc-echo", "/echo.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True,
                cors=GRPC_WEB_CORS),
        mapping("grpc-dead", "/dead.Echo/", dead, rewrite="/echo.Echo/", grpc=True),
        mapping("grpc-slow", "/slow.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True,
                timeout_ms=300),
    ])


def curl(gw, path, *args, h2=False, data=None):
    """(status line, {lower-case name: [values]}, body) of one curl request."""
    argv = ["curl", "-sS", "--noproxy", "*", "-m", "10", "-D", "-", "-o", "-"]
    argv.append("--http2-prior-knowledge" if h2 else "--http1.1")
    argv += list(args)
    if data is not None:
        argv += ["--data-binary", "@-"]
    argv.append(gw.url(path))
    r = subprocess.run(argv, input=data, capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return lines[0], headers, body


def acao(headers):
    return headers.get("access-control-allow-origin")


def cors_fields(headers):
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


def preflight_args(origin, method="POST", request_headers=None):
    args = ["-X", "OPTIONS", "-H", f"Origin: {origin}", "-H",
            f"Access-Control-Request-Method: {method}"]
    if request_headers:
        args += ["-H", f"Access-Control-Request-Headers: {request_headers}"]
    return args


@pytest.mark.parametrize("h2", [False, True], ids=["http1", "h2c"])
def test_preflight_is_answered_by_the_gateway(gw, h2):
    status, headers, body = curl(gw, "/api/things",
                                 *preflight_args(LOCAL, "PUT", "content-type, x-custom"), h2=h2)
    assert " 200" in status, status
    assert body == b""  # the echo backend would have answered with its JSON
    assert cors_fields(headers) == {
        "access-control-allow-origin": [LOCAL],
        "access-control-allow-credentials": ["true"],
        "access-control-allow-methods": ["GET, POST, PUT"],
        "access-control-allow-headers": ["content-type, x-custom"],
        "access-control-max-age": ["600"],
        "access-control-expose-headers": ["x-echo-info"],
    }
    assert headers["server"] == ["envoy"]
    if not h2:
        assert headers["content-length"] == ["0"]


@pytest.mark.parametrize("h2", [False, True], ids=["http1", "h2c"])
def test_actual_request_gets_origin_credentials_and_exposed_headers(gw, h2):
    status, headers, body = curl(gw, "/api/things", "-H", f"Origin: {APP}", h2=h2)
    assert " 200" in status, status
    info = json.loads(body)
    assert info["headers"]["origin"] == APP  # the request itself goes upstream unchanged
    assert cors_fields(headers) == {
        "access-control-allow-origin": [APP],
        "access-control-allow-credentials": ["true"],
        "access-control-expose-headers": ["x-echo-info"],
    }


def test_browser_sequence_preflight_then_actual_on_one_connection(gw):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("OPTIONS", "/api/items", headers={
            "Origin": APP, "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-custom"})
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == b""
        assert r.getheader("access-control-allow-origin") == APP
        assert "PUT" in r.getheader("access-control-allow-methods")
        assert "x-custom" in r.getheader("access-control-allow-headers")
        conn.request("PUT", "/api/items", body=b'{"n": 1}', headers={
            "Origin": APP, "x-custom": "1", "content-type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200
        info = json.loads(r.read())
        assert info["method"] == "PUT" and info["headers"]["x-custom"] == "1"
        assert r.getheader("access-control-allow-origin") == APP
        assert r.getheader("access-control-allow-credentials") == "true"
        assert r.getheader("access-control-allow-methods") is None  # only on the preflight
    finally:
        conn.close()


@pytest.mark.parametrize("h2", [False, True], ids=["http1", "h2c"])
def test_disallowed_origin_gets_no_cors_and_its_preflight_goes_upstream(gw, h2):
    status, headers, body = curl(gw, "/api/x", "-H", "Origin: https://evil.example", h2=h2)
    assert " 200" in status and cors_fields(headers) == {}, headers
    # Case matters: origins match exactly.
    status, headers, _ = curl(gw, "/api/x", "-H", "Origin: https://APP.example", h2=h2)
    assert cors_fields(headers) == {}, headers
    status, headers, body = curl(gw, "/api/x", *preflight_args("https://evil.example"), h2=h2)
    assert " 200" in status
    assert json.loads(body)["method"] == "OPTIONS"  # answered by the echo backend
    assert cors_fields(headers) == {}, headers


def test_no_origin_no_cors(gw):
    status, headers, body = curl(gw, "/api/x")
    assert " 200" in status and cors_fields(headers) == {}
    # An OPTIONS without Origin is an ordinary request.
    status, headers, body = curl(gw, "/api/x", "-X", "OPTIONS",
                                 "-H", "Access-Control-Request-Method: GET")
    assert json.loads(body)["method"] == "OPTIONS"
    assert cors_fields(headers) == {}


def test_upstream_cors_fields_are_replaced(gw):
    status, headers, _ = curl(gw, "/api/x", "-H", f"Origin: {APP}",
                              "-H", "x-echo-header-Access-Control-Allow-Origin: *",
                              "-H", "x-echo-header-Access-Control-Allow-Credentials: false")
    assert acao(headers) == [APP], headers
    assert headers["access-control-allow-credentials"] == ["true"]
    # Without an allowed origin the upstream's own fields pass untouched.
    status, headers, _ = curl(gw, "/api/x", "-H", "Origin: https://evil.example",
                              "-H", "x-echo-header-Access-Control-Allow-Origin: *")
    assert acao(headers) == ["*"], headers


def test_module_cors_applies_to_mappings_without_their_own(gw):
    status, headers, body = curl(gw, "/inherit/x", *preflight_args(MODULE_ORIGIN, "GET"))
    assert " 200" in status and body == b""
    assert cors_fields(headers) == {
        "access-control-allow-origin": [MODULE_ORIGIN],
        "access-control-allow-methods": ["GET"],
        "access-control-max-age": ["30"],
    }
    status, headers, _ = curl(gw, "/inherit/x", "-H", f"Origin: {MODULE_ORIGIN}")
    assert cors_fields(headers) == {"access-control-allow-origin": [MODULE_ORIGIN]}
    # The Mapping's own policy replaces the Module's: its origins only.
    status, headers, _ = curl(gw, "/inherit/x", "-H", f"Origin: {APP}")
    assert cors_fields(headers) == {}
    status, headers, _ = curl(gw, "/api/x", "-H", f"Origin: {MODULE_ORIGIN}")
    assert cors_fields(headers) == {}
    # An empty `cors: {}` switches the Module's policy off for that Mapping.
    status, headers, body = curl(gw, "/off/x", *preflight_args(MODULE_ORIGIN, "GET"))
    assert json.loads(body)["method"] == "OPTIONS" and cors_fields(headers) == {}


def test_gateway_failures_carry_cors_but_unrouted_requests_do_not(gw):
    status, headers, body = curl(gw, "/dead/x", "-H", f"Origin: {APP}")
    assert " 503" in status and b"upstream connect error" in body
    assert acao(headers) == [APP]  # so the browser can read the error
    status, headers, _ = curl(gw, "/nowhere", "-H", f"Origin: {APP}")
    assert " 404" in status and cors_fields(headers) == {}


# ---------------------------------------------------------------------------------------------
# gRPC-Web with CORS


def frame(payload, flags=0):
    return bytes([flags]) + len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize("h2", [False, True], ids=["http1", "h2c"])
def test_grpc_web_preflight_and_call_expose_the_status(gw, h2):
    status, headers, body = curl(
        gw, "/echo.Echo/Unary",
        *preflight_args(APP, "POST", "x-grpc-web,content-type,x-user-agent,grpc-timeout"), h2=h2)
    assert " 200" in status and body == b""
    assert acao(headers) == [APP]
    assert headers["access-control-allow-headers"] == [
        "x-grpc-web, x-user-agent, content-type, grpc-timeout"]
    assert headers["access-control-allow-methods"] == ["POST, OPTIONS"]
    assert headers["access-control-max-age"] == ["1728000"]

    status, headers, body = curl(
        gw, "/echo.Echo/Unary", "-H", f"Origin: {APP}", "-H", "x-grpc-web: 1",
        "-H", "content-type: application/grpc-web-text", h2=h2,
        data=base64.b64encode(frame(b"from the browser")))
    assert " 200" in status, status
    assert acao(headers) == [APP]
    assert headers["access-control-expose-headers"] == ["grpc-status, grpc-message"]
    assert headers["content-type"] == ["application/grpc-web-text+proto"]
    decoded = b"".join(base64.b64decode(body[i:i + 4]) for i in range(0, len(body), 4))
    assert decoded.startswith(frame(b"from the browser"))
    assert b"grpc-status: 0" in decoded


def test_grpc_web_failure_status_readable_cross_origin(gw):
    status, headers, body = curl(
        gw, "/echo.Echo/Unary", "-H", f"Origin: {APP}", "-H", "x-grpc-web: 1",
        "-H", "content-type: application/grpc-web+proto", "-H", "x-fail-status: 5",
        "-H", "x-fail-message: gone", data=frame(b"x"))
    assert " 200" in status
    assert headers["grpc-status"] == ["5"] and headers["grpc-message"] == ["gone"]
    assert headers["access-control-expose-headers"] == ["grpc-status, grpc-message"]
    assert acao(headers) == [APP]


# ---------------------------------------------------------------------------------------------
# gRPC from HTTP/1.1 clients: the gateway's own failures, grpc-timeout


def grpc_curl(gw, path, payload=b"x", *headers):
    args = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    for h in headers:
        args += ["-H", h]
    return curl(gw, path, *args, data=frame(payload))


@pytest.mark.parametrize("path,code,message", [
    ("/nothing.Here/Call", "12", "no matching route"),
    ("/dead.Echo/Unary", "14", "upstream connect error"),
])
def test_http1_grpc_local_replies(gw, path, code, message):
    status, headers, body = grpc_curl(gw, path)
    assert status == "HTTP/1.1 200 OK", (status, body)
    assert headers["content-type"] == ["application/grpc"]
    assert headers["grpc-status"] == [code]
    assert headers["grpc-message"][0].startswith(message)
    assert headers["content-length"] == ["0"] and body == b""


def test_http1_grpc_route_timeout_is_deadline_exceeded(gw):
    start = time.monotonic()
    status, headers, body = grpc_curl(gw, "/slow.Echo/Unary", b"x", "x-delay-ms: 3000")
    assert time.monotonic() - start < 2.0
    assert status == "HTTP/1.1 200 OK"
    assert headers["grpc-status"] == ["4"]
    assert headers["grpc-message"] == ["upstream request timeout"]


def test_http1_grpc_timeout_header_bounds_the_call(gw):
    start = time.monotonic()
    status, headers, body = grpc_curl(gw, "/echo.Echo/Unary", b"x", "x-delay-ms: 3000",
                                      "grpc-timeout: 300m")
    assert time.monotonic() - start < 2.0
    assert status == "HTTP/1.1 200 OK"
    assert headers["grpc-status"] == ["4"]
    # A generous grpc-timeout leaves the call alone.
    status, headers, body = grpc_curl(gw, "/echo.Echo/Unary", b"ok", "grpc-timeout: 10S")
    assert status == "HTTP/1.1 200 OK" and headers["transfer-encoding"] == ["chunked"]
    assert body.startswith(frame(b"ok"))  # (curl prints the trailers after it)


def test_http1_grpc_timeout_after_headers_ends_with_trailers(gw):
    body = frame(b"s")
    req = (b"POST /echo.Echo/ServerStream HTTP/1.1\r\nHost: h\r\ncontent-type: application/grpc\r\n"
           b"te: trailers\r\ngrpc-timeout: 550m\r\nx-count: 20\r\nx-delay-ms: 100\r\n"
           b"content-length: %d\r\n\r\n" % len(body)) + body
    with harness.RawConn(gw.port) as c:
        c.send(req)
        head, data, trailers = _read_chunked_with_trailers(c)
        assert head[0] == "HTTP/1.1 200 OK", head
        assert "grpc-status: 4" in trailers, trailers
        assert 1 <= data.count(b"s-") < 20
        # The connection stays usable.
        c.send(b"GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n")
        assert c.read_response().status == 200


def test_plain_http1_failure_stays_plain(gw):
    status, headers, body = curl(gw, "/dead.Echo/Unary")
    assert " 503" in status and "grpc-status" not in headers


# ---------------------------------------------------------------------------------------------
# The gRPC HTTP/1.1 bridge (Module enable_grpc_http11_bridge)


@pytest.fixture
def bridge_gw(start_gateway, echo):
    return start_gateway([
        module({"enable_grpc_http11_bridge": True}),
        mapping("grpc-echo", "/echo.Echo/", echo.addr, rewrite="/echo.Echo/", grpc=True,
                cors={"origins": [APP]}),
    ])


def test_bridge_ok_status_in_head_with_content_length(bridge_gw):
    status, headers, body = grpc_curl(bridge_gw, "/echo.Echo/Unary", b"bridged")
    assert status == "HTTP/1.1 200 OK", status
    assert headers["grpc-status"] == ["0"]
    assert headers["content-length"] == [str(len(frame(b"bridged")))]
    assert "transfer-encoding" not in headers
    assert body == frame(b"bridged")


def test_bridge_error_after_messages_is_503_with_status_headers(bridge_gw):
    status, headers, body = grpc_curl(bridge_gw, "/echo.Echo/ServerStream", b"p", "x-count: 3",
                                      "x-fail-after: 2", "x-fail-status: 9",
                                      "x-fail-message: bad state", f"Origin: {APP}")
    assert status == "HTTP/1.1 503 Service Unavailable", status
    assert headers["grpc-status"] == ["9"]
    assert headers["grpc-message"] == ["bad state"]
    assert body == frame(b"p-0") + frame(b"p-1")
    assert acao(headers) == [APP]


def test_bridge_trailers_only_passes_through(bridge_gw):
    status, headers, body = grpc_curl(bridge_gw, "/echo.Echo/Unary", b"x", "x-fail-status: 7")
    assert status == "HTTP/1.1 200 OK"
    assert headers["grpc-status"] == ["7"]


def test_bridge_response_over_the_limit_is_refused(bridge_gw):
    status, headers, body = grpc_curl(bridge_gw, "/echo.Echo/ServerStream", b"x", "x-count: 8",
                                      "x-message-bytes: 300000")
    assert status == "HTTP/1.1 200 OK"
    assert headers["grpc-status"] == ["2"], headers  # a local 500, answered the gRPC way
    assert body == b""
    # The gateway carries on.
    status, headers, body = grpc_curl(bridge_gw, "/echo.Echo/Unary", b"again")
    assert body == frame(b"again")
