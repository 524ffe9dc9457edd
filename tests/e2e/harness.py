"""Process and socket helpers for the end-to-end suite.

Everything here is bounded: every wait has a deadline (scaled up under sanitizers), every process
is tracked and killed by PID at teardown, and every process's stdout/stderr goes to a file so a
failing test can show what the binaries said.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("PROXENOS_BUILD", "")
SANITIZED = os.environ.get("PROXENOS_SANITIZED", "") == "1"
# ASan/UBSan builds run several times slower; every deadline below is multiplied by this.
SLACK = 4.0 if SANITIZED else 1.0


def scaled(seconds):
    return seconds * SLACK


def proxenos_bin():
    return os.path.join(BUILD, "proxenos")


def echo_bin():
    return os.path.join(BUILD, "echo-backend")


# ---------------------------------------------------------------------------------------------
# Ports


def free_port(host="127.0.0.1"):
    """A port the kernel just handed out for `host`; released immediately so a child can bind it.

    Binding to 0.0.0.0 as well as 127.0.0.1 makes sure the port is free for a wildcard listener.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0" if host == "0.0.0.0" else host, 0))
        return s.getsockname()[1]


def port_is_free(port, host="0.0.0.0"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_tcp(host, port, timeout, proc=None):
    """Waits until a TCP connect to host:port succeeds. Returns True/False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def closed_port():
    """A loopback port that nothing listens on (connects get ECONNREFUSED)."""
    return free_port()


class Blackhole:
    """A loopback port where TCP connects hang: a listener with a full accept queue drops SYNs.
    (Unroutable addresses are no good here: sandboxes may answer them through a proxy.)"""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = []
        for _ in range(8):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(0.3)
            try:
                s.connect(("127.0.0.1", self.port))
            except OSError:
                s.close()
                return
            self.fillers.append(s)
        raise HarnessError("could not fill the accept queue of the blackhole listener")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        for s in self.fillers + [self.listener]:
            s.close()


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process whose output goes to files under `workdir`."""

    registry = []  # every Proc started by the current test; reset by conftest
    shared = []  # module-scoped processes: shown on failure, stopped by their own fixture

    def __init__(self, argv, workdir, label, env=None):
        self.argv = argv
        self.label = label
        os.makedirs(workdir, exist_ok=True)
        self.stdout_path = os.path.join(workdir, f"{label}.stdout")
        self.stderr_path = os.path.join(workdir, f"{label}.stderr")
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.popen = subprocess.Popen(
            argv, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL, env=full_env
        )
        self.pid = self.popen.pid
        Proc.registry.append(self)

    def poll(self):
        return self.popen.poll()

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit code or None on timeout."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=None):
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if timeout is None:
            timeout = scaled(5)
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(scaled(5))
        self._out.close()
        self._err.close()
        return self.popen.returncode

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def output(self):
        return self.stdout() + self.stderr()

    def crash_report(self):
        """A description if the process died from a crash signal, else ''."""
        rc = self.poll()
        if rc is not None and rc < 0 and -rc in CRASH_SIGNALS:
            return f"{self.label} (pid {self.pid}) crashed with signal {-rc}\n" + self.describe()
        return ""

    def sanitizer_report(self):
        err = self.stderr()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in err:
                return f"{self.label} (pid {self.pid}) sanitizer report\n" + self.describe(20000)
        return ""

    def rss_kib(self):
        return _proc_status_kib(self.pid, "VmRSS")

    def peak_rss_kib(self):
        return _proc_status_kib(self.pid, "VmHWM")

    def describe(self, limit=6000):
        def tail(text):
            return text if len(text) <= limit else "...[cut]...\n" + text[-limit:]

        return (
            f"--- {self.label} (pid {self.pid}, exit {self.popen.returncode}) argv: "
            f"{' '.join(self.argv)}\n--- stdout:\n{tail(self.stdout())}\n--- stderr:\n"
            f"{tail(self.stderr())}\n"
        )


def _proc_status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}


class HarnessError(Exception):
    pass


