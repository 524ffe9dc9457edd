#!/usr/bin/python3
"""Helpers for bench/run: ports, readiness, wrk runs with /proc sampling, idle-connection memory,
config generation, timed commands and the Markdown report.

Every measurement appends one JSON object per line to a results file; `report` turns that file into
the tables. Only the standard library is used, so the harness runs on a bare Debian python3.
"""

import argparse
import base64
import http.client
import json
import math
import os
import random
import re
import signal
import socket
import ssl
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


def https_get(port, path, sni, cafile, headers=None, timeout=2.0):
    """GET over TLS to 127.0.0.1 with `sni` as server name, the chain verified against `cafile`
    for that name; returns the status."""
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            s.sendall((f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n"
                       + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
                       + "\r\n").encode())
            status, _ = read_response(s)
            return status, b""
    finally:
        raw.close()


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
            if args.tls:
                status, _ = https_get(args.port, args.path, args.sni, args.cafile,
                                      parse_headers(args.header))
            else:
                status, _ = http_get(args.host, args.port, args.path, parse_headers(args.header))
            if status == args.status:
                return 0
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        except (http.client.HTTPException, ValueError, IndexError) as e:
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


# ---------------------------------------------------------------------------------------------- TLS


def cmd_tls_probe(args):
    """One `openssl s_client` exchange: what the server negotiated, whether its chain verifies for
    the bench name, and how many session tickets it sends after a full handshake."""
    rec = {"kind": "tls-probe", "name": args.name, "group": "tls"}
    req = (f"GET {args.path} HTTP/1.1\r\nHost: {args.sni}\r\nConnection: close\r\n"
           + "".join(f"{h}\r\n" for h in args.header or []) + "\r\n").encode()
    cmd = [args.openssl, "s_client", "-connect", f"127.0.0.1:{args.port}", "-servername", args.sni,
           "-CAfile", args.cafile, "-verify_hostname", args.sni, "-verify_return_error", "-msg",
           "-ign_eof"]
    try:
        p = subprocess.run(cmd, input=req, capture_output=True, timeout=15)
        out = (p.stdout + p.stderr).decode(errors="replace")
    except subprocess.TimeoutExpired:
        out = ""
        rec["error"] = "openssl s_client timed out"
    m = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    if m:
        rec["protocol"], rec["cipher"] = m.group(1), m.group(2)
    m = re.search(r"^Server Temp Key: ([^,\n]+)", out, re.M)
    if m:
        rec["group_name"] = m.group(1).strip()
    m = re.search(r"^Peer signature type: (\S+)", out, re.M)
    if m:
        rec["signature"] = m.group(1)
    # Received handshake messages are the "<<<" lines of -msg.
    rec["tickets"] = len(re.findall(r"^<<< .*NewSessionTicket", out, re.M))
    m = re.search(r"Verify return code: (\d+) \(([^)]*)\)", out)
    rec["verify"] = f"{m.group(1)} ({m.group(2)})" if m else "none"
    m = re.search(r"^HTTP/1\.1 (\d{3})", out, re.M)
    rec["status"] = int(m.group(1)) if m else None
    if "error" not in rec and (rec["status"] != 200 or not rec["verify"].startswith("0 ")):
        rec["error"] = f"status {rec['status']}, verify {rec['verify']}"
    # The pinning is real only if a client that cannot use the pinned choice is refused.
    accepted = []
    for what, extra in (("TLS 1.2", ["-tls1_2"]),
                        ("TLS_AES_256_GCM_SHA384", ["-ciphersuites", "TLS_AES_256_GCM_SHA384"]),
                        ("P-256 key exchange", ["-groups", "P-256"])):
        try:
            p = subprocess.run([args.openssl, "s_client", "-connect", f"127.0.0.1:{args.port}",
                                "-servername", args.sni] + extra, input=b"", capture_output=True,
                               timeout=15)
            out = (p.stdout + p.stderr).decode(errors="replace")
            if re.search(r"^New, TLS", out, re.M):
                accepted.append(what)
        except subprocess.TimeoutExpired:
            accepted.append(what + " (timed out)")
    rec["refused"] = "TLS 1.2, TLS_AES_256_GCM_SHA384, P-256 key exchange"
    if accepted and "error" not in rec:
        rec["error"] = "not pinned: accepted " + ", ".join(accepted)
    append(args.out, rec)
    print(f"  {args.name}: {rec.get('protocol', '?')} {rec.get('cipher', '?')} "
          f"{rec.get('group_name', '?')}, signature {rec.get('signature', '?')}, "
          f"certificate verify {rec['verify']}, {rec['tickets']} session ticket(s) per full handshake"
          + ("" if accepted else f"; refuses {rec['refused']}")
          + (f"; FAILED: {rec['error']}" if "error" in rec else ""))
    return 1 if "error" in rec else 0


H2LOAD_REQ_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                           r"(\d+) failed, (\d+) errored, (\d+) timeout")


def run_h2load_batch(args):
    """One h2load run: `batch` clients start at once, each opens its own connection with a fresh
    SSL object (full handshake, no session offered), sends one request and closes.
    Returns (succeeded, failed, output, h2load CPU seconds)."""
    cmd = [args.h2load, "--h1", "-t1", "-n", str(args.batch), "-c", str(args.batch),
           f"--connect-to=127.0.0.1:{args.port}"]
    for h in args.header or []:
        cmd += ["-H", h]
    cmd.append(args.url)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    chunks = []
    os.set_blocking(p.stdout.fileno(), False)
    while True:
        try:
            data = p.stdout.read()
            if data:
                chunks.append(data)
        except BlockingIOError:
            pass
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.005)
    rest = p.stdout.read()
    if rest:
        chunks.append(rest)
    p.stdout.close()
    out = b"".join(chunks).decode(errors="replace")
    m = H2LOAD_REQ_RE.search(out)
    if not m:
        return 0, args.batch, out, ru.ru_utime + ru.ru_stime
    succeeded = int(m.group(4))
    return succeeded, args.batch - succeeded, out, ru.ru_utime + ru.ru_stime


