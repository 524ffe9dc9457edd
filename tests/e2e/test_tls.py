"""TLS at the edge and toward upstreams, with certificates made by the `openssl` command and real
clients: curl (--resolve for SNI), `openssl s_client` and `openssl s_server`."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

import harness
from harness import free_port, host, listener, mapping, resource
from pki import Pki, ca_secret, tls_secret


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.a = p.server("a", "a.example.com")
    p.b = p.server("b", "b.example.com")
    p.star = p.server("star", "default.example.com", "*.example.com")
    p.up = p.server("up", "up.example.com", ips=("127.0.0.1",))
    p.wrong = p.server("wrong", "other.example.com")
    p.old = p.expired("old", "up.example.com")
    p.client_cert = p.client("client", "client-1")
    p.client_only = p.issue("clientonly", "up.example.com", dns=("up.example.com",),
                            usage="clientAuth")
    return p


def https_listener(port, **fields):
    return listener("e2e-https", port, protocol="HTTPS", **fields)


def curl(args, timeout=10):
    r = subprocess.run(["curl", "-s", "--noproxy", "*", "-m", str(timeout)] + args,
                       capture_output=True, text=True, timeout=timeout + 5)
    return r


def curl_https(port, hostname, path, pki, extra=()):
    r = curl(["--cacert", pki.ca_crt, "--resolve", f"{hostname}:{port}:127.0.0.1",
              "-w", "\n%{http_code}", f"https://{hostname}:{port}{path}"] + list(extra))
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body, r


def s_client(port, args, send=b"", timeout=10):
    """openssl s_client; returns (returncode, stdout+stderr text)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief"] + args,
                       input=send, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("latin-1")


def peer_subject(port, servername=None, extra=()):
    args = ["-servername", servername] if servername else ["-noservername"]
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}"] + args +
                       list(extra), input=b"", capture_output=True, timeout=10)
    for line in r.stdout.decode("latin-1").splitlines():
        if line.startswith("subject="):
            return line[len("subject="):].strip()
    return None


def tls_gateway(start_gateway, pki, echo, extra, port=None, **kw):
    port = port or free_port("0.0.0.0")
    resources = [https_listener(port),
                 tls_secret("a-cert", *pki.a), tls_secret("b-cert", *pki.b),
                 mapping("echo", "/t/", echo.addr)] + extra
    gw = start_gateway(resources, **kw)
    gw.tls_port = port
    return gw


def test_sni_picks_the_certificate_and_host(start_gateway, echo, pki, T):
    gw = tls_gateway(start_gateway, pki, echo, [
        host("a", "a.example.com", tlsSecret={"name": "a-cert"}),
        host("b", "b.example.com", tlsSecret={"name": "b-cert"}),
    ])
    for name in ("a.example.com", "b.example.com"):
        code, body, r = curl_https(gw.tls_port, name, "/t/x", pki)
        assert code == 200, r.stderr + gw.stderr()
        seen = json.loads(body)
        headers = {k.lower(): v for k, v in seen["headers"].items()} if isinstance(
            seen["headers"], dict) else {k.lower(): v for k, v in seen["headers"]}
        assert headers["x-forwarded-proto"] == "https"
        assert peer_subject(gw.tls_port, name) == f"CN = {name}"


def test_client_without_sni_gets_the_wildcard_hosts_certificate(start_gateway, echo, pki, T):
    gw = tls_gateway(start_gateway, pki, echo, [
        tls_secret("star-cert", *pki.star),
        host("a", "a.example.com", tlsSecret={"name": "a-cert"}),
        host("any", "*", tlsSecret={"name": "star-cert"}),
    ])
    assert peer_subject(gw.tls_port, None) == "CN = default.example.com"
    assert peer_subject(gw.tls_port, "zzz.example.com") == "CN = default.example.com"
    assert peer_subject(gw.tls_port, "a.example.com") == "CN = a.example.com"


