#!/usr/bin/python3
"""Helpers for bench/run: ports, readiness, wrk runs with /proc sampling, idle-connection memory,
config generation, timed commands and the Markdown report.

Every measurement appends one JSON object per line to a results file; `report` turns that file into
the tables. Only the standard library is used, so the harness runs on a bare Debian python3.
"""

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- /proc


def cpu_ticks(pid):
    """utime + stime of the whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        if int(data[data.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        return False


# ---------------------------------------------------------------------------------------- results


def append(path, obj):
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")


def load(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    return out


# ------------------------------------------------------------------------------------ subcommands


def cmd_free_ports(args):
    # Hold every socket until all are chosen so the ports are distinct.
    socks = []
    for _ in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("0.0.0.0", 0))  # free on every address: Proxenos binds its listeners to 0.0.0.0
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def http_get(host, port, path, headers=None, timeout=2.0):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body
    finally:
        conn.close()


def parse_headers(hs):
    out = {}
    for h in hs or []:
        k, _, v = h.partition(":")
        out[k.strip()] = v.strip()
    return out


def cmd_wait_http(args):
    """Polls until GET returns the expected status; fails early if --pid died."""
    deadline = time.monotonic() + args.timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if args.pid and not alive(args.pid):
            print(f"process {args.pid} exited ({last})", file=sys.stderr)
            return 1
        try:
            status, _ = http_get(args.host, args.port, args.path, parse_headers(args.header))
            if status == args.status:
                return 0
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        except http.client.HTTPException as e:
            last = f"bad HTTP: {e!r}"
        time.sleep(0.1)
    print(f"timed out after {args.timeout}s ({last})", file=sys.stderr)
    return 1


def cmd_children(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        kids = children(args.pid)
        if kids:
            print(" ".join(map(str, kids)))
            return 0
        time.sleep(0.05)
    return 1


UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unknown latency {text!r}")
    return float(m.group(1)) * UNITS_US[m.group(2)]


def parse_wrk(out):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    r["requests"] = int(m.group(1)) if m else 0
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    r["p50_us"] = to_us(pct["50"]) if "50" in pct else None
    r["p99_us"] = to_us(pct["99"]) if "99" in pct else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return r


def system_busy_ticks():
    """Busy ticks of all CPUs (everything but idle and iowait) from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return sum(vals) - vals[3] - vals[4]


def run_wrk(args, duration, latency):
    """Runs wrk; returns (exit code, output, wrk's own CPU seconds)."""
    cmd = [args.wrk, f"-t{args.threads}", f"-c{args.conns}", f"-d{duration}s"]
    if latency:
        cmd.append("--latency")
    for h in args.header or []:
        cmd += ["-H", h]
    cmd.append(args.url)
    with open(args.log + ".tmp", "w+") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + duration + 30
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        out.seek(0)
        text = out.read()
    os.unlink(args.log + ".tmp")
    return os.waitstatus_to_exitcode(status), text, ru.ru_utime + ru.ru_stime


def cmd_measure(args):
    """Warm-up, then the measured wrk run with the process's CPU sampled around it."""
    pid = args.pid
    rec = {"kind": "throughput", "name": args.name, "label": args.label, "group": args.group,
           "process": args.process, "url": args.url}
    if args.warmup > 0:
        run_wrk(args, args.warmup, False)
    if not alive(pid):
        rec["error"] = "process died during warm-up"
        append(args.out, rec)
        print(f"  {args.name}: {rec['error']}")
        return 1
    others = [p for p in (args.backend_pid,) if p and p != pid and alive(p)]
    t0 = cpu_ticks(pid)
    o0 = sum(cpu_ticks(p) for p in others)
    s0 = system_busy_ticks()
    w0 = time.monotonic()
    rc, out, wrk_cpu = run_wrk(args, args.duration, True)
    w1 = time.monotonic()
    s1 = system_busy_ticks()
    o1 = sum(cpu_ticks(p) for p in others if alive(p))
    t1 = cpu_ticks(pid) if alive(pid) else None
    with open(args.log, "a") as f:
        f.write(f"### {args.name}\n{out}\n")
    r = parse_wrk(out)
    rec.update(r)
    rec["wall_s"] = w1 - w0
    if rc != 0 or r["rps"] is None:
        rec["error"] = f"wrk failed (exit {rc}): {out.strip()[-200:]}"
    elif t1 is None:
        rec["error"] = "process died during the run"
    else:
        rec["cpu_s"] = (t1 - t0) / CLK_TCK
        rec["cpu_us_per_req"] = (t1 - t0) * 1e6 / CLK_TCK / r["requests"] if r["requests"] else None
        rec["cpu_util"] = rec["cpu_s"] / rec["wall_s"]
        rec["wrk_cpu_util"] = wrk_cpu / rec["wall_s"]
        # CPU burnt by anything but wrk, the measured process and the backend: other tenants of the
        # machine. Loopback networking done in softirq context lands here too, so expect a little.
        rec["other_cpu_util"] = max(0.0, ((s1 - s0) - (t1 - t0) - (o1 - o0)) / CLK_TCK - wrk_cpu) / rec["wall_s"]
        rec["rss_kib"] = rss_kib(pid)
        bad = r["non2xx"] + r["socket_errors"]
        if not alive(pid):
            rec["error"] = "process died at the end of the run"
        elif r["requests"] == 0 or bad > 0.01 * r["requests"]:
            rec["error"] = f"{bad} of {r['requests']} responses were errors"
    append(args.out, rec)
    if "error" in rec:
        print(f"  {args.name}: FAILED: {rec['error']}")
        return 1
    print(f"  {args.name}: {r['rps']:.0f} req/s, p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us, "
          f"{rec['cpu_us_per_req']:.2f} CPU us/req ({rec['cpu_util'] * 100:.0f}% of a core), "
          f"RSS {rec['rss_kib'] / 1024:.1f} MiB; wrk {rec['wrk_cpu_util'] * 100:.0f}%, "
          f"other load {rec['other_cpu_util'] * 100:.0f}% of a core")
    return 0