def listener_tls_counters(admin_port):
    """(handshakes, resumed) summed over Proxenos's listeners, from /metrics."""
    status, body = http_get("127.0.0.1", admin_port, "/metrics")
    if status != 200:
        return None
    text = body.decode(errors="replace")

    def total(name):
        return sum(int(float(v)) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))
    return total("envoy_listener_ssl_handshake"), total("envoy_listener_ssl_session_reused")


def cmd_handshakes(args):
    """Full TLS handshakes per second: h2load batches of new connections (one request each) back
    to back for `duration` seconds, the server's CPU sampled from /proc around them."""
    pid = args.pid
    rec = {"kind": "handshakes", "name": args.name, "label": args.label, "group": args.group,
           "process": args.process, "url": args.url, "batch": args.batch}
    warm_end = time.monotonic() + args.warmup
    while time.monotonic() < warm_end:
        run_h2load_batch(args)
    if not alive(pid):
        rec["error"] = "process died during warm-up"
        append(args.out, rec)
        print(f"  {args.name}: {rec['error']}")
        return 1
    counters0 = listener_tls_counters(args.admin_port) if args.admin_port else None
    others = [p for p in (args.backend_pid,) if p and p != pid and alive(p)]
    t0 = cpu_ticks(pid)
    o0 = sum(cpu_ticks(p) for p in others)
    s0 = system_busy_ticks()
    w0 = time.monotonic()
    ok = failed = batches = 0
    client_cpu = 0.0
    first_out = ""
    while time.monotonic() - w0 < args.duration and alive(pid):
        n_ok, n_failed, out, cpu = run_h2load_batch(args)
        ok += n_ok
        failed += n_failed
        client_cpu += cpu
        batches += 1
        if not first_out:
            first_out = out
    w1 = time.monotonic()
    s1 = system_busy_ticks()
    o1 = sum(cpu_ticks(p) for p in others if alive(p))
    t1 = cpu_ticks(pid) if alive(pid) else None
    counters1 = listener_tls_counters(args.admin_port) if args.admin_port else None
    with open(args.log, "a") as f:
        f.write(f"### {args.name} (first of {batches} h2load batches)\n{first_out}\n")
    for key, rx in (("protocol", r"^TLS Protocol: (\S+)"), ("cipher", r"^Cipher: (\S+)"),
                    ("group_name", r"^Server Temp Key: (\S+)"),
                    ("alpn", r"^Application protocol: (\S+)")):
        m = re.search(rx, first_out, re.M)
        if m:
            rec[key] = m.group(1).strip()
    wall = w1 - w0
    rec.update({"handshakes": ok, "failed": failed, "batches": batches, "wall_s": wall,
                "rps": ok / wall if wall > 0 else 0})
    if counters0 and counters1:
        rec["server_handshakes"] = counters1[0] - counters0[0]
        rec["server_resumed"] = counters1[1] - counters0[1]
    if t1 is None:
        rec["error"] = "process died during the run"
    elif ok == 0 or failed > 0.01 * (ok + failed):
        rec["error"] = f"{failed} of {ok + failed} connections failed"
    elif rec.get("server_resumed"):
        rec["error"] = f"{rec['server_resumed']} handshakes were resumptions, not full handshakes"
    if t1 is not None and ok:
        rec["cpu_s"] = (t1 - t0) / CLK_TCK
        rec["cpu_us_per_req"] = rec["cpu_s"] * 1e6 / ok
        rec["cpu_util"] = rec["cpu_s"] / wall
        rec["client_cpu_util"] = client_cpu / wall
        rec["other_cpu_util"] = max(0.0, ((s1 - s0) - (t1 - t0) - (o1 - o0)) / CLK_TCK
                                    - client_cpu) / wall
    append(args.out, rec)
    if "error" in rec:
        print(f"  {args.name}: FAILED: {rec['error']}")
        return 1
    extra = ""
    if "server_handshakes" in rec:
        extra = (f"; server counted {rec['server_handshakes']} handshakes, "
                 f"{rec['server_resumed']} resumed")
    print(f"  {args.name}: {rec['rps']:.0f} full handshakes/s ({ok} in {batches} batches), "
          f"{rec['cpu_us_per_req']:.1f} CPU us/handshake ({rec['cpu_util'] * 100:.0f}% of a core); "
          f"h2load {rec['client_cpu_util'] * 100:.0f}%, other load "
          f"{rec['other_cpu_util'] * 100:.0f}% of a core{extra}")
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


def write_http_listener(args):
    """A cleartext Listener and a `*` Host that routes everything."""
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


