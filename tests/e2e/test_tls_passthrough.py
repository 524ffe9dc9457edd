"""TLS passthrough: connections routed by the SNI of their ClientHello without the gateway
terminating TLS (TCPMapping `tls_passthrough: true`, and Gateway API TLS listeners with
`tls.mode: Passthrough`). The backends are echo-backends terminating TLS with their own
certificates, so what the client verifies is the backend's certificate, not the gateway's."""

import json
import re
import urllib.parse
import socket
import ssl
import subprocess
import threading
import time

import pytest

import harness
from harness import free_port, host, listener, mapping, resource
from kube import FakeKube, KubeGateway, coordinates, obj
from pki import Pki, tls_secret

GW_API = "gateway.networking.k8s.io/v1"
CONTROLLER = "proxenos.dev/gateway-controller"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.a = p.server("a", "a.pass.example.com")
    p.b = p.server("b", "b.pass.example.com")
    p.term = p.server("term", "term.example.com")
    return p


class TlsEcho(harness.Proc):
    """echo-backend terminating TLS itself with `cert`."""

    def __init__(self, workdir, name, cert, key):
        self.name = name
        self.port = free_port()
        super().__init__([harness.echo_bin(), "--listen", f"127.0.0.1:{self.port}", "--name", name,
                          "--tls-cert", cert, "--tls-key", key], workdir, f"tls-echo-{name}")
        if not harness.wait_for_tcp("127.0.0.1", self.port, harness.scaled(10), self):
            raise harness.HarnessError(f"echo-backend {name} did not start\n" + self.describe())

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def tls_echo(tmp_path, pki):
    def start(name, cert):
        return TlsEcho(str(tmp_path / "procs"), name, *cert)
    return start


def passthrough(name, port, hostname, service):
    return resource("TCPMapping", name, {"port": port, "host": hostname, "service": service,
                                         "tls_passthrough": True})


def curl_json(port, hostname, pki, path="/", timeout=10):
    """(exit code, JSON body or None, stderr) of curl over TLS verified against the test CA."""
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", str(timeout), "--cacert",
                        pki.ca_crt, "--resolve", f"{hostname}:{port}:127.0.0.1",
                        f"https://{hostname}:{port}{path}"],
                       capture_output=True, text=True, timeout=timeout + 5)
    try:
        body = json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        body = None
    return r.returncode, body, r.stderr


def s_client_subject(port, server_name, pki):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                        server_name, "-CAfile", pki.ca_crt], input=b"", capture_output=True,
                       timeout=15)
    out = r.stdout.decode("latin-1")
    subject = next((l[len("subject="):].strip() for l in out.splitlines()
                    if l.startswith("subject=")), None)
    return subject.replace(" = ", "=") if subject else None


def metric(gw, name, label_value):
    status, body = harness.http_get_status(gw.admin_url + "/metrics", harness.scaled(3))
    if status != 200:
        return None
    m = re.search(r"^" + re.escape(name) + r'\{[^}]*="' + re.escape(label_value) + r'"\} (\d+)',
                  body.decode("utf-8", "replace"), re.M)
    return int(m.group(1)) if m else None


def stored(kube, kind, name, namespace="default"):
    group, version, res, namespaced = coordinates(kind)
    q = {"group": group, "version": version, "resource": res, "name": name}
    if namespaced:
        q["namespace"] = namespace
    return kube.get("/fake/object?" + urllib.parse.urlencode(q))


def condition(conditions, type_):
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def handshake_fails(port, server_name, pki, T):
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    with socket.create_connection(("127.0.0.1", port), timeout=T(10)) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=server_name):
                return False
        except (ssl.SSLError, ConnectionError, OSError):
            return True


