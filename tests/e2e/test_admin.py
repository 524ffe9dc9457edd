"""Admin server: liveness, readiness, loopback binding."""

import socket
import time

import pytest

import harness
from harness import free_port, http_get_status, mapping, port_is_free, tcp_connections


def test_check_alive_and_ready(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    status, body = http_get_status(gw.admin_url + "/ambassador/v0/check_alive", T(2))
    assert status == 200
    assert body.strip(), "check_alive answered with an empty body"
    status, _ = http_get_status(gw.admin_url + "/ambassador/v0/check_ready", T(2))
    assert status == 200


def test_ready_means_routes_are_served(start_gateway, echo, http, T):
    # start_gateway returns as soon as check_ready says 200: the very first request must route.
    gw = start_gateway([mapping("m", "/", echo.addr)])
    r = http.get(gw.url("/first"), timeout=T(5))
    assert r.status_code == 200
    assert r.json()["backend"] == "echo"


def test_unknown_admin_path_is_404(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    status, _ = http_get_status(gw.admin_url + "/no/such/admin/path", T(2))
    assert status == 404


@pytest.mark.slow
def test_not_ready_while_listener_cannot_bind(start_gateway, echo, tmp_path, T):
    """A Listener whose port is taken: readiness must never be claimed (the process may also exit
    with an error, which is acceptable)."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("0.0.0.0", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        gw = harness.Gateway(
            str(tmp_path / "gw"),
            {"a.yaml": [harness.listener("taken", taken), mapping("m", "/", echo.addr)]},
            listen=False, wait_ready=False)
        deadline = time.monotonic() + T(2)
        statuses = set()
        while time.monotonic() < deadline and gw.alive():
            statuses.add(gw.ready_status(timeout=0.5))
            time.sleep(0.05)
        assert 200 not in statuses, "check_ready said 200 although the listener port is taken"
        if gw.alive():
            assert 503 in statuses, f"admin never answered check_ready: {statuses}"
        else:
            assert gw.popen.returncode != 0
    finally:
        blocker.close()


def test_admin_binds_loopback_only(start_gateway, echo):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    listening = tcp_connections(local_port=gw.admin_port, state="0A")
    assert listening, "admin port is not listening"
    for (ip, _), _, _ in listening:
        assert ip == "127.0.0.1", f"admin listens on {ip}"


def test_default_admin_address_is_loopback_8877(echo, tmp_path, proxenos_bin, T):
    if not port_is_free(8877) or not port_is_free(8877, "127.0.0.1"):
        pytest.skip("port 8877 is in use on this machine")
    port = free_port("0.0.0.0")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(harness.to_yaml_docs(
        [harness.listener("l", port), mapping("m", "/", echo.addr)]))
    proc = harness.Proc([harness.proxenos_bin(), "run", "--config", str(cfg)],
                        str(tmp_path), "proxenos-default-admin")
    ok = harness.wait_until(
        lambda: http_get_status("http://127.0.0.1:8877/ambassador/v0/check_ready", 0.5)[0] == 200,
        T(10))
    assert ok, "no readiness on 127.0.0.1:8877\n" + proc.describe()
    listening = tcp_connections(local_port=8877, state="0A")
    assert listening and all(ip == "127.0.0.1" for (ip, _), _, _ in listening), listening


def test_check_alive_answers_while_config_has_errors(start_gateway, echo, T):
    gw = start_gateway({
        "good.yaml": [mapping("m", "/", echo.addr)],
        "bad.yaml": "kind: Mapping\napiVersion: getambassador.io/v3alpha1\nmetadata: {name: b}\nspec: {prefix: /b/}\n",
    })
    assert http_get_status(gw.admin_url + "/ambassador/v0/check_alive", T(2))[0] == 200
    assert gw.ready_status() == 200


def test_probe_paths_are_routed_at_the_edge(start_gateway, echo, http, T):
    """Emissary adds internal Mappings for /ambassador/v0/check_alive and check_ready that attach
    to every Host (spec 1.10, 2.8)."""
    gw = start_gateway([mapping("m", "/app/", echo.addr)])
    assert http.get(gw.url("/ambassador/v0/check_alive"), timeout=T(5)).status_code == 200
    assert http.get(gw.url("/ambassador/v0/check_ready"), timeout=T(5)).status_code == 200
    assert http.get(gw.url("/no-route-here"), timeout=T(5)).status_code == 404


def test_log_level_flag(start_gateway, echo, http, T):
    quiet = start_gateway([mapping("m", "/", echo.addr)], log_level="error")
    chatty = start_gateway([mapping("m", "/", echo.addr)], log_level="debug")
    assert http.get(quiet.url("/"), timeout=T(5)).status_code == 200
    assert http.get(chatty.url("/"), timeout=T(5)).status_code == 200
    assert " info " not in quiet.stderr(), quiet.stderr()
    assert " info " in chatty.stderr() or "info" in chatty.stderr().lower()
