"""Reconfiguration under continuous keep-alive load, and resident memory across many reloads.

Issue 3's targets, shown with real clients against the real binaries: no failed or reset request
across 200 reloads (routes added, changed and removed; inotify and SIGHUP alternating), and
resident memory flat across 1,000 reloads. Reload latency is printed (p50/p99), never asserted.
"""

import math
import os
import signal
import time

import harness
from harness import KeepAliveClient, LoadThreads, mapping, module, wait_generation, write_atomic

RELOADS = 80 if harness.SANITIZED else 200
WINDOW = 3  # added routes each dynamic file keeps; the oldest is removed when a new one comes
LOAD_THREADS = 8

STABLE_PATHS = ["/stable/a/1", "/stable/b/2", "/keep/w/3", "/keep/h/4"]
CHANGING_PATHS = ["/chg/w/5", "/chg/h/6"]


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def step_value(kind, step):
    return f"{kind}-{step}"


def value_step(value):
    kind, _, step = value.partition("-")
    return kind, int(step)


def dynamic_file(kind, step, echo_addr, added):
    """One of the two reloaded files: a route rewritten but never changed (keep), the route whose
    added request header changes every time (chg), and the routes added by recent steps."""
    resources = [
        mapping(f"keep-{kind}", f"/keep/{kind}/", echo_addr),
        mapping(f"chg-{kind}", f"/chg/{kind}/", echo_addr,
                add_request_headers={"x-step": step_value(kind, step)}),
    ]
    resources += [mapping(f"add-{n}", f"/add/{n}/", echo_addr) for n in added]
    return resources


def reflected_step(resp):
    """The x-step header the echo backend saw, or raises when the response is not the echo's."""
    value = resp.json()["headers"].get("x-step")
    if not isinstance(value, str):
        raise AssertionError(f"x-step reflected as {value!r}")
    return value


def wait_probe(probe, path, check, T):
    """Polls `path` on the probe connection until check(response); returns (ok, polls)."""
    polls = 0
    deadline = time.monotonic() + T(3)
    while True:
        polls += 1
        r = probe.get(path)
        if check(r):
            return True, polls
        if time.monotonic() >= deadline:
            return False, polls
        time.sleep(0.002)