def write_tls_listener(args):
    """An HTTPS Listener; a kubernetes.io/tls Secret with the bench certificate; a Host for
    `--tls-host` terminating TLS with it, pinned to one version, one cipher suite and one group."""
    def b64(path):
        with open(path, "rb") as fh:
            return base64.b64encode(fh.read()).decode()
    with open(os.path.join(args.dir, "listener.yaml"), "w") as f:
        f.write(f"""apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata:
  name: bench-https
  namespace: default
spec:
  port: {args.listen_port}
  protocol: HTTPS
  securityModel: XFP
  hostBinding:
    namespace:
      from: ALL
---
apiVersion: v1
kind: Secret
metadata:
  name: bench-tls
  namespace: default
type: kubernetes.io/tls
data:
  tls.crt: {b64(args.tls_cert)}
  tls.key: {b64(args.tls_key)}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata:
  name: bench-tls
  namespace: default
spec:
  hostname: "{args.tls_host}"
  tlsSecret:
    name: bench-tls
  tls:
    min_tls_version: {args.tls_version}
    max_tls_version: {args.tls_version}
    cipher_suites: ["{args.tls_suite}"]
    ecdh_curves: ["{args.tls_group}"]
  requestPolicy:
    insecure:
      action: Route
""")


def cmd_gen_config(args):
    """Writes a Proxenos config dir: Listener + Host, and Mappings to one backend."""
    os.makedirs(args.dir, exist_ok=True)
    if args.tls_cert:
        write_tls_listener(args)
    else:
        write_http_listener(args)
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
    if args.reload:
        with open(os.path.join(args.dir, RELOAD_FILE), "w") as f:
            f.write(reload_doc(args.backend, "init"))
    if args.module:
        config = json.loads(args.module)
        with open(os.path.join(args.dir, "module.yaml"), "w") as f:
            # JSON is YAML.
            f.write(json.dumps({"apiVersion": "getambassador.io/v3alpha1", "kind": "Module",
                                "metadata": {"name": "ambassador", "namespace": "default"},
                                "spec": {"config": config}}, indent=2) + "\n")
    return 0


# ---------------------------------------------------------------------------------------- reloads

RELOAD_FILE = "reload.yaml"
RELOAD_HEADER = "x-bench-gen"


def reload_doc(backend, token, extra=False):
    """The Mapping the reload tests rewrite: /reload/ answers with `x-bench-gen: <token>`, so a
    response shows which version served it, whatever the backend. With `extra`, a second Mapping
    with a cluster of its own (a distinct stats_name) is added, so reloads also add and remove
    clusters."""
    docs = [f"""apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: bench-reload
  namespace: default
spec:
  hostname: "*"
  prefix: /reload/
  rewrite: ""
  service: {backend}
  add_response_headers:
    {RELOAD_HEADER}: "{token}"
"""]
    if extra:
        docs.append(f"""apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata:
  name: bench-extra
  namespace: default
spec:
  hostname: "*"
  prefix: /extra/
  service: {backend}
  stats_name: bench-extra
""")
    return "---\n".join(docs)


def replace_file(directory, stage, name, text):
    """Writes `text` to stage/name, fsyncs it and renames it over directory/name, as an editor or a
    ConfigMap update does. Returns time.monotonic() right after the rename."""
    tmp = os.path.join(stage, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(directory, name))
    return time.monotonic()


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = math.ceil(p * len(sorted_values)) - 1
    return sorted_values[max(0, min(len(sorted_values) - 1, k))]


