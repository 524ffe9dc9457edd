"""Canary groups (emissary-reference.md §2.2): Mappings with the same match form one group and
split its traffic by weight; unweighted members share the remainder; weights over 100 are an
error. Shares are measured with real keep-alive clients over thousands of requests."""

import collections
import os
import re
import threading

import harness
from harness import KeepAliveClient, LoadThreads, mapping, run_cli, to_yaml_docs, write_atomic


def backend_of(resp):
    """Which member served: the echo backend's name, or its reflected Host (host_rewrite)."""
    if resp.status != 200:
        return resp.status
    body = resp.json()
    return body["backend"], body["host"]


def tally(port, path, n, T, threads=4):
    """Sends `n` GETs for `path` over `threads` keep-alive connections; returns a Counter of
    (backend, host) for 200s and of the status for anything else."""
    counts = collections.Counter()
    errors = []
    lock = threading.Lock()

    def run(k):
        local = collections.Counter()
        try:
            c = KeepAliveClient(port, timeout=T(5))
            try:
                for _ in range(k):
                    local[backend_of(c.get(path))] += 1
            finally:
                c.close()
        except Exception as e:  # reported by the caller's assertion
            errors.append(repr(e))
        with lock:
            counts.update(local)

    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=run, args=(k,), daemon=True) for k in per]
    for w in workers:
        w.start()
    for w in workers:
        w.join(T(60))
    assert not errors, errors
    assert sum(counts.values()) == n, counts
    return counts


def assert_shares(counts, expected, tolerance_pp):
    """`expected` maps a key of `counts` to a percentage; every answer must be one of them."""
    n = sum(counts.values())
    unexpected = {k: v for k, v in counts.items() if k not in expected}
    assert not unexpected, f"answers outside the group: {unexpected} of {n}"
    shares = {k: 100.0 * counts.get(k, 0) / n for k in expected}
    report = ", ".join(f"{k}: {shares[k]:.2f}% (want {expected[k]}%)" for k in expected)
    for k, want in expected.items():
        assert abs(shares[k] - want) <= tolerance_pp, f"{k}: {shares[k]:.2f}% vs {want}%; {report}"
    return f"{n} requests: {report}"


def echo_key(echo):
    return (echo.name, "example.com")


def test_explicit_weights_and_remainder_10000_requests(start_gateway, start_echo, T, capsys):
    a, b, c = start_echo("a"), start_echo("b"), start_echo("c")
    gw = start_gateway([
        # The unweighted member comes first in the file: it still gets what the weighted ones
        # leave (60).
        mapping("canary-c", "/canary/", c.addr),
        mapping("canary-a", "/canary/", a.addr, weight=10),
        mapping("canary-b", "/canary/", b.addr, weight=30),
        mapping("other", "/other/", a.addr),
    ])
    counts = tally(gw.port, "/canary/x", 10_000, T)
    # Each share's standard deviation is under 0.5 pp at 10,000 requests.
    report = assert_shares(counts, {echo_key(a): 10, echo_key(b): 30, echo_key(c): 60}, 2.0)
    with capsys.disabled():
        print("\ncanary 10/30/rest: " + report)
    # The group does not disturb its neighbour.
    assert tally(gw.port, "/other/x", 50, T, threads=1) == {echo_key(a): 50}


def test_remainder_split_over_unweighted_members(start_gateway, echo, T):
    # An explicit 0 plus 8 unweighted members: round(100 / 8) is 12 (Python rounds halves to
    # even), so seven members take 12 each and the last one, pinned to the cumulative 100, takes
    # 16. The member with weight 0 gets nothing.
    members = [mapping("split-0", "/split/", echo.addr, weight=0, host_rewrite="m0.example")]
    members += [mapping(f"split-{i}", "/split/", echo.addr, host_rewrite=f"m{i}.example")
                for i in range(1, 9)]
    gw = start_gateway(members)
    n = 4_000 if harness.SANITIZED else 10_000
    counts = tally(gw.port, "/split/x", n, T)
    expected = {("echo", f"m{i}.example"): 12 for i in range(1, 8)}
    expected[("echo", "m8.example")] = 16
    expected[("echo", "m0.example")] = 0
    assert_shares(counts, expected, 2.0 if n >= 10_000 else 3.0)
    assert counts.get(("echo", "m0.example"), 0) == 0