def test_passthrough_routes_by_sni_to_backends_terminating_tls(start_gateway, tls_echo, pki, T):
    a = tls_echo("pass-a", pki.a)
    b = tls_echo("pass-b", pki.b)
    port = free_port("0.0.0.0")
    gw = start_gateway([passthrough("pass-a", port, "a.pass.example.com", a.addr),
                        passthrough("pass-b", port, "b.pass.example.com", b.addr)])
    assert harness.wait_for_tcp("127.0.0.1", port, T(5), gw)

    for name, backend in (("a.pass.example.com", "pass-a"), ("b.pass.example.com", "pass-b")):
        code, body, err = curl_json(port, name, pki, "/through/" + backend)
        assert code == 0, (name, err, gw.output())
        assert body["backend"] == backend
        assert body["path"] == "/through/" + backend
        # TLS was the backend's: it saw the client's SNI and ALPN itself.
        assert body["tls"]["sni"] == name
        assert body["tls"]["alpn"] in ("h2", "http/1.1")
        assert s_client_subject(port, name, pki) == f"CN={name}"

    # A name no TCPMapping has: the port terminates nothing, so the connection is closed.
    assert handshake_fails(port, "c.pass.example.com", pki, T)
    code, _, _ = curl_json(port, "c.pass.example.com", pki)
    assert code != 0
    # No SNI at all: closed too.
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=T(10)) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(raw).close()

    # One curl and one s_client each; the refused names counted nowhere.
    assert harness.wait_until(
        lambda: metric(gw, "envoy_tcp_downstream_cx_total", "tcpmapping_default_pass_a") == 2,
        T(5)), metric(gw, "envoy_tcp_downstream_cx_total", "tcpmapping_default_pass_a")
    assert metric(gw, "envoy_tcp_downstream_cx_total", "tcpmapping_default_pass_b") == 2


def test_passthrough_shares_a_port_with_a_terminating_host(start_gateway, tls_echo, start_echo,
                                                           pki, T, http):
    a = tls_echo("pass-a", pki.a)
    plain = start_echo("plain")
    port = free_port("0.0.0.0")
    gw = start_gateway({
        "routes.yaml": [listener("e2e-https", port, protocol="HTTPS"),
                        host("term", "term.example.com", tlsSecret={"name": "term-cert"}),
                        mapping("plain", "/", plain.addr, hostname="term.example.com"),
                        passthrough("pass-a", port, "a.pass.example.com", a.addr)],
        "secrets.yaml": [tls_secret("term-cert", *pki.term)],
    })
    assert harness.wait_for_tcp("127.0.0.1", port, T(5), gw)

    code, body, err = curl_json(port, "a.pass.example.com", pki)
    assert code == 0, (err, gw.output())
    assert body["backend"] == "pass-a" and body["tls"]["sni"] == "a.pass.example.com"
    assert s_client_subject(port, "a.pass.example.com", pki) == "CN=a.pass.example.com"

    # The Host's name is terminated by the gateway with the Host's certificate.
    code, body, err = curl_json(port, "term.example.com", pki, "/x")
    assert code == 0, (err, gw.output())
    assert body["backend"] == "plain" and "tls" not in body
    assert s_client_subject(port, "term.example.com", pki) == "CN=term.example.com"

    # Cleartext HTTP on the HTTPS listener still works (the first byte is not a TLS record).
    r = http.get(f"http://127.0.0.1:{port}/clear", headers={"Host": "term.example.com"},
                 timeout=T(5))
    assert r.status_code == 200 and r.json()["backend"] == "plain"


@pytest.mark.slow
def test_garbage_is_closed_at_once_and_silence_after_the_handshake_timeout(start_gateway,
                                                                           tls_echo, pki, T):
    a = tls_echo("pass-a", pki.a)
    port = free_port("0.0.0.0")
    gw = start_gateway([passthrough("pass-a", port, "a.pass.example.com", a.addr)])
    assert harness.wait_for_tcp("127.0.0.1", port, T(5), gw)

    def closed_after(sock, payload, limit):
        """Seconds until the gateway closes the connection (EOF or reset), or None."""
        start = time.monotonic()
        sock.settimeout(limit)
        if payload:
            sock.sendall(payload)
        try:
            while True:
                data = sock.recv(4096)
                if not data:
                    return time.monotonic() - start
                assert False, f"unexpected bytes {data!r}"
        except ConnectionResetError:
            return time.monotonic() - start
        except socket.timeout:
            return None

    # A ClientHello cut short, and nothing at all: both wait for the 10 s handshake timeout.
    hello = _client_hello("a.pass.example.com")
    results = {}

    def run(key, payload):
        with socket.create_connection(("127.0.0.1", port), timeout=T(5)) as s:
            results[key] = closed_after(s, payload, T(20))

    threads = [threading.Thread(target=run, args=("silent", b"")),
               threading.Thread(target=run, args=("partial", hello[:60]))]
    for t in threads:
        t.start()
    # Garbage and a malformed record are closed at once.
    for payload in (b"GET / HTTP/1.1\r\nHost: a.pass.example.com\r\n\r\n",
                    b"\x16\x03\x01\x00\x00" + b"x" * 20,
                    b"\x16\x03\x01\x00\x10\x02" + b"\x00" * 15):
        with socket.create_connection(("127.0.0.1", port), timeout=T(5)) as s:
            took = closed_after(s, payload, T(5))
            assert took is not None and took < T(3), (payload, took)
    for t in threads:
        t.join(T(30))
    for key in ("silent", "partial"):
        took = results.get(key)
        assert took is not None, (key, gw.output())
        assert 8 <= took <= T(15), (key, took)
    # The backend got none of these connections.
    assert metric(gw, "envoy_tcp_downstream_cx_total", "tcpmapping_default_pass_a") in (None, 0)


