"""Ingress and Gateway API objects, shaped like the upstream documentation's examples, routed by
the real binary reading them from fake_kube_api.py, with the status it writes back."""

import urllib.parse

import pytest

import harness
from harness import wait_until
from kube import FakeKube, KubeGateway, coordinates, obj

GW_API = "gateway.networking.k8s.io/v1"
CONTROLLER = "proxenos.dev/gateway-controller"


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    for kind in ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute",
                 "ReferenceGrant"):
        fake.register(kind)
    return fake


@pytest.fixture
def start_kube_gateway(tmp_path, kube):
    counter = {"n": 0}

    def start(**kw):
        counter["n"] += 1
        return KubeGateway(str(tmp_path / f"kgw{counter['n']}"), kube, **kw)

    return start


def stored(kube, kind, name, namespace="default"):
    group, version, resource, namespaced = coordinates(kind)
    q = {"group": group, "version": version, "resource": resource, "name": name}
    if namespaced:
        q["namespace"] = namespace
    return kube.get("/fake/object?" + urllib.parse.urlencode(q))


def condition(conditions, type_):
    for c in conditions or []:
        if c.get("type") == type_:
            return c
    return None


def backend_of(http, port, path, host, T=harness.scaled):
    r = http.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}, timeout=T(5),
                 allow_redirects=False)
    if r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json"):
        return r.json()["backend"]
    return r.status_code