class KeepAlive:
    """One keep-alive HTTP/1.1 connection; reconnects after a failure (counted by the caller)."""

    def __init__(self, host, port, timeout=5.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn = None

    def get(self, path, headers=None):
        """(status, response headers as a lower-case dict); raises on a failed exchange."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request("GET", path, headers=headers or {})
            resp = self.conn.getresponse()
            resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self.close()
            return resp.status, hdrs
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class BackgroundLoad:
    """Light keep-alive load: `conns` threads, each one connection at about `rps` requests/s.
    Every exchange that fails or answers anything but 200 is counted."""

    def __init__(self, host, port, path, conns, rps, headers=None):
        import threading

        self.ok = 0
        self.bad_status = 0
        self.failed = 0
        self.reconnects = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(host, port, path, rps, headers),
                                          daemon=True) for _ in range(conns)]
        for t in self._threads:
            t.start()

    def _run(self, host, port, path, rps, headers):
        c = KeepAlive(host, port)
        interval = 1.0 / rps if rps > 0 else 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                status, _ = c.get(path, headers)
                with self._lock:
                    if status == 200:
                        self.ok += 1
                    else:
                        self.bad_status += 1
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.failed += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        c.close()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(10)
        return {"load_ok": self.ok, "load_bad_status": self.bad_status, "load_failed": self.failed}


def generation_summaries(log_path):
    """[(generation, read_ms, compile_ms)] from the process log's reload summary lines."""
    out = []
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()
    except OSError:
        return out
    for m in re.finditer(r"config generation (\d+):([^\n]*)", text):
        rest = m.group(2)
        out.append((int(m.group(1)), read_ms(rest), compile_ms(rest)))
    return out


def cmd_reload_latency(args):
    """Rewrites reload.yaml `count` times (fsync + rename; plus SIGHUP in sighup mode) and times
    each change until a kept-alive probe connection is answered by the new version."""
    rec = {"kind": "reload", "name": args.name, "label": args.label, "mode": args.mode,
           "count": args.count, "group": args.group}
    probe = KeepAlive("127.0.0.1", args.port)
    load = None
    if args.load_conns:
        load = BackgroundLoad("127.0.0.1", args.port, args.load_path, args.load_conns, args.load_rps,
                              parse_headers(args.header))
    samples = []
    timeouts = 0
    probe_failures = 0
    gens_before = len(generation_summaries(args.log)) if args.log else 0
    try:
        # The probe starts on whichever version the gateway serves now.
        deadline = time.monotonic() + 10
        while True:
            try:
                if probe.get("/reload/x")[1].get(RELOAD_HEADER):
                    break
            except (OSError, http.client.HTTPException):
                probe_failures += 1
            if time.monotonic() > deadline:
                rec["error"] = "the /reload/ route never answered with the initial version"
                break
            time.sleep(0.05)
        for i in range(1, args.count + 1 if "error" not in rec else 0):
            token = f"{args.name}-{i}"
            t0 = replace_file(args.dir, args.stage, RELOAD_FILE, reload_doc(args.backend, token))
            if args.mode == "sighup":
                os.kill(args.pid, signal.SIGHUP)
            deadline = t0 + args.timeout
            while True:
                try:
                    seen = probe.get("/reload/x")[1].get(RELOAD_HEADER)
                except (OSError, http.client.HTTPException):
                    probe_failures += 1
                    seen = None
                now = time.monotonic()
                if seen == token:
                    samples.append((now - t0) * 1000)
                    break
                if now > deadline:
                    timeouts += 1
                    break
                time.sleep(args.poll_ms / 1000)
            if not alive(args.pid):
                rec["error"] = f"gateway died after {i} reloads"
                break
            time.sleep(args.gap_ms / 1000 * random.uniform(0.5, 1.5))
    finally:
        probe.close()
        if load:
            rec.update(load.stop())
    samples.sort()
    rec.update({"samples": len(samples), "timeouts": timeouts, "probe_failures": probe_failures,
                "p50_ms": percentile(samples, 0.50), "p99_ms": percentile(samples, 0.99),
                "max_ms": samples[-1] if samples else None,
                "min_ms": samples[0] if samples else None})
    if args.log:
        # Give the last reload's summary line a moment to reach the log file.
        time.sleep(0.2)
        gens = generation_summaries(args.log)[gens_before:]
        cms = sorted(c for _, _, c in gens if c is not None)
        rms = sorted(r for _, r, _ in gens if r is not None)
        rec.update({"reloads_logged": len(gens), "compile_p50_ms": percentile(cms, 0.5),
                    "compile_max_ms": cms[-1] if cms else None,
                    "read_p50_ms": percentile(rms, 0.5), "read_max_ms": rms[-1] if rms else None})
    if timeouts and "error" not in rec:
        rec["error"] = f"{timeouts} of {args.count} changes not served within {args.timeout} s"
    append(args.out, rec)
    line = (f"  {args.name}: {len(samples)}/{args.count} changes seen; write → served p50 "
            f"{fmt(rec['p50_ms'], '.1f')} ms, p99 {fmt(rec['p99_ms'], '.1f')} ms, max "
            f"{fmt(rec['max_ms'], '.1f')} ms")
    if rec.get("compile_p50_ms") is not None:
        line += (f"; logged read p50 {fmt(rec['read_p50_ms'], '.0f')} ms, compile p50 "
                 f"{fmt(rec['compile_p50_ms'], '.0f')} ms (max {fmt(rec['compile_max_ms'], '.0f')})")
    if load:
        line += (f"; background load {rec['load_ok']} ok, {rec['load_bad_status']} non-200, "
                 f"{rec['load_failed']} failed")
    print(line + (f"; FAILED: {rec['error']}" if "error" in rec else ""))
    return 1 if "error" in rec else 0


def metrics_generation(port):
    status, body = http_get("127.0.0.1", port, "/metrics")
    if status != 200:
        return None
    m = re.search(rb"^proxenos_config_generation (\d+)$", body, re.M)
    return int(m.group(1)) if m else None


def cmd_reload_memory(args):
    """`count` SIGHUP reloads, each changing a route and adding or removing a cluster, waiting for
    each through /metrics' proxenos_config_generation; RSS at checkpoints."""
    rec = {"kind": "reload-memory", "name": args.name, "label": args.label, "count": args.count,
           "group": args.group}
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",")} | {args.count})
    load = None
    if args.load_conns:
        load = BackgroundLoad("127.0.0.1", args.port, args.load_path, args.load_conns, args.load_rps,
                              parse_headers(args.header))
    series = []

    def settled_rss():
        # Same settle time at every checkpoint: workers drop the old snapshot on their next turn.
        time.sleep(args.settle)
        return rss_kib(args.pid)

    t_start = time.monotonic()
    try:
        gen = metrics_generation(args.admin_port)
        if gen is None:
            rec["error"] = "no proxenos_config_generation on /metrics"
        else:
            series.append((0, settled_rss()))
        for i in range(1, args.count + 1 if "error" not in rec else 0):
            replace_file(args.dir, args.stage, RELOAD_FILE,
                         reload_doc(args.backend, f"{args.name}-{i}", extra=i % 2 == 1))
            os.kill(args.pid, signal.SIGHUP)
            deadline = time.monotonic() + args.timeout
            while True:
                try:
                    now_gen = metrics_generation(args.admin_port)
                except (OSError, http.client.HTTPException):
                    now_gen = None
                if now_gen is not None and now_gen >= gen + i:
                    break
                if time.monotonic() > deadline or not alive(args.pid):
                    rec["error"] = f"reload {i} not seen on /metrics within {args.timeout} s"
                    break
                time.sleep(0.002)
            if "error" in rec:
                break
            if i in checkpoints:
                series.append((i, settled_rss()))
    finally:
        if load:
            rec.update(load.stop())
    rec["seconds"] = time.monotonic() - t_start
    rec["series"] = series
    append(args.out, rec)
    print(f"  {args.name}: RSS after N reloads: "
          + ", ".join(f"{n}: {kib / 1024:.1f} MiB" for n, kib in series)
          + f" ({rec['seconds']:.1f} s)"
          + (f"; background load {rec['load_ok']} ok, {rec['load_bad_status']} non-200, "
             f"{rec['load_failed']} failed" if load else "")
          + (f"; FAILED: {rec['error']}" if "error" in rec else ""))
    return 1 if "error" in rec else 0