def read_response(sock, buf=b""):
    """Reads one HTTP/1.1 response with a Content-Length (or none) body; returns (status, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v.strip())
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside chunked body")
            rest += chunk
        return status, b""
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside body")
        rest += chunk
    return status, rest[length:]


def cmd_idle(args):
    """Opens N keep-alive connections, one request each, then holds them idle and reads RSS."""
    pid = args.pid
    req = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host_header}\r\n"
           + "".join(f"{h}\r\n" for h in args.header or []) + "\r\n").encode()
    rec = {"kind": "idle", "name": args.name, "group": args.group, "count": args.count}
    # One throw-away request first so one-time costs (upstream pool, lazy init) are not counted.
    try:
        s = socket.create_connection((args.host, args.port), timeout=5)
        s.sendall(req)
        read_response(s)
        s.close()
    except (OSError, ValueError, IndexError) as e:
        rec["error"] = f"warm-up request failed: {e}"
        append(args.out, rec)
        print(f"  {args.name}: FAILED: {rec['error']}")
        return 1
    time.sleep(0.5)
    before = rss_kib(pid)
    socks = []
    failures = 0
    statuses = {}
    t0 = time.monotonic()
    for _ in range(args.count):
        try:
            s = socket.create_connection((args.host, args.port), timeout=5)
            s.sendall(req)
            st, _ = read_response(s)
            statuses[st] = statuses.get(st, 0) + 1
            socks.append(s)
        except (OSError, ValueError, IndexError):
            failures += 1
    opened_s = time.monotonic() - t0
    time.sleep(args.settle)
    after = rss_kib(pid)
    # A connection the proxy closed reads EOF (or a reset); an idle open one would block.
    still_open = 0
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(1)
            if data:
                still_open += 1  # unexpected bytes, but the connection is there
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    for s in socks:
        s.close()
    rec.update({"rss_before_kib": before, "rss_after_kib": after, "opened": len(socks),
                "still_open": still_open, "failures": failures, "statuses": statuses,
                "open_seconds": opened_s})
    if still_open == 0:
        rec["error"] = f"no connection stayed open ({failures} failed, statuses {statuses})"
    else:
        rec["bytes_per_conn"] = (after - before) * 1024 / still_open
    append(args.out, rec)
    if "error" in rec:
        print(f"  {args.name}: FAILED: {rec['error']}")
        return 1
    print(f"  {args.name}: {still_open}/{args.count} idle connections open, RSS "
          f"{before / 1024:.1f} -> {after / 1024:.1f} MiB = {rec['bytes_per_conn']:.0f} B/connection")
    return 0


def cmd_gen_config(args):
    """Writes a Proxenos config dir: Listener + Host, and Mappings to one backend."""
    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "listener.yaml"), "w") as f:
        f.write(f"""apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata:
  name: bench-http
  namespace: default
spec:
  port: {args.listen_port}
  protocol: HTTP
  securityModel: XFP
  hostBinding:
    namespace:
      from: ALL
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata:
  name: bench-any
  namespace: default