def test_weights_below_100_leave_the_rest_to_later_routes(start_gateway, start_echo, T):
    # Every member weighted and the sum below 100: nothing is rescaled; the other 50% falls
    # through to the next route that matches.
    a, b, fallback = start_echo("a"), start_echo("b"), start_echo("fallback")
    gw = start_gateway([
        mapping("part-a", "/part/", a.addr, weight=30),
        mapping("part-b", "/part/", b.addr, weight=20),
        mapping("root", "/", fallback.addr),
    ])
    n = 4_000 if harness.SANITIZED else 6_000
    counts = tally(gw.port, "/part/x", n, T)
    assert_shares(counts, {echo_key(a): 30, echo_key(b): 20, echo_key(fallback): 50}, 3.0)


OVER = [
    ("over-a", 60),
    ("over-b", 50),  # the running total passes 100 here
    ("over-c", None),
]


def over_group(backends, weights=OVER):
    out = []
    for (name, weight), be in zip(weights, backends):
        fields = {"weight": weight} if weight is not None else {}
        out.append(mapping(name, "/over/", be.addr, **fields))
    return out


def test_weights_over_100_are_an_error_and_drop_the_group(start_gateway, start_echo, T,
                                                          tmp_path):
    a, b, c, fallback = (start_echo(n) for n in ("a", "b", "c", "fallback"))
    resources = over_group([a, b, c]) + [
        mapping("root", "/", fallback.addr),
        mapping("fine", "/fine/", a.addr),
    ]

    folder = tmp_path / "validate"
    folder.mkdir()
    (folder / "routes.yaml").write_text(to_yaml_docs(resources))
    r = run_cli(["validate", str(folder)])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    culprit = [l for l in out.splitlines() if "Mapping/default/over-b" in l]
    assert culprit and any("weight" in l and "100" in l for l in culprit), out
    assert any("error" in l.lower() for l in culprit), out
    assert re.search(r"routes\.yaml:\d+", "\n".join(culprit)), out
    # The group's other members are reported as dropped with it.
    assert "Mapping/default/over-a" in out and "Mapping/default/over-c" in out, out
    assert "Mapping/default/fine" not in out and "Mapping/default/root" not in out, out

    gw = start_gateway(resources)
    assert gw.wait_for_log(r"(?m)^.*error.*Mapping/default/over-b.*100.*$", stream="all"), \
        gw.output()
    # Emissary drops the whole group ("Could not normalize mapping weights, ignoring"): its
    # prefix falls through to the next matching route; other routes are untouched.
    assert tally(gw.port, "/over/x", 200, T, threads=2) == {echo_key(fallback): 200}
    assert tally(gw.port, "/fine/x", 20, T, threads=1) == {echo_key(a): 20}


def test_reload_to_weights_over_100_keeps_the_last_good_group(start_gateway, start_echo, T):
    # spec/README.md: an update that makes a resource invalid leaves its last good version
    # serving, with the error reported, until it is fixed.
    a, b, c, fallback = (start_echo(n) for n in ("a", "b", "c", "fallback"))
    good = [("over-a", 60), ("over-b", 30), ("over-c", None)]
    gw = start_gateway({
        "group.yaml": over_group([a, b, c], good),
        "root.yaml": [mapping("root", "/", fallback.addr)],
    })
    n = 2_000
    expected = {echo_key(a): 60, echo_key(b): 30, echo_key(c): 10}
    assert_shares(tally(gw.port, "/over/x", n, T), expected, 5.0)

    base = harness.config_generation(gw)
    write_atomic(os.path.join(gw.config_dir, "group.yaml"), over_group([a, b, c]))
    assert harness.wait_generation(gw, base + 1, T(5)), gw.stderr()
    assert gw.wait_for_log(r"(?m)^.*error.*Mapping/default/over-b.*100.*$", stream="all"), \
        gw.output()
    assert_shares(tally(gw.port, "/over/x", n, T), expected, 5.0)

    # Fixed: the new weights apply.
    base = harness.config_generation(gw)
    fixed = [("over-a", 60), ("over-b", 20), ("over-c", None)]
    write_atomic(os.path.join(gw.config_dir, "group.yaml"), over_group([a, b, c], fixed))
    assert harness.wait_generation(gw, base + 1, T(5)), gw.stderr()
    assert_shares(tally(gw.port, "/over/x", n, T),
                  {echo_key(a): 60, echo_key(b): 20, echo_key(c): 20}, 5.0)