@pytest.mark.parametrize("action,want", [("Redirect", 301), ("Route", 200), ("Reject", 404)])
def test_cleartext_on_the_https_port_follows_the_insecure_action(start_gateway, echo, pki, T,
                                                                   action, want):
    gw = tls_gateway(start_gateway, pki, echo, [
        host("a", "a.example.com", insecure_action=action, tlsSecret={"name": "a-cert"}),
    ])
    r = curl(["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: a.example.com",
              f"http://127.0.0.1:{gw.tls_port}/t/x?q=1"])
    code, _, location = r.stdout.partition(" ")
    assert int(code) == want, r.stdout + gw.stderr()
    if want == 301:
        assert location == "https://a.example.com/t/x?q=1"
    # TLS on the same port works all the while.
    assert curl_https(gw.tls_port, "a.example.com", "/t/x", pki)[0] == 200


def test_tls_versions_default_and_configured(start_gateway, echo, pki, T):
    gw = tls_gateway(start_gateway, pki, echo, [
        host("a", "a.example.com", tlsSecret={"name": "a-cert"}),
        host("b", "b.example.com", tlsContext={"name": "modern"}),
        resource("TLSContext", "modern", {"secret": "b-cert", "min_tls_version": "v1.3",
                                          "hosts": ["b.example.com"]}),
    ])
    # Default: TLS 1.2 and 1.3, nothing older.
    assert s_client(gw.tls_port, ["-servername", "a.example.com", "-tls1_2"])[0] == 0
    assert s_client(gw.tls_port, ["-servername", "a.example.com", "-tls1_3"])[0] == 0
    assert s_client(gw.tls_port, ["-servername", "a.example.com", "-tls1_1"])[0] != 0
    # The TLSContext's minimum applies to its host.
    assert s_client(gw.tls_port, ["-servername", "b.example.com", "-tls1_2"])[0] != 0
    rc, out = s_client(gw.tls_port, ["-servername", "b.example.com", "-tls1_3"])
    assert rc == 0 and "TLSv1.3" in out


def test_alpn_offers_http11(start_gateway, echo, pki, T):
    gw = tls_gateway(start_gateway, pki, echo, [
        host("a", "a.example.com", tlsSecret={"name": "a-cert"})])
    def negotiated(offer):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{gw.tls_port}",
                            "-servername", "a.example.com", "-alpn", offer], input=b"",
                           capture_output=True, timeout=10)
        return r.stdout.decode("latin-1")

    # HTTP/2 serves downstream connections: a client offering h2 gets it, one offering only
    # HTTP/1.1 gets HTTP/1.1.
    out = negotiated("h2,http/1.1")
    assert "ALPN protocol: h2" in out, out
    out = negotiated("http/1.1")
    assert "ALPN protocol: http/1.1" in out, out


def test_client_certificates_required(start_gateway, echo, pki, T):
    gw = tls_gateway(start_gateway, pki, echo, [
        ca_secret("client-ca", pki.ca_crt),
        host("a", "a.example.com", tlsContext={"name": "mtls"}),
        resource("TLSContext", "mtls", {"secret": "a-cert", "ca_secret": "client-ca",
                                        "cert_required": True, "hosts": ["a.example.com"]}),
    ])
    code, _, r = curl_https(gw.tls_port, "a.example.com", "/t/x", pki)
    assert code == 0, "a client without a certificate must be refused"
    crt, key = pki.client_cert
    code, body, r = curl_https(gw.tls_port, "a.example.com", "/t/x", pki,
                               extra=["--cert", crt, "--key", key])
    assert code == 200, r.stderr + gw.stderr()


