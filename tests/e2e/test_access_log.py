"""Access log: Emissary's default text line, response flags, `envoy_log_type: json` with custom
and default formats, and `envoy_log_path` (including a switch on reload)."""

import json
import os
import re

import harness
from harness import RawConn, access_log_lines, get_request, mapping, module, to_yaml_docs

START_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# Emissary's default json_format keys (python/ambassador/envoy/v3/v3listener.py).
DEFAULT_JSON_KEYS = [
    "start_time", "method", "path", "protocol", "response_code", "response_flags",
    "bytes_received", "bytes_sent", "duration", "upstream_service_time", "x_forwarded_for",
    "user_agent", "request_id", "authority", "upstream_host", "upstream_cluster",
    "upstream_local_address", "downstream_local_address", "downstream_remote_address",
    "requested_server_name", "istio_policy_status", "upstream_transport_failure_reason",
]


def json_lines(text):
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))  # every JSON-looking line must parse
    return out


def wait_lines(get_lines, pred, T, count=1, timeout=5):
    """Polls until `count` lines satisfy `pred` (the writer flushes every 100 ms)."""
    return harness.wait_until(
        lambda: (lambda ls: ls if len(ls) >= count else None)([l for l in get_lines() if pred(l)]),
        T(timeout))


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return ""


