"""`proxenos run --kubernetes` when the API server misbehaves: killed and restarted mid-load (a
new history window, ../shared/spec/kubernetes-api.md §1.8), 10,000 Mappings at start, leader
failover between two replicas writing status, 429 + Retry-After and HTTP 410 on list, the
apiserver's slow-consumer cut-off. The API server is fake_kube_api.py (the real wire protocol)."""

import json
import random
import signal
import threading
import time
import urllib.error

import pytest

import harness
from harness import mapping, wait_until
from kube import FakeKube, KubeGateway

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases/proxenos-status"


def backend_of(http, gw, path, T=harness.scaled):
    r = http.get(gw.url(path), timeout=T(5), allow_redirects=False)
    if r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json"):
        return r.json()["backend"]
    return r.status_code


def eventually(predicate, timeout=5, what="condition"):
    assert wait_until(predicate, harness.scaled(timeout), interval=0.05), \
        f"{what} not reached in {timeout} s"


class ReadyMonitor:
    """Polls check_ready every 50 ms on a thread; `bad` collects every answer but 200."""

    def __init__(self, gw):
        self.gw = gw
        self.bad = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            status = self.gw.ready_status()
            self.polls += 1
            if status != 200:
                self.bad.append(status)
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join(harness.scaled(5))


def mapping_requests(kube, since=0.0):
    return [r for r in kube.get("/fake/requests")
            if "/mappings" in r["path"] and r["t"] >= since]


def watches_settled(kube, age=1.2):
    """Every watch the fake saw was opened more than `age` s ago. (A watch that ends within 1 s
    with no event counts as an error and leads to a re-list: client-go's "very short watch".)"""
    watches = [r for r in kube.get("/fake/requests") if "watch=" in r["path"]]
    return bool(watches) and time.monotonic() - max(r["t"] for r in watches) > age


# ---------------------------------------------------------------------------------------------
# The API server killed and restarted


def test_api_server_killed_and_restarted_mid_load_loses_no_request(tmp_path, start_echo, http):
    kube = FakeKube(str(tmp_path / "kube"), state=True)
    a, b = start_echo("a"), start_echo("b")
    kube.apply(mapping("load", "/load/", a.addr))
    kube.apply(mapping("gone", "/gone/", b.addr))
    gw = KubeGateway(str(tmp_path / "gw"), kube)
    assert backend_of(http, gw, "/load/") == "a"
    assert backend_of(http, gw, "/gone/") == "b"

    lock = threading.Lock()
    seen = {"ok": 0, "bad": []}

    def observe(index, path, resp, t0, t1):
        with lock:
            if resp.status == 200 and json.loads(resp.body).get("backend") == "a":
                seen["ok"] += 1
            else:
                seen["bad"].append((path, resp.status, resp.body[:200]))
        time.sleep(0.002)  # paced: a few hundred requests a second, not a benchmark

    def ok():
        with lock:
            return seen["ok"]

    ready = ReadyMonitor(gw)
    load = harness.LoadThreads(gw.port, ["/load/x"], threads=2, observe=observe)
    try:
        eventually(lambda: ok() >= 100 and watches_settled(kube), what="load and settled watches")
        kube.kill()  # SIGKILL: every watch and list connection dies without a goodbye
        before_outage = ok()
        # Deleted while the API server is away: no watch event will ever say so; only the
        # re-list after the 410 can find out.
        kube.edit_state(lambda objects: objects[("getambassador.io", "v3alpha1", "mappings")]
                        .pop("default/gone"))
        time.sleep(1.0)  # the outage: connections to the API are refused for a second
        assert ok() > before_outage, "no request served while the API server was down"
        # Back on the same port with the same objects, a new history window, and 429s for
        # half a second while its "watch cache" initialises.
        kube.start_again(unavailable_ms=500)
        restarted_at = time.monotonic()
        kube.apply(mapping("after", "/after/", b.addr))
        eventually(lambda: backend_of(http, gw, "/after/") == "b", timeout=20,
                   what="a change made after the restart")
        eventually(lambda: backend_of(http, gw, "/gone/") == 404, timeout=20,
                   what="a deletion made while the API server was down")
        took = time.monotonic() - restarted_at
        settle = ok()
        eventually(lambda: ok() >= settle + 100, what="load after recovery")
    finally:
        load.stop()
        ready.stop()
    print(f"{ok()} requests; changes after the restart applied in {took:.2f}s")
    assert load.failures == [], load.failures[:5]
    assert seen["bad"] == [], seen["bad"][:5]
    assert ready.bad == [], f"check_ready answered {set(ready.bad)} during the outage"
    assert backend_of(http, gw, "/load/") == "a"
    # The reflectors came back through the new window: a watch from an old resourceVersion got
    # the in-band 410 and the Mapping collection was listed again.
    assert "watch mappings.getambassador.io expired" in gw.output()
    after = mapping_requests(kube)
    assert any("watch=" not in r["path"] for r in after), [r["path"] for r in after]