spec:
  hostname: "*"
  requestPolicy:
    insecure:
      action: Route
""")
    if args.routes:
        prefixes = [(f"svc-{i:05d}", f"/svc-{i:05d}/") for i in range(args.routes)]
    else:
        prefixes = [(args.name, args.prefix)]
    docs = []
    for name, prefix in prefixes:
        docs.append(f"""apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: {name}
  namespace: default
spec:
  hostname: "*"
  prefix: {prefix}
  rewrite: ""
  service: {args.backend}
""")
    with open(os.path.join(args.dir, "mappings.yaml"), "w") as f:
        f.write("---\n".join(docs))
    return 0


COMPILE_RE = re.compile(r"compiled\b.*?\bin\s+([\d.]+)\s*(ms|s|us)\b", re.I)


def compile_ms(text):
    m = None
    for m in COMPILE_RE.finditer(text):
        pass
    if not m:
        return None
    v = float(m.group(1))
    return v * {"ms": 1.0, "s": 1e3, "us": 1e-3}[m.group(2).lower()]


def cmd_timed(args):
    """Runs a command like /usr/bin/time -v: wall seconds and max RSS from wait4()."""
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    with open(args.log, "w") as logf:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        deadline = t0 + args.timeout
        status = None
        ru = None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                status = None
                break
            time.sleep(0.01)
        wall = time.monotonic() - t0
    with open(args.log, errors="replace") as f:
        text = f.read()
    rec = {"kind": "timed", "name": args.name, "group": args.group, "wall_s": wall,
           "max_rss_kib": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
           "exit": os.waitstatus_to_exitcode(status) if status is not None else None,
           "compile_ms": compile_ms(text), "output_tail": text.strip()[-600:]}
    if status is None:
        rec["error"] = f"timed out after {args.timeout}s"
    append(args.out, rec)
    print(f"  {args.name}: exit {rec['exit']}, {wall:.2f} s wall, {rec['cpu_s']:.2f} s CPU, "
          f"max RSS {ru.ru_maxrss / 1024:.1f} MiB"
          + (f", compile {rec['compile_ms']:.1f} ms (from its output)" if rec["compile_ms"] else ""))
    return 0 if rec["exit"] == 0 else 1


def cmd_record(args):
    obj = {"kind": args.kind}
    for kv in args.field or []:
        k, _, v = kv.partition("=")
        try:
            obj[k] = json.loads(v)
        except json.JSONDecodeError:
            obj[k] = v
    append(args.out, obj)
    return 0


def cmd_rss(args):
    print(rss_kib(args.pid))
    return 0


def cmd_grep_compile(args):
    with open(args.file, errors="replace") as f:
        ms = compile_ms(f.read())
    if ms is not None:
        print(f"{ms:.3f}")
    return 0


# ----------------------------------------------------------------------------------------- report


def fmt(v, spec=".0f", suffix=""):
    if v is None:
        return "—"
    return f"{v:{spec}}{suffix}"


def fmt_us(v):
    if v is None:
        return "—"
    if v >= 10000:
        return f"{v / 1000:.1f} ms"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    return f"{v:.0f} µs"


def pct(v):
    return "—" if v is None else f"{v * 100:.0f}%"


def cmd_report(args):
    res = load(args.results)
    meta = {}
    notes = []
    for r in res:
        if r["kind"] == "meta":
            meta.update({k: v for k, v in r.items() if k != "kind"})
        elif r["kind"] == "note":
            notes.append(r["text"])
    L = []
    L.append("# Proxenos benchmark")
    L.append("")
    L.append(f"{meta.get('date', '')} on {meta.get('host', '')}. wrk `-t{meta.get('threads', 1)} "
             f"-c{meta.get('conns', 50)} -d{meta.get('duration', 10)}s --latency`, keep-alive, after a "
             f"{meta.get('warmup', 2)} s warm-up; every request carries `x-echo-response-bytes: 64`. "
             "CPU is the measured process's utime+stime over the measured window; for nginx the "
             "worker, not the master.")
    L.append("")
    for k in ("proxenos", "nginx", "haproxy", "wrk"):
        if k in meta:
            L.append(f"- {k}: {meta[k]}")
    if "backend" in meta:
        L.append(f"- common backend: **{meta['backend']}** ({meta.get('backend_why', '')})")
    L.append("")

    thr = [r for r in res if r["kind"] == "throughput" and r.get("group") in ("direct", "proxy")]
    if thr:
        L.append("## Throughput, latency, CPU")
        L.append("")
        L.append("| scenario | measured process | req/s | p50 | p99 | CPU µs/req | CPU use | RSS after | "
                 "wrk CPU | other load | notes |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in thr:
            L.append(f"| {r['label']} | {r.get('process', '')} | {fmt(r.get('rps'))} | "
                     f"{fmt_us(r.get('p50_us'))} | {fmt_us(r.get('p99_us'))} | "
                     f"{fmt(r.get('cpu_us_per_req'), '.2f')} | "
                     f"{pct(r.get('cpu_util'))} | "
                     f"{fmt(r.get('rss_kib') and r['rss_kib'] / 1024, '.1f', ' MiB')} | "
                     f"{pct(r.get('wrk_cpu_util'))} | {pct(r.get('other_cpu_util'))} | "
                     f"{r.get('error', '')} |")
        L.append("")
        L.append("CPU use: the measured process, in % of one core. wrk CPU: the load generator. Other load: "
                 "CPU used meanwhile by everything else on the machine except the backend (other "
                 "tenants, loopback softirqs); when it is high the run was disturbed — rerun. "
                 "CPU µs/req is the steadiest number here; req/s and latency depend on how the "
                 "scheduler shares the cores between wrk, proxy and backend.")
        L.append("")
        ok = {r["name"]: r for r in thr if "error" not in r}
        px = ok.get("proxenos")
        others = [ok[n] for n in ("nginx", "haproxy") if n in ok]
        if px and others:
            best_cpu = min(others, key=lambda r: r["cpu_us_per_req"])
            best_p99 = min(others, key=lambda r: r["p99_us"])
            L.append("**Proxenos vs the best of nginx/HAProxy**")
            L.append("")
            L.append("| metric | Proxenos | best other | ratio (lower is better) |")
            L.append("|---|---:|---:|---:|")
            L.append(f"| CPU µs/request | {px['cpu_us_per_req']:.2f} | {best_cpu['cpu_us_per_req']:.2f} "
                     f"({best_cpu['label']}) | "
                     f"**{px['cpu_us_per_req'] / best_cpu['cpu_us_per_req']:.2f}** |")
            L.append(f"| p99 latency | {fmt_us(px['p99_us'])} | {fmt_us(best_p99['p99_us'])} "
                     f"({best_p99['label']}) | **{px['p99_us'] / best_p99['p99_us']:.2f}** |")
            L.append("")
        elif others:
            L.append("Proxenos ratios: not available (no Proxenos result).")
            L.append("")

    scale = {r["name"]: r for r in res if r.get("group") == "scale"}
    if scale:
        n = meta.get("routes", 10000)
        L.append(f"## Route scale ({n} Mappings)")
        L.append("")
        L.append("| measurement | value |")
        L.append("|---|---|")
        v = scale.get("validate")
        if v:
            line = (f"{v['wall_s']:.2f} s wall, {v['cpu_s']:.2f} s CPU, max RSS "
                    f"{v['max_rss_kib'] / 1024:.1f} MiB, exit {v['exit']}")
            if v.get("error"):
                line += f" ({v['error']})"
            L.append(f"| `proxenos validate` ({n} Mappings) | {line} |")
            if v.get("compile_ms") is not None:
                L.append(f"| compile time printed by `validate` | {v['compile_ms']:.1f} ms |")
        for key, label in (("startup", f"startup to ready ({n} Mappings)"),):
            s = scale.get(key)
            if s:
                L.append(f"| {label} | {s['seconds']:.2f} s |")
        st = scale.get("startup")
        if st and st.get("compile_ms") is not None:
            L.append(f"| compile time printed by `run` | {st['compile_ms']:.1f} ms |")
        for key in ("rss-one", "rss-many"):
            s = scale.get(key)
            if s:
                L.append(f"| RSS when ready, {s['label']} | {s['rss_kib'] / 1024:.1f} MiB |")
        runs = [r for r in res if r["kind"] == "throughput" and r.get("group") == "scale"]
        best = {}
        for which in ("one", "many"):
            mine = [r for r in runs if r["name"].startswith(which + "-")]
            good = [r for r in mine if "error" not in r]
            if good:
                best[which] = min(good, key=lambda r: r["cpu_us_per_req"])
                b = best[which]
                L.append(f"| {b['label']} (best of {len(good)}) | {b['rps']:.0f} req/s, p99 "
                         f"{fmt_us(b['p99_us'])}, **{b['cpu_us_per_req']:.2f} CPU µs/req** (all runs: "
                         + ", ".join(f"{r['cpu_us_per_req']:.2f}" for r in good)
                         + f"), RSS after {b['rss_kib'] / 1024:.1f} MiB |")
            elif mine:
                L.append(f"| {mine[0]['label']} | FAILED: {mine[0]['error']} |")
        if "one" in best and "many" in best:
            q = best["many"]["cpu_us_per_req"] / best["one"]["cpu_us_per_req"]
            verdict = "meets" if q <= 1.10 else "misses"
            L.append(f"| CPU/request ratio, {n} routes ÷ 1 route | **{q:.3f}** ({verdict} the goal ≤ 1.10) |")
        L.append("")

    idle = [r for r in res if r["kind"] == "idle"]
    if idle:
        count = idle[0]["count"]
        L.append(f"## Idle keep-alive connections ({count} per proxy)")
        L.append("")
        L.append("| proxy | still open | RSS before | RSS after | bytes per idle connection | notes |")
        L.append("|---|---:|---:|---:|---:|---|")
        for r in idle:
            L.append(f"| {r['name']} | {r.get('still_open', 0)}/{r['count']} | "
                     f"{fmt(r.get('rss_before_kib') and r['rss_before_kib'] / 1024, '.1f', ' MiB')} | "
                     f"{fmt(r.get('rss_after_kib') and r['rss_after_kib'] / 1024, '.1f', ' MiB')} | "
                     f"{fmt(r.get('bytes_per_conn'), '.0f', ' B')} | {r.get('error', '')} |")
        L.append("")
        okidle = {r["name"]: r for r in idle if "bytes_per_conn" in r}
        if "proxenos" in okidle:
            others = [okidle[n]["bytes_per_conn"] for n in ("nginx", "haproxy") if n in okidle]
            if others:
                verdict = "meets" if okidle["proxenos"]["bytes_per_conn"] < min(others) else "misses"
                L.append(f"Goal (ARCHITECTURE.md, \"idle costs nothing\"): below both nginx and HAProxy — "
                         f"Proxenos **{verdict}** it.")
                L.append("")
        L.append("RSS counts user-space memory only (kernel socket buffers are not in it); "
                 "the resolution is one 4 KiB page over all connections.")
        L.append("")

    if notes:
        L.append("## Skipped / notes")
        L.append("")
        for n in notes:
            L.append(f"- {n}")
        L.append("")
    text = "\n".join(L)
    print(text)
    if args.md:
        os.makedirs(os.path.dirname(args.md), exist_ok=True)
        with open(args.md, "w") as f:
            f.write(text)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("free-ports")
    p.add_argument("count", type=int)
    p.set_defaults(fn=cmd_free_ports)

    p = sub.add_parser("wait-http")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--pid", type=int)
    p.add_argument("--header", action="append")
    p.set_defaults(fn=cmd_wait_http)

    p = sub.add_parser("children")
    p.add_argument("pid", type=int)
    p.add_argument("--timeout", type=float, default=5)
    p.set_defaults(fn=cmd_children)

    p = sub.add_parser("measure")
    for a in ("--name", "--label", "--url", "--out", "--log", "--process"):
        p.add_argument(a, required=True)
    p.add_argument("--group", default="proxy")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--backend-pid", type=int)
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--header", action="append")
    p.set_defaults(fn=cmd_measure)

    p = sub.add_parser("idle")
    p.add_argument("--name", required=True)
    p.add_argument("--group", default="idle")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/idle")
    p.add_argument("--host-header", default="bench.local")
    p.add_argument("--header", action="append")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_idle)

    p = sub.add_parser("gen-config")
    p.add_argument("dir")
    p.add_argument("--listen-port", type=int, required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--routes", type=int, default=0)
    p.add_argument("--prefix", default="/")
    p.add_argument("--name", default="bench")
    p.set_defaults(fn=cmd_gen_config)

    p = sub.add_parser("timed")
    p.add_argument("--name", required=True)
    p.add_argument("--group", default="scale")
    p.add_argument("--log", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_timed)

    p = sub.add_parser("record")
    p.add_argument("kind")
    p.add_argument("--out", required=True)
    p.add_argument("--field", action="append")
    p.set_defaults(fn=cmd_record)

    p = sub.add_parser("rss")
    p.add_argument("pid", type=int)
    p.set_defaults(fn=cmd_rss)

    p = sub.add_parser("grep-compile")
    p.add_argument("file")
    p.set_defaults(fn=cmd_grep_compile)

    p = sub.add_parser("report")
    p.add_argument("results")
    p.add_argument("--md")
    p.set_defaults(fn=cmd_report)

    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