def test_default_text_line(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/t/", echo.addr, rewrite="")])
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(get_request("/t/one?q=1", host="text.example.com",
                                  headers=[("User-Agent", "alog-e2e"),
                                           ("X-Forwarded-For", "203.0.113.9")]))
    assert r.status == 200
    lines = wait_lines(lambda: gw.stdout().splitlines(), lambda l: "alog-e2e" in l, T)
    assert lines, gw.stdout()[-3000:]
    raw = lines[0]
    assert raw.startswith("ACCESS ["), raw
    parsed = access_log_lines(raw)
    assert parsed, raw
    line = parsed[0]
    assert START_RE.match(line["start"]), line
    assert (line["method"], line["path"], line["protocol"]) == ("GET", "/t/one?q=1", "HTTP/1.1")
    assert line["code"] == "200" and line["flags"] == "-"
    assert line["rx"] == "0" and int(line["tx"]) > 0  # body bytes, as in Envoy
    assert line["upstream_time"].isdigit()
    assert line["xff"].startswith("203.0.113.9")
    assert line["ua"] == "alog-e2e"
    assert line["authority"] == "text.example.com"
    assert line["upstream"] == echo.addr
    assert line["request_id"] == r.json()["headers"]["x-request-id"]


def test_no_route_is_flagged_nr(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/t/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/unrouted/x", headers=[("User-Agent", "nr-e2e")])).status \
            == 404
    lines = wait_lines(lambda: access_log_lines(gw.stdout()), lambda l: l["ua"] == "nr-e2e", T)
    assert lines, gw.stdout()[-3000:]
    assert lines[0]["code"] == "404"
    assert lines[0]["flags"] == "NR"
    assert lines[0]["upstream"] == "-"


def test_json_custom_format(start_gateway, echo, T):
    fmt = {"start": "%START_TIME%", "status": "%RESPONSE_CODE%", "path": "%REQ(:PATH)%",
           "ua": "%REQ(USER-AGENT)%", "flags": "%RESPONSE_FLAGS%", "missing": "%REQ(X-NOPE)%",
           "sent": "%BYTES_SENT%", "mixed": "%REQ(:METHOD)% %RESPONSE_CODE%"}
    gw = start_gateway([module({"envoy_log_type": "json", "envoy_log_format": fmt}),
                        mapping("m", "/j/", echo.addr)])
    # A hostile but legal User-Agent: quotes, backslash, and an obs-text byte (0xff).
    ua = b'evil "quoted" \\back\\ \xff end'
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/j/a?b=c", headers=[("User-Agent", ua.decode("latin-1"))])
                         ).status == 200
        assert c.request(get_request("/nope", headers=[("User-Agent", "json-404")])).status == 404
    lines = wait_lines(lambda: json_lines(gw.stdout()), lambda l: True, T, count=2)
    assert lines, gw.stdout()[-3000:]
    assert not access_log_lines(gw.stdout()), "text lines in json mode"
    by_path = {l["path"]: l for l in lines}
    ok = by_path["/j/a?b=c"]
    assert list(ok) == list(fmt), "keys must keep the configured order"
    assert START_RE.match(ok["start"])
    assert ok["status"] == 200 and isinstance(ok["status"], int)
    assert isinstance(ok["sent"], int) and ok["sent"] > 0
    assert ok["flags"] is None and ok["missing"] is None
    assert ok["mixed"] == "GET 200"
    assert ok["ua"] == 'evil "quoted" \\back\\ \u00ff end'
    nr = by_path["/nope"]
    assert nr["status"] == 404 and nr["flags"] == "NR" and nr["ua"] == "json-404"


def test_json_default_format_has_emissary_keys(start_gateway, echo, T):
    gw = start_gateway([module({"envoy_log_type": "json"}), mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/d", headers=[("User-Agent", "json-default")])).status == 200
    lines = wait_lines(lambda: json_lines(gw.stdout()), lambda l: l.get("user_agent") ==
                       "json-default", T)
    assert lines, gw.stdout()[-3000:]
    line = lines[0]
    assert list(line) == DEFAULT_JSON_KEYS
    assert line["method"] == "GET" and line["path"] == "/d" and line["response_code"] == 200
    assert line["upstream_host"] == echo.addr
    assert line["istio_policy_status"] is None
    # Our end of the upstream connection: a loopback address with an ephemeral port.
    assert re.match(r"^127\.0\.0\.1:\d+$", line["upstream_local_address"]), line


def test_route_name_and_upstream_local_address(start_gateway, echo, T):
    fmt = {"route": "%ROUTE_NAME%", "local": "%UPSTREAM_LOCAL_ADDRESS%", "path": "%REQ(:PATH)%"}
    gw = start_gateway([module({"envoy_log_type": "json", "envoy_log_format": fmt}),
                        mapping("named", "/n/", echo.addr, stats_name="named_route"),
                        mapping("plain", "/p/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/n/1")).status == 200
        assert c.request(get_request("/p/1")).status == 200
        assert c.request(get_request("/none")).status == 404
    lines = wait_lines(lambda: json_lines(gw.stdout()), lambda l: True, T, count=3)
    assert lines, gw.stdout()[-3000:]
    by_path = {l["path"]: l for l in lines}
    assert by_path["/n/1"]["route"] == "named_route"
    assert by_path["/p/1"]["route"] == "mapping_default_plain"
    assert by_path["/none"]["route"] is None and by_path["/none"]["local"] is None
    for path in ("/n/1", "/p/1"):
        assert re.match(r"^127\.0\.0\.1:\d+$", by_path[path]["local"]), by_path[path]
        assert by_path[path]["local"] != echo.addr


def test_log_path_file_and_switch_on_reload(start_gateway, echo, tmp_path, T):
    first = str(tmp_path / "access-1.log")
    second = str(tmp_path / "access-2.log")
    gw = start_gateway({
        "module.yaml": [module({"envoy_log_path": first})],
        "routes.yaml": [mapping("m", "/", echo.addr)],
    })
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/to-file", headers=[("User-Agent", "file-1")])).status == 200
    lines = wait_lines(lambda: access_log_lines(read(first)), lambda l: l["ua"] == "file-1", T)
    assert lines, read(first) + gw.stdout()[-2000:]
    assert lines[0]["path"] == "/to-file"
    assert oct(os.stat(first).st_mode & 0o777) == oct(0o644 & ~_umask())
    assert not access_log_lines(gw.stdout()), "access log still on stdout"

    # The config folder is watched: a changed Module moves the log without a restart.
    with open(os.path.join(gw.config_dir, "module.yaml"), "w") as f:
        f.write(to_yaml_docs([module({"envoy_log_path": second, "envoy_log_type": "json"})]))

    def second_has_line():
        with RawConn(gw.port, timeout=T(5)) as c:
            c.request(get_request("/to-second", headers=[("User-Agent", "file-2")]))
        return [l for l in json_lines(read(second)) if l.get("user_agent") == "file-2"]

    assert harness.wait_until(second_has_line, T(10), interval=0.2), gw.stderr()[-3000:]
    assert not json_lines(read(first)), "JSON lines in the old file after the switch"


def test_bad_log_path_keeps_stdout(start_gateway, echo, tmp_path, T):
    bad = str(tmp_path / "no" / "such" / "dir" / "access.log")
    gw = start_gateway([module({"envoy_log_path": bad}), mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/still", headers=[("User-Agent", "bad-path")])).status == 200
    lines = wait_lines(lambda: access_log_lines(gw.stdout()), lambda l: l["ua"] == "bad-path", T)
    assert lines, gw.stdout()[-2000:]
    assert "envoy_log_path" in gw.stderr()


def test_log_path_dev_fd_1_is_stdout(start_gateway, echo, T):
    gw = start_gateway([module({"envoy_log_path": "/dev/fd/1"}), mapping("m", "/", echo.addr)])
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/o", headers=[("User-Agent", "fd1")])).status == 200
    assert wait_lines(lambda: access_log_lines(gw.stdout()), lambda l: l["ua"] == "fd1", T)


def test_log_path_dev_null_turns_the_log_off_until_reload(start_gateway, echo, tmp_path, T):
    gw = start_gateway({
        "module.yaml": [module({"envoy_log_path": "/dev/null", "envoy_log_format": "%BAD%"})],
        "routes.yaml": [mapping("m", "/", echo.addr)],
    })
    with RawConn(gw.port, timeout=T(5)) as c:
        assert c.request(get_request("/quiet", headers=[("User-Agent", "null-1")])).status == 200
    _h2c_get(gw, "/quiet-h2", "User-Agent: null-2", T=T)  # fails on a transport error
    # The format is still checked, so its error reaches the owner even with the log off.
    assert "envoy_log_format" in gw.stderr()

    # Pointing the log at a file again on reload brings the lines back.
    target = str(tmp_path / "access.log")
    with open(os.path.join(gw.config_dir, "module.yaml"), "w") as f:
        f.write(to_yaml_docs([module({"envoy_log_path": target})]))

    def logged_again():
        with RawConn(gw.port, timeout=T(5)) as c:
            c.request(get_request("/loud", headers=[("User-Agent", "file-again")]))
        return [l for l in access_log_lines(read(target)) if l["ua"] == "file-again"]

    assert harness.wait_until(logged_again, T(10), interval=0.2), gw.stderr()[-3000:]
    assert not [l for l in access_log_lines(read(target)) if l["ua"].startswith("null-")]
    assert not access_log_lines(gw.stdout()), gw.stdout()[-2000:]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _h2c_get(gw, path, *headers, T):
    import subprocess

    args = ["curl", "-sS", "--noproxy", "*", "--http2-prior-knowledge", "-m", str(T(10))]
    for h in headers:
        args += ["-H", h]
    r = subprocess.run(args + [gw.url(path)], capture_output=True, timeout=T(15))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_protocol_and_forwarded_for_as_envoy_shows_them(start_gateway, echo, T):
    """%PROTOCOL% names the client's protocol (HTTP/2 for h2c), in the log and in header
    templates; %REQ(X-FORWARDED-FOR)% is the value sent upstream, with the peer appended."""
    fmt = {"ua": "%REQ(USER-AGENT)%", "protocol": "%PROTOCOL%", "xff": "%REQ(X-FORWARDED-FOR)%",
           "code": "%RESPONSE_CODE%"}
    gw = start_gateway([
        module({"envoy_log_type": "json", "envoy_log_format": fmt}),
        mapping("m", "/p/", echo.addr, add_request_headers={
            "x-proto": "%PROTOCOL%", "x-xff-seen": "%REQ(X-FORWARDED-FOR)%"}),
    ])
    info = json.loads(_h2c_get(gw, "/p/h2", "user-agent: proto-h2",
                               "x-forwarded-for: 198.51.100.7", T=T))
    assert info["headers"]["x-proto"] == "HTTP/2"
    assert info["headers"]["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"
    assert info["headers"]["x-xff-seen"] == "198.51.100.7, 127.0.0.1"
    with RawConn(gw.port, timeout=T(5)) as c:
        r = c.request(get_request("/p/h1", headers=[("User-Agent", "proto-h1")]))
        assert r.status == 200
        assert r.json()["headers"]["x-proto"] == "HTTP/1.1"
        assert r.json()["headers"]["x-xff-seen"] == "127.0.0.1"
        # Refused before any upstream: the log still shows the header as Envoy appended it.
        assert c.request(get_request("/nowhere", headers=[
            ("User-Agent", "proto-404"), ("X-Forwarded-For", "192.0.2.1")])).status == 404
    lines = wait_lines(lambda: json_lines(gw.stdout()),
                       lambda l: str(l.get("ua")).startswith("proto-"), T, count=3)
    assert lines, gw.stdout()[-3000:]
    by_ua = {l["ua"]: l for l in lines}
    assert by_ua["proto-h2"]["protocol"] == "HTTP/2"
    assert by_ua["proto-h2"]["xff"] == "198.51.100.7, 127.0.0.1"
    assert by_ua["proto-h1"]["protocol"] == "HTTP/1.1"
    assert by_ua["proto-h1"]["xff"] == "127.0.0.1"
    assert by_ua["proto-404"]["code"] == 404
    assert by_ua["proto-404"]["xff"] == "192.0.2.1, 127.0.0.1"
