"""The fake Kubernetes API server (fake_kube_api.py) as a test process, plus kubeconfig files and
gateways that read their configuration from it."""

import base64
import json
import os
import ssl
import time
import urllib.request

import harness

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_kube_api.py")

AMBASSADOR = ("getambassador.io", "v3alpha1")
PLURALS = {
    "Mapping": "mappings", "Host": "hosts", "Listener": "listeners", "TLSContext": "tlscontexts",
    "TCPMapping": "tcpmappings", "Module": "modules",
    "KubernetesEndpointResolver": "kubernetesendpointresolvers",
    "KubernetesServiceResolver": "kubernetesserviceresolvers",
}
BUILTIN = {
    "Service": ("", "v1", "services", True),
    "Secret": ("", "v1", "secrets", True),
    "EndpointSlice": ("discovery.k8s.io", "v1", "endpointslices", True),
    "Ingress": ("networking.k8s.io", "v1", "ingresses", True),
    "IngressClass": ("networking.k8s.io", "v1", "ingressclasses", False),
    "Lease": ("coordination.k8s.io", "v1", "leases", True),
    "GatewayClass": ("gateway.networking.k8s.io", "v1", "gatewayclasses", False),
    "Gateway": ("gateway.networking.k8s.io", "v1", "gateways", True),
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes", True),
    "GRPCRoute": ("gateway.networking.k8s.io", "v1", "grpcroutes", True),
    "TLSRoute": ("gateway.networking.k8s.io", "v1", "tlsroutes", True),
    "TCPRoute": ("gateway.networking.k8s.io", "v1", "tcproutes", True),
    "ReferenceGrant": ("gateway.networking.k8s.io", "v1", "referencegrants", True),
}


def coordinates(kind):
    if kind in BUILTIN:
        return BUILTIN[kind]
    return AMBASSADOR[0], AMBASSADOR[1], PLURALS[kind], True


class FakeKube(harness.Proc):
    """fake_kube_api.py on a free port. Every getambassador.io kind the gateway watches is
    registered (as if its CRD were installed) unless `crds` is False."""

    def __init__(self, workdir, label="kube", token="", port=0, crds=True, tls=None):
        argv = ["/usr/bin/python3", FAKE, "--port", str(port)]
        if token:
            argv += ["--token", token]
        self.token = token
        self.tls = tls  # (cert, key, ca): serve https
        if tls:
            argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        super().__init__(argv, workdir, label)
        self.port = None
        deadline = time.monotonic() + harness.scaled(10)
        while time.monotonic() < deadline and self.port is None:
            for line in self.stdout().splitlines():
                if line.startswith("PORT "):
                    self.port = int(line.split()[1])
            if self.port is None:
                if not self.alive():
                    raise harness.HarnessError("fake API exited\n" + self.describe())
                time.sleep(0.02)
        if self.port is None:
            raise harness.HarnessError("fake API did not start\n" + self.describe())
        if crds:
            for kind in PLURALS:
                self.register(kind)
            for kind in ("Service", "Secret", "EndpointSlice", "Ingress", "IngressClass"):
                self.register(kind)

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _open(self, req):
        context = None
        if self.tls:
            context = ssl.create_default_context(cafile=self.tls[2])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        if isinstance(req, str):
            req = urllib.request.Request(req)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with opener.open(req, timeout=harness.scaled(10)) as r:
            return json.loads(r.read() or b"{}")

    def control(self, what, body=None):
        return self._open(urllib.request.Request(self.url + "/fake/" + what, method="POST",
                                                 data=json.dumps(body or {}).encode(),
                                                 headers={"Content-Type": "application/json"}))

    def get(self, path):
        return self._open(self.url + path)

    def register(self, kind):
        group, version, resource, namespaced = coordinates(kind)
        self.control("register", {"group": group, "version": version, "resource": resource,
                                  "kind": kind, "namespaced": namespaced})

    def apply(self, obj):
        group, version, resource, namespaced = coordinates(obj["kind"])
        return self.control("apply", {"group": group, "version": version, "resource": resource,
                                      "kind": obj["kind"], "namespaced": namespaced,
                                      "object": obj})

    def delete(self, kind, name, namespace="default"):
        group, version, resource, namespaced = coordinates(kind)
        body = {"group": group, "version": version, "resource": resource, "name": name,
                "namespaced": namespaced}
        if namespaced:
            body["namespace"] = namespace
        return self.control("delete", body)

    def kubeconfig(self, path, namespace="default", token=None, token_file=None, ca=None):
        token = self.token if token is None else token
        user = {"token": token} if token else {}
        if token_file:
            user = {"tokenFile": token_file}
        cluster = {"server": self.url}
        if self.tls:
            with open(ca or self.tls[2], "rb") as f:
                cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "fake",
                          "context": {"cluster": "fake", "user": "u", "namespace": namespace}}],
        }
        with open(path, "w") as f:
            json.dump(config, f)
        return path


def obj(kind, name, spec, namespace="default", labels=None, annotations=None,
        api="getambassador.io/v3alpha1", **top):
    meta = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    out = {"apiVersion": api, "kind": kind, "metadata": meta}
    if spec is not None:
        out["spec"] = spec
    out.update(top)
    return out


class KubeGateway(harness.Gateway):
    """`proxenos run --kubernetes` against a FakeKube; `files` (optional) adds a --config folder.
    When `listen` is true a Listener on a free port comes from the folder."""

    def __init__(self, workdir, kube, files=None, listen=True, extra_args=(), wait_ready=True,
                 label="proxenos", env=None, namespace="default", token_file=None, ca=None, **kw):
        os.makedirs(workdir, exist_ok=True)
        self.kubeconfig_path = kube.kubeconfig(os.path.join(workdir, "kubeconfig"),
                                               namespace=namespace, token_file=token_file, ca=ca)
        args = ["--kubernetes", "--kubeconfig", self.kubeconfig_path] + list(extra_args)
        super().__init__(workdir, files or {}, listen=listen, extra_args=args,
                         wait_ready=wait_ready, label=label, env=env, **kw)