class TlsUpstream:
    """`openssl s_server -www`: a real TLS server answering every GET with 200."""

    def __init__(self, cert, key, ca=None, require_client_cert=False):
        self.port = free_port()
        argv = ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", cert,
                "-key", key, "-www", "-quiet"]
        if require_client_cert:
            argv += ["-Verify", "1", "-CAfile", ca, "-verify_return_error"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        assert harness.wait_until(lambda: self._up(), 10)

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def tls_upstreams():
    made = []

    def make(*a, **kw):
        u = TlsUpstream(*a, **kw)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()


def test_tls_origination_with_verification(start_gateway, pki, tls_upstreams, T):
    good = tls_upstreams(*pki.up)
    wrong = tls_upstreams(*pki.wrong)
    old = tls_upstreams(*pki.old)
    client_only = tls_upstreams(*pki.client_only)
    verify = lambda name: resource("TLSContext", name, {"ca_secret": "up-ca",
                                                        "sni": "up.example.com"})
    gw = start_gateway([
        ca_secret("up-ca", pki.ca_crt),
        verify("verify-good"), verify("verify-wrong"), verify("verify-old"),
        verify("verify-client-only"),
        mapping("plain", "/plain/", f"https://{wrong.addr}"),  # no CA: not verified
        mapping("good", "/good/", good.addr, tls="verify-good"),
        mapping("wrong", "/wrong/", wrong.addr, tls="verify-wrong"),
        mapping("old", "/old/", old.addr, tls="verify-old"),
        mapping("clientonly", "/clientonly/", client_only.addr, tls="verify-client-only"),
    ])
    status = lambda p: curl(["-o", "/dev/null", "-w", "%{http_code}", gw.url(p)]).stdout
    assert status("/plain/") == "200", gw.stderr()
    assert status("/good/") == "200", gw.stderr()
    for bad in ("/wrong/", "/old/", "/clientonly/"):
        r = curl(["-w", "\n%{http_code}", gw.url(bad)])
        body, _, code = r.stdout.rpartition("\n")
        assert code == "503", (bad, r.stdout)
        assert "transport failure reason: TLS error" in body, body


def test_mtls_to_the_upstream(start_gateway, pki, tls_upstreams, T):
    up = tls_upstreams(*pki.up, ca=pki.ca_crt, require_client_cert=True)
    crt, key = pki.client_cert
    gw = start_gateway([
        ca_secret("up-ca", pki.ca_crt),
        tls_secret("client-cert", crt, key),
        resource("TLSContext", "to-up", {"secret": "client-cert", "ca_secret": "up-ca",
                                         "sni": "up.example.com"}),
        resource("TLSContext", "no-cert", {"ca_secret": "up-ca", "sni": "up.example.com"}),
        mapping("mtls", "/mtls/", up.addr, tls="to-up"),
        mapping("nocert", "/nocert/", up.addr, tls="no-cert"),
    ])
    status = lambda p: curl(["-o", "/dev/null", "-w", "%{http_code}", gw.url(p)]).stdout
    assert status("/mtls/") == "200", gw.stderr()
    assert status("/nocert/") == "503"


class TcpEcho:
    """A TCP echo server that echoes until the client's FIN, then closes its side."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    c.shutdown(socket.SHUT_WR)
                    return
                c.sendall(data)

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"


def test_tcpmapping_relays_raw_bytes_with_half_close(start_gateway, T):
    echo = TcpEcho()
    port = free_port("0.0.0.0")
    gw = start_gateway([resource("TCPMapping", "raw", {"port": port, "service": echo.addr})])
    payload = os.urandom(3 * 1024 * 1024)
    s = socket.create_connection(("127.0.0.1", port), timeout=T(10))
    sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
    sender.start()
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    sender.join()
    s.close()
    assert got == payload
    metrics = curl([gw.admin_url + "/metrics"]).stdout
    assert 'envoy_tcp_downstream_cx_total{envoy_tcp_prefix="tcpmapping_default_raw"} 1' in metrics


def test_tcpmapping_with_host_terminates_tls_and_routes_by_sni(start_gateway, echo, pki, T):
    tcp_echo = TcpEcho()
    port = free_port("0.0.0.0")
    gw = start_gateway([
        https_listener(port),
        tls_secret("a-cert", *pki.a), tls_secret("b-cert", *pki.b),
        host("a", "a.example.com", tlsSecret={"name": "a-cert"}),
        host("b", "b.example.com", tlsSecret={"name": "b-cert"}),
        mapping("echo", "/t/", echo.addr),
        resource("TCPMapping", "tcp-b", {"port": port, "host": "b.example.com",
                                         "service": tcp_echo.addr}),
    ])
    # a.example.com is HTTP over TLS; b.example.com is raw TCP over TLS (TCPMapping wins).
    assert curl_https(port, "a.example.com", "/t/x", pki)[0] == 200
    import ssl
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=T(10)),
                         server_hostname="b.example.com") as s:
        assert s.getpeercert()["subject"] == ((("commonName", "b.example.com"),),)
        s.sendall(b"ping over tls")
        got = b""
        while got != b"ping over tls":
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
    assert tcp_echo.connections == 1


def test_bad_certificate_is_reported_and_other_hosts_keep_serving(start_gateway, echo, pki, T,
                                                                   tmp_path):
    broken = tmp_path / "broken.crt"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    gw = tls_gateway(start_gateway, pki, echo, [
        tls_secret("broken-cert", str(broken), pki.b[1]),
        host("a", "a.example.com", tlsSecret={"name": "a-cert"}),
        host("b", "b.example.com", tlsSecret={"name": "broken-cert"}),
    ])
    assert curl_https(gw.tls_port, "a.example.com", "/t/x", pki)[0] == 200
    log = gw.stderr()
    assert "b" in log and " error " in log, log
    assert peer_subject(gw.tls_port, "b.example.com") != "CN = b.example.com"


def test_secret_rotation_is_picked_up_without_dropping_connections(start_gateway, echo, pki, T):
    gw = tls_gateway(start_gateway, pki, echo, [
        host("a", "a.example.com", tlsSecret={"name": "a-cert"})])
    before = peer_subject(gw.tls_port, "a.example.com")
    assert before == "CN = a.example.com"
    # A keep-alive HTTPS connection made before the rotation.
    import ssl
    import http.client
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    conn = http.client.HTTPSConnection("a.example.com", gw.tls_port, context=ctx, timeout=5)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", gw.tls_port)),
                                server_hostname="a.example.com")
    conn.request("GET", "/t/1")
    assert conn.getresponse().read() and True
    # Rotate: the Secret now holds a new certificate (another serial, same name).
    new = pki.server("a2", "a.example.com")
    path = os.path.join(gw.config_dir, "routes.yaml")
    text = open(path).read()
    import base64
    old_crt = base64.b64encode(open(pki.a[0], "rb").read()).decode()
    new_crt = base64.b64encode(open(new[0], "rb").read()).decode()
    old_key = base64.b64encode(open(pki.a[1], "rb").read()).decode()
    new_key = base64.b64encode(open(new[1], "rb").read()).decode()
    harness_write = text.replace(old_crt, new_crt).replace(old_key, new_key)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(harness_write)
    os.rename(tmp, path)

    def serial(port):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                            "-servername", "a.example.com"], input=b"", capture_output=True,
                           timeout=10)
        x = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=r.stdout,
                           capture_output=True, timeout=10)
        return x.stdout.strip()

    new_serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", new[0]],
                                capture_output=True).stdout.strip()
    assert harness.wait_until(lambda: serial(gw.tls_port) == new_serial, T(10)), gw.stderr()
    # The connection made before the rotation still works.
    conn.request("GET", "/t/2")
    assert conn.getresponse().status == 200
    conn.close()


def echoed_headers(body):
    seen = json.loads(body)["headers"]
    items = seen.items() if isinstance(seen, dict) else seen
    return {k.lower(): v for k, v in items}


def raw_request(port, prefix, path="/t/x", timeout=10, wrap=None):
    """Sends `prefix` (a PROXY header), then a GET (through TLS when `wrap` is given)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(prefix)
    if wrap is not None:
        s = wrap(s)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, OSError):
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def proxy_v2(src, dst, sport, dport):
    import struct
    addr = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) +
            addr)