class EchoBackend(Proc):
    def __init__(self, workdir, name="echo", port=None):
        self.name = name
        self.port = port or free_port()
        super().__init__(
            [echo_bin(), "--listen", f"127.0.0.1:{self.port}", "--name", name],
            workdir,
            f"echo-{name}",
        )
        if not wait_for_tcp("127.0.0.1", self.port, scaled(10), self):
            raise HarnessError(f"echo-backend {name} did not start\n" + self.describe())

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"


def run_cli(args, timeout=None):
    """Runs `proxenos ARGS` to completion; returns CompletedProcess with text output."""
    return subprocess.run(
        [proxenos_bin()] + list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=timeout or scaled(20),
        text=True,
        errors="replace",
    )


# ---------------------------------------------------------------------------------------------
# Configuration text


def to_yaml_docs(resources):
    """Serialises resources as YAML documents. JSON is YAML, and indented JSON keeps line numbers
    meaningful for error reports. Strings are taken as already-written YAML."""
    docs = []
    for r in resources:
        docs.append(r if isinstance(r, str) else json.dumps(r, indent=2))
    return "\n---\n".join(docs) + "\n"


def resource(kind, name, spec, namespace=None, labels=None, api="getambassador.io/v3alpha1"):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def mapping(name, prefix, service, hostname="*", **fields):
    spec = {"prefix": prefix, "service": service}
    if hostname is not None:
        spec["hostname"] = hostname
    labels = fields.pop("labels", None)
    namespace = fields.pop("namespace", None)
    spec.update(fields)
    return resource("Mapping", name, spec, namespace=namespace, labels=labels)


def listener(name, port, protocol="HTTP", security_model="XFP", l7_depth=None, **fields):
    spec = {
        "port": port,
        "protocol": protocol,
        "securityModel": security_model,
        "hostBinding": {"namespace": {"from": "ALL"}},
    }
    if l7_depth is not None:
        spec["l7Depth"] = l7_depth
    spec.update(fields)
    return resource("Listener", name, spec)


def host(name, hostname, insecure_action="Route", labels=None, **fields):
    spec = {"hostname": hostname}
    if insecure_action is not None:
        spec["requestPolicy"] = {"insecure": {"action": insecure_action}}
    spec.update(fields)
    return resource("Host", name, spec, labels=labels)


def module(config):
    return resource("Module", "ambassador", {"config": config})


# ---------------------------------------------------------------------------------------------
# The gateway


# Proxies from the environment must never see loopback test traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get_status(url, timeout):
    try:
        with _OPENER.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return None, b""