def _client_hello(server_name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        s.do_handshake()
    return outgoing.read()


def test_gateway_api_passthrough_listener_and_tlsroute(tmp_path, tls_echo, pki, T):
    a = tls_echo("pass-a", pki.a)
    kube = FakeKube(str(tmp_path / "kube"))
    for kind in ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute",
                 "ReferenceGrant"):
        kube.register(kind)
    kube.apply(obj("Module", "ambassador", {"config": {"resolver": "kubernetes-endpoint"}}))
    kube.apply(obj("Service", "secure-app", {"ports": [{"name": "https", "port": 443}]}, api="v1"))
    kube.apply(obj("EndpointSlice", "secure-app-abc", None, api="discovery.k8s.io/v1",
                   labels={"kubernetes.io/service-name": "secure-app"}, addressType="IPv4",
                   ports=[{"name": "https", "port": a.port}],
                   endpoints=[{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]))
    port = free_port("0.0.0.0")
    kube.apply(obj("GatewayClass", "proxenos", {"controllerName": CONTROLLER}, api=GW_API,
                   namespace=None))
    kube.apply(obj("Gateway", "edge", {"gatewayClassName": "proxenos", "listeners": [
        {"name": "pass", "protocol": "TLS", "port": port, "hostname": "*.pass.example.com",
         "tls": {"mode": "Passthrough"}}]}, api=GW_API))
    kube.apply(obj("TLSRoute", "secure", {"parentRefs": [{"name": "edge", "sectionName": "pass"}],
                                          "hostnames": ["a.pass.example.com"],
                                          "rules": [{"backendRefs": [{"name": "secure-app",
                                                                      "port": 443}]}]},
                   api=GW_API))
    gw = KubeGateway(str(tmp_path / "kgw"), kube)
    assert harness.wait_for_tcp("127.0.0.1", port, T(5), gw)
    code, body, err = curl_json(port, "a.pass.example.com", pki, "/k8s")
    assert code == 0, (err, gw.output())
    assert body["backend"] == "pass-a" and body["tls"]["sni"] == "a.pass.example.com"
    assert s_client_subject(port, "a.pass.example.com", pki) == "CN=a.pass.example.com"
    assert handshake_fails(port, "b.pass.example.com", pki, T)

    def listener_status():
        ls = stored(kube, "Gateway", "edge").get("status", {}).get("listeners", [])
        return ls[0] if ls else None

    assert harness.wait_until(lambda: listener_status() is not None, T(10))
    ls = listener_status()
    assert ls["attachedRoutes"] == 1
    for type_ in ("Accepted", "ResolvedRefs", "Programmed"):
        assert condition(ls["conditions"], type_)["status"] == "True", ls
    assert harness.wait_until(
        lambda: stored(kube, "TLSRoute", "secure").get("status", {}).get("parents"), T(10))
    parent = stored(kube, "TLSRoute", "secure")["status"]["parents"][0]
    assert condition(parent["conditions"], "Accepted")["status"] == "True"
    assert condition(parent["conditions"], "ResolvedRefs")["status"] == "True"