def test_proxy_protocol_gives_the_real_client_address(start_gateway, echo, T):
    port = free_port("0.0.0.0")
    from harness import module
    gw = start_gateway([listener("pp", port, protocol="HTTPPROXY"),
                        module({"envoy_log_type": "json"}),
                        mapping("echo", "/t/", echo.addr)])
    for header, client in ((b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n", "203.0.113.7"),
                           (proxy_v2("198.51.100.4", "10.0.0.1", 40000, 80), "198.51.100.4")):
        data = raw_request(port, header)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), data[:300]
        assert echoed_headers(body)["x-forwarded-for"] == client
    # The access log's downstream_remote_address is the client the PROXY header named.
    assert harness.wait_until(lambda: '"203.0.113.7:51000"' in gw.stdout(), T(5)), gw.stdout()
    # Without the header the connection is refused: the listener requires it.
    assert raw_request(port, b"") == b""


def test_proxy_protocol_in_front_of_tls(start_gateway, echo, pki, T):
    import ssl
    port = free_port("0.0.0.0")
    gw = start_gateway([listener("pps", port, protocol="HTTPSPROXY"),
                        tls_secret("a-cert", *pki.a),
                        host("a", "a.example.com", tlsSecret={"name": "a-cert"}),
                        mapping("echo", "/t/", echo.addr)])
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    data = raw_request(port, b"PROXY TCP4 192.0.2.55 10.0.0.1 1234 443\r\n",
                       wrap=lambda s: ctx.wrap_socket(s, server_hostname="a.example.com"))
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:300] + gw.stderr().encode()
    headers = echoed_headers(body)
    assert headers["x-forwarded-for"] == "192.0.2.55"
    assert headers["x-forwarded-proto"] == "https"


