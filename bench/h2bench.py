#!/usr/bin/python3
"""HTTP/2 part of bench/run: h2load (h2c, prior knowledge) against Proxenos, nginx and HAProxy on
one echo-backend, which speaks HTTP/1.1 and h2c on one port.

  h2bench.py run --build DIR --tmp DIR --out RESULTS.jsonl [--nginx P] [--haproxy P] [--h2load P]
  h2bench.py report RESULTS.jsonl          # prints the Markdown section (bench/run calls report())

For each proxy, two instances one after the other (one worker/thread each): h2c in → HTTP/1.1 out,
and h2c in → h2c out (Proxenos: Mapping `grpc: true`; nginx: `grpc_pass grpc://`; HAProxy:
`server … proto h2`). Each instance gets a GET run; the h2c-out instance also gets gRPC runs
(echo.Echo/Unary, and echo.Echo/ServerStream with `x-count` messages per call). Every run is a
1 s h2load warm-up, then `h2load -t1 -c C -m M -D N --log-file` with the proxy's utime+stime
(/proc/PID/stat) read before and after; p50/p99 come from the per-request log. Every process is
started here and stopped by its PID (TERM, then KILL) on the way out, whatever happens.
Standard library only, like benchlib.py (whose /proc helpers it uses).
"""

import argparse
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
from benchlib import CLK_TCK, alive, append, cpu_ticks, fmt, fmt_us, pct, rss_kib  # noqa: E402

MSG_BYTES = 64  # gRPC message payload, both directions
HDR = "x-echo-response-bytes: 64"
GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"]


# ------------------------------------------------------------------------------------- processes


class Procs:
    """Children started here; stop() is TERM, 5 s grace, KILL, then KILL of any leftover children
    (nginx workers). Output goes to TMP/NAME.log."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.live = []
        self.notes = []

    def start(self, name, argv, quiet_stdout=False):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL if quiet_stdout else log,
                             stderr=log, stdin=subprocess.DEVNULL)
        p.bench_name = name
        p.bench_log = log
        self.live.append(p)
        return p

    def stop(self, p):
        if p not in self.live:
            return
        self.live.remove(p)
        kids = benchlib.children(p.pid) if p.poll() is None else []
        rc = p.poll()
        if rc is None:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
        elif rc < 0 and -rc not in (signal.SIGTERM, signal.SIGKILL):
            self.notes.append(f"{p.bench_name} (pid {p.pid}) died from signal {-rc} before it was "
                              "stopped")
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        p.bench_log.close()

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p)

    def tail(self, name, n=5):
        try:
            with open(os.path.join(self.tmp, name + ".log"), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + line for line in lines[-n:])


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("0.0.0.0", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# --------------------------------------------------------------------------- a tiny h2c client


def _frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def _lit(name, value):  # HPACK literal without indexing, new name, no Huffman (short strings)
    name, value = name.encode(), value.encode()
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def h2c_request(port, path, headers=(), body=None, timeout=2.0):
    """One request over a fresh h2c connection. Returns (status or None, response DATA bytes).
    The status is read from a fully indexed static :status (how every server here sends 200)."""
    fields = [(":method", "POST" if body is not None else "GET"), (":scheme", "http"),
              (":path", path), (":authority", f"127.0.0.1:{port}")] + list(headers)
    block = b"".join(_lit(n, v) for n, v in fields)
    out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, struct.pack(">HI", 4, 1 << 24))
    out += _frame(8, 0, 0, struct.pack(">I", (1 << 30) - 65535))
    out += _frame(1, 0x4 | (0 if body is not None else 0x1), 1, block)
    if body is not None:
        out += _frame(0, 0x1, 1, body)
    status, data = None, b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(out)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                ftype, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + n], buf[9 + n:]
                if ftype == 4 and not flags & 1:
                    s.sendall(_frame(4, 1, 0))
                if sid != 1:
                    continue
                if ftype == 1 and status is None and payload:
                    status = {0x88: 200, 0x8C: 400, 0x8D: 404, 0x8E: 500}.get(payload[0], 0)
                elif ftype == 0:
                    data += payload
                elif ftype == 3:
                    return status, data
                if ftype in (0, 1) and flags & 1:
                    return status, data
    return status, data


def wait_h2c(port, proc, path="/", timeout=15.0, headers=()):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return f"exited ({last})"
        try:
            status, _ = h2c_request(port, path, headers)
            if status == 200:
                return None
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    return f"not ready after {timeout:.0f} s ({last})"


def grpc_message(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


# ---------------------------------------------------------------------------------- measurement


def upstream_connections(port):
    """ESTABLISHED loopback connections to the backend's port (the proxy's upstream pool)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[2].split(":")[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def h2load_cmd(args, url, duration, log=None, headers=(), data=None):
    cmd = [args.h2load, "-t1", f"-c{args.conns}", f"-m{args.streams}", "-D", str(duration)]
    if log:
        cmd.append(f"--log-file={log}")
    for h in headers:
        cmd += ["-H", h]
    if data:
        cmd += ["-d", data]
    cmd.append(url)
    return cmd


def run_h2load(cmd, timeout, on_midpoint=None, midpoint=None):
    """Runs h2load; returns (exit code, output, its CPU seconds, value of on_midpoint())."""
    mid_value = None
    with open(os.devnull, "wb") as devnull, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=devnull) as p:
        out = b""
        os.set_blocking(p.stdout.fileno(), False)
        t0 = time.monotonic()
        try:
            while True:
                try:
                    chunk = p.stdout.read()
                    if chunk:
                        out += chunk
                except BlockingIOError:
                    pass
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if on_midpoint and mid_value is None and time.monotonic() - t0 >= midpoint:
                    mid_value = on_midpoint()
                if time.monotonic() - t0 > timeout:
                    p.kill()
                    pid, status, ru = os.wait4(p.pid, 0)
                    break
                time.sleep(0.02)
        except BaseException:  # interrupted: the load must not outlive the bench
            p.kill()
            raise
        rest = p.stdout.read()
        if rest:
            out += rest
        p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, out.decode("utf-8", "replace"), ru.ru_utime + ru.ru_stime, mid_value