def test_group_keys_must_agree(start_gateway, start_echo, T, tmp_path):
    # A Mapping that would join a group with a different value of a key the group shares
    # (here connect_timeout_ms) is rejected with an error; keys that may differ per member
    # (service, rewrite, timeout_ms, weight) do not keep a Mapping out.
    a, b, c = start_echo("a"), start_echo("b"), start_echo("c")
    resources = [
        mapping("agree-a", "/agree/", a.addr, connect_timeout_ms=1000),
        mapping("agree-b", "/agree/", b.addr, connect_timeout_ms=2000, weight=50),
        mapping("agree-c", "/agree/", c.addr, connect_timeout_ms=1000, weight=50,
                rewrite="/other/", timeout_ms=5000),
    ]
    folder = tmp_path / "validate"
    folder.mkdir()
    (folder / "routes.yaml").write_text(to_yaml_docs(resources))
    r = run_cli(["validate", str(folder)])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    line = next((l for l in out.splitlines() if "Mapping/default/agree-b" in l), "")
    assert "connect_timeout_ms" in line and "error" in line.lower(), out
    assert "agree-c" not in line and "Mapping/default/agree-c:" not in out, out

    gw = start_gateway(resources)
    assert gw.wait_for_log(r"(?m)^.*error.*Mapping/default/agree-b.*connect_timeout_ms",
                           stream="all"), gw.output()
    counts = tally(gw.port, "/agree/x", 2_000, T)
    assert_shares(counts, {echo_key(a): 50, echo_key(c): 50}, 5.0)


STEPS = [0, 10, 25, 50, 75, 100]


def stepping_config(stable, canary, weight):
    # The same added header on both members (a group merges add_request_headers) tells which
    # configuration served each response, so shares are counted per configuration, not per
    # time window.
    tag = {"x-canary-weight": str(weight)}
    return [
        mapping("app-stable", "/app/", stable.addr, add_request_headers=tag),
        mapping("app-canary", "/app/", canary.addr, weight=weight, add_request_headers=tag),
    ]


def test_weight_steps_0_to_100_under_load_lose_nothing(start_gateway, start_echo, T, capsys):
    stable, canary = start_echo("stable"), start_echo("canary")
    gw = start_gateway({"app.yaml": stepping_config(stable, canary, 0)}, workers=2)
    path = os.path.join(gw.config_dir, "app.yaml")
    per_config = collections.defaultdict(collections.Counter)  # weight -> backend -> count
    odd = []

    def observe(index, req_path, resp, t_sent, t_received):
        if resp.status != 200:
            odd.append((resp.status, resp.body[:200]))
            return
        body = resp.json()
        tag = body["headers"].get("x-canary-weight")
        tags = set(tag) if isinstance(tag, list) else {tag}
        if len(tags) != 1 or None in tags:
            odd.append(("tag", tag))
            return
        per_config[int(tags.pop())][body["backend"]] += 1

    want = 600 if harness.SANITIZED else 1500
    with LoadThreads(gw.port, ["/app/x"], threads=4, observe=observe, timeout=T(5)) as load:
        for i, weight in enumerate(STEPS):
            if i > 0:
                base = harness.config_generation(gw)
                write_atomic(path, stepping_config(stable, canary, weight))
                assert harness.wait_generation(gw, base + 1, T(5)), gw.stderr()
            assert harness.wait_until(lambda: sum(per_config[weight].values()) >= want, T(20)), \
                (weight, dict(per_config), load.failures)
            assert not load.failures, load.failures[:10]
    assert not load.failures, f"{len(load.failures)} failed: {load.failures[:10]}"
    assert not odd, odd[:10]
    assert set(per_config) <= set(STEPS), dict(per_config)

    lines = []
    for weight in STEPS:
        got = per_config[weight]
        n = sum(got.values())
        share = 100.0 * got["canary"] / n
        lines.append(f"weight {weight}: canary {share:.1f}% of {n}")
        assert n >= 500
        assert abs(share - weight) <= 10, lines
    with capsys.disabled():
        print(f"\nweight steps, {load.requests} requests, none failed: " + "; ".join(lines))
    # The ends are exact: weight 0 sends nothing to the canary, 100 sends everything.
    assert per_config[0]["canary"] == 0, dict(per_config[0])
    assert per_config[100]["stable"] == 0, dict(per_config[100])