def cmd_wait_log(args):
    """Waits until the regex appears in the file; fails early if --pid died."""
    rx = re.compile(args.pattern)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            with open(args.file, errors="replace") as f:
                if rx.search(f.read()):
                    return 0
        except OSError:
            pass
        if args.pid and not alive(args.pid):
            return 1
        time.sleep(0.05)
    return 1


COMPILE_RE = re.compile(r"compiled\b.*?\bin\s+([\d.]+)\s*(ms|s|us)\b", re.I)
# The process log's reload summary: "config generation N: ... read_ms=A compile_ms=B".
COMPILE_KV_RE = re.compile(r"\bcompile_ms=([\d.]+)")
READ_RE = re.compile(r"\bread in\s+([\d.]+)\s*ms\b|\bread_ms=([\d.]+)")


def compile_ms(text):
    """The last compile time the text reports, in either spelling, in ms."""
    found = [(m.start(), float(m.group(1)) * {"ms": 1.0, "s": 1e3, "us": 1e-3}[m.group(2).lower()])
             for m in COMPILE_RE.finditer(text)]
    found += [(m.start(), float(m.group(1))) for m in COMPILE_KV_RE.finditer(text)]
    return max(found)[1] if found else None


def read_ms(text):
    found = [float(m.group(1) or m.group(2)) for m in READ_RE.finditer(text)]
    return found[-1] if found else None


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
           "compile_ms": compile_ms(text), "read_ms": read_ms(text),
           "output_tail": text.strip()[-600:]}
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


TLS_PROXIES = (("nginx", "nginx"), ("haproxy", "HAProxy"), ("proxenos", "Proxenos"))


def best_runs(runs, prefix):
    """{proxy: (best run by CPU/request, good runs, all runs)}; runs are named prefix-PROXY-rN."""
    out = {}
    for key, _ in TLS_PROXIES:
        mine = [r for r in runs if r["name"].rsplit("-r", 1)[0] == f"{prefix}-{key}"]
        good = [r for r in mine if "error" not in r and r.get("cpu_us_per_req")]
        if mine:
            out[key] = (min(good, key=lambda r: r["cpu_us_per_req"]) if good else None, good, mine)
    return out


def handshake_share(ka, hs, meta):
    """', about N µs/request here' : wrk's connections × CPU per handshake ÷ requests, at most."""
    shares = []
    for key, _ in TLS_PROXIES:
        k, h = ka.get(key, (None,))[0], hs.get(key, (None,))[0]
        if k and h and k.get("requests"):
            shares.append(meta.get("conns", 50) * h["cpu_us_per_req"] / k["requests"])
    if not shares:
        return ""
    return f" (connections × CPU per handshake ÷ requests: at most {max(shares):.2f} µs/request here)"