class Gateway(Proc):
    """A running `proxenos run` with a config folder written from Python values.

    `files` maps relative file names to text or to a list of resources. When `listen` is true a
    Listener on a fresh port is added (file 00-listener.yaml) so no test depends on 8080 being free.
    """

    def __init__(self, workdir, files, listen=True, extra_args=(), wait_ready=True,
                 admin_port=None, workers=2, label="proxenos", l7_depth=None, env=None,
                 config_file=None, log_level="info"):
        self.workdir = workdir
        self.config_dir = os.path.join(workdir, "config")
        os.makedirs(self.config_dir, exist_ok=True)
        self.port = free_port("0.0.0.0") if listen else None
        self.admin_port = admin_port or free_port()
        all_files = dict(files)
        if listen:
            all_files["00-listener.yaml"] = [listener("e2e-http", self.port, l7_depth=l7_depth)]
        for rel, content in all_files.items():
            path = os.path.join(self.config_dir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(content if isinstance(content, str) else to_yaml_docs(content))
        config_arg = os.path.join(self.config_dir, config_file) if config_file else self.config_dir
        argv = [
            proxenos_bin(), "run", "--config", config_arg,
            "--admin-address", f"127.0.0.1:{self.admin_port}",
            "--log-level", log_level,
        ]
        if workers:
            argv += ["--workers", str(workers)]
        argv += list(extra_args)
        super().__init__(argv, workdir, label, env=env)
        if wait_ready:
            self.wait_ready()

    @property
    def admin_url(self):
        return f"http://127.0.0.1:{self.admin_port}"

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def ready_status(self, timeout=1.0):
        return http_get_status(self.admin_url + "/ambassador/v0/check_ready", timeout)[0]

    def wait_ready(self, timeout=None):
        deadline = time.monotonic() + (timeout or scaled(15))
        while time.monotonic() < deadline:
            if not self.alive():
                raise HarnessError("proxenos exited before becoming ready\n" + self.describe())
            if self.ready_status() == 200:
                if self.port is None or wait_for_tcp("127.0.0.1", self.port, scaled(5), self):
                    return
            time.sleep(0.05)
        raise HarnessError("proxenos did not become ready in time\n" + self.describe())

    def wait_for_log(self, pattern, timeout=None, stream="stdout"):
        """Waits until `pattern` (regex) appears in stdout/stderr; returns the match or None."""
        deadline = time.monotonic() + (timeout or scaled(5))
        rx = re.compile(pattern, re.M)
        while time.monotonic() < deadline:
            text = self.stdout() if stream == "stdout" else (
                self.stderr() if stream == "stderr" else self.output())
            m = rx.search(text)
            if m:
                return m
            time.sleep(0.05)
        return None


# Emissary's default access log line. Envoy's default text format starts with "ACCESS "; the
# issue text leaves it out, so both are accepted.
ACCESS_LOG_RE = re.compile(
    r'^(?:ACCESS )?\[(?P<start>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" '
    r"(?P<code>\d+) (?P<flags>\S+) (?P<rx>\d+) (?P<tx>\d+) (?P<duration>\d+) (?P<upstream_time>\S+) "
    r'"(?P<xff>[^"]*)" "(?P<ua>[^"]*)" "(?P<request_id>[^"]*)" "(?P<authority>[^"]*)" '
    r'"(?P<upstream>[^"]*)"\s*$'
)


def access_log_lines(text):
    return [m.groupdict() for m in (ACCESS_LOG_RE.match(l) for l in text.splitlines()) if m]


# ---------------------------------------------------------------------------------------------
# Raw HTTP/1 client


def client():
    """A requests.Session that ignores proxy settings from the environment."""
    import requests

    s = requests.Session()
    s.trust_env = False
    return s


class Response:
    def __init__(self, status, reason, headers, body, version="HTTP/1.1", raw_head=b""):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body
        self.version = version
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers!r} body={self.body[:200]!r}>"


class IncompleteResponse(Exception):
    pass