def test_refused_connection_is_logged_with_its_cause(tmp_path):
    kube = FakeKube(str(tmp_path / "kube"))
    gw = KubeGateway(str(tmp_path / "gw"), kube)
    kube.kill()
    m = gw.wait_for_log(r"cannot connect to \S+:\d+: (.*)$", timeout=harness.scaled(10),
                        stream="stderr")
    assert m, "no connect failure logged"
    assert m.group(1) == "Connection refused", m.group(0)


def test_in_process_restart_and_slow_consumer_cut_off(tmp_path, start_echo, http):
    kube = FakeKube(str(tmp_path / "kube"))
    echo = start_echo()
    kube.apply(mapping("first", "/first/", echo.addr))
    gw = KubeGateway(str(tmp_path / "gw"), kube)
    ready = ReadyMonitor(gw)
    try:
        # A burst bigger than the watcher's buffer: the API server ends the watch; the gateway
        # watches again from its last resourceVersion and gets the burst replayed.
        kube.control("slow_consumer", {"max_pending": 5})
        kube.apply_many([mapping(f"burst-{i}", f"/burst/{i}/", echo.addr) for i in range(50)])
        eventually(lambda: backend_of(http, gw, "/burst/49/") == "echo", timeout=15,
                   what="the burst after a slow-consumer cut")
        assert all(backend_of(http, gw, f"/burst/{i}/") == "echo" for i in (0, 17, 33))
        assert kube.get("/fake/watchers")["slow_cut"] >= 1
        kube.control("slow_consumer", {"max_pending": 0})

        # A restart as a load balancer in front of an apiserver shows it: watches cut, a new
        # history window, 429 "storage is (re)initializing" for a while.
        kube.control("restart", {"unavailable_ms": 1500})
        kube.apply(mapping("after", "/after/", echo.addr))
        kube.delete("Mapping", "first")
        eventually(lambda: backend_of(http, gw, "/after/") == "echo", timeout=20,
                   what="a change made after the restart")
        eventually(lambda: backend_of(http, gw, "/first/") == 404, what="the deletion")
    finally:
        ready.stop()
    assert ready.bad == [], f"check_ready answered {set(ready.bad)}"


# ---------------------------------------------------------------------------------------------
# Scale


def test_ten_thousand_mappings_listed_at_start(tmp_path, start_echo, http):
    n = 10_000
    kube = FakeKube(str(tmp_path / "kube"))
    echo = start_echo()
    # A distinct rewrite per Mapping shows which one answered.
    assert kube.apply_many([mapping(f"m{i}", f"/m/{i}/", echo.addr, rewrite=f"/r{i}/")
                            for i in range(n)]) == n
    t0 = time.monotonic()
    gw = KubeGateway(str(tmp_path / "gw"), kube, wait_ready=False)
    ok = wait_until(lambda: not gw.alive() or gw.ready_status() == 200, harness.scaled(60),
                    interval=0.05)
    took = time.monotonic() - t0
    assert ok and gw.alive(), f"not ready after {took:.1f} s"
    assert harness.wait_for_tcp("127.0.0.1", gw.port, harness.scaled(5), gw)
    rss = gw.rss_kib()
    print(f"ready in {took:.2f}s, RSS {rss / 1024:.0f} MiB (peak {gw.peak_rss_kib() / 1024:.0f} "
          f"MiB) with {n} Mappings")
    rng = random.Random(6)
    for i in [0, n - 1] + rng.sample(range(1, n - 1), 8):
        r = http.get(gw.url(f"/m/{i}/x"), timeout=harness.scaled(5))
        assert r.status_code == 200, (i, r.status_code)
        assert r.json()["path"] == f"/r{i}/x"
    assert http.get(gw.url(f"/m/{n}/x"), timeout=harness.scaled(5)).status_code == 404