@pytest.mark.parametrize("mode", ["SANITIZE", "SANITIZE_SET", "APPEND_FORWARD", "FORWARD_ONLY"])
def test_forwarded_client_cert(start_gateway, echo, pki, T, mode):
    from harness import module
    gw = tls_gateway(start_gateway, pki, echo, [
        module({"forward_client_cert_details": mode,
                "set_current_client_cert_details": {"subject": True, "dns": True}}),
        ca_secret("client-ca", pki.ca_crt),
        host("a", "a.example.com", tlsContext={"name": "mtls"}),
        resource("TLSContext", "mtls", {"secret": "a-cert", "ca_secret": "client-ca",
                                        "cert_required": True, "hosts": ["a.example.com"]}),
    ])
    crt, key = pki.client_cert
    sent = "By=spiffe://upstream-proxy;Hash=abc"
    code, body, r = curl_https(gw.tls_port, "a.example.com", "/t/x", pki,
                               extra=["--cert", crt, "--key", key, "-H",
                                      f"x-forwarded-client-cert: {sent}"])
    assert code == 200, r.stderr + gw.stderr()
    xfcc = echoed_headers(body).get("x-forwarded-client-cert")
    fingerprint = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-fingerprint",
                                  "-sha256"], capture_output=True, text=True).stdout
    digest = fingerprint.strip().split("=", 1)[1].replace(":", "").lower()
    ours = f'Hash={digest};Subject="CN=client-1"'
    if mode == "SANITIZE":
        assert xfcc is None
    elif mode == "SANITIZE_SET":
        assert xfcc == ours
    elif mode == "APPEND_FORWARD":
        assert xfcc == f"{sent},{ours}"
    else:
        assert xfcc == sent


def test_http2_over_tls_with_nghttp(start_gateway, echo, pki, T):
    gw = tls_gateway(start_gateway, pki, echo, [
        tls_secret("star-cert", *pki.star),
        host("any", "*", tlsSecret={"name": "star-cert"}),
    ])
    r = subprocess.run(["nghttp", "-nv", f"https://127.0.0.1:{gw.tls_port}/t/x"],
                       capture_output=True, text=True, timeout=20)
    out = r.stdout + r.stderr
    assert "The negotiated protocol: h2" in out, out
    assert ":status: 200" in out, out


def test_configured_cipher_suites_are_enforced(start_gateway, echo, pki, T):
    gw = tls_gateway(start_gateway, pki, echo, [
        host("a", "a.example.com", tlsContext={"name": "pinned"}),
        resource("TLSContext", "pinned", {"secret": "a-cert", "hosts": ["a.example.com"],
                                          "max_tls_version": "v1.2",
                                          "cipher_suites": ["ECDHE-ECDSA-AES128-GCM-SHA256"]}),
    ])
    ok, out = s_client(gw.tls_port, ["-servername", "a.example.com", "-tls1_2", "-cipher",
                                     "ECDHE-ECDSA-AES128-GCM-SHA256"])
    assert ok == 0 and "ECDHE-ECDSA-AES128-GCM-SHA256" in out, out
    refused, _ = s_client(gw.tls_port, ["-servername", "a.example.com", "-tls1_2", "-cipher",
                                        "ECDHE-ECDSA-AES256-GCM-SHA384"])
    assert refused != 0
    # TLS 1.3 is above the context's maximum.
    assert s_client(gw.tls_port, ["-servername", "a.example.com", "-tls1_3"])[0] != 0