def parse_response(buf, head_request=False, allow_eof_body=True, eof=False):
    """Parses one response from the start of `buf`.

    Returns (Response, bytes_consumed) or raises IncompleteResponse when more bytes are needed.
    A body delimited by close is complete only when `eof` is set.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        raise IncompleteResponse()
    head = buf[:end].decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {lines[0]!r}")
    version, status = parts[0], int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k, v.strip()))
    pos = end + 4
    resp = Response(status, reason, headers, b"", version, bytes(buf[:pos]))
    if head_request or status in (204, 304) or 100 <= status < 200:
        return resp, pos
    te = resp.header("transfer-encoding")
    cl = resp.header("content-length")
    if te and "chunked" in te.lower():
        body = bytearray()
        while True:
            le = buf.find(b"\r\n", pos)
            if le < 0:
                raise IncompleteResponse()
            size = int(buf[pos:le].split(b";")[0].strip(), 16)
            pos = le + 2
            if size == 0:
                # trailers until an empty line
                while True:
                    le = buf.find(b"\r\n", pos)
                    if le < 0:
                        raise IncompleteResponse()
                    line = buf[pos:le]
                    pos = le + 2
                    if not line:
                        break
                resp.body = bytes(body)
                return resp, pos
            if len(buf) < pos + size + 2:
                raise IncompleteResponse()
            body += buf[pos:pos + size]
            pos += size + 2
    if cl is not None:
        n = int(cl)
        if len(buf) < pos + n:
            raise IncompleteResponse()
        resp.body = bytes(buf[pos:pos + n])
        return resp, pos + n
    if not allow_eof_body:
        return resp, pos
    if not eof:
        raise IncompleteResponse()
    resp.body = bytes(buf[pos:])
    return resp, len(buf)


class RawConn:
    """A plain TCP connection for byte-exact requests."""

    def __init__(self, port, host="127.0.0.1", timeout=None):
        self.timeout = timeout or scaled(5)
        self.sock = socket.create_connection((host, port), timeout=self.timeout)
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads once; returns False at EOF or when the deadline passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(min(remaining, self.timeout))
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return time.monotonic() < deadline
        except ConnectionResetError:
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_response(self, head_request=False, timeout=None):
        """Reads exactly one response (skipping nothing: a 1xx is returned as is)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                resp, used = parse_response(self.buf, head_request, eof=self.eof)
                del self.buf[:used]
                return resp
            except IncompleteResponse:
                if self.eof:
                    raise IncompleteResponse(f"connection closed mid-response: {bytes(self.buf)!r}")
                if not self._fill(deadline) and not self.eof:
                    raise TimeoutError(f"no complete response in time; have {bytes(self.buf[:500])!r}")

    def read_final_response(self, timeout=None):
        while True:
            r = self.read_response(timeout=timeout)
            if r.status >= 200:
                return r

    def wait_closed(self, timeout=None):
        """True when the peer closes (EOF or reset) within the timeout; the bytes read meanwhile
        stay in self.buf."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof and time.monotonic() < deadline:
            self._fill(deadline)
        return self.eof

    def request(self, data, head_request=False, timeout=None):
        self.send(data)
        return self.read_response(head_request=head_request, timeout=timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_exchange(port, data, timeout=None):
    """Sends `data`, reads until the server closes or `timeout`; returns (responses, closed, rest)."""
    with RawConn(port, timeout=timeout) as c:
        c.send(data)
        closed = c.wait_closed(timeout)
        buf = bytes(c.buf)
    responses = []
    while buf:
        try:
            r, used = parse_response(buf, eof=closed)
        except (IncompleteResponse, ValueError):
            break
        responses.append(r)
        buf = buf[used:]
    return responses, closed, buf


def get_request(path="/", host="example.com", headers=(), method="GET", body=None):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


# ---------------------------------------------------------------------------------------------
# A misbehaving upstream, for faults the echo backend is not asked to produce.


class FakeUpstream:
    """A loopback TCP server running `behaviour(conn, request_bytes)` on each connection in a
    thread. The request head (up to the blank line) is read first. Stopped by conftest."""

    registry = []

    def __init__(self, behaviour):
        import threading

        self.behaviour = behaviour
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        FakeUpstream.registry.append(self)

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def _run(self):
        import threading

        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        data = b""
        try:
            # stop() may have closed the connection before this thread ran.
            conn.settimeout(scaled(10))
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.behaviour(conn, data)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass


def rst_close(conn):
    """Closes with a TCP RST instead of a FIN."""
    import struct

    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# ---------------------------------------------------------------------------------------------
# Kernel views


def tcp_connections(remote_port=None, local_port=None, state=None):
    """(local, remote, state) tuples from /proc/net/tcp for IPv4 loopback sockets.

    States: "01" ESTABLISHED, "0A" LISTEN. Addresses are returned as "a.b.c.d:port".
    """

    def decode(hexaddr):
        ip_hex, port_hex = hexaddr.split(":")
        ip = socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1])
        return ip, int(port_hex, 16)

    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            if path.endswith("6"):
                # Only IPv4-mapped and wildcard entries matter here; keep the port, mark the ip.
                lport = int(parts[1].split(":")[1], 16)
                rport = int(parts[2].split(":")[1], 16)
                local = (("::" + parts[1].split(":")[0]), lport)
                remote = (("::" + parts[2].split(":")[0]), rport)
            else:
                local, remote = decode(parts[1]), decode(parts[2])
            st = parts[3]
            if remote_port is not None and remote[1] != remote_port:
                continue
            if local_port is not None and local[1] != local_port:
                continue
            if state is not None and st != state:
                continue
            out.append((local, remote, st))
    return out


def wait_until(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


# ---------------------------------------------------------------------------------------------
# Reloads and continuous load (reload-under-load and canary tests)


GENERATION_METRIC_RE = re.compile(r"^proxenos_config_generation(?:\{[^}]*\})? (\d+)", re.M)


def config_generation(gw, timeout=None):
    """The configuration generation the gateway reports on /metrics, or None if unreachable."""
    status, body = http_get_status(gw.admin_url + "/metrics", timeout or scaled(2))
    if status != 200:
        return None
    m = GENERATION_METRIC_RE.search(body.decode("utf-8", "replace"))
    return int(m.group(1)) if m else None


def wait_generation(gw, at_least, timeout=None):
    """Waits until /metrics reports a generation >= `at_least`; returns it (None on timeout)."""
    deadline = time.monotonic() + (timeout or scaled(10))
    while True:
        g = config_generation(gw)
        if g is not None and g >= at_least:
            return g
        if time.monotonic() >= deadline or not gw.alive():
            return None
        time.sleep(0.003)


def write_atomic(path, content):
    """Writes `content` (text or resources) to a hidden temporary file beside `path` and renames
    it over `path`, so a reload never reads a half-written file and inotify sees one event."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(content if isinstance(content, str) else to_yaml_docs(content))
    os.replace(tmp, path)


