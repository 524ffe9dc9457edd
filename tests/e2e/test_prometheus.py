"""A real Prometheus server (Debian's `prometheus`) scrapes the admin listener's /metrics, and
PromQL on what it stored gives exactly the request counts sent through the gateway.

Prometheus listens on a free loopback port, keeps its TSDB in the test's temp dir, scrapes every
second, and is tracked like every other process (killed by PID at teardown, output shown on
failure)."""

import math
import os
import shutil
import time

import pytest

import harness
from harness import mapping

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JOB = "proxenos"

pytestmark = pytest.mark.skipif(
    not os.access(PROMETHEUS, os.X_OK),
    reason="prometheus not installed (scripts/install-deps installs Debian's package)")


class Prometheus(harness.Proc):
    """`prometheus` scraping one target every second; loopback only, state in `workdir`."""

    def __init__(self, workdir, target):
        self.port = harness.free_port()
        data = os.path.join(workdir, "tsdb")
        os.makedirs(data, exist_ok=True)
        config = os.path.join(workdir, "prom.yml")
        with open(config, "w") as f:
            f.write(
                "global:\n"
                "  scrape_interval: 1s\n"
                "  scrape_timeout: 1s\n"
                "  evaluation_interval: 1s\n"
                "scrape_configs:\n"
                f"  - job_name: {JOB}\n"
                "    metrics_path: /metrics\n"
                "    scheme: http\n"
                "    static_configs:\n"
                f"      - targets: ['{target}']\n")
        super().__init__([
            PROMETHEUS,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=info",
        ], workdir, "prometheus")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, http, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise harness.HarnessError("prometheus exited before becoming ready\n"
                                           + self.describe())
            try:
                if http.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise harness.HarnessError("prometheus did not become ready in time\n" + self.describe())

    def query(self, http, promql, timeout):
        """The instant vector for `promql` at now: [(labels, float)]."""
        r = http.get(self.url + "/api/v1/query", params={"query": promql}, timeout=timeout)
        assert r.status_code == 200, f"{promql}: HTTP {r.status_code} {r.text[:500]}"
        body = r.json()
        assert body["status"] == "success", f"{promql}: {body}"
        assert body["data"]["resultType"] == "vector", f"{promql}: {body}"
        return [(s["metric"], float(s["value"][1])) for s in body["data"]["result"]]

    def scalar(self, http, promql, timeout):
        """The single value `promql` returns (one series)."""
        result = self.query(http, promql, timeout)
        assert len(result) == 1, f"{promql}: expected one series, got {result}"
        return result[0][1]


@pytest.fixture
def start_prometheus(tmp_path, http, T):
    counter = {"n": 0}

    def start(target):
        last = None
        # The port was free when picked; retry with a fresh one if someone took it meanwhile.
        for _ in range(3):
            counter["n"] += 1
            prom = Prometheus(str(tmp_path / f"prometheus{counter['n']}"), target)
            try:
                prom.wait_ready(http, T(30))
                return prom
            except harness.HarnessError as e:
                last = e
                prom.stop()
                if "address already in use" not in str(e).lower():
                    raise
        raise last

    return start


