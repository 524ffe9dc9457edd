"""Graceful shutdown on SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit 0."""

import signal
import socket
import threading
import time

import pytest

import harness
from harness import RawConn, get_request, mapping, tcp_connections


def start_slow_request(gw, delay_ms, T):
    """Sends one request that the echo backend answers after `delay_ms`; returns (thread, result)."""
    result = {}

    def run():
        try:
            with RawConn(gw.port, timeout=T(30)) as c:
                c.send(get_request("/slow", headers=[("x-echo-delay-ms", str(delay_ms))]))
                result["response"] = c.read_response(timeout=T(30))
        except Exception as e:  # reported by the test
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def wait_in_flight(gw, echo, T):
    """Waits until the gateway holds a connection to the echo backend (the request is upstream)."""
    ok = harness.wait_until(lambda: tcp_connections(remote_port=echo.port, state="01"), T(5))
    assert ok, "the slow request never reached the upstream"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_lets_in_flight_request_finish(start_gateway, echo, T, sig):
    gw = start_gateway([mapping("m", "/", echo.addr, timeout_ms=10000)])
    t, result = start_slow_request(gw, 1500, T)
    wait_in_flight(gw, echo, T)
    gw.signal(sig)
    # New connections are no longer accepted while the old request drains.
    refused = harness.wait_until(lambda: _refused(gw.port), T(1))
    t.join(T(10))
    assert "error" not in result, result.get("error")
    r = result["response"]
    assert r.status == 200 and r.json()["path"] == "/slow"
    code = gw.wait(T(5))
    assert code == 0, f"exit code {code}"
    assert refused, "listener still accepted connections during the drain"


def _refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3) as s:
            s.sendall(get_request("/new"))
            s.settimeout(0.3)
            try:
                data = s.recv(100)
            except socket.timeout:
                return False
            return not data.startswith(b"HTTP/1.1 200")
    except OSError:
        return True


def test_drain_seconds_bounds_shutdown(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr, timeout_ms=0)],
                       extra_args=["--drain-seconds", "1"])
    t, result = start_slow_request(gw, 8000, T)
    wait_in_flight(gw, echo, T)
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    code = gw.wait(T(5))
    elapsed = time.monotonic() - t0
    assert code == 0, f"exit code {code} after {elapsed:.1f}s"
    assert elapsed < T(3), f"took {elapsed:.1f}s with --drain-seconds 1"
    t.join(T(5))
    r = result.get("response")
    assert r is None or r.status != 200, "the 8 s request cannot have completed"


def test_idle_keepalive_connections_do_not_delay_exit(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    conns = []
    try:
        for _ in range(3):
            c = RawConn(gw.port)
            assert c.request(get_request("/")).status == 200
            conns.append(c)
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        code = gw.wait(T(5))
        assert code == 0
        assert time.monotonic() - t0 < T(2), "idle connections held up shutdown"
        for c in conns:
            assert c.wait_closed(T(2)), "idle client connection not closed on shutdown"
    finally:
        for c in conns:
            c.close()


def test_not_ready_during_drain(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr, timeout_ms=10000)])
    t, result = start_slow_request(gw, 1500, T)
    wait_in_flight(gw, echo, T)
    gw.signal(signal.SIGTERM)
    status = harness.wait_until(lambda: gw.ready_status(timeout=0.3) != 200, T(1))
    t.join(T(10))
    assert gw.wait(T(5)) == 0
    assert status, "check_ready still said 200 while draining"


def test_sigterm_when_idle_exits_quickly(start_gateway, echo, T):
    gw = start_gateway([mapping("m", "/", echo.addr)])
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    assert gw.wait(T(5)) == 0
    assert time.monotonic() - t0 < T(2)