class ConnectionClosed(Exception):
    """The server closed a keep-alive connection (FIN) between or inside responses."""


class KeepAliveClient:
    """One keep-alive HTTP/1.1 connection that reports every way an exchange can go wrong (reset,
    close by the server, timeout, malformed response) as an exception and never reconnects on its
    own, unlike requests/urllib3, which retry silently on a connection closed while pooled."""

    def __init__(self, port, host="127.0.0.1", timeout=None):
        self.timeout = timeout or scaled(5)
        self.sock = socket.create_connection((host, port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def get(self, path, host="example.com", headers=()):
        self.sock.sendall(get_request(path, host=host, headers=headers))
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                resp, used = parse_response(self.buf, allow_eof_body=False)
                del self.buf[:used]
                return resp
            except IncompleteResponse:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response for {path} in {self.timeout} s")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(1 << 16)  # ConnectionResetError propagates
            if not chunk:
                raise ConnectionClosed(
                    f"server closed the connection; unparsed {bytes(self.buf[:200])!r}")
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class LoadThreads:
    """`threads` threads, each on its own keep-alive connection to `port`, sending GETs for
    `paths` round robin until stop(). Every response goes to `observe(index, path, response,
    t_sent, t_received)` (monotonic seconds), called on the load thread. Failures are recorded in
    `failures` as (kind, path, detail) with kind one of "reset", "closed", "timeout", "error"; the
    thread then opens a new connection and goes on, so one run reports every failure."""

    def __init__(self, port, paths, threads=8, observe=None, timeout=None):
        import threading

        self.port = port
        self.paths = list(paths)
        self.observe = observe
        self.timeout = timeout or scaled(5)
        self.failures = []
        self.requests = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def _fail(self, kind, path, detail):
        with self._lock:
            self.failures.append((kind, path, detail))

    def _run(self, index):
        conn = None
        i = index  # threads start at different paths
        count = 0
        try:
            while not self._stop.is_set():
                if conn is None:
                    try:
                        conn = KeepAliveClient(self.port, timeout=self.timeout)
                    except OSError as e:
                        self._fail("error", None, f"connect: {e!r}")
                        self._stop.wait(0.05)
                        continue
                    with self._lock:
                        self.connections += 1
                path = self.paths[i % len(self.paths)]
                i += 1
                t0 = time.monotonic()
                try:
                    resp = conn.get(path)
                except ConnectionResetError as e:
                    self._fail("reset", path, repr(e))
                except ConnectionClosed as e:
                    self._fail("closed", path, str(e))
                except TimeoutError as e:
                    self._fail("timeout", path, str(e))
                except (OSError, ValueError) as e:
                    self._fail("error", path, repr(e))
                else:
                    count += 1
                    if self.observe is not None:
                        try:
                            self.observe(index, path, resp, t0, time.monotonic())
                        except Exception as e:  # a broken check must not end the load silently
                            self._fail("error", path, f"observe: {e!r}")
                    if (resp.header("connection") or "").lower() != "close":
                        continue
                    self._fail("closed", path, "response said connection: close")
                conn.close()
                conn = None
        finally:
            if conn is not None:
                conn.close()
            with self._lock:
                self.requests += count

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(scaled(10))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