def parse_h2load(out):
    import re

    r = {}
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    r["seconds"], r["rps"] = (float(m.group(1)), float(m.group(2))) if m else (None, None)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        (r["total"], _, r["done"], r["succeeded"], r["failed"], r["errored"],
         r["timeouts"]) = map(int, m.groups())
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    r["status_2xx"] = int(m.group(1)) if m else 0
    r["status_other"] = sum(int(g) for g in m.groups()[1:]) if m else 0
    return r


LAT_BUCKET_US = 10  # resolution of the latency histogram kept per round (pooled in the report)


def latency_percentiles(log_path):
    """(p50, p99, count, histogram) of the 2xx requests in an h2load --log-file; the histogram
    maps a 10 µs bucket (as a string, for JSON) to its count, so rounds can be pooled later."""
    durations = []
    try:
        with open(log_path) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3 and parts[1].startswith("2"):
                    durations.append(int(parts[2]))
    except OSError:
        return None, None, 0, {}
    durations.sort()
    if not durations:
        return None, None, 0, {}
    hist = {}
    for d in durations:
        key = str(d // LAT_BUCKET_US)
        hist[key] = hist.get(key, 0) + 1
    return (benchlib.percentile(durations, 0.50), benchlib.percentile(durations, 0.99),
            len(durations), hist)


def hist_percentile(hist, p):
    """Nearest-rank percentile (µs, the bucket's upper edge) of a pooled latency histogram."""
    items = sorted((int(k), v) for k, v in hist.items())
    total = sum(v for _, v in items)
    if total == 0:
        return None
    rank = max(1, math.ceil(p * total))
    seen = 0
    for bucket, count in items:
        seen += count
        if seen >= rank:
            return (bucket + 1) * LAT_BUCKET_US
    return (items[-1][0] + 1) * LAT_BUCKET_US


def measure(args, rec, pid, backend_pid, url, backend_port, headers=(), data=None, messages=1):
    """Warm-up, then the measured h2load run; appends `rec` (completed) to the results file."""
    rec.update({"kind": "h2", "url": url, "conns": args.conns, "streams": args.streams,
                "duration": args.duration})
    if args.warmup > 0:
        run_h2load(h2load_cmd(args, url, args.warmup, headers=headers, data=data),
                   args.warmup + 20)
    log = os.path.join(args.tmp, rec["name"] + ".tsv")
    if not alive(pid):
        rec["error"] = "process died during the warm-up"
    else:
        others = [p for p in {backend_pid} if p and p != pid and alive(p)]
        t0, o0, s0 = cpu_ticks(pid), sum(cpu_ticks(p) for p in others), benchlib.system_busy_ticks()
        w0 = time.monotonic()
        rc, out, h2_cpu, conns = run_h2load(
            h2load_cmd(args, url, args.duration, log=log, headers=headers, data=data),
            args.duration + 30, on_midpoint=lambda: upstream_connections(backend_port),
            midpoint=args.duration / 2)
        w1 = time.monotonic()
        s1 = benchlib.system_busy_ticks()
        o1 = sum(cpu_ticks(p) for p in others if alive(p))
        t1 = cpu_ticks(pid) if alive(pid) else None
        cmd = h2load_cmd(args, url, args.duration, log=log, headers=headers, data=data)
        with open(args.log, "a") as f:
            f.write(f"### {rec['name']}\n{' '.join(cmd)}\n{out}\n")
        r = parse_h2load(out)
        ok = r.get("succeeded", 0)
        rec.update(r)
        rec["wall_s"] = w1 - w0
        rec["upstream_conns"] = conns if backend_pid != pid else None
        rec["p50_us"], rec["p99_us"], rec["logged"], rec["lat_hist"] = latency_percentiles(log)
        try:
            os.unlink(log)
        except OSError:
            pass
        bad = r.get("failed", 0) + r.get("errored", 0) + r.get("timeouts", 0) + r["status_other"]
        if t1 is None:
            rec["error"] = "process died during the run"
        elif rc != 0 or r["rps"] is None or ok == 0:
            rec["error"] = f"h2load failed (exit {rc}): {out.strip()[-200:]}"
        elif bad > 0.01 * ok or r["status_2xx"] < 0.99 * ok:
            rec["error"] = f"{bad} of {r.get('total', 0)} requests failed or were not 2xx"
        else:
            cpu = (t1 - t0) / CLK_TCK
            rec["cpu_s"] = cpu
            rec["cpu_us_per_req"] = cpu * 1e6 / ok
            rec["cpu_util"] = cpu / rec["wall_s"]
            rec["h2load_cpu_util"] = h2_cpu / rec["wall_s"]
            rec["other_cpu_util"] = max(0.0, ((s1 - s0) - (t1 - t0) - (o1 - o0)) / CLK_TCK
                                        - h2_cpu) / rec["wall_s"]
            rec["rss_kib"] = rss_kib(pid)
            rec["messages_per_call"] = messages
            rec["msgs_per_s"] = ok * messages / r["seconds"] if r["seconds"] else None
            rec["cpu_us_per_msg"] = cpu * 1e6 / (ok * messages)
    append(args.out, rec)
    if "error" in rec:
        print(f"  {rec['name']}: FAILED: {rec['error']}")
    else:
        extra = ""
        if messages > 1:
            extra = (f", {rec['msgs_per_s']:.0f} msg/s, {rec['cpu_us_per_msg']:.2f} CPU us/msg")
        print(f"  {rec['name']}: {rec['rps']:.0f} req/s, p50 {fmt_us(rec['p50_us'])}, "
              f"p99 {fmt_us(rec['p99_us'])}, {rec['cpu_us_per_req']:.2f} CPU us/req{extra} "
              f"({rec['cpu_util'] * 100:.0f}% of a core), RSS {rec['rss_kib'] / 1024:.1f} MiB, "
              f"upstream connections {rec['upstream_conns']}; h2load "
              f"{rec['h2load_cpu_util'] * 100:.0f}%, other load {rec['other_cpu_util'] * 100:.0f}%")
    return "error" not in rec


# ------------------------------------------------------------------------------------- proxies


def nginx_config(args, name, port, backend_port, upstream_h2):
    d = os.path.join(args.tmp, name)
    os.makedirs(d, exist_ok=True)
    v = subprocess.run([args.nginx, "-V"], capture_output=True, text=True).stderr
    temp = [f"client_body_temp_path {d}/client_body;"]
    for m in ("proxy", "fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{m}_module" not in v:
            temp.append(f"{m}_temp_path {d}/{m};")
    if upstream_h2:
        location = "grpc_pass grpc://be;"
    else:
        location = 'proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";'
    conf = f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
access_log off;
{chr(10).join(temp)}
keepalive_requests 1000000; keepalive_timeout 300s;
upstream be {{ server 127.0.0.1:{backend_port}; keepalive 64; keepalive_requests 1000000; }}
server {{
  listen 127.0.0.1:{port} http2;
  location / {{ {location} }}
}}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return [args.nginx, "-p", d, "-c", path, "-e", f"{d}/error.log", "-g", "daemon off;"]


def haproxy_config(args, name, port, backend_port, upstream_h2, forwarding=False):
    path = os.path.join(args.tmp, name + ".cfg")
    # What Proxenos (as Envoy) adds to every request, for the same-work comparison.
    extra = ("    option forwardfor\n    http-request set-header x-forwarded-proto http\n"
             "    http-request set-header x-request-id %[uuid]\n") if forwarding else ""
    with open(path, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:{port} proto h2
{extra}    default_backend be
backend be
    server s1 127.0.0.1:{backend_port}{' proto h2' if upstream_h2 else ''}
""")
    return [args.haproxy, "-f", path, "-db"]


def proxenos_config(args, name, port, backend_port, upstream_h2):
    d = os.path.join(args.tmp, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write(f"""apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: bench-h2c, namespace: default}}
spec:
  port: {port}
  protocol: HTTP
  securityModel: XFP
  hostBinding: {{namespace: {{from: ALL}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: bench-h2, namespace: default}}
spec:
  hostname: "*"
  prefix: /
  rewrite: ""
  service: 127.0.0.1:{backend_port}
  grpc: {'true' if upstream_h2 else 'false'}
---
# Its peers run without an access log; this is Emissary's way to turn it off.
apiVersion: getambassador.io/v3alpha1
kind: Module
metadata: {{name: ambassador, namespace: default}}
spec:
  config: {{envoy_log_path: /dev/null}}
""")
    admin = free_ports(1)[0]
    return [os.path.join(args.build, "proxenos"), "run", "--config", d, "--workers", "1",
            "--admin-address", f"127.0.0.1:{admin}"]


def haproxy_forwarding_config(args, name, port, backend_port, upstream_h2):
    return haproxy_config(args, name, port, backend_port, upstream_h2, forwarding=True)


PROXIES = [
    # key, label, measured process, config builder, h2c-out how
    ("nginx", "nginx (1 worker)", "nginx worker", nginx_config, "grpc_pass grpc://"),
    ("haproxy", "HAProxy (nbthread 1)", "haproxy", haproxy_config, "server … proto h2"),
    ("proxenos", "Proxenos (--workers 1)", "proxenos", proxenos_config, "Mapping grpc: true"),
]
# --same-work: HAProxy also adding x-forwarded-for, x-forwarded-proto and a UUID x-request-id,
# as Proxenos does. Reported beside the comparison with the peers' defaults, not in it.
SAME_WORK = ("haproxy-fwd", "HAProxy + forwarding fields", "haproxy", haproxy_forwarding_config,
             "server … proto h2")
MODES = [("h1", "h2c → HTTP/1.1"), ("h2", "h2c → h2c")]


def grpc_runs(args, files, port):
    """(suffix, label, path, headers, data file, messages per call, probe check)."""
    n = args.grpc_count
    return [
        ("grpc-unary", "gRPC unary (echo.Echo/Unary)", "/echo.Echo/Unary", GRPC_HEADERS,
         files["unary"], 1, lambda data: data == grpc_message(b"a" * MSG_BYTES)),
        ("grpc-stream", f"gRPC server streaming ({n} msg/call, echo.Echo/ServerStream)",
         "/echo.Echo/ServerStream",
         GRPC_HEADERS + [f"x-count: {n}", f"x-message-bytes: {MSG_BYTES}"], files["unary"], n,
         lambda data: data == grpc_message(b"a" * MSG_BYTES) * n),
    ]


def probe_grpc(port, path, headers, body, check):
    try:
        status, data = h2c_request(port, path, [tuple(h.split(": ", 1)) for h in headers], body,
                                   timeout=5)
    except OSError as e:
        return f"probe failed: {e}"
    if status != 200 or not check(data):
        return f"probe got status {status} and {len(data)} bytes of DATA: {data[:40]!r}"
    return None


def cmd_run(args):
    os.makedirs(args.tmp, exist_ok=True)
    procs = Procs(args.tmp)

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        return run(args, procs)
    finally:
        procs.stop_all()
        for n in procs.notes:
            print(f"  NOTE: {n}")
            append(args.out, {"kind": "note", "text": f"HTTP/2: {n}"})


def note(args, text):
    print(f"  NOTE: {text}")
    append(args.out, {"kind": "note", "text": f"HTTP/2: {text}"})


def run(args, procs):
    h2v = subprocess.run([args.h2load, "--version"], capture_output=True, text=True).stdout.strip()
    append(args.out, {"kind": "meta", "h2load": h2v, "h2_duration": args.duration,
                      "h2_warmup": args.warmup, "h2_conns": args.conns,
                      "h2_streams": args.streams, "grpc_count": args.grpc_count,
                      "h2_rounds": args.rounds,
                      "grpc_echo_metadata": args.grpc_echo_metadata})
    unary = os.path.join(args.tmp, "grpc-unary.bin")
    with open(unary, "wb") as f:
        f.write(grpc_message(b"a" * MSG_BYTES))
    files = {"unary": unary}

    (bport,) = free_ports(1)
    echo_bin = os.path.join(args.build, "echo-backend")
    # Metadata echo off: the backend's gRPC answers would otherwise carry back every field a
    # proxy adds (x-forwarded-*, x-request-id), so the answer, and the proxy's work decoding and
    # re-encoding it, would grow with the proxy instead of staying the same for all of them.
    backend = procs.start("h2-echo", [echo_bin, "--listen", f"127.0.0.1:{bport}", "--name",
                                      "bench-h2", "--grpc-echo-metadata",
                                      args.grpc_echo_metadata])
    why = wait_h2c(bport, backend, "/bench", 10)
    if why:
        note(args, f"echo-backend (h2c) {why}: HTTP/2 scenarios skipped\n{procs.tail('h2-echo')}")
        return 1

    # The backend alone, over h2c: what the proxies' numbers include on the far side.
    base = f"http://127.0.0.1:{bport}"
    print("  direct → echo-backend (h2c)")
    measure(args, {"name": "h2-direct-get", "group": "h2", "proxy": "direct",
                   "label": "direct → echo-backend", "mode": "h2c", "process": "echo-backend"},
            backend.pid, backend.pid, base + "/bench", bport, headers=[HDR])
    for suffix, label, path, headers, data, n, check in grpc_runs(args, files, bport):
        why = probe_grpc(bport, path, headers, grpc_message(b"a" * MSG_BYTES), check)
        rec = {"name": f"h2-direct-{suffix}", "group": "grpc", "proxy": "direct",
               "label": "direct → echo-backend", "mode": label, "process": "echo-backend"}
        if why:
            rec["error"] = why
            append(args.out, rec)
            print(f"  {rec['name']}: FAILED: {why}")
            continue
        measure(args, rec, backend.pid, backend.pid, base + path, bport, headers=headers,
                data=data, messages=n)

    proxenos_bin = os.path.join(args.build, "proxenos")
    tools = {"nginx": args.nginx, "haproxy": args.haproxy,
             "haproxy-fwd": args.haproxy if args.same_work else "",
             "proxenos": proxenos_bin if os.access(proxenos_bin, os.X_OK) else ""}
    for rnd in range(1, args.rounds + 1):
        run_proxies(args, procs, tools, files, bport, backend, rnd)
    return 0


def run_proxies(args, procs, tools, files, bport, backend, rnd):
    """One round: every proxy and upstream protocol, each a fresh process measured alone."""
    for key, label, process, build_config, how in PROXIES + [SAME_WORK]:
        if not tools[key]:
            if rnd == 1 and key != SAME_WORK[0]:
                note(args, f"{label}: not available, skipped")
            continue
        for mode, mode_label in MODES:
            name = f"h2-{key}-{mode}"
            (port,) = free_ports(1)
            argv = build_config(args, name, port, bport, mode == "h2")
            print(f"  {label}, {mode_label} (round {rnd} of {args.rounds})")
            p = procs.start(name, argv, quiet_stdout=(key == "proxenos"))
            why = wait_h2c(port, p, "/bench", 30)
            pid = p.pid
            if not why and key == "nginx":
                kids = []
                deadline = time.monotonic() + 5
                while not kids and time.monotonic() < deadline:
                    kids = benchlib.children(p.pid)
                    time.sleep(0.05)
                if not kids:
                    why = "no nginx worker"
                else:
                    pid = kids[0]
            if why:
                note(args, f"{label} ({mode_label}) {why}: skipped\n{procs.tail(name)}")
                procs.stop(p)
                continue
            url = f"http://127.0.0.1:{port}"
            common = {"proxy": key, "label": label, "process": process, "how": how,
                      "round": rnd}
            measure(args, dict(common, name=f"{name}-get", group="h2", mode=mode_label),
                    pid, backend.pid, url + "/bench", bport, headers=[HDR])
            if mode == "h2":
                for suffix, glabel, path, headers, data, n, check in grpc_runs(args, files, port):
                    rec = dict(common, name=f"{name}-{suffix}", group="grpc", mode=glabel)
                    why = probe_grpc(port, path, headers, grpc_message(b"a" * MSG_BYTES), check)
                    if why:
                        rec["error"] = why
                        append(args.out, rec)
                        print(f"  {rec['name']}: FAILED: {why}")
                        continue
                    measure(args, rec, pid, backend.pid, url + path, bport, headers=headers,
                            data=data, messages=n)
            procs.stop(p)


# -------------------------------------------------------------------------------------- report


def best_rounds(runs):
    """One record per proxy and scenario: the round with the lowest CPU per request (message),
    the others' figures kept in `round_cpu` for the notes. Interference from the rest of the
    machine only ever adds CPU, so the lowest of alternating rounds is the fairest figure, and
    every proxy gets the same treatment. Latency is not picked from one round: one round's p99
    moves by ±10 % from run to run on a 2-core machine, so `p50_all_us`/`p99_all_us` pool every
    good round's requests (`round_p99` keeps each round's own)."""
    groups = {}
    order = []
    for r in runs:
        key = (r.get("proxy"), r.get("group"), r.get("mode"))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    out = []
    for key in order:
        rs = groups[key]
        field = "cpu_us_per_req" if key[1] == "h2" else "cpu_us_per_msg"
        good = [r for r in rs if "error" not in r]
        if not good:
            out.append(rs[0])
            continue
        best = dict(min(good, key=lambda r: r[field]))
        pooled = {}
        for r in good:
            for bucket, count in (r.get("lat_hist") or {}).items():
                pooled[bucket] = pooled.get(bucket, 0) + count
        best.pop("lat_hist", None)
        if pooled:
            best["p50_all_us"] = hist_percentile(pooled, 0.50)
            best["p99_all_us"] = hist_percentile(pooled, 0.99)
        if len(rs) > 1:
            best["round_cpu"] = [r.get(field) for r in rs if "error" not in r]
            best["round_p99"] = [r.get("p99_us") for r in rs if "error" not in r]
            best["round_errors"] = len(rs) - len(good)
        out.append(best)
    return out


def rounds_note(r, digits):
    if "round_cpu" not in r:
        return ""
    text = "rounds: " + ", ".join(f"{v:.{digits}f}" for v in r["round_cpu"])
    if r.get("round_p99"):
        text += "; p99 " + ", ".join(fmt_us(v) for v in r["round_p99"])
    if r.get("round_errors"):
        text += f" ({r['round_errors']} failed)"
    return text


def p99_of(r):
    """The p99 the comparison uses: pooled over all rounds when there were several."""
    return r.get("p99_all_us") or r.get("p99_us")


def p50_of(r):
    return r.get("p50_all_us") or r.get("p50_us")


def report(res, L):
    """Appends the HTTP/2 section to the report lines `L` (nothing if the scenario did not run)."""
    runs = best_rounds([r for r in res if r.get("kind") == "h2"])
    if not runs:
        return
    meta = {}
    for r in res:
        if r.get("kind") == "meta":
            meta.update(r)
    L.append("## HTTP/2 (h2c) and gRPC")
    L.append("")
    L.append(f"{meta.get('h2load', 'h2load')} `-t1 -c{meta.get('h2_conns')} "
             f"-m{meta.get('h2_streams')} -D {meta.get('h2_duration')}` (h2c with prior "
             f"knowledge, {meta.get('h2_conns')} connections × {meta.get('h2_streams')} streams) "
             f"after a {meta.get('h2_warmup')} s warm-up, against a dedicated echo-backend that "
             "serves HTTP/1.1 and h2c on one port. One worker/thread per proxy; each proxy and "
             "upstream protocol is a fresh process, measured alone. GETs carry "
             "`x-echo-response-bytes: 64`; gRPC answers "
             + ("echo the request's fields as `x-echo-*` (`--grpc-echo-metadata on`). "
                if meta.get("grpc_echo_metadata") == "on" else
                "carry `:status`, `content-type` and their trailers only, as a real "
                "service's do (the backend's metadata echo is off, so an answer does not grow "
                "with what a proxy adds to the request). ")
             + "Every proxy runs in "
             f"{meta.get('h2_rounds', 1)} alternating round(s); each row is its round with the "
             "lowest CPU per request (the notes list every round). "
             "p50/p99 come from h2load's per-request log, pooled over all rounds "
             "(`--log-file`). Upstream connections: ESTABLISHED connections to the backend at "
             "mid-run (how much the proxy multiplexes). h2c out: Proxenos `grpc: true` on the "
             "Mapping, nginx `grpc_pass grpc://` (its only HTTP/2 upstream; the upstream block "
             "keeps 64 idle connections), HAProxy `server … proto h2`.")
    L.append("")
    L.append("| proxy | upstream | req/s | p50 | p99 | CPU µs/req | CPU use | RSS after | "
             "upstream conns | h2load CPU | other load | notes |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in [r for r in runs if r.get("group") == "h2"]:
        if "error" in r:
            L.append(f"| {r['label']} | {r['mode']} | — | — | — | — | — | — | — | — | — | "
                     f"FAILED: {r['error']} |")
            continue
        L.append(f"| {r['label']} | {r['mode']} | {r['rps']:.0f} | {fmt_us(p50_of(r))} | "
                 f"{fmt_us(p99_of(r))} | **{r['cpu_us_per_req']:.2f}** | {pct(r['cpu_util'])} | "
                 f"{fmt(r['rss_kib'] / 1024, '.1f', ' MiB')} | {fmt(r.get('upstream_conns'))} | "
                 f"{pct(r['h2load_cpu_util'])} | {pct(r['other_cpu_util'])} | "
                 f"{rounds_note(r, 2)} |")
    L.append("")
    grpc = [r for r in runs if r.get("group") == "grpc"]
    if grpc:
        L.append(f"gRPC through the h2c-out instances: h2load POSTs a pre-encoded {MSG_BYTES}-byte "
                 "message (`-d`, `content-type: application/grpc`, `te: trailers`) to the echo "
                 "backend's `echo.Echo/Unary`, and to `echo.Echo/ServerStream` with "
                 f"`x-count: {meta.get('grpc_count')}` and `x-message-bytes: {MSG_BYTES}` "
                 f"({meta.get('grpc_count')} response messages per call). Before measuring, one "
                 "call through each proxy is checked byte for byte (the echoed message, or all "
                 "the streamed ones). p50/p99 are per call.")
        L.append("")
        L.append("| proxy | call | calls/s | messages/s | p50 | p99 | CPU µs/call | "
                 "CPU µs/message | CPU use | RSS after | upstream conns | notes |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in grpc:
            if "error" in r:
                L.append(f"| {r['label']} | {r['mode']} | — | — | — | — | — | — | — | — | — | "
                         f"FAILED: {r['error']} |")
                continue
            L.append(f"| {r['label']} | {r['mode']} | {r['rps']:.0f} | {r['msgs_per_s']:.0f} | "
                     f"{fmt_us(p50_of(r))} | {fmt_us(p99_of(r))} | "
                     f"{r['cpu_us_per_req']:.2f} | **{r['cpu_us_per_msg']:.3f}** | "
                     f"{pct(r['cpu_util'])} | {fmt(r['rss_kib'] / 1024, '.1f', ' MiB')} | "
                     f"{fmt(r.get('upstream_conns'))} | {rounds_note(r, 3)} |")
        L.append("")
    # Proxenos against the best other proxy, per scenario.
    rows = []
    keys = sorted({(r["group"], r["mode"]) for r in runs if r.get("proxy") != "direct"},
                  key=lambda k: (k[0] != "h2", k[1]))
    for group, mode in keys:
        mine = {r["proxy"]: r for r in runs if (r["group"], r["mode"]) == (group, mode)
                and "error" not in r}
        if "proxenos" not in mine:
            continue
        field = "cpu_us_per_req" if group == "h2" else "cpu_us_per_msg"
        others = [r for k, r in mine.items() if k not in ("proxenos", "direct", SAME_WORK[0])]
        if not others:
            continue
        best = min(others, key=lambda r: r[field])
        unit = "CPU µs/request" if group == "h2" else "CPU µs/message"
        digits = 2 if group == "h2" else 3
        rows.append(f"| {mode}: {unit} | {mine['proxenos'][field]:.{digits}f} | "
                    f"{best[field]:.{digits}f} "
                    f"({best['label']}) | **{mine['proxenos'][field] / best[field]:.2f}** |")
        if SAME_WORK[0] in mine:
            same = mine[SAME_WORK[0]]
            rows.append(f"| {mode}: {unit}, same work | {mine['proxenos'][field]:.{digits}f} | "
                        f"{same[field]:.{digits}f} ({same['label']}) | "
                        f"{mine['proxenos'][field] / same[field]:.2f} |")
        if group == "h2":
            bp = min(others, key=lambda r: p99_of(r) or 1e18)
            if p99_of(mine["proxenos"]) and p99_of(bp):
                rows.append(f"| {mode}: p99 | {fmt_us(p99_of(mine['proxenos']))} | "
                            f"{fmt_us(p99_of(bp))} ({bp['label']}) | "
                            f"**{p99_of(mine['proxenos']) / p99_of(bp):.2f}** |")
    if rows:
        L.append("**Proxenos vs the best of nginx/HAProxy over HTTP/2**")
        L.append("")
        L.append("| metric | Proxenos | best other | ratio (lower is better) |")
        L.append("|---|---:|---:|---:|")
        L += rows
        L.append("")


def cmd_report(args):
    L = []
    report(benchlib.load(args.results), L)
    print("\n".join(L))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--build", required=True)
    p.add_argument("--tmp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--log", default=os.devnull, help="raw h2load output is appended here")
    p.add_argument("--h2load", default="h2load")
    p.add_argument("--nginx", default="")
    p.add_argument("--haproxy", default="")
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--conns", type=int, default=10)
    p.add_argument("--streams", type=int, default=10)
    p.add_argument("--grpc-count", type=int, default=100)
    p.add_argument("--same-work", action="store_true",
                   help="also measure HAProxy adding the forwarding fields Proxenos adds")
    p.add_argument("--grpc-echo-metadata", choices=("on", "off"), default="off",
                   help="whether the backend's gRPC answers echo the request's fields")
    p.add_argument("--rounds", type=int, default=2,
                   help="alternating rounds over all proxies; the report keeps each one's best")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("report")
    p.add_argument("results")
    p.set_defaults(fn=cmd_report)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