@pytest.mark.slow
def test_prometheus_scrape_gives_exact_request_counts(start_gateway, echo, start_prometheus,
                                                      http, T):
    gw = start_gateway([
        mapping("derived", "/a/", echo.addr),
        mapping("named", "/b/", echo.addr, stats_name="prom_echo"),
    ], workers=2)
    prom = start_prometheus(f"127.0.0.1:{gw.admin_port}")

    # The target is healthy (our exposition parsed cleanly) before any traffic is sent.
    def target_up():
        targets = http.get(prom.url + "/api/v1/targets", timeout=T(5)).json()
        active = [t for t in targets["data"]["activeTargets"] if t["labels"]["job"] == JOB]
        return active and active[0]["health"] == "up" and active[0]
    target = harness.wait_until(target_up, T(20), interval=0.2)
    assert target, http.get(prom.url + "/api/v1/targets", timeout=T(5)).text
    assert target["lastError"] == ""
    assert target["scrapeUrl"] == f"http://127.0.0.1:{gw.admin_port}/metrics"

    derived, named, missing = 137, 41, 5
    for i in range(derived):
        # Closing every fifth connection spreads requests over both workers' stats shards.
        headers = {"connection": "close"} if i % 5 == 0 else {}
        assert http.get(gw.url(f"/a/{i}"), timeout=T(5), headers=headers).status_code == 200
    for i in range(named):
        assert http.get(gw.url(f"/b/{i}"), timeout=T(5)).status_code == 200
    for i in range(missing):
        assert http.get(gw.url(f"/nowhere/{i}"), timeout=T(5)).status_code == 404
    sent_at = time.time()

    # Wait for a scrape that started after the last response was received: its sample carries
    # every request. (timestamp() of `up` is the scrape's start time.)
    def scraped_after():
        result = prom.query(http, f'timestamp(up{{job="{JOB}"}})', T(5))
        return result and result[0][1] > sent_at
    assert harness.wait_until(scraped_after, T(20), interval=0.2), (
        f"no scrape after {sent_at}: " + repr(prom.query(http, f'timestamp(up{{job="{JOB}"}})', T(5))))

    q = lambda promql: prom.scalar(http, promql, T(5))
    assert q(f'up{{job="{JOB}"}} == 1') == 1

    # Cluster stats: the default stats name is the service's host_port, sanitized.
    derived_name = echo.addr.replace(".", "_").replace(":", "_")
    assert q(f'sum(envoy_cluster_upstream_rq_total{{job="{JOB}"}})') == derived + named
    assert q(f'envoy_cluster_upstream_rq_total{{envoy_cluster_name="{derived_name}"}}') == derived
    assert q('envoy_cluster_upstream_rq_total{envoy_cluster_name=~".*prom_echo.*"}') == named
    assert q('envoy_cluster_upstream_rq{envoy_cluster_name="prom_echo",'
             'envoy_response_code="200"}') == named
    assert q('sum(envoy_cluster_upstream_rq_xx{envoy_response_code_class="2"})') == derived + named
    assert q('sum(envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"})') == 0
    assert q(f'envoy_cluster_upstream_rq_time_count{{envoy_cluster_name="{derived_name}"}}') \
        == derived

    # Listener stats: every request, by response class.
    assert q('sum(envoy_http_downstream_rq_total)') == derived + named + missing
    assert q('sum(envoy_http_downstream_rq_xx{envoy_response_code_class="2"})') == derived + named
    assert q('sum(envoy_http_downstream_rq_xx{envoy_response_code_class="4"})') == missing
    assert q('envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_http"}') \
        == derived + named + missing
    assert q('sum(envoy_http_downstream_rq_time_count)') == derived + named + missing
    assert q('sum(envoy_http_downstream_cx_total)') >= derived // 5
    # Nothing was rewritten since the start: the first generation, no reload.
    assert q('proxenos_config_generation') == 1
    assert q('proxenos_config_reloads_total') == 0

    # Histograms are usable as histograms: a quantile over the buckets is a finite number of ms
    # within the bucket range (loopback requests land in the lowest buckets).
    for selector in ('', f'envoy_cluster_name="{derived_name}"'):
        p99 = q('histogram_quantile(0.99, sum by (le) '
                f'(envoy_cluster_upstream_rq_time_bucket{{{selector}}}))')
        assert math.isfinite(p99) and 0 <= p99 <= 60000, p99
    p50 = q('histogram_quantile(0.5, sum by (le) (envoy_http_downstream_rq_time_bucket))')
    assert math.isfinite(p50) and 0 <= p50 <= 60000, p50

    # Prometheus read the TYPE lines: the histograms and counters are typed as such.
    meta = http.get(prom.url + "/api/v1/targets/metadata",
                    params={"match_target": f'{{job="{JOB}"}}'}, timeout=T(5)).json()
    assert meta["status"] == "success", meta
    types = {m["metric"]: m["type"] for m in meta["data"]}
    assert types.get("envoy_cluster_upstream_rq_time") == "histogram", types
    assert types.get("envoy_http_downstream_rq_time") == "histogram", types
    assert types.get("envoy_cluster_upstream_rq_total") == "counter", types
    assert types.get("envoy_http_downstream_cx_active") == "gauge", types

    # A later scrape sees later requests: the counter moves by exactly what was sent.
    more = 13
    for i in range(more):
        assert http.get(gw.url(f"/b/more{i}"), timeout=T(5)).status_code == 200
    sent_at = time.time()
    assert harness.wait_until(scraped_after, T(20), interval=0.2)
    assert q('envoy_cluster_upstream_rq_total{envoy_cluster_name="prom_echo"}') == named + more
    assert prom.alive()