def service_with_endpoints(kube, name, echo, namespace="default", port=80):
    """A Service whose EndpointSlice points at the echo backend: with the endpoint resolver the
    gateway routes to the pod address, as in a cluster."""
    echo_port = int(echo.addr.rsplit(":", 1)[1])
    kube.apply(obj("Service", name, {"ports": [{"name": "http", "port": port}]}, api="v1",
                   namespace=namespace))
    kube.apply(obj("EndpointSlice", name + "-abc", None, api="discovery.k8s.io/v1",
                   namespace=namespace, labels={"kubernetes.io/service-name": name},
                   addressType="IPv4", ports=[{"name": "http", "port": echo_port}],
                   endpoints=[{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]))


def endpoint_module(kube):
    kube.apply(obj("Module", "ambassador", {"config": {"resolver": "kubernetes-endpoint"}}))


def test_ingress_routes_by_class_and_annotation_with_status_from_the_publish_service(
        kube, start_kube_gateway, start_echo, http):
    a, b, d = start_echo("a"), start_echo("b"), start_echo("default")
    endpoint_module(kube)
    service_with_endpoints(kube, "app", a)
    service_with_endpoints(kube, "api", b)
    service_with_endpoints(kube, "fallback", d)
    kube.apply(obj("Service", "proxenos", {"ports": [{"port": 80}], "type": "LoadBalancer"},
                   api="v1", status={"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}))
    kube.apply(obj("IngressClass", "ambassador", {"controller": "getambassador.io/ingress-controller"},
                   api="networking.k8s.io/v1", namespace=None))
    # kubernetes.io's "simple fanout" example, with our class.
    kube.apply(obj("Ingress", "fanout", {
        "ingressClassName": "ambassador",
        "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
        "rules": [{"host": "foo.example.com", "http": {"paths": [
            {"path": "/app", "pathType": "Prefix",
             "backend": {"service": {"name": "app", "port": {"number": 80}}}},
            {"path": "/api/exact", "pathType": "Exact",
             "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
        ]}}]}, api="networking.k8s.io/v1"))
    # Another controller's Ingress is left alone.
    kube.apply(obj("Ingress", "theirs", {
        "ingressClassName": "nginx",
        "rules": [{"http": {"paths": [{"path": "/theirs", "pathType": "Prefix", "backend": {
            "service": {"name": "app", "port": {"number": 80}}}}]}}]},
        api="networking.k8s.io/v1"))
    gw = start_kube_gateway(extra_args=["--publish-service", "default/proxenos"])
    host = "foo.example.com"
    assert backend_of(http, gw.port, "/app", host) == "a"
    assert backend_of(http, gw.port, "/app/x", host) == "a"
    assert backend_of(http, gw.port, "/apple", host) != "a"  # element-wise prefix
    assert backend_of(http, gw.port, "/api/exact", host) == "b"
    assert backend_of(http, gw.port, "/api/exact/more", host) != "b"
    assert backend_of(http, gw.port, "/elsewhere", host) == "default"
    assert backend_of(http, gw.port, "/theirs", "any.example.com") != "a"

    def ingress_status():
        return stored(kube, "Ingress", "fanout").get("status", {})

    assert wait_until(lambda: ingress_status().get("loadBalancer") ==
                      {"ingress": [{"ip": "203.0.113.7"}]}, harness.scaled(10)), ingress_status()
    assert "status" not in stored(kube, "Ingress", "theirs") or \
        not stored(kube, "Ingress", "theirs")["status"].get("loadBalancer")

    # The annotation form, and a later change of the publish Service's address.
    kube.apply(obj("Ingress", "annotated", {"rules": [{"http": {"paths": [
        {"path": "/annotated", "pathType": "ImplementationSpecific",
         "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]},
        api="networking.k8s.io/v1", annotations={"kubernetes.io/ingress.class": "ambassador"}))
    assert wait_until(lambda: backend_of(http, gw.port, "/annotated", "x.example.com") == "b",
                      harness.scaled(5))
    kube.apply(obj("Service", "proxenos", {"ports": [{"port": 80}], "type": "LoadBalancer"},
                   api="v1", status={"loadBalancer": {"ingress": [{"hostname": "lb.example.net"}]}}))
    assert wait_until(lambda: ingress_status().get("loadBalancer") ==
                      {"ingress": [{"hostname": "lb.example.net"}]}, harness.scaled(10))


def gateway_objects(kube, port):
    kube.apply(obj("GatewayClass", "proxenos", {"controllerName": CONTROLLER}, api=GW_API,
                   namespace=None))
    kube.apply(obj("GatewayClass", "someone-else", {"controllerName": "example.com/other"},
                   api=GW_API, namespace=None))
    kube.apply(obj("Gateway", "edge", {
        "gatewayClassName": "proxenos",
        "listeners": [{"name": "http", "protocol": "HTTP", "port": port,
                       "allowedRoutes": {"namespaces": {"from": "Same"}}}]}, api=GW_API))


def test_httproute_routes_splits_and_rewrites_with_status(kube, start_kube_gateway, start_echo,
                                                          http):
    a, b, c = start_echo("a"), start_echo("b"), start_echo("c")
    endpoint_module(kube)
    service_with_endpoints(kube, "store-v1", a)
    service_with_endpoints(kube, "store-v2", b)
    service_with_endpoints(kube, "search", c)
    port = harness.free_port("0.0.0.0")
    gateway_objects(kube, port)
    # gateway-api.sigs.k8s.io's traffic-splitting and header-matching examples, combined.
    kube.apply(obj("HTTPRoute", "store", {
        "parentRefs": [{"name": "edge"}],
        "hostnames": ["store.example.com"],
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                          "headers": [{"name": "env", "value": "canary"}]}],
             "backendRefs": [{"name": "store-v2", "port": 80}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/search"}}],
             "filters": [{"type": "RequestHeaderModifier",
                          "requestHeaderModifier": {"add": [{"name": "x-from", "value": "gw"}]}}],
             "backendRefs": [{"name": "search", "port": 80}]},
            {"backendRefs": [{"name": "store-v1", "port": 80, "weight": 90},
                             {"name": "store-v2", "port": 80, "weight": 10}]},
        ]}, api=GW_API,
        # Another controller's entry in status.parents must survive our writes.
        status={"parents": [{"parentRef": {"name": "other-gw"},
                             "controllerName": "example.com/other",
                             "conditions": [{"type": "Accepted", "status": "True",
                                             "reason": "Accepted", "message": "",
                                             "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]}))
    # A route naming a listener our Gateway does not have.
    kube.apply(obj("HTTPRoute", "orphan", {"parentRefs": [{"name": "edge",
                                                           "sectionName": "missing"}],
                                           "rules": [{"backendRefs": [{"name": "search",
                                                                       "port": 80}]}]},
                   api=GW_API))
    gw = start_kube_gateway()
    host = "store.example.com"
    assert harness.wait_for_tcp("127.0.0.1", port, harness.scaled(5), gw)
    assert backend_of(http, port, "/", host) in ("a", "b")
    counts = {"a": 0, "b": 0}
    for _ in range(200):
        counts[backend_of(http, port, "/item", host)] += 1
    assert 150 <= counts["a"] <= 195, counts  # 90/10 split
    r = http.get(f"http://127.0.0.1:{port}/search?q=1", headers={"Host": host}, timeout=5)
    assert r.json()["backend"] == "c"
    assert r.json()["headers"].get("x-from") == "gw"
    assert backend_of(http, port, "/item", host) in ("a", "b")
    r = http.get(f"http://127.0.0.1:{port}/x", headers={"Host": host, "env": "canary"}, timeout=5)
    assert r.json()["backend"] == "b"
    assert backend_of(http, port, "/", "other.example.com") == 404
    # The route stays on the Gateway's port: the folder's Listener does not serve it.
    assert backend_of(http, gw.port, "/", host) == 404

    def ours(route):
        parents = stored(kube, "HTTPRoute", route).get("status", {}).get("parents", [])
        return [p for p in parents if p.get("controllerName") == CONTROLLER]

    assert wait_until(lambda: ours("store") and
                      condition(ours("store")[0]["conditions"], "Accepted")["status"] == "True",
                      harness.scaled(10)), stored(kube, "HTTPRoute", "store")
    entry = ours("store")[0]
    assert condition(entry["conditions"], "ResolvedRefs")["status"] == "True"
    parents = stored(kube, "HTTPRoute", "store")["status"]["parents"]
    assert parents[0]["controllerName"] == "example.com/other"  # kept, first, untouched
    assert parents[0]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"

    assert wait_until(lambda: ours("orphan"), harness.scaled(10))
    accepted = condition(ours("orphan")[0]["conditions"], "Accepted")
    assert accepted["status"] == "False" and accepted["reason"] == "NoMatchingParent", accepted

    gclass = stored(kube, "GatewayClass", "proxenos", namespace=None)
    assert condition(gclass["status"]["conditions"], "Accepted")["status"] == "True"
    other = stored(kube, "GatewayClass", "someone-else", namespace=None)
    assert not other.get("status", {}).get("conditions")
    gateway = stored(kube, "Gateway", "edge")
    assert condition(gateway["status"]["conditions"], "Programmed")["status"] == "True"
    listener = gateway["status"]["listeners"][0]
    assert listener["name"] == "http" and listener["attachedRoutes"] == 1

    # Status is not rewritten when nothing changed: the route's resourceVersion stays put.
    rv = stored(kube, "HTTPRoute", "store")["metadata"]["resourceVersion"]
    compiles = gw.stderr().count("config generation")
    kube.apply(obj("Service", "unrelated", {"ports": [{"port": 80}]}, api="v1"))
    assert wait_until(lambda: gw.stderr().count("config generation") > compiles,
                      harness.scaled(5))
    assert stored(kube, "HTTPRoute", "store")["metadata"]["resourceVersion"] == rv

    # The route is deleted: its routes go away.
    kube.delete("HTTPRoute", "store")
    assert wait_until(lambda: backend_of(http, port, "/search", host) == 404, harness.scaled(5))


def test_invalid_backend_refs_answer_500_for_their_share(kube, start_kube_gateway, start_echo,
                                                         http):
    # Gateway API HTTPRouteRule.backendRefs: requests for a backend that cannot be used get
    # 500, and only those; the route still reports why in ResolvedRefs.
    a = start_echo("a")
    endpoint_module(kube)
    service_with_endpoints(kube, "shop", a)
    port = harness.free_port("0.0.0.0")
    gateway_objects(kube, port)
    kube.apply(obj("HTTPRoute", "shop", {
        "parentRefs": [{"name": "edge"}],
        "hostnames": ["shop.example.com"],
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/gone"}}],
             "backendRefs": [{"name": "no-such-service", "port": 80}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/bucket"}}],
             "backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/nothing"}}]},
            {"backendRefs": [{"name": "shop", "port": 80, "weight": 1},
                             {"name": "no-such-service", "port": 80, "weight": 1}]},
        ]}, api=GW_API))
    gw = start_kube_gateway()
    host = "shop.example.com"
    assert harness.wait_for_tcp("127.0.0.1", port, harness.scaled(5), gw)
    assert wait_until(lambda: backend_of(http, port, "/gone", host) == 500, harness.scaled(5))
    assert backend_of(http, port, "/gone/deeper", host) == 500
    assert backend_of(http, port, "/bucket", host) == 500
    assert backend_of(http, port, "/nothing", host) == 500
    assert backend_of(http, port, "/gonex", host) in ("a", 500)  # the split rule, not /gone
    counts = {"a": 0, 500: 0}
    for _ in range(200):
        counts[backend_of(http, port, "/item", host)] += 1
    assert 60 <= counts["a"] <= 140, counts  # an even split between the two refs
    assert counts["a"] + counts[500] == 200
    # The gateway is still healthy for everything else, and keeps the connection open.
    with http.get(f"http://127.0.0.1:{port}/gone", headers={"Host": host}, timeout=5) as r:
        assert r.status_code == 500
        assert r.headers.get("connection", "").lower() != "close"

    def ours():
        parents = stored(kube, "HTTPRoute", "shop").get("status", {}).get("parents", [])
        return [p for p in parents if p.get("controllerName") == CONTROLLER]

    assert wait_until(lambda: ours() and condition(ours()[0]["conditions"], "ResolvedRefs"),
                      harness.scaled(10))
    resolved = condition(ours()[0]["conditions"], "ResolvedRefs")
    assert resolved["status"] == "False", resolved
    assert resolved["reason"] in ("BackendNotFound", "InvalidKind"), resolved
    assert condition(ours()[0]["conditions"], "Accepted")["status"] == "True"

    # Once the Service exists, the same rule proxies.
    service_with_endpoints(kube, "no-such-service", a)
    assert wait_until(lambda: backend_of(http, port, "/gone", host) == "a", harness.scaled(5))


def test_https_and_tcp_gateway_listeners(tmp_path, kube, start_kube_gateway, start_echo, http):
    import subprocess
    from pki import Pki, tls_secret

    echo = start_echo("tcp-echo")
    web = start_echo("web")
    endpoint_module(kube)
    service_with_endpoints(kube, "raw", echo)
    service_with_endpoints(kube, "web", web)
    pki = Pki(tmp_path / "pki")
    crt, key = pki.server("shop", "shop.example.com")
    kube.apply(tls_secret("shop-cert", crt, key))
    https_port, tcp_port = harness.free_port("0.0.0.0"), harness.free_port("0.0.0.0")
    kube.apply(obj("GatewayClass", "proxenos", {"controllerName": CONTROLLER}, api=GW_API,
                   namespace=None))
    kube.apply(obj("Gateway", "edge", {"gatewayClassName": "proxenos", "listeners": [
        {"name": "https", "protocol": "HTTPS", "port": https_port, "hostname": "shop.example.com",
         "tls": {"mode": "Terminate", "certificateRefs": [{"name": "shop-cert"}]}},
        {"name": "tcp", "protocol": "TCP", "port": tcp_port,
         "allowedRoutes": {"kinds": [{"kind": "TCPRoute"}]}}]}, api=GW_API))
    kube.apply(obj("HTTPRoute", "shop", {"parentRefs": [{"name": "edge", "sectionName": "https"}],
                                         "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
                   api=GW_API))
    kube.apply(obj("TCPRoute", "raw", {"parentRefs": [{"name": "edge", "sectionName": "tcp"}],
                                       "rules": [{"backendRefs": [{"name": "raw", "port": 80}]}]},
                   api=GW_API))
    gw = start_kube_gateway()
    assert harness.wait_for_tcp("127.0.0.1", https_port, harness.scaled(5), gw)
    out = subprocess.run(
        ["curl", "-sS", "--cacert", pki.ca_crt, "--resolve", f"shop.example.com:{https_port}:127.0.0.1",
         f"https://shop.example.com:{https_port}/cart"],
        capture_output=True, text=True, timeout=harness.scaled(10))
    assert out.returncode == 0, out.stderr
    assert '"backend": "web"' in out.stdout or '"backend":"web"' in out.stdout
    # Raw TCP: the bytes reach the backend as they are (an HTTP request sent over the tunnel).
    with harness.RawConn(tcp_port) as conn:
        r = conn.request(harness.get_request("/through-tcp", host="anything"))
    assert r.status == 200 and r.json()["backend"] == "tcp-echo"

    assert wait_until(lambda: len(stored(kube, "Gateway", "edge").get("status", {})
                                  .get("listeners", [])) == 2, harness.scaled(10))
    by_name = {l["name"]: l for l in stored(kube, "Gateway", "edge")["status"]["listeners"]}
    assert by_name["https"]["attachedRoutes"] == 1 and by_name["tcp"]["attachedRoutes"] == 1
    assert condition(by_name["https"]["conditions"], "ResolvedRefs")["status"] == "True"