def report_tls(res, meta, L):
    ka = best_runs([r for r in res if r["kind"] == "throughput" and r.get("group") == "tls"], "tls-ka")
    hs = best_runs([r for r in res if r["kind"] == "handshakes"], "tls-hs")
    probes = {r["name"]: r for r in res if r["kind"] == "tls-probe"}
    if not (ka or hs or probes):
        return
    L.append("## TLS termination")
    L.append("")
    L.append(f"One certificate for all three: {meta.get('tls_cert', 'ECDSA P-256')}, served for the "
             f"name `{meta.get('tls_host', 'localhost')}` (the name wrk and h2load send as SNI). Pinned "
             f"on every server: **{meta.get('tls_version', 'TLS 1.3')} only, cipher suite "
             f"{meta.get('tls_suite', '?')}, key exchange group {meta.get('tls_group', '?')}**; the "
             "certificate makes the signature ECDSA P-256 with SHA-256. nginx: `ssl_protocols`, "
             "`ssl_conf_command Ciphersuites`, `ssl_ecdh_curve`; HAProxy: `ssl-min-ver`/`ssl-max-ver`, "
             "`ciphersuites`, `curves` on the `bind`; Proxenos: a Listener `protocol: HTTPS`, a "
             "`kubernetes.io/tls` Secret and a Host with `tlsSecret` and `tls` (`min_tls_version`, "
             "`max_tls_version`, `cipher_suites`, `ecdh_curves`). Session tickets are each server's "
             "default (counted below). Same backend, one worker/thread each, all three running side "
             "by side and measured alternately; each one's lowest CPU per request is kept.")
    L.append("")
    if probes:
        L.append("| server | negotiated (openssl s_client) | signature | certificate check | "
                 "refuses (pinning checked) | tickets per full handshake | notes |")
        L.append("|---|---|---|---|---|---:|---|")
        for key, name in TLS_PROXIES:
            r = probes.get(f"tls-{key}")
            if not r:
                continue
            refused = "—" if "not pinned" in r.get("error", "") else r.get("refused", "—")
            L.append(f"| {name} | {r.get('protocol', '—')} {r.get('cipher', '—')} "
                     f"{r.get('group_name', '—')} | {r.get('signature', '—')} | {r['verify']} | "
                     f"{refused} | {r['tickets']} | {r.get('error', '')} |")
        L.append("")

    clear = {r["name"]: r for r in res if r["kind"] == "throughput" and r.get("group") == "proxy"
             and "error" not in r}
    if ka:
        dur = meta.get("tls_duration", 5)
        L.append("### HTTPS keep-alive requests")
        L.append("")
        L.append(f"wrk `-t1 -c{meta.get('conns', 50)} -d{dur}s --latency https://localhost:PORT/bench` "
                 "after a 1 s warm-up (wrk does not check certificates). The full handshakes of "
                 "wrk's connections fall inside the window too" + handshake_share(ka, hs, meta)
                 + ". \"vs cleartext\": minus the same server's CPU µs/request in the cleartext "
                 "table above, i.e. what TLS adds per keep-alive request.")
        L.append("")
        L.append("| server | req/s | p50 | p99 | CPU µs/req (best) | all runs | vs cleartext | CPU use | "
                 "wrk CPU | other load | notes |")
        L.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
        for key, name in TLS_PROXIES:
            if key not in ka:
                continue
            b, good, mine = ka[key]
            errs = "; ".join(r["error"] for r in mine if "error" in r)
            if not b:
                L.append(f"| {name} | — | — | — | — | — | — | — | — | — | FAILED: {errs} |")
                continue
            delta = "—"
            if key in clear:
                delta = f"{b['cpu_us_per_req'] - clear[key]['cpu_us_per_req']:+.2f} µs"
            L.append(f"| {name} | {b['rps']:.0f} | {fmt_us(b['p50_us'])} | {fmt_us(b['p99_us'])} | "
                     f"**{b['cpu_us_per_req']:.2f}** | "
                     + ", ".join(f"{r['cpu_us_per_req']:.2f}" for r in good)
                     + f" | {delta} | {pct(b.get('cpu_util'))} | {pct(b.get('wrk_cpu_util'))} | "
                     f"{pct(b.get('other_cpu_util'))} | {errs} |")
        L.append("")
    if hs:
        batch = next((v[2][0]["batch"] for v in hs.values()), 200)
        L.append("### Full TLS handshakes")
        L.append("")
        L.append(f"h2load `--h1 -t1 -n {batch} -c {batch}` run back to back for "
                 f"{meta.get('tls_duration', 5)} s after a 0.5 s warm-up: each of the {batch} clients "
                 "of a run opens one new connection with a fresh SSL object (no session offered, so "
                 "every handshake is a full one), sends one GET that is proxied to the backend, and "
                 "closes. CPU µs/handshake therefore covers accept, the full handshake, the ticket(s), "
                 "one proxied request and the close. Proxenos's `envoy_listener_ssl_session_reused` "
                 "is checked to stay at 0. Handshakes/s depends on how the two cores are shared with "
                 "h2load (whose own handshake work is about as heavy as the server's); CPU per "
                 "handshake is the number to compare.")
        L.append("")
        L.append("| server | full handshakes/s | CPU µs/handshake (best) | all runs | CPU use | "
                 "h2load CPU | other load | h2load negotiated | notes |")
        L.append("|---|---:|---:|---|---:|---:|---:|---|---|")
        for key, name in TLS_PROXIES:
            if key not in hs:
                continue
            b, good, mine = hs[key]
            errs = "; ".join(r["error"] for r in mine if "error" in r)
            if not b:
                L.append(f"| {name} | — | — | — | — | — | — | — | FAILED: {errs} |")
                continue
            saw = " ".join(b.get(k, "?") for k in ("protocol", "cipher", "group_name", "alpn"))
            notes = errs
            if "server_handshakes" in b:
                notes = (f"server counted {b['server_handshakes']} handshakes, "
                         f"{b['server_resumed']} resumed" + (f"; {errs}" if errs else ""))
            L.append(f"| {name} | {b['rps']:.0f} | **{b['cpu_us_per_req']:.1f}** | "
                     + ", ".join(f"{r['cpu_us_per_req']:.1f}" for r in good)
                     + f" | {pct(b.get('cpu_util'))} | {pct(b.get('client_cpu_util'))} | "
                     f"{pct(b.get('other_cpu_util'))} | {saw} | {notes} |")
        L.append("")

    rows = []
    for title, table, spec in (("CPU µs per HTTPS keep-alive request", ka, ".2f"),
                               ("CPU µs per full handshake (+ 1 request)", hs, ".1f")):
        px = table.get("proxenos", (None,))[0]
        others = [(table[k][0], n) for k, n in TLS_PROXIES[:2] if k in table and table[k][0]]
        if px and others:
            best, bname = min(others, key=lambda t: t[0]["cpu_us_per_req"])
            rows.append(f"| {title} | {px['cpu_us_per_req']:{spec}} | {best['cpu_us_per_req']:{spec}} "
                        f"({bname}) | **{px['cpu_us_per_req'] / best['cpu_us_per_req']:.2f}** |")
    px = ka.get("proxenos", (None,))[0]
    others = [(ka[k][0], n) for k, n in TLS_PROXIES[:2] if k in ka and ka[k][0]]
    if px and others:
        best, bname = min(others, key=lambda t: t[0]["p99_us"])
        rows.append(f"| HTTPS keep-alive p99 | {fmt_us(px['p99_us'])} | {fmt_us(best['p99_us'])} "
                    f"({bname}) | **{px['p99_us'] / best['p99_us']:.2f}** |")
    if rows:
        L.append("**Proxenos vs the best of nginx/HAProxy over TLS**")
        L.append("")
        L.append("| metric | Proxenos | best other | ratio (lower is better) |")
        L.append("|---|---:|---:|---:|")
        L.extend(rows)
        L.append("")


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

    report_tls(res, meta, L)

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

    reloads = [r for r in res if r["kind"] == "reload"]
    if reloads:
        L.append("## Reload latency")
        L.append("")
        L.append("Each change rewrites `reload.yaml` (write to a temp file, fsync, rename into the "
                 "config folder) so the `/reload/` Mapping answers with a new `x-bench-gen` header; "
                 "the time is from the rename until a request on an already-open keep-alive "
                 "connection is answered by the new version (polled every 1 ms). Meanwhile two more "
                 "keep-alive connections send ~100 req/s each through the gateway; every failed or "
                 "non-200 exchange is counted. `read`/`compile` are the gateway's own figures from "
                 "its reload summary log line (whole ms).")
        L.append("")
        L.append("| scenario | changes seen | p50 | p99 | max | logged read / compile p50 (max) | "
                 "load during reloads | notes |")
        L.append("|---|---:|---:|---:|---:|---|---|---|")
        for r in reloads:
            logged = "—"
            if r.get("compile_p50_ms") is not None:
                logged = (f"{fmt(r.get('read_p50_ms'), '.0f')} / {fmt(r['compile_p50_ms'], '.0f')} ms "
                          f"({fmt(r.get('read_max_ms'), '.0f')} / {fmt(r.get('compile_max_ms'), '.0f')})")
            bg = "—"
            if "load_ok" in r:
                bg = f"{r['load_ok']} ok, {r['load_bad_status']} non-200, {r['load_failed']} failed"
            L.append(f"| {r['label']} | {r['samples']}/{r['count']} | {fmt(r.get('p50_ms'), '.1f', ' ms')} | "
                     f"{fmt(r.get('p99_ms'), '.1f', ' ms')} | {fmt(r.get('max_ms'), '.1f', ' ms')} | "
                     f"{logged} | {bg} | {r.get('error', '')} |")
        L.append("")
        watch = next((r for r in reloads if r.get("mode") == "watch"), None)
        if watch and watch.get("p99_ms") is not None:
            verdict = "meets" if watch["p99_ms"] <= 100 else "misses"
            L.append(f"Goal (issue 3): a changed route served within 100 ms of the file's write, p99 — "
                     f"the inotify path **{verdict}** it ({watch['p99_ms']:.0f} ms); its floor is the "
                     "watcher's debounce (quiet time after the last event before reloading).")
            L.append("")
        big = next((r for r in reloads if r["name"] == "reload-10000"), None)
        if big and big.get("max_ms") is not None:
            verdict = "meets" if big["max_ms"] < 300 else "misses"
            L.append(f"Goal (issue 3): a reload of 10,000 Mappings compiled and applied in under 300 ms — "
                     f"**{verdict}** it (SIGHUP → changed route serving, max of {big['samples']}: "
                     f"{big['max_ms']:.0f} ms).")
            L.append("")

    cfg = [r for r in res if r.get("group") == "cfgscale"]
    if cfg:
        L.append("## Config scale: compile time and memory")
        L.append("")
        L.append("`proxenos validate DIR` (its own read/compile figures, and wall time and max RSS of "
                 "the whole process from `wait4`), then `proxenos run --workers 1 --no-watch` on the "
                 "same folder: time to ready, and VmRSS 0.5 s after `/ambassador/v0/check_ready` "
                 "answers 200 and the \"config generation\" line is logged.")
        L.append("")
        L.append("| Mappings | validate: read | validate: compile | validate: wall, max RSS | "
                 "run: ready after | run: compile (logged) | run: RSS when ready |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|")
        for n in (100, 1000, 10000):
            v = next((r for r in cfg if r["name"] == f"validate-{n}"), None)
            rr = next((r for r in cfg if r["name"] == f"run-{n}"), None)
            if not v and not rr:
                continue
            vcols = ["—", "—", "—"]
            if v:
                vcols = [fmt(v.get("read_ms"), ".1f", " ms"), fmt(v.get("compile_ms"), ".1f", " ms"),
                         f"{v['wall_s']:.2f} s, {v['max_rss_kib'] / 1024:.1f} MiB"
                         + (f" (exit {v['exit']})" if v.get("exit") != 0 else "")]
            rcols = ["—", "—", "—"]
            if rr:
                rcols = [f"{rr['seconds']:.2f} s", fmt(rr.get("compile_ms"), ".0f", " ms"),
                         f"{rr['rss_kib'] / 1024:.1f} MiB"]
            L.append(f"| {n:,} | " + " | ".join(vcols + rcols) + " |")
        L.append("")

    mem = [r for r in res if r["kind"] == "reload-memory"]
    for r in mem:
        L.append(f"## Memory across {r['count']:,} reloads ({r['label']})")
        L.append("")
        L.append("SIGHUP reloads one after another, each changing a route's header and alternately "
                 "adding and removing a Mapping with a cluster of its own; each is waited for through "
                 "`proxenos_config_generation` on `/metrics`. VmRSS 0.3 s after the checkpoint's "
                 "reload, under ~100 req/s of keep-alive load.")
        L.append("")
        series = r.get("series", [])
        if series:
            L.append("| reloads | " + " | ".join(f"{n:,}" for n, _ in series) + " |")
            L.append("|---|" + "---:|" * len(series))
            L.append("| RSS | " + " | ".join(f"{kib / 1024:.1f} MiB" for _, kib in series) + " |")
            L.append("")
            by = dict(series)
            if 100 in by and r["count"] in by:
                growth = by[r["count"]] - by[100]
                L.append(f"Growth from reload 100 to reload {r['count']:,}: **{growth:+d} KiB** "
                         f"({growth * 1024 / (r['count'] - 100):+.0f} B per reload); "
                         f"{r['seconds']:.1f} s in all.")
        if "load_ok" in r:
            L.append(f"Background load: {r['load_ok']} ok, {r['load_bad_status']} non-200, "
                     f"{r['load_failed']} failed.")
        if r.get("error"):
            L.append(f"FAILED: {r['error']}")
        L.append("")

    logruns = [r for r in res if r["kind"] == "throughput" and r.get("group") == "accesslog"]
    if logruns:
        dur = meta.get("log_duration", 5)
        L.append("## Access log overhead")
        L.append("")
        L.append(f"`proxenos run --workers 1`, one Mapping, wrk as above but {dur} s runs after a 1 s "
                 "warm-up; the variants run side by side and are measured alternately, three times "
                 "each; the lowest CPU/request of each is kept. `envoy_log_path: /dev/null` is the "
                 "log off (nothing is formatted; Emissary's documented switch, and how the gateway "
                 "runs in the comparisons above, like its peers); the other variants write to a file. "
                 "The constant one-character format isolates the record, buffer and hand-off to the "
                 "writer thread from the formatting.")
        L.append("")
        L.append("| access log | CPU µs/req (best) | all runs | vs off | req/s | p99 | notes |")
        L.append("|---|---:|---|---:|---:|---:|---|")
        best = {}
        order = []
        for r in logruns:
            key = r["name"].rsplit("-r", 1)[0]
            if key not in order:
                order.append(key)
        for key in order:
            good = [r for r in logruns if r["name"].rsplit("-r", 1)[0] == key and "error" not in r]
            if good:
                best[key] = min(good, key=lambda r: r["cpu_us_per_req"])
        floor = best.get("log-off")
        for key in order:
            mine = [r for r in logruns if r["name"].rsplit("-r", 1)[0] == key]
            b = best.get(key)
            if not b:
                L.append(f"| {mine[0]['label']} | — | — | — | — | — | "
                         f"FAILED: {mine[0].get('error', '')} |")
                continue
            good = [r for r in mine if "error" not in r]
            delta = "—"
            if floor and b is not floor:
                delta = f"{b['cpu_us_per_req'] - floor['cpu_us_per_req']:+.2f} µs"
            L.append(f"| {b['label']} | **{b['cpu_us_per_req']:.2f}** | "
                     + ", ".join(f"{r['cpu_us_per_req']:.2f}" for r in good)
                     + f" | {delta} | {b['rps']:.0f} | {fmt_us(b['p99_us'])} | "
                     + "; ".join(r["error"] for r in mine if "error" in r) + " |")
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

    import h2bench  # the HTTP/2 section (bench/h2bench.py writes its own records)

    h2bench.report(res, L)

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
    p.add_argument("--tls", action="store_true", help="HTTPS to 127.0.0.1, verified against --cafile")
    p.add_argument("--sni", default="localhost")
    p.add_argument("--cafile")
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

    p = sub.add_parser("tls-probe")
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sni", default="localhost")
    p.add_argument("--cafile", required=True)
    p.add_argument("--path", default="/bench")
    p.add_argument("--header", action="append")
    p.add_argument("--openssl", default="openssl")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_tls_probe)

    p = sub.add_parser("handshakes")
    for a in ("--name", "--label", "--url", "--out", "--log", "--process"):
        p.add_argument(a, required=True)
    p.add_argument("--group", default="tls")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-port", type=int, help="Proxenos: check its TLS counters on /metrics")
    p.add_argument("--backend-pid", type=int)
    p.add_argument("--h2load", default="h2load")
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--header", action="append")
    p.set_defaults(fn=cmd_handshakes)

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
    p.add_argument("--reload", action="store_true",
                   help=f"also write {RELOAD_FILE}: the Mapping the reload tests rewrite")
    p.add_argument("--module", help="JSON object: the ambassador Module's config")
    p.add_argument("--tls-cert", help="PEM certificate: an HTTPS Listener + Secret + Host instead")
    p.add_argument("--tls-key")
    p.add_argument("--tls-host", default="localhost")
    p.add_argument("--tls-version", default="v1.3")
    p.add_argument("--tls-suite", default="TLS_AES_128_GCM_SHA256")
    p.add_argument("--tls-group", default="X25519")
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

    p = sub.add_parser("reload-latency")
    p.add_argument("--name", required=True)
    p.add_argument("--label", default="")
    p.add_argument("--group", default="reload")
    p.add_argument("--mode", choices=("watch", "sighup"), required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--stage", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--timeout", type=float, default=5)
    p.add_argument("--poll-ms", type=float, default=1)
    p.add_argument("--gap-ms", type=float, default=50)
    p.add_argument("--load-conns", type=int, default=2)
    p.add_argument("--load-rps", type=float, default=100)
    p.add_argument("--load-path", default="/bench")
    p.add_argument("--header", action="append")
    p.add_argument("--log", help="the gateway's process log, for the logged compile times")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_reload_latency)

    p = sub.add_parser("reload-memory")
    p.add_argument("--name", required=True)
    p.add_argument("--label", default="")
    p.add_argument("--group", default="reload")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--stage", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--checkpoints", default="1,100,250,500,750")
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--load-conns", type=int, default=1)
    p.add_argument("--load-rps", type=float, default=100)
    p.add_argument("--load-path", default="/bench")
    p.add_argument("--header", action="append")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_reload_memory)

    p = sub.add_parser("wait-log")
    p.add_argument("file")
    p.add_argument("pattern")
    p.add_argument("--pid", type=int)
    p.add_argument("--timeout", type=float, default=10)
    p.set_defaults(fn=cmd_wait_log)

    p = sub.add_parser("report")
    p.add_argument("results")
    p.add_argument("--md")
    p.set_defaults(fn=cmd_report)

    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
