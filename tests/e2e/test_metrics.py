"""/metrics on the admin listener: Prometheus text format with Envoy/Emissary names, summed over
every worker's stats shards."""

import re
import urllib.request

from harness import FakeUpstream, RawConn, closed_port, get_request, mapping, wait_until

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(gw, T):
    req = urllib.request.Request(gw.admin_url + "/metrics")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=T(5)) as r:
        assert r.status == 200
        ctype = r.headers.get("content-type", "")
        text = r.read().decode()
    return ctype, text


def parse(text):
    """[(name, {label: value}, float)] for every sample; checks every line is well formed."""
    out = []
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"TYPE twice for {name}"
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"malformed sample line: {line!r}"
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out, types


def value(samples, name, **labels):
    found = [v for n, l, v in samples if n == name and all(l.get(k) == v2 for k, v2 in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def settled(gw, T, n):
    """Waits until the workers have counted all n responses. A worker counts a response just
    after writing its last byte, so a scrape racing the client can be a moment behind."""
    def done():
        samples, _ = parse(scrape(gw, T)[1])
        return sum(v for name, l, v in samples if name == "envoy_http_downstream_rq_xx") == n
    assert wait_until(done, T(5))


def test_metrics_counts_requests_by_class_and_cluster(start_gateway, echo, http, T):
    dead_port = closed_port()
    gw = start_gateway([
        mapping("ok", "/ok/", echo.addr),
        mapping("dead", "/dead/", f"127.0.0.1:{dead_port}", stats_name="deadstats"),
    ], workers=2)
    ok, missing, dead = 7, 3, 4
    for i in range(ok):
        # New connections spread requests over both workers.
        r = http.get(gw.url(f"/ok/{i}"), timeout=T(5), headers={"connection": "close"})
        assert r.status_code == 200
    for i in range(missing):
        assert http.get(gw.url(f"/nowhere/{i}"), timeout=T(5)).status_code == 404
    for i in range(dead):
        r = http.get(gw.url(f"/dead/{i}"), timeout=T(5), headers={"connection": "close"})
        assert r.status_code == 503
    n = ok + missing + dead
    settled(gw, T, n)

    ctype, text = scrape(gw, T)
    assert ctype.startswith("text/plain; version=0.0.4")
    samples, types = parse(text)
    assert types["envoy_http_downstream_rq_total"] == "counter"
    assert types["envoy_http_downstream_cx_active"] == "gauge"
    assert types["envoy_http_downstream_rq_time"] == "histogram"
    assert types["envoy_cluster_upstream_rq_time"] == "histogram"

    hcm = {"envoy_http_conn_manager_prefix": "ingress_http"}
    assert value(samples, "envoy_http_downstream_rq_total", **hcm) == n
    xx = lambda c: value(samples, "envoy_http_downstream_rq_xx", envoy_response_code_class=c, **hcm)
    assert xx("2") == ok
    assert xx("4") == missing
    assert xx("5") == dead
    assert xx("1") == 0 and xx("3") == 0
    assert value(samples, "envoy_http_downstream_cx_total", **hcm) >= ok + dead
    assert value(samples, "envoy_http_downstream_rq_time_count", **hcm) == n
    assert value(samples, "envoy_http_downstream_rq_time_bucket", le="+Inf", **hcm) == n
    # Cumulative buckets never decrease.
    buckets = [v for name, l, v in samples
               if name == "envoy_http_downstream_rq_time_bucket"]
    # 30 bounds (fine below 10 ms) plus +Inf.
    assert buckets == sorted(buckets) and len(buckets) == 31

    dead_cluster = {"envoy_cluster_name": "deadstats"}
    assert value(samples, "envoy_cluster_upstream_rq_total", **dead_cluster) == dead
    assert value(samples, "envoy_cluster_upstream_rq", envoy_response_code="503",
                 **dead_cluster) == dead
    assert value(samples, "envoy_cluster_upstream_rq_xx", envoy_response_code_class="5",
                 **dead_cluster) == dead
    assert value(samples, "envoy_cluster_upstream_cx_connect_fail", **dead_cluster) == dead
    assert value(samples, "envoy_cluster_upstream_rq_time_count", **dead_cluster) == dead

    # The echo cluster: every 200 charged to it, no 503.
    echo_names = {l["envoy_cluster_name"] for name, l, v in samples
                  if name == "envoy_cluster_upstream_rq_total"} - {"deadstats"}
    assert len(echo_names) == 1
    echo_cluster = {"envoy_cluster_name": echo_names.pop()}
    assert value(samples, "envoy_cluster_upstream_rq_total", **echo_cluster) == ok
    assert value(samples, "envoy_cluster_upstream_rq", envoy_response_code="200",
                 **echo_cluster) == ok
    assert not [1 for name, l, v in samples if name == "envoy_cluster_upstream_rq"
                and l.get("envoy_response_code") == "503"
                and l["envoy_cluster_name"] == echo_cluster["envoy_cluster_name"]]
    assert value(samples, "envoy_cluster_upstream_rq_time_count", **echo_cluster) == ok

    assert value(samples, "proxenos_config_generation") >= 1


def test_metrics_counters_only_grow_across_scrapes(start_gateway, echo, http, T):
    gw = start_gateway([mapping("ok", "/", echo.addr)])
    for _ in range(3):
        assert http.get(gw.url("/a"), timeout=T(5)).status_code == 200
    settled(gw, T, 3)
    first, _ = parse(scrape(gw, T)[1])
    hcm = {"envoy_http_conn_manager_prefix": "ingress_http"}
    assert value(first, "envoy_http_downstream_rq_total", **hcm) == 3
    for _ in range(2):
        assert http.get(gw.url("/b"), timeout=T(5)).status_code == 200
    settled(gw, T, 5)
    second, _ = parse(scrape(gw, T)[1])
    assert value(second, "envoy_http_downstream_rq_total", **hcm) == 5
    assert value(second, "envoy_http_downstream_rq_xx", envoy_response_code_class="2", **hcm) == 5


def test_route_listener_and_byte_metrics(start_gateway, echo, T):
    import requests

    gw = start_gateway([
        mapping("api", "/api/", echo.addr, stats_name="api_stats"),
        mapping("web", "/web/", echo.addr),
    ])
    body = b"x" * 5000
    with requests.Session() as s:
        s.trust_env = False
        for i in range(6):
            assert s.post(gw.url(f"/api/{i}"), data=body, timeout=T(5)).status_code == 200
        for i in range(2):
            assert s.get(gw.url(f"/web/{i}"), timeout=T(5)).status_code == 200
    settled(gw, T, 8)
    samples, types = parse(scrape(gw, T)[1])
    # Per route: the Mapping's stats_name, or mapping_<namespace>_<name>.
    assert value(samples, "proxenos_route_rq_total", route="api_stats") == 6
    assert value(samples, "proxenos_route_rq_total", route="mapping_default_web") == 2
    assert value(samples, "proxenos_route_rq_xx", route="api_stats",
                 envoy_response_code_class="2") == 6
    assert value(samples, "proxenos_route_rq_time_count", route="mapping_default_web") == 2
    assert value(samples, "proxenos_route_rq_active", route="api_stats") == 0
    assert types["proxenos_route_rq_time"] == "histogram"
    # Bytes both ways: the request bodies went in and out again (echo reflects them).
    hcm = {"envoy_http_conn_manager_prefix": "ingress_http"}
    assert value(samples, "envoy_http_downstream_cx_rx_bytes_total", **hcm) > 6 * len(body)
    assert value(samples, "envoy_http_downstream_cx_tx_bytes_total", **hcm) > 0
    assert value(samples, "envoy_http_downstream_rq_active", **hcm) == 0
    cluster = {"envoy_cluster_name": "api_stats"}
    assert value(samples, "envoy_cluster_upstream_cx_tx_bytes_total", **cluster) > 6 * len(body)
    assert value(samples, "envoy_cluster_upstream_cx_rx_bytes_total", **cluster) > 0
    assert value(samples, "envoy_cluster_upstream_rq_active", **cluster) == 0
    # The keep-alive connection to the upstream stays pooled.
    assert value(samples, "envoy_cluster_upstream_cx_active", **cluster) >= 1
    # Per listener, by address.
    listeners = [l for name, l, v in samples if name == "envoy_listener_downstream_cx_total"]
    assert [l["envoy_listener_address"] for l in listeners] == [f"0.0.0.0_{gw.port}"] or \
        [l["envoy_listener_address"] for l in listeners] == [f"127.0.0.1_{gw.port}"]
    assert value(samples, "envoy_listener_downstream_cx_total",
                 envoy_listener_address=listeners[0]["envoy_listener_address"]) >= 1


# ---------------------------------------------------------------------------------------------
# The connection manager's protocol, upgrade and reset counters (Envoy's http.<prefix>.*).

HCM = {"envoy_http_conn_manager_prefix": "ingress_http"}
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def hcm_values(gw, T):
    """{name: value} of every envoy_http_* sample of the ingress_http prefix; a family that
    does not exist yet reads as 0."""
    samples, _ = parse(scrape(gw, T)[1])
    out = {}
    for name, labels, v in samples:
        if name.startswith("envoy_http_") and labels == HCM:
            out[name[len("envoy_http_"):]] = v
    return out


class Counts:
    """Scrapes before and after: grew(name) is how much a counter (or gauge) moved since."""

    def __init__(self, gw, T):
        self.gw, self.T = gw, T
        self.base = hcm_values(gw, T)

    def now(self, name):
        return hcm_values(self.gw, self.T).get(name, 0)

    def grew(self, name):
        return self.now(name) - self.base.get(name, 0)

    def wait(self, name, delta):
        """Waits for the counter to have moved by exactly `delta` (a worker counts just after
        writing the bytes the client waits for, so a scrape can be a moment behind)."""
        assert wait_until(lambda: self.grew(name) == delta, self.T(5)), \
            f"{name} moved by {self.grew(name)}, expected {delta}"


class H2c:
    """A minimal blocking h2c (prior knowledge) client on python3-h2."""

    def __init__(self, port, T):
        import socket

        import h2.config
        import h2.connection

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=T(5))
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.T = T
        self.heads, self.ended, self.resets = {}, set(), {}
        self.flush()

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump_until(self, done):
        import time

        import h2.events

        deadline = time.monotonic() + self.T(5)
        while not done():
            assert time.monotonic() < deadline, "timed out on the HTTP/2 connection"
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            for ev in self.conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived):
                    self.heads[ev.stream_id] = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    self.ended.add(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    self.resets[ev.stream_id] = ev.error_code
            self.flush()
        return done()

    def request(self, path, method="GET", extra=(), end_stream=True):
        sid = self.conn.get_next_available_stream_id()
        head = [(":method", method), (":scheme", "http"), (":path", path),
                (":authority", "gw")] + list(extra)
        if method == "CONNECT" and not any(k == ":protocol" for k, _ in extra):
            head = [(":method", "CONNECT"), (":authority", "example.com:443")]
        self.conn.send_headers(sid, head, end_stream=end_stream)
        self.flush()
        return sid

    def get(self, path):
        sid = self.request(path)
        assert self.pump_until(lambda: sid in self.ended or sid in self.resets)
        return self.heads[sid][":status"]

    def reset(self, sid):
        import h2.errors

        self.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        self.flush()

    def close(self):
        self.sock.close()


def ws_upgrade(path):
    return (f"GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\n\r\n").encode()


def test_connections_and_requests_are_counted_by_protocol(start_gateway, echo, T):
    gw = start_gateway([mapping("ok", "/", echo.addr)])
    c = Counts(gw, T)
    # HTTP/1.1: three requests on one keep-alive connection.
    with RawConn(gw.port, timeout=T(5)) as h1:
        for i in range(3):
            assert h1.request(get_request(f"/one/{i}")).status == 200
        c.wait("downstream_rq_http1_total", 3)
        assert c.now("downstream_cx_http1_active") == 1
    c.wait("downstream_cx_http1_active", 0)
    assert c.grew("downstream_cx_http1_total") == 1
    assert c.grew("downstream_rq_http2_total") == 0
    assert c.grew("downstream_cx_http2_total") == 0

    # h2c with prior knowledge: two requests on one connection.
    h2c = H2c(gw.port, T)
    try:
        assert h2c.get("/two/a") == "200"
        assert h2c.get("/two/b") == "200"
        c.wait("downstream_rq_http2_total", 2)
        assert c.now("downstream_cx_http2_active") == 1
    finally:
        h2c.close()
    c.wait("downstream_cx_http2_active", 0)
    assert c.grew("downstream_cx_http2_total") == 1
    assert c.grew("downstream_rq_http1_total") == 3
    assert c.grew("downstream_cx_http1_total") == 1
    assert c.grew("downstream_rq_total") == 5
    # (The harness's readiness probe, a connection that sends no byte, may be accepted after
    # the baseline: it counts in downstream_cx_total only, under neither protocol.)
    assert c.grew("downstream_cx_total") in (2, 3)
    # Nothing was upgraded, refused or reset.
    for name in ("downstream_cx_upgrades_total", "downstream_rq_ws_on_non_ws_route",
                 "downstream_rq_rx_reset", "downstream_rq_tx_reset"):
        assert c.grew(name) == 0, name


def test_websocket_tunnels_count_as_upgrades_until_closed(start_gateway, echo, T):
    gw = start_gateway([mapping("ws", "/ws/", echo.addr, rewrite="/echo/",
                                allow_upgrade=["websocket"])])
    c = Counts(gw, T)
    # HTTP/1.1 Upgrade: counted once the upstream's 101 made it a tunnel.
    h1 = RawConn(gw.port, timeout=T(5))
    try:
        r = h1.request(ws_upgrade("/ws/h1"))
        assert r.status == 101
        c.wait("downstream_cx_upgrades_total", 1)
        assert c.now("downstream_cx_upgrades_active") == 1
        # RFC 8441 extended CONNECT over h2c: a second tunnel while the first is open.
        h2c = H2c(gw.port, T)
        try:
            sid = h2c.request("/ws/h2", method="CONNECT", end_stream=False,
                              extra=[(":protocol", "websocket"), ("sec-websocket-version", "13")])
            assert h2c.pump_until(lambda: sid in h2c.heads)
            assert h2c.heads[sid][":status"] == "200"
            c.wait("downstream_cx_upgrades_total", 2)
            assert c.now("downstream_cx_upgrades_active") == 2
            # The tunnel ends with the client's reset: no longer active.
            h2c.reset(sid)
            c.wait("downstream_cx_upgrades_active", 1)
        finally:
            h2c.close()
    finally:
        h1.close()
    c.wait("downstream_cx_upgrades_active", 0)
    assert c.grew("downstream_cx_upgrades_total") == 2
    # Both are still counted by protocol, as in Envoy.
    assert c.grew("downstream_rq_http1_total") == 1
    assert c.grew("downstream_rq_http2_total") == 1
    assert c.grew("downstream_rq_ws_on_non_ws_route") == 0


def test_upgrade_on_a_route_without_allow_upgrade_is_counted(start_gateway, echo, T):
    gw = start_gateway([
        mapping("plain", "/plain/", echo.addr),
        mapping("ws", "/ws/", echo.addr, rewrite="/echo/", allow_upgrade=["websocket"]),
    ])
    c = Counts(gw, T)
    with RawConn(gw.port, timeout=T(5)) as h1:
        assert h1.request(ws_upgrade("/plain/x")).status == 403
    c.wait("downstream_rq_ws_on_non_ws_route", 1)
    h2c = H2c(gw.port, T)
    try:
        # An extended CONNECT for a protocol the route does not allow, and a plain CONNECT
        # (Envoy refuses it the same way on a route without CONNECT upgrades).
        sid = h2c.request("/ws/x", method="CONNECT", end_stream=False,
                          extra=[(":protocol", "my-proto")])
        assert h2c.pump_until(lambda: sid in h2c.heads)
        assert h2c.heads[sid][":status"] == "403"
        sid = h2c.request("/", method="CONNECT", end_stream=False)
        assert h2c.pump_until(lambda: sid in h2c.heads)
        assert h2c.heads[sid][":status"] == "403"
        # An ordinary request on the same route is not an upgrade.
        assert h2c.get("/plain/y") == "200"
    finally:
        h2c.close()
    c.wait("downstream_rq_ws_on_non_ws_route", 3)
    assert c.grew("downstream_cx_upgrades_total") == 0
    assert c.grew("downstream_rq_tx_reset") == 0


def test_resets_are_counted_by_who_reset_the_request(start_gateway, T):
    import threading

    release = threading.Event()

    def hang(conn, data):
        release.wait(10)

    def truncate(conn, data):
        # A head promising 100 bytes, 10 of them, then the connection ends.
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")

    slow, cut = FakeUpstream(hang), FakeUpstream(truncate)
    gw = start_gateway([mapping("slow", "/slow/", slow.addr), mapping("cut", "/cut/", cut.addr)])
    try:
        c = Counts(gw, T)
        # The client's RST_STREAM while the request waits for its upstream.
        h2c = H2c(gw.port, T)
        try:
            sid = h2c.request("/slow/a")
            assert wait_until(lambda: slow.connections == 1, T(5))
            h2c.reset(sid)
            c.wait("downstream_rq_rx_reset", 1)
            # The upstream cut the response short: the gateway resets the stream.
            sid = h2c.request("/cut/a")
            assert h2c.pump_until(lambda: sid in h2c.resets)
            c.wait("downstream_rq_tx_reset", 1)
        finally:
            h2c.close()
        # HTTP/1.1: the client closes while its request waits; the gateway closes mid-body.
        with RawConn(gw.port, timeout=T(5)) as h1:
            h1.send(get_request("/slow/b"))
            assert wait_until(lambda: slow.connections == 2, T(5))
        c.wait("downstream_rq_rx_reset", 2)
        with RawConn(gw.port, timeout=T(5)) as h1:
            h1.send(get_request("/cut/c"))
            assert h1.wait_closed()
        c.wait("downstream_rq_tx_reset", 2)
        assert c.grew("downstream_rq_rx_reset") == 2
    finally:
        release.set()