# ---------------------------------------------------------------------------------------------
# Leader election and status


def lease(kube):
    try:
        return kube.get(LEASE_PATH)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def holder(kube):
    record = lease(kube)
    return (record or {}).get("spec", {}).get("holderIdentity")


def mapping_status(kube, name):
    record = kube.object("Mapping", name)
    return (record or {}).get("status")


def two_replicas(tmp_path, kube):
    replicas = []
    for pod in ("replica-a", "replica-b"):
        gw = KubeGateway(str(tmp_path / pod), kube, label=pod, env={"POD_NAME": pod},
                         extra_args=["--update-mapping-status"])
        gw.identity = f"{pod}_{gw.pid}"  # POD_NAME, then the process id (default_identity)
        replicas.append(gw)
    return replicas


def leader_and_follower(kube, replicas):
    eventually(lambda: holder(kube) in {g.identity for g in replicas}, timeout=10,
               what="a replica holding the Lease")
    leader = next(g for g in replicas if g.identity == holder(kube))
    follower = next(g for g in replicas if g is not leader)
    return leader, follower


def assert_statuses_written(kube):
    eventually(lambda: mapping_status(kube, "good") == {"state": "Running"}, timeout=10,
               what="Mapping good Running")
    eventually(lambda: (mapping_status(kube, "bad") or {}).get("state") == "Inactive",
               timeout=10, what="Mapping bad Inactive")
    assert mapping_status(kube, "bad").get("reason"), mapping_status(kube, "bad")


def start_status_scenario(tmp_path, start_echo, http):
    kube = FakeKube(str(tmp_path / "kube"))
    echo = start_echo()
    kube.apply(mapping("good", "/good/", echo.addr))
    kube.apply(mapping("bad", "/bad/", echo.addr, resolver="nope"))
    replicas = two_replicas(tmp_path, kube)
    for gw in replicas:
        assert backend_of(http, gw, "/good/") == "echo"
    leader, follower = leader_and_follower(kube, replicas)
    assert_statuses_written(kube)
    # Exactly one replica leads; the other watches and serves.
    assert "holds Lease default/proxenos-status" in leader.output()
    assert "holds Lease" not in follower.output()
    return kube, echo, leader, follower


def make_good_invalid_and_wait_inactive(kube, echo, timeout):
    # `apply` stores the object without a status. The leader may still write the old spec's
    # status (Running) in the moment before it sees the change, so only the Inactive state, which
    # nothing but the new spec produces, proves a write made after the failover.
    kube.apply(mapping("good", "/good/", echo.addr, resolver="nope"))
    eventually(lambda: (mapping_status(kube, "good") or {}).get("state") == "Inactive",
               timeout=timeout, what="Mapping good Inactive after the failover")
    assert mapping_status(kube, "good").get("reason")


def test_leader_failover_on_sigterm_releases_the_lease(tmp_path, start_echo, http):
    kube, echo, leader, follower = start_status_scenario(tmp_path, start_echo, http)
    t0 = time.monotonic()
    leader.signal(signal.SIGTERM)
    # The leader releases the Lease while draining: the follower takes it within its retry
    # period (2 s, jittered up to 4.4 s) rather than a lease duration (15 s).
    eventually(lambda: holder(kube) == follower.identity, timeout=12,
               what="the follower holding the Lease")
    took = time.monotonic() - t0
    print(f"Lease taken over {took:.2f}s after SIGTERM")
    assert took < 10, f"takeover after {took:.1f} s: the Lease was not released"
    assert leader.wait(harness.scaled(15)) == 0, leader.describe()
    assert lease(kube)["spec"].get("leaseTransitions", 0) >= 1
    make_good_invalid_and_wait_inactive(kube, echo, timeout=10)
    assert backend_of(http, follower, "/bad/") == 404


