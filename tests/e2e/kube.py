"""The fake Kubernetes API server (fake_kube_api.py) as a test process, plus kubeconfig files and
gateways that read their configuration from it."""

import base64
import json
import os
import signal
import ssl
import time
import urllib.error
import urllib.parse
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
    registered (as if its CRD were installed) unless `crds` is False.

    `state`: a file (or True: WORKDIR/state.json) the fake saves its store to on every change
    and loads at start, so restart() keeps the objects; `rv_offset` and `unavailable_ms` are
    passed on (see fake_kube_api.py)."""

    def __init__(self, workdir, label="kube", token="", port=0, crds=True, tls=None, state=None,
                 rv_offset=None, unavailable_ms=0):
        self.workdir = workdir
        self.base_label = label
        self.token = token
        self.tls = tls  # (cert, key, ca): serve https
        if state is True:
            state = os.path.join(workdir, "state.json")
        self.state = state
        self.rv_offset = rv_offset
        self.restarts = 0
        self._launch(port, label, unavailable_ms)
        if crds:
            for kind in PLURALS:
                self.register(kind)
            for kind in ("Service", "Secret", "EndpointSlice", "Ingress", "IngressClass"):
                self.register(kind)

    def _launch(self, port, label, unavailable_ms=0, rv_offset=None):
        argv = ["/usr/bin/python3", FAKE, "--port", str(port)]
        if self.token:
            argv += ["--token", self.token]
        if self.tls:
            argv += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        if self.state:
            argv += ["--state", self.state]
        rv_offset = self.rv_offset if rv_offset is None else rv_offset
        if rv_offset is not None:
            argv += ["--rv-offset", str(rv_offset)]
        if unavailable_ms:
            argv += ["--unavailable-ms", str(unavailable_ms)]
        harness.Proc.__init__(self, argv, self.workdir, label)
        # Restarted: keep the first registration, so teardown order stays as it was.
        seen = [i for i, p in enumerate(harness.Proc.registry) if p is self]
        for i in reversed(seen[1:]):
            harness.Proc.registry.pop(i)
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

    def kill(self, sig=signal.SIGKILL):
        """Ends the fake (SIGKILL by default: no goodbye on any connection) and waits for it."""
        self.signal(sig)
        if self.wait(harness.scaled(5)) is None:
            self.signal(signal.SIGKILL)
            self.wait(harness.scaled(5))
        self._out.close()
        self._err.close()

    def start_again(self, unavailable_ms=0, rv_offset=None):
        """Starts the fake again on the same port (and --state, so with the same objects); its
        output goes to LABEL-rN.stdout/stderr."""
        assert not self.alive(), "start_again() needs a stopped fake"
        self.restarts += 1
        self._launch(self.port, f"{self.base_label}-r{self.restarts}", unavailable_ms, rv_offset)

    def edit_state(self, edit):
        """While the fake is stopped: `edit(objects)` changes the saved store, where `objects`
        maps (group, version, resource) to {"NS/NAME" or "NAME": object} -- a change the
        restarted fake's watchers never get an event for (etcd written while the apiserver
        was away)."""
        assert self.state and not self.alive(), "edit_state() needs a stopped fake with state"
        with open(self.state) as f:
            data = json.load(f)
        objects = {}
        for c in data["collections"]:
            objects[(c["group"], c["version"], c["resource"])] = {
                (o["metadata"].get("namespace", "") + "/" if o["metadata"].get("namespace")
                 else "") + o["metadata"]["name"]: o for o in c["objects"]}
        edit(objects)
        for c in data["collections"]:
            c["objects"] = list(objects[(c["group"], c["version"], c["resource"])].values())
        with open(self.state, "w") as f:
            json.dump(data, f)

    def restart(self, down=0.0, sig=signal.SIGKILL, unavailable_ms=0, rv_offset=None):
        """kill(sig), `down` seconds of outage (connections refused), start_again()."""
        self.kill(sig)
        if down:
            time.sleep(down)  # the outage itself, not a synchronisation
        self.start_again(unavailable_ms, rv_offset)

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

    def apply_many(self, objs):
        """Creates or modifies many objects in one request per kind (fake `apply_many`);
        returns the total count."""
        by_kind = {}
        for o in objs:
            by_kind.setdefault(o["kind"], []).append(o)
        count = 0
        for kind, group_objs in by_kind.items():
            group, version, resource, namespaced = coordinates(kind)
            count += self.control("apply_many", {
                "group": group, "version": version, "resource": resource, "kind": kind,
                "namespaced": namespaced, "objects": group_objs})["count"]
        return count

    def object(self, kind, name, namespace="default"):
        """The stored object (via /fake/object: not logged, no faults), or None."""
        group, version, resource, namespaced = coordinates(kind)
        query = urllib.parse.urlencode({"group": group, "version": version, "resource": resource,
                                        "namespace": namespace if namespaced else "",
                                        "name": name})
        try:
            return self.get("/fake/object?" + query)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

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