def test_200_reloads_under_keepalive_load(start_gateway, echo, T, tmp_path, capsys):
    # Steps 1..2*WINDOW are in the initial config, so every reload removes a route as well.
    first = 2 * WINDOW + 1
    added = {"w": list(range(1, first, 2)), "h": list(range(2, first, 2))}
    outside = tmp_path / "outside"  # not watched: only SIGHUP makes the gateway read it
    outside.mkdir()
    hup_target = str(outside / "hup.yaml")
    write_atomic(hup_target, dynamic_file("h", 0, echo.addr, added["h"]))
    gw = start_gateway({
        "stable.yaml": [
            mapping("stable-a", "/stable/a/", echo.addr),
            mapping("stable-b", "/stable/b/", echo.addr, rewrite=""),
            # Half a million requests: keep their access log off the test's disk.
            module({"envoy_log_path": "/dev/null"}),
        ],
        "w.yaml": dynamic_file("w", 0, echo.addr, added["w"]),
    }, workers=2)
    # The symlink's creation is one watched event: one reload picks up the file it points to.
    os.symlink(hup_target, os.path.join(gw.config_dir, "hup.yaml"))
    w_path = os.path.join(gw.config_dir, "w.yaml")
    probe = KeepAliveClient(gw.port, timeout=T(5))
    ok, _ = wait_probe(probe, "/keep/h/x", lambda r: r.status == 200, T)
    assert ok, gw.stderr()
    for n in added["w"] + added["h"]:
        assert probe.get(f"/add/{n}/x").status == 200, n

    # Per load thread: the last step each changing route showed, the first time each value was
    # seen, non-2xx answers and per-connection regressions (an older value after a newer one).
    first_seen = [dict() for _ in range(LOAD_THREADS)]
    last_step = [dict() for _ in range(LOAD_THREADS)]
    bad_status = []
    regressions = []

    def observe(index, path, resp, t_sent, t_received):
        if not 200 <= resp.status < 300:
            bad_status.append((path, resp.status, resp.body[:200]))
            return
        if not path.startswith("/chg/"):
            return
        value = reflected_step(resp)
        seen = first_seen[index]
        if value not in seen:
            seen[value] = t_received
        kind, step = value_step(value)
        previous = last_step[index].get(kind, -1)
        if step < previous:
            regressions.append((index, path, previous, step))
        last_step[index][kind] = step

    removed = []
    writes = {}  # value -> (kind, write started, write done, generation seen): monotonic s
    probe_seen = {}  # value -> when the probe connection saw it (an upper bound)
    slow_first_probe = 0
    started = time.monotonic()
    load = LoadThreads(gw.port, STABLE_PATHS + CHANGING_PATHS, threads=LOAD_THREADS,
                       observe=observe, timeout=T(5))
    try:
        # Let every thread get going before the first reload.
        assert harness.wait_until(lambda: all(first_seen), T(5)), load.failures
        for step in range(first, first + RELOADS):
            kind = "w" if step % 2 else "h"
            added[kind].append(step)
            gone = added[kind].pop(0)
            resources = dynamic_file(kind, step, echo.addr, added[kind])
            base = harness.config_generation(gw)
            assert base is not None, gw.stderr()
            t_write = time.monotonic()
            if kind == "w":
                write_atomic(w_path, resources)  # the inotify watch reloads
            else:
                write_atomic(hup_target, resources)
                gw.signal(signal.SIGHUP)
            t_written = time.monotonic()
            assert wait_generation(gw, base + 1, T(5)), f"step {step}: no reload\n{gw.stderr()}"
            writes[step_value(kind, step)] = (kind, t_write, t_written, time.monotonic())

            ok, polls = wait_probe(probe, f"/add/{step}/x", lambda r: r.status == 200, T)
            assert ok, f"step {step}: added route /add/{step}/ not served\n{gw.stderr()[-3000:]}"
            slow_first_probe += polls > 1
            removed.append(gone)
            ok, _ = wait_probe(probe, f"/add/{gone}/x", lambda r: r.status == 404, T)
            assert ok, f"step {step}: removed route /add/{gone}/ still served"
            want = step_value(kind, step)
            ok, _ = wait_probe(probe, f"/chg/{kind}/x",
                               lambda r: r.status == 200 and reflected_step(r) == want, T)
            assert ok, f"step {step}: /chg/{kind}/ does not show {want}"
            probe_seen[want] = time.monotonic()
            assert not load.failures, load.failures[:10]
        # Let the load run on the final configuration for a moment too.
        time.sleep(0.2)
        # The final state: each file's last window is served, everything removed answers 404.
        for n in added["w"] + added["h"]:
            assert probe.get(f"/add/{n}/x").status == 200, n
        for n in removed:
            assert probe.get(f"/add/{n}/x").status == 404, n
    finally:
        load.stop()
        probe.close()
    elapsed = time.monotonic() - started

    assert not load.failures, f"{len(load.failures)} failed exchanges: {load.failures[:10]}"
    assert not bad_status, f"{len(bad_status)} non-2xx on stable routes: {bad_status[:10]}"
    assert not regressions, f"a connection went back to an older config: {regressions[:10]}"
    assert load.connections == LOAD_THREADS, f"{load.connections} connections were opened"

    # Delay from each write (or write + SIGHUP) to the first response that showed its value.
    # Measured from the moment the file was in place (and SIGHUP sent): on a loaded machine the
    # test's own write can stall behind its load threads for the GIL, which says nothing about
    # the gateway. The slowest change is broken down so either kind of stall shows.
    delays = {"w": [], "h": []}
    slowest = None
    longest_write = 0.0
    for value, (kind, t_write, t_written, t_generation) in writes.items():
        seen = [d[value] for d in first_seen if value in d]
        seen += [probe_seen[value]] if value in probe_seen else []
        delay = (min(seen) - t_written) * 1000.0
        delays[kind].append(delay)
        longest_write = max(longest_write, (t_written - t_write) * 1000.0)
        if slowest is None or delay > slowest[0]:
            slowest = (delay, value, (t_generation - t_written) * 1000.0)
    report = [f"{RELOADS} reloads in {elapsed:.1f} s under {LOAD_THREADS} keep-alive threads: "
              f"{load.requests} requests, 0 failed; first probe after the generation missed the "
              f"added route {slow_first_probe} times"]
    for kind, label in (("w", "file write (inotify)"), ("h", "write + SIGHUP")):
        ms = delays[kind]
        report.append(f"  {label}: change served after p50 {percentile(ms, 50):.1f} ms, "
                      f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms ({len(ms)} changes)")
    both = delays["w"] + delays["h"]
    report.append(f"  all: p50 {percentile(both, 50):.1f} ms, p99 {percentile(both, 99):.1f} ms")
    report.append("  slowest: %s served after %.1f ms (generation on /metrics at %.1f ms); "
                  "longest write call in the test %.1f ms"
                  % (slowest[1], slowest[0], slowest[2], longest_write))
    with capsys.disabled():  # the figures belong in the run's log even when it passes
        print("\n" + "\n".join(report))


# --- memory ------------------------------------------------------------------------------------

WARMUP_RELOADS = 100
MEASURED_RELOADS = 300 if harness.SANITIZED else 1000
NAME_CYCLE = 20  # route names cycle, so after the warm-up every name was already seen once


def churn_config(i, services):
    """A small config that differs at every reload: one route removed and one added (names cycle),
    a header value that is new every time, and a route whose cluster switches upstream."""
    return [
        mapping("steady", "/steady/", services[0]),
        mapping(f"r-{i % NAME_CYCLE}", f"/r/{i % NAME_CYCLE}/", services[0],
                add_request_headers={"x-step": str(i)}),
        mapping(f"r-{(i + 1) % NAME_CYCLE}", f"/r/{(i + 1) % NAME_CYCLE}/", services[0]),
        mapping("swing", "/swing/", services[i % len(services)]),
    ]


def test_memory_flat_across_1000_reloads(start_gateway, start_echo, T, capsys):
    services = [start_echo("m1").addr, start_echo("m2").addr]
    env = None
    if harness.SANITIZED:
        # ASan parks freed memory in a 256 MiB quarantine, which by itself looks like growth.
        options = [os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0",
                   "thread_local_quarantine_size_kb=0"]
        env = {"ASAN_OPTIONS": ":".join(o for o in options if o)}
    # --no-watch: each write + SIGHUP is exactly one reload.
    gw = start_gateway({"routes.yaml": churn_config(0, services)}, workers=2,
                       extra_args=["--no-watch"], env=env)
    path = os.path.join(gw.config_dir, "routes.yaml")
    conn = KeepAliveClient(gw.port, timeout=T(5))
    generation = harness.config_generation(gw)
    samples = []

    def reload(i):
        nonlocal generation
        write_atomic(path, churn_config(i, services))
        gw.signal(signal.SIGHUP)
        g = wait_generation(gw, generation + 1, T(5))
        assert g == generation + 1, f"reload {i}: generation {g}, expected {generation + 1}"
        generation = g
        # Traffic on the kept-alive connection through the changed route and the moving cluster,
        # so snapshots, clusters and their pooled upstream connections are used before retiring.
        r = conn.get(f"/r/{i % NAME_CYCLE}/x")
        assert r.status == 200, r
        r = conn.get("/swing/x")
        assert r.status == 200, r

    def settled():
        # Old snapshots are freed when their last request ends; give the workers a moment.
        time.sleep(0.3)
        return gw.rss_kib(), len(os.listdir(f"/proc/{gw.pid}/fd"))

    try:
        for i in range(1, WARMUP_RELOADS + 1):
            reload(i)
        before, fds_before = settled()
        for i in range(WARMUP_RELOADS + 1, WARMUP_RELOADS + MEASURED_RELOADS + 1):
            reload(i)
            if i % 100 == 0:
                samples.append((i, gw.rss_kib()))
        after, fds_after = settled()
        # The header value of the last reload is served: the reloads were real.
        want = str(WARMUP_RELOADS + MEASURED_RELOADS)
        i = WARMUP_RELOADS + MEASURED_RELOADS
        assert conn.get(f"/r/{i % NAME_CYCLE}/x").json()["headers"]["x-step"] == want
    finally:
        conn.close()

    growth = after - before
    # Sanitizer builds: redzones, shadow memory and allocator caches blur the figure; only a
    # gross leak shows (LeakSanitizer checks the rest at exit).
    bound = max(32 * 1024, before // 4) if harness.SANITIZED else max(4 * 1024, before // 10)
    with capsys.disabled():
        print(f"\nRSS after {WARMUP_RELOADS} reloads {before} KiB, after {MEASURED_RELOADS} more "
              f"{after} KiB (growth {growth} KiB, bound {bound} KiB); samples {samples}; "
              f"open fds {fds_before} -> {fds_after}")
    assert growth < bound, (f"RSS grew {growth} KiB across {MEASURED_RELOADS} reloads "
                            f"({before} -> {after} KiB; samples {samples})")
    # Descriptors too: a watch, log file or pooled connection kept per reload would show here.
    assert fds_after - fds_before < 8, f"open fds {fds_before} -> {fds_after}"