@pytest.mark.slow
def test_leader_failover_on_sigkill_after_the_lease_expires(tmp_path, start_echo, http):
    kube, echo, leader, follower = start_status_scenario(tmp_path, start_echo, http)
    t0 = time.monotonic()
    leader.signal(signal.SIGKILL)
    # No release: the follower must see the record unchanged for leaseDurationSeconds (15 s)
    # first; it then takes over at its next retry.
    eventually(lambda: holder(kube) == follower.identity, timeout=25,
               what="the follower holding the Lease")
    took = time.monotonic() - t0
    print(f"Lease taken over {took:.2f}s after SIGKILL")
    assert took > 8, f"takeover after {took:.1f} s: before the 15 s lease could expire"
    make_good_invalid_and_wait_inactive(kube, echo, timeout=10)


# ---------------------------------------------------------------------------------------------
# 429 and 410


def test_429_with_retry_after_and_410_on_list_are_survived(tmp_path, start_echo, http):
    kube = FakeKube(str(tmp_path / "kube"))
    echo = start_echo()
    kube.apply(mapping("m", "/m/", echo.addr))
    # The first Mapping list is refused with 429 Retry-After: 1; readiness waits for it.
    kube.control("fault", {"match": "/mappings", "verb": "list", "status": 429,
                           "retry_after": 1, "message": "too many requests", "count": 1})
    gw = KubeGateway(str(tmp_path / "gw"), kube)
    assert backend_of(http, gw, "/m/") == "echo"
    lists = [r for r in mapping_requests(kube) if "watch=" not in r["path"]]
    assert len(lists) >= 2 and lists[1]["t"] - lists[0]["t"] >= 0.9, lists

    ready = ReadyMonitor(gw)
    try:
        # A watch that has been open for a while is cut; reopening it gets 429 Retry-After: 2.
        # The resourceVersion is still good: after waiting, the gateway watches again (no list).
        eventually(lambda: watches_settled(kube), what="settled watches")
        mark = time.monotonic()
        kube.control("fault", {"match": "/mappings", "verb": "watch", "status": 429,
                               "retry_after": 2, "message": "too many requests", "count": 1})
        kube.control("close_watches")
        eventually(lambda: mapping_requests(kube, since=mark), what="the watch answered 429")
        # Made after the 429: only the next watch can bring it.
        kube.apply(mapping("second", "/second/", echo.addr))
        eventually(lambda: backend_of(http, gw, "/second/") == "echo", timeout=15,
                   what="a change after the 429")
        after = mapping_requests(kube, since=mark)
        assert len(after) >= 2 and "watch=" in after[0]["path"], [r["path"] for r in after]
        assert "watch=" in after[1]["path"], "re-listed after a 429 on watch"
        assert after[1]["t"] - after[0]["t"] >= 1.9, "Retry-After: 2 not honoured"

        # An in-band 410 makes the gateway re-list from its last resourceVersion; that list gets
        # HTTP 410 (too old for this server) and the gateway lists again without a
        # resourceVersion: a consistent read.
        mark = time.monotonic()
        kube.control("fault", {"match": "/mappings", "verb": "list", "status": 410,
                               "message": "too old resource version", "count": 1})
        kube.control("expire_watches")
        kube.apply(mapping("third", "/third/", echo.addr))
        kube.delete("Mapping", "m")
        eventually(lambda: backend_of(http, gw, "/third/") == "echo", timeout=15,
                   what="a change after the 410")
        eventually(lambda: backend_of(http, gw, "/m/") == 404, what="the deletion after the 410")
        lists = [r["path"] for r in mapping_requests(kube, since=mark) if "watch=" not in r["path"]]
        assert len(lists) >= 2, lists
        assert "resourceVersion=" in lists[0] and "resourceVersion=" not in lists[1], lists
    finally:
        ready.stop()
    assert ready.bad == [], f"check_ready answered {set(ready.bad)}"
    assert ready.polls > 10
    assert backend_of(http, gw, "/second/") == "echo"
