"""/metrics on the admin listener: Prometheus text format with Envoy/Emissary names, summed over
every worker's stats shards."""

import re
import urllib.request

from harness import closed_port, mapping, wait_until

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
