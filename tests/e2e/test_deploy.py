"""deploy/: the CRDs, RBAC, Deployment, Service, classes, examples and the Helm chart, checked as
far as a machine without a cluster, Docker or Helm can check them (docs/deploy.md says what is
not exercised).

- Every YAML file parses; the CRDs are what deploy/gen_crds.py writes.
- Every CRD is structural, has exactly one (served, storage) version, a status subresource with a
  schema, and printer columns whose paths exist in the schema.
- Every getambassador.io resource in deploy/example/ and examples/ validates against its CRD's
  schema (converted to JSON Schema, unknown fields rejected as `kubectl apply` rejects them), and
  resources with wrong types do not.
- RBAC grants what the gateway watches and writes (kubernetes-api.md §6, and the kinds
  src/k8s/kubernetes_source.cc lists); the Deployment and Service have the agreed shape.
- The chart renders (tests/e2e/helm_render.py, a stand-in for `helm template`) to the same
  objects as the plain manifests, cluster-wide and single-namespace.
- `proxenos validate` accepts deploy/example/.
"""

import copy
import glob
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402
import helm_render  # noqa: E402
import pki  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
CRD_DIR = os.path.join(DEPLOY, "crds")
CHART = os.path.join(DEPLOY, "helm", "proxenos")
EXAMPLE_DIRS = [os.path.join(DEPLOY, "example"), os.path.join(ROOT, "examples")]
GROUP = "getambassador.io"
ADMIN_PORT = 8877

# Every getambassador.io/v3alpha1 kind of emissary-reference.md (§1, §3.5) and its plural.
KINDS = {
    "Mapping": "mappings", "Host": "hosts", "Listener": "listeners",
    "TLSContext": "tlscontexts", "TCPMapping": "tcpmappings", "Module": "modules",
    "AuthService": "authservices", "RateLimitService": "ratelimitservices",
    "LogService": "logservices", "TracingService": "tracingservices", "DevPortal": "devportals",
    "KubernetesServiceResolver": "kubernetesserviceresolvers",
    "KubernetesEndpointResolver": "kubernetesendpointresolvers",
    "ConsulResolver": "consulresolvers",
}

# kubernetes-api.md §6, the proposed ClusterRole: (group, resource) read with get/list/watch ...
SPEC_READ = [
    ("", "services"), ("", "secrets"), ("", "namespaces"), ("", "configmaps"),
    ("discovery.k8s.io", "endpointslices"),
    ("networking.k8s.io", "ingresses"), ("networking.k8s.io", "ingressclasses"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
] + [(GROUP, plural) for plural in KINDS.values()] + [
    ("gateway.networking.k8s.io", r) for r in (
        "gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes", "tcproutes",
        "udproutes", "referencegrants", "listenersets", "backendtlspolicies")]
# ... and written with get/update/patch.
SPEC_STATUS = [
    ("networking.k8s.io", "ingresses/status"),
    (GROUP, "mappings/status"), (GROUP, "hosts/status"), (GROUP, "tcpmappings/status"),
] + [("gateway.networking.k8s.io", f"{r}/status") for r in (
    "gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes", "tcproutes",
    "udproutes", "listenersets")]
CLUSTER_SCOPED = {("", "namespaces"), ("networking.k8s.io", "ingressclasses"),
                  ("apiextensions.k8s.io", "customresourcedefinitions"),
                  ("gateway.networking.k8s.io", "gatewayclasses"),
                  ("gateway.networking.k8s.io", "gatewayclasses/status")}
LEASE = "proxenos-status"


# ---------------------------------------------------------------------------------------------
# Loading


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def deploy_yaml_files():
    """Every YAML file under deploy/ except the chart's templates (Go templates, rendered below)."""
    out = []
    for dirpath, _, files in os.walk(DEPLOY):
        if os.path.join("helm", "proxenos", "templates") in dirpath:
            continue
        out += [os.path.join(dirpath, f) for f in files if f.endswith((".yaml", ".yml"))]
    return sorted(out)


def rel(path):
    return os.path.relpath(path, ROOT)


def crds():
    out = {}
    for path in sorted(glob.glob(os.path.join(CRD_DIR, "*.yaml"))):
        for doc in load_docs(path):
            out[doc["spec"]["names"]["kind"]] = doc
    return out


def manifest(name, kind=None):
    docs = load_docs(os.path.join(DEPLOY, name))
    if kind:
        docs = [d for d in docs if d["kind"] == kind]
    return docs


def one(name, kind):
    docs = manifest(name, kind)
    assert len(docs) == 1, f"{name}: expected one {kind}, found {len(docs)}"
    return docs[0]


def example_resources():
    """(id, resource) for every getambassador.io document of the example folders."""
    out = []
    for d in EXAMPLE_DIRS:
        for path in sorted(glob.glob(os.path.join(d, "**", "*.y*ml"), recursive=True)):
            for i, doc in enumerate(load_docs(path)):
                if str(doc.get("apiVersion", "")).startswith(GROUP + "/"):
                    out.append((f"{rel(path)}#{i}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


# ---------------------------------------------------------------------------------------------
# OpenAPI (CRD subset) -> JSON Schema, and the structural-schema rules


def to_jsonschema(node):
    """The CRD's OpenAPI v3 subset as JSON Schema: nullable, x-kubernetes-int-or-string and
    x-kubernetes-preserve-unknown-fields become their JSON Schema meaning; an object schema with
    `properties` and no preserve-unknown-fields rejects other fields (kubectl's default strict
    field validation reports them as errors; the API server would prune them)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format"):
            continue
        if key == "properties":
            out[key] = {k: to_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_jsonschema(v) for v in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"allOf": [out, {"type": ["integer", "string"]}]}
    elif node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


TYPES = {"object", "array", "string", "integer", "number", "boolean"}
PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool}


def structural_problems(node, path, root=False):
    """Violations of the structural-schema rules (kubernetes.io, "Specifying a structural
    schema"), plus consistency checks the API server also makes (items on arrays, enum types)."""
    if not isinstance(node, dict):
        return [f"{path}: not a schema"]
    problems = []
    untyped_ok = (node.get("x-kubernetes-preserve-unknown-fields") is True
                  or node.get("x-kubernetes-int-or-string") is True)
    typ = node.get("type")
    if typ is None and not untyped_ok:
        problems.append(f"{path}: no type")
    if typ is not None and typ not in TYPES:
        problems.append(f"{path}: unknown type {typ!r}")
    if root and typ != "object":
        problems.append(f"{path}: the root must be an object")
    if node.get("x-kubernetes-preserve-unknown-fields") is False:
        problems.append(f"{path}: x-kubernetes-preserve-unknown-fields must be true or absent")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false is not structural")
    if typ == "array" and "items" not in node:
        problems.append(f"{path}: an array needs items")
    if typ in ("string", "integer", "number", "boolean") and ("properties" in node
                                                              or "items" in node):
        problems.append(f"{path}: a {typ} has properties or items")
    for junctor in ("allOf", "anyOf", "oneOf", "not"):
        if junctor in node:
            problems.append(f"{path}: {junctor} is not used by these CRDs (check the structural "
                            "rules by hand before adding one)")
    for value in node.get("enum", []):
        if typ in PY_TYPES and (not isinstance(value, PY_TYPES[typ])
                                or (typ != "boolean" and isinstance(value, bool))):
            problems.append(f"{path}: enum value {value!r} is not a {typ}")
    for name, sub in node.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        problems += structural_problems(node["items"], f"{path}[]")
    return problems


def schema_at(schema, json_path):
    """The schema node of a printer column's jsonPath (`.spec.a.b`), None if absent."""
    node = schema
    for part in json_path.lstrip(".").split("."):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return node
        props = node.get("properties", {})
        if part not in props:
            return None
        node = props[part]
    return node


def version_of(crd):
    versions = crd["spec"]["versions"]
    assert len(versions) == 1, "one version: v3alpha1"
    return versions[0]


def validator(crd):
    schema = to_jsonschema(version_of(crd)["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


# ---------------------------------------------------------------------------------------------
# YAML and generated files


@pytest.mark.parametrize("path", deploy_yaml_files(), ids=rel)
def test_every_yaml_file_parses(path):
    docs = load_docs(path)
    assert docs, f"{rel(path)} holds no document"
    if os.path.basename(path) in ("Chart.yaml", "values.yaml"):
        return
    for doc in docs:
        assert isinstance(doc, dict), f"{rel(path)}: a document is not a mapping"
        for key in ("apiVersion", "kind"):
            assert doc.get(key), f"{rel(path)}: a document has no {key}"
        assert doc.get("metadata", {}).get("name"), f"{rel(path)}: a {doc['kind']} has no name"


def test_chart_templates_are_covered_by_the_yaml_walk():
    # The walk skips only the templates folder; if it skipped everything the test above would
    # prove nothing.
    names = {os.path.basename(p) for p in deploy_yaml_files()}
    assert {"rbac.yaml", "deployment.yaml", "service.yaml", "Chart.yaml"} <= names
    assert len([p for p in deploy_yaml_files() if "/crds/" in p]) == 2 * len(KINDS)


def test_crds_are_what_the_generator_writes():
    r = subprocess.run([sys.executable, os.path.join(DEPLOY, "gen_crds.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_chart_crds_are_a_copy_of_deploy_crds():
    ours = sorted(os.listdir(CRD_DIR))
    assert sorted(os.listdir(os.path.join(CHART, "crds"))) == ours
    for name in ours:
        with open(os.path.join(CRD_DIR, name)) as a, open(os.path.join(CHART, "crds", name)) as b:
            assert a.read() == b.read(), name


# ---------------------------------------------------------------------------------------------
# CRDs


def test_one_crd_per_kind():
    found = crds()
    assert set(found) == set(KINDS)
    for path in glob.glob(os.path.join(CRD_DIR, "*.yaml")):
        assert len(load_docs(path)) == 1, f"{rel(path)}: one CRD per file"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crd_is_structural_and_complete(kind):
    crd = crds()[kind]
    plural = KINDS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "proxenos"
    spec = crd["spec"]
    assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
    assert spec["names"] == {**spec["names"], "kind": kind, "plural": plural,
                             "listKind": kind + "List", "singular": kind.lower()}
    assert "conversion" not in spec, "one version: no conversion webhook"

    version = version_of(crd)
    assert version["name"] == "v3alpha1"
    assert version["served"] is True and version["storage"] is True
    assert [v for v in spec["versions"] if v["storage"]] == [version]

    schema = version["schema"]["openAPIV3Schema"]
    assert structural_problems(schema, kind, root=True) == []
    metadata = schema["properties"]["metadata"]
    assert set(metadata.get("properties", {})) <= {"name", "generateName"}

    assert version["subresources"] == {"status": {}}
    status = schema["properties"].get("status")
    assert status and status["type"] == "object" and status.get("properties"), \
        "the status subresource needs a status schema, or every status write is pruned"

    columns = version.get("additionalPrinterColumns")
    assert columns, "printer columns"
    for c in columns:
        assert c["type"] in ("string", "integer", "number", "boolean", "date"), c
        if c["jsonPath"].startswith(".metadata."):
            assert c["jsonPath"] == ".metadata.creationTimestamp" and c["type"] == "date", c
            continue
        node = schema_at(schema, c["jsonPath"])
        assert node is not None, f"{kind}: printer column {c['name']}: {c['jsonPath']} is not " \
                                 "in the schema"
        if c["type"] in ("integer", "boolean"):
            assert node.get("type") == c["type"], c


def test_status_schemas_are_emissarys():
    found = crds()
    mapping = version_of(found["Mapping"])["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert {"state", "reason"} <= set(mapping["properties"])
    assert mapping["properties"]["state"]["enum"] == ["", "Inactive", "Running"]
    host = version_of(found["Host"])["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert {"state", "phaseCompleted", "phasePending", "errorReason", "errorTimestamp",
            "errorBackoff", "tlsCertificateSource"} <= set(host["properties"])
    assert host["properties"]["state"]["enum"] == ["Initial", "Pending", "Ready", "Error"]
    names = [c["name"] for c in version_of(found["Mapping"])["additionalPrinterColumns"]]
    assert names[:5] == ["Source Host", "Source Prefix", "Dest Service", "State", "Reason"]
    names = [c["name"] for c in version_of(found["Host"])["additionalPrinterColumns"]]
    assert names == ["Hostname", "State", "Phase Completed", "Phase Pending", "Age"]


def test_free_form_fields_are_few():
    """x-kubernetes-preserve-unknown-fields only where Emissary's fields are free-form."""
    allowed = {
        "Mapping": {"add_request_headers.*", "add_response_headers.*", "labels.*[]",
                    "envoy_override", "modules[]",
                    "health_checks[].health_check.http.add_request_headers.*"},
        "Module": {"config"},
    }
    for kind, crd in crds().items():
        found = set()

        def walk(node, path):
            if node.get("x-kubernetes-preserve-unknown-fields"):
                found.add(path)
            for name, sub in node.get("properties", {}).items():
                walk(sub, f"{path}.{name}" if path else name)
            if isinstance(node.get("additionalProperties"), dict):
                walk(node["additionalProperties"], f"{path}.*")
            if "items" in node:
                walk(node["items"], f"{path}[]")

        walk(version_of(crd)["schema"]["openAPIV3Schema"]["properties"]["spec"], "")
        assert found == allowed.get(kind, set()), kind


EXAMPLES = example_resources()


def test_examples_exist():
    kinds = {doc["kind"] for _, doc in EXAMPLES}
    assert {"Listener", "Host", "Mapping"} <= kinds, kinds
    assert len([i for i, _ in EXAMPLES if i.startswith("deploy/")]) >= 5
    assert len([i for i, _ in EXAMPLES if i.startswith("examples/")]) >= 3


@pytest.mark.parametrize("doc", [d for _, d in EXAMPLES], ids=[i for i, _ in EXAMPLES])
def test_example_validates_against_its_crd(doc):
    assert doc["apiVersion"] == f"{GROUP}/v3alpha1", "the CRDs serve v3alpha1 only"
    crd = crds().get(doc["kind"])
    assert crd is not None, f"no CRD for {doc['kind']}"
    errors = sorted(validator(crd).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def _mapping(**spec):
    return {"apiVersion": f"{GROUP}/v3alpha1", "kind": "Mapping", "metadata": {"name": "m"},
            "spec": {"prefix": "/", "service": "svc", **spec}}


def _resource(kind, spec):
    return {"apiVersion": f"{GROUP}/v3alpha1", "kind": kind, "metadata": {"name": "x"},
            "spec": spec}


LISTENER_SPEC = {"port": 8080, "protocol": "HTTP", "securityModel": "XFP",
                 "hostBinding": {"namespace": {"from": "ALL"}}}

ACCEPTED = {
    "header value as a string": _mapping(add_request_headers={"x-a": "b"}),
    "header value as an object": _mapping(add_response_headers={"x-a": {"value": "b",
                                                                       "append": False}}),
    "rate-limit labels": _mapping(labels={"ambassador": [{"g": [{"remote_address": {
        "key": "remote_address"}}]}]}),
    "status written by the gateway": {**_mapping(), "status": {"state": "Inactive",
                                                               "reason": "no Host"}},
    "TCPMapping idle_timeout_ms as a string": _resource(
        "TCPMapping", {"port": 9000, "service": "db:5432", "idle_timeout_ms": "30000"}),
    "TCPMapping idle_timeout_ms as a number": _resource(
        "TCPMapping", {"port": 9000, "service": "db:5432", "idle_timeout_ms": 30000}),
    "Module config is free-form": _resource("Module", {"config": {"anything": {"x": [1]}}}),
    "Listener": _resource("Listener", LISTENER_SPEC),
    "Host status": {**_resource("Host", {"hostname": "a.example"}),
                    "status": {"state": "Ready", "tlsCertificateSource": "Other"}},
}

REJECTED = {
    "timeout_ms as a string": _mapping(timeout_ms="3000"),
    "prefix missing": {**_mapping(), "spec": {"service": "svc"}},
    "unknown field": _mapping(prefixx="/a"),
    "headers value not a string": _mapping(headers={"x-a": True}),
    "redirect_response_code out of the set": _mapping(redirect_response_code=305),
    "ambassador_id as a string": _mapping(ambassador_id="default"),
    "status state out of the set": {**_mapping(), "status": {"state": "Broken"}},
    "Listener port out of range": _resource("Listener", {**LISTENER_SPEC, "port": 70000}),
    "Listener without securityModel": _resource(
        "Listener", {k: v for k, v in LISTENER_SPEC.items() if k != "securityModel"}),
    "Host insecure action in the wrong case": _resource(
        "Host", {"requestPolicy": {"insecure": {"action": "redirect"}}}),
    "TLSContext min_tls_version unknown": _resource("TLSContext", {"min_tls_version": "v1.4"}),
    "Module without config": _resource("Module", {}),
    "TCPMapping idle_timeout_ms as an object": _resource(
        "TCPMapping", {"port": 9000, "service": "db:5432", "idle_timeout_ms": {"ms": 1}}),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_schema_accepts(name):
    doc = ACCEPTED[name]
    errors = [e.message for e in validator(crds()[doc["kind"]]).iter_errors(doc)]
    assert not errors


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_schema_rejects(name):
    doc = REJECTED[name]
    assert list(validator(crds()[doc["kind"]]).iter_errors(doc)), f"{name} was accepted"


def test_structural_check_finds_problems():
    bad = {"type": "object", "properties": {
        "a": {"description": "no type"},
        "b": {"type": "array"},
        "c": {"type": "object", "properties": {"d": {"type": "string"}},
              "additionalProperties": {"type": "string"}},
        "e": {"type": "string", "enum": [1]},
        "f": {"x-kubernetes-preserve-unknown-fields": True},
    }}
    problems = structural_problems(bad, "x", root=True)
    assert len(problems) == 4, problems


# ---------------------------------------------------------------------------------------------
# RBAC


def allows(rules, group, resource, verb, name=None):
    for r in rules:
        if group not in r.get("apiGroups", []) and "*" not in r.get("apiGroups", []):
            continue
        if resource not in r.get("resources", []) and "*" not in r.get("resources", []):
            continue
        if verb not in r.get("verbs", []) and "*" not in r.get("verbs", []):
            continue
        if r.get("resourceNames") and name not in r["resourceNames"]:
            continue
        return True
    return False


def watched_kinds_from_source():
    """(group, resource) pairs src/k8s/kubernetes_source.cc watches; None if the file is gone."""
    path = os.path.join(ROOT, "src", "k8s", "kubernetes_source.cc")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    found = set()
    table = re.search(r"kAmbassadorKinds\[\]\s*=\s*\{(.*?)\};", text, re.S)
    if table:
        found |= {(GROUP, r) for r, _ in re.findall(r'\{"(\w+)",\s*"(\w+)"\}', table.group(1))}
    for group, resource in re.findall(r'push_back\(\{"([\w.]*)",\s*"v1",\s*"(\w+)"', text):
        found.add((group, resource))
    for resource in re.findall(r'push_back\(\{kGatewayGroup,\s*"v1",\s*"(\w+)"', text):
        found.add(("gateway.networking.k8s.io", resource))
    for resource in re.findall(r'std::pair\{"(\w+)",\s*"\w+"\}', text):
        found.add(("gateway.networking.k8s.io", resource))
    return found


def cluster_rules():
    return one("rbac.yaml", "ClusterRole")["rules"]


@pytest.mark.parametrize("group,resource", SPEC_READ, ids=lambda x: x or "core")
def test_cluster_role_reads(group, resource):
    for verb in ("get", "list", "watch"):
        assert allows(cluster_rules(), group, resource, verb), f"{verb} {group}/{resource}"


@pytest.mark.parametrize("group,resource", SPEC_STATUS, ids=lambda x: x or "core")
def test_cluster_role_writes_status(group, resource):
    for verb in ("get", "update", "patch"):
        assert allows(cluster_rules(), group, resource, verb), f"{verb} {group}/{resource}"


def test_cluster_role_writes_nothing_else():
    writes = {"create", "update", "patch", "delete", "deletecollection", "*"}
    for r in cluster_rules():
        verbs = set(r["verbs"]) & writes
        if not verbs:
            continue
        for res in r["resources"]:
            ok = (res.endswith("/status") or res == "events"
                  or (res == "gatewayclasses" and verbs <= {"update", "patch"}))
            assert ok, f"{sorted(verbs)} on {res}"
        assert "*" not in r["resources"], r


def test_rbac_covers_what_the_source_watches():
    kinds = watched_kinds_from_source()
    if kinds is None:
        pytest.skip("src/k8s/kubernetes_source.cc is not in this tree")
    assert len(kinds) >= 15, f"the parser of kubernetes_source.cc needs updating: {kinds}"
    namespaced = manifest("rbac-single-namespace.yaml", "Role")
    for group, resource in sorted(kinds):
        for verb in ("list", "watch"):
            assert allows(cluster_rules(), group, resource, verb), f"{group}/{resource}"
            if (group, resource) not in CLUSTER_SCOPED:
                assert any(allows(r["rules"], group, resource, verb) for r in namespaced), \
                    f"single namespace: {group}/{resource}"


def _lease_rules(name):
    roles = [r for r in manifest(name, "Role") if r["metadata"]["name"].endswith("leader-election")]
    assert len(roles) == 1
    return roles[0]


@pytest.mark.parametrize("name", ["rbac.yaml", "rbac-single-namespace.yaml"])
def test_lease_role(name):
    role = _lease_rules(name)
    rules = role["rules"]
    assert role["metadata"]["namespace"] == one("deployment.yaml", "Deployment")["metadata"][
        "namespace"]
    assert allows(rules, "coordination.k8s.io", "leases", "create")
    for verb in ("get", "update"):
        assert allows(rules, "coordination.k8s.io", "leases", verb, LEASE)
        assert not allows(rules, "coordination.k8s.io", "leases", verb, "someone-elses-lease")


def test_single_namespace_rbac_is_namespaced():
    docs = manifest("rbac-single-namespace.yaml")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Role", "Role", "RoleBinding", "RoleBinding", "ServiceAccount"]
    role = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "proxenos"][0]
    for group, resource in SPEC_READ:
        if (group, resource) in CLUSTER_SCOPED:
            assert not allows(role["rules"], group, resource, "list"), resource
        else:
            for verb in ("get", "list", "watch"):
                assert allows(role["rules"], group, resource, verb), f"{group}/{resource}"
    for group, resource in SPEC_STATUS:
        if (group, resource) not in CLUSTER_SCOPED:
            assert allows(role["rules"], group, resource, "update"), f"{group}/{resource}"


@pytest.mark.parametrize("name", ["rbac.yaml", "rbac-single-namespace.yaml"])
def test_bindings_name_the_deployments_service_account(name):
    dep = one("deployment.yaml", "Deployment")
    sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
    ns = dep["metadata"]["namespace"]
    docs = manifest(name)
    assert [d for d in docs if d["kind"] == "ServiceAccount"][0]["metadata"] == {
        **[d for d in docs if d["kind"] == "ServiceAccount"][0]["metadata"],
        "name": sa, "namespace": ns}
    roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"].endswith("Role")}
    bindings = [d for d in docs if d["kind"].endswith("Binding")]
    assert len(bindings) == len(roles)
    for b in bindings:
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
        assert (b["roleRef"]["kind"], b["roleRef"]["name"]) in roles


# ---------------------------------------------------------------------------------------------
# Deployment, Service, classes


def parse_args(args):
    """{"--flag": value or True}, from `--flag=value`, `--flag value` and `--flag`."""
    out = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and "=" in a:
            k, v = a.split("=", 1)
            out[k] = v
        elif a.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[a] = args[i + 1]
            i += 1
        elif a.startswith("--"):
            out[a] = True
        i += 1
    return out


def container():
    dep = one("deployment.yaml", "Deployment")
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dep, containers[0]


def test_deployment_shape():
    dep, c = container()
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 2
    selector = dep["spec"]["selector"]["matchLabels"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert c["args"][0] == "run"
    args = parse_args(c["args"][1:])
    assert args["--kubernetes"] is True
    assert args["--admin-address"] == f"0.0.0.0:{ADMIN_PORT}"
    service = one("service.yaml", "Service")
    assert args["--publish-service"] == f"$(POD_NAMESPACE)/{service['metadata']['name']}"
    assert "--namespace" not in args and "--config" not in args
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    ports = {p["containerPort"] for p in c["ports"]}
    assert {8080, 8443, ADMIN_PORT} <= ports
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= 5 + 10, "preStop sleep + the default --drain-seconds"


def test_deployment_probes_on_the_admin_port():
    _, c = container()
    for probe, path in (("livenessProbe", "/ambassador/v0/check_alive"),
                        ("readinessProbe", "/ambassador/v0/check_ready")):
        get = c[probe]["httpGet"]
        assert get["path"] == path and get["port"] == ADMIN_PORT, probe
        assert get.get("scheme", "HTTP") == "HTTP"


def test_deployment_runs_unprivileged_on_a_read_only_root():
    dep, c = container()
    pod = dep["spec"]["template"]["spec"]["securityContext"]
    sc = c["securityContext"]
    assert pod["runAsNonRoot"] is True and sc["runAsNonRoot"] is True
    assert pod["runAsUser"] == 65532 and pod["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"


def test_service_maps_80_and_443():
    svc = one("service.yaml", "Service")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["metadata"]["labels"]["app.kubernetes.io/component"] == "ambassador-service"
    ports = {p["port"]: p["targetPort"] for p in svc["spec"]["ports"]}
    assert ports == {80: 8080, 443: 8443}
    dep, c = container()
    assert svc["metadata"]["namespace"] == dep["metadata"]["namespace"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"][
        "labels"].items()
    assert set(ports.values()) <= {p["containerPort"] for p in c["ports"]}


def test_listener_examples_match_the_service():
    ports = {d["spec"]["port"] for d in load_docs(os.path.join(DEPLOY, "example",
                                                               "listeners.yaml"))}
    assert ports == {8080, 8443}


def test_classes():
    ic = one("ingressclass.yaml", "IngressClass")
    assert ic["metadata"]["name"] == "ambassador"
    assert ic["spec"]["controller"] == "getambassador.io/ingress-controller"
    gc = one("gatewayclass.yaml", "GatewayClass")
    assert gc["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gc["spec"]["controllerName"] == "proxenos.dev/gateway-controller"


# ---------------------------------------------------------------------------------------------
# The Helm chart (rendered by the stand-in)

HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def _strip_helm_labels(doc):
    doc = copy.deepcopy(doc)
    for meta in (doc.get("metadata", {}),
                 doc.get("spec", {}).get("template", {}).get("metadata", {})):
        labels = meta.get("labels", {})
        for k in HELM_ONLY_LABELS:
            labels.pop(k, None)
    return doc


def _by_key(docs):
    out = {}
    for d in docs:
        key = (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        assert key not in out, f"duplicate {key}"
        out[key] = _strip_helm_labels(d)
    return out


def render(*overrides):
    return helm_render.manifests(helm_render.render_chart(CHART, "proxenos", "proxenos",
                                                          list(overrides)))


def plain(*files):
    return [d for f in files for d in manifest(f)]


def _assert_same(rendered, expected):
    got, want = _by_key(rendered), _by_key(expected)
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key] == want[key], key


def test_chart_renders_the_plain_manifests():
    _assert_same(render({"gatewayClass": {"enabled": True}}),
                 plain("rbac.yaml", "deployment.yaml", "service.yaml", "ingressclass.yaml",
                       "gatewayclass.yaml"))


def test_chart_defaults_leave_out_the_gateway_class():
    # Installing a GatewayClass fails without the Gateway API CRDs, so it is opt-in.
    _assert_same(render(), plain("rbac.yaml", "deployment.yaml", "service.yaml",
                                 "ingressclass.yaml"))


def test_chart_renders_single_namespace():
    expected = plain("rbac-single-namespace.yaml", "deployment.yaml", "service.yaml")
    dep = [d for d in expected if d["kind"] == "Deployment"][0]
    dep["spec"]["template"]["spec"]["containers"][0]["args"].append("--namespace=$(POD_NAMESPACE)")
    _assert_same(render({"scope": {"singleNamespace": True}, "gatewayClass": {"enabled": True}}),
                 expected)


def test_chart_values_reach_the_manifests():
    docs = _by_key(render({"replicaCount": 3, "image": {"repository": "r.example/p", "tag": "t"},
                           "adminPort": 9901, "extraArgs": ["--log-level=debug"],
                           "podAnnotations": {"a": "b"},
                           "resources": {"requests": {"cpu": "1"}}}))
    dep = docs[("Deployment", "proxenos", "proxenos")]
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    assert dep["spec"]["replicas"] == 3
    assert c["image"] == "r.example/p:t"
    assert c["args"][-1] == "--log-level=debug"
    assert parse_args(c["args"][1:])["--admin-address"] == "0.0.0.0:9901"
    assert c["livenessProbe"]["httpGet"]["port"] == 9901
    assert c["readinessProbe"]["httpGet"]["port"] == 9901
    # Maps merge with values.yaml, as Helm coalesces values.
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "128Mi"},
                              "limits": {"memory": "512Mi"}}
    assert pod["metadata"]["annotations"] == {"a": "b"}


def test_chart_release_name_and_namespace():
    docs = helm_render.manifests(helm_render.render_chart(CHART, "edge", "gw", []))
    for d in docs:
        if d["kind"] not in ("IngressClass", "GatewayClass", "ClusterRole",
                             "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == "gw", d["kind"]
    dep = [d for d in docs if d["kind"] == "Deployment"][0]
    assert "--publish-service=$(POD_NAMESPACE)/edge" in dep["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "edge"


def test_chart_crds():
    assert {d["spec"]["names"]["kind"] for d in helm_render.crds(CHART)} == set(KINDS)


# The stand-in renderer itself: each construct of the subset, and refusal of everything else.


def _tiny_chart(tmp_path, template, values=None):
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 1.2.3\n"
                                         "appVersion: \"9\"\n")
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values or {}))
    (tmp_path / "templates" / "_h.tpl").write_text(
        '{{- define "t.name" -}}\nn-{{ .Release.Name }}\n{{- end }}\n')
    (tmp_path / "templates" / "t.yaml").write_text(template)
    return helm_render.render_chart(str(tmp_path), "rel", "ns")["templates/t.yaml"]


def test_renderer_subset(tmp_path):
    out = _tiny_chart(tmp_path, (
        "a: {{ .Values.a }}\n"
        "b: {{ .Values.missing | default \"d\" }}\n"
        "c: {{ .Values.s | quote }}\n"
        "{{- if .Values.on }}\n"
        "d: on\n"
        "{{- else }}\n"
        "d: off\n"
        "{{- end }}\n"
        "e:\n"
        "{{- range .Values.list }}\n"
        "  - {{ . }} {{ $.Chart.Name }}\n"
        "{{- end }}\n"
        "f: {{ include \"t.name\" . }}\n"
        "g:\n"
        "  {{- toYaml .Values.m | nindent 2 }}\n"
        "h: {{ .Chart.Version }}/{{ .Chart.AppVersion }}/{{ .Release.Namespace }}\n"
        "{{/* a comment */}}\n"), {"a": 1, "s": "x y", "on": False, "list": ["p", "q"],
                                   "m": {"z": 1, "k": [True]}})
    assert out == ("a: 1\nb: d\nc: \"x y\"\nd: off\ne:\n  - p tiny\n  - q tiny\nf: n-rel\n"
                   "g:\n  k:\n  - true\n  z: 1\nh: 1.2.3/9/ns\n\n")


@pytest.mark.parametrize("template", [
    "{{ .Values.a | upper }}",           # a function outside the subset
    "{{ if eq .Values.a 1 }}x{{ end }}",  # eq
    "{{ with .Values.a }}x{{ end }}",    # with
    "{{ $x := 1 }}",                     # variables
    "{{ if .Values.a }}x",               # if without end
    "{{ (.Values.a) }}",                 # parentheses
    "{{ .Values.a.b.c }}",               # a field of a missing value
    "{{ range .Values.m }}x{{ end }}",   # range over a map
    "{{ .Values.m }}",                   # printing a map without toYaml
])
def test_renderer_refuses(tmp_path, template):
    with pytest.raises(helm_render.RenderError):
        _tiny_chart(tmp_path, template, {"m": {"k": 1}})


# ---------------------------------------------------------------------------------------------
# Dockerfile (not built here: no Docker; these check what can be checked without it)


def dockerfile():
    """[(instruction, argument text)], continuation lines joined, comments dropped."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = f.read()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for ln in joined.splitlines():
        if ln.strip():
            word, _, rest = ln.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def _apt_packages(run_text):
    m = re.search(r"apt-get install -y --no-install-recommends (.*?)(?:&&|$)", run_text)
    return set(m.group(1).split()) if m else set()


def _stages():
    stages = []
    for word, rest in dockerfile():
        if word == "FROM":
            stages.append([(word, rest)])
        elif stages:
            stages[-1].append((word, rest))
    return stages


def test_dockerfile_shape():
    build, runtime = _stages()
    assert build[0] == ("FROM", "debian:12 AS build")
    assert runtime[0] == ("FROM", "debian:12-slim")
    assert any(w == "RUN" and "-DCMAKE_BUILD_TYPE=Release" in r and "-G Ninja" in r
               for w, r in build)
    rt = dict((w, r) for w, r in runtime if w in ("USER", "EXPOSE", "ENTRYPOINT"))
    assert rt["USER"] == "65532:65532"
    assert set(rt["EXPOSE"].split()) == {"8080", "8443", str(ADMIN_PORT)}
    assert rt["ENTRYPOINT"] == '["/usr/local/bin/proxenos"]'
    assert [r for w, r in runtime if w == "COPY"] == [
        "--from=build /src/build/proxenos /usr/local/bin/proxenos"]
    # The runtime stage installs libraries only: no compiler, no -dev package.
    pkgs = set().union(*(_apt_packages(r) for w, r in runtime if w == "RUN"))
    assert pkgs and not [p for p in pkgs if p.endswith("-dev") or p in ("build-essential",
                                                                        "cmake")]


def test_dockerfile_build_packages_are_the_projects():
    with open(os.path.join(ROOT, "scripts", "install-deps")) as f:
        deps = set(re.search(r"packages=\((.*?)\)", f.read(), re.S).group(1).split())
    build, _ = _stages()
    pkgs = set().union(*(_apt_packages(r) for w, r in build if w == "RUN"))
    assert pkgs and pkgs <= deps, pkgs - deps


def test_dockerfile_runtime_packages_cover_the_binary(proxenos_bin):
    """Every shared library of the built binary belongs to a package the runtime stage installs
    (or to the base image: libc, libm, libstdc++, libgcc_s, the loader)."""
    base = ("linux-vdso", "ld-linux", "libc.so", "libm.so", "libstdc++", "libgcc_s",
            "libpthread", "libdl", "librt",
            # make e2e-asan runs this against a sanitizer build; the image's binary has none.
            "libasan", "libubsan", "liblsan", "libtsan")
    _, runtime = _stages()
    pkgs = set().union(*(_apt_packages(r) for w, r in runtime if w == "RUN"))
    ldd = subprocess.run(["ldd", proxenos_bin], capture_output=True, text=True, timeout=30)
    assert ldd.returncode == 0, ldd.stderr
    libs = re.findall(r"=>\s+(/\S+)", ldd.stdout)
    assert libs
    for lib in libs:
        if os.path.basename(lib).startswith(base):
            continue
        real = os.path.realpath(lib)
        owner = None
        for candidate in (lib, real, real.replace("/lib/", "/usr/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True,
                               timeout=30)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0]
                break
        assert owner, f"no package owns {lib}"
        assert owner in pkgs, f"{lib} comes from {owner}, which the runtime stage lacks"


def test_docker_context_configures(tmp_path):
    """The build context .dockerignore lets through (CMakeLists.txt, src/, tools/) is enough
    for the Dockerfile's cmake step to configure."""
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        rules = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    assert rules[0] == "*"
    kept = [r[1:].rstrip("/") for r in rules[1:] if r.startswith("!")]
    assert sorted(kept) == ["CMakeLists.txt", "src", "tools"]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for name in kept:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, ctx / name)
        else:
            shutil.copy(src, ctx / name)
    r = subprocess.run(["cmake", "-S", str(ctx), "-B", str(ctx / "build"), "-G", "Ninja",
                        "-DCMAKE_BUILD_TYPE=Release", "-DPROXENOS_TESTS=OFF"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["ninja", "-C", str(ctx / "build"), "-t", "targets", "all"],
                       capture_output=True, text=True, timeout=60)
    assert re.search(r"^proxenos:", r.stdout, re.M), r.stdout[-2000:]


# ---------------------------------------------------------------------------------------------
# The real binary


def test_proxenos_validate_accepts_the_example(proxenos_bin, tmp_path):
    """deploy/example/ plus the Secret the Host names (created with kubectl in a cluster)."""
    folder = tmp_path / "example"
    shutil.copytree(os.path.join(DEPLOY, "example"), folder)
    ca = pki.Pki(tmp_path / "pki")
    crt, key = ca.issue("example", "example.com", dns=["example.com"])
    (folder / "secret.yaml").write_text(harness.to_yaml_docs(
        [pki.tls_secret("example-com-tls", crt, key, namespace="default")]))
    r = harness.run_cli(["validate", str(folder)])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert " error: " not in out and " 0 errors" in out, out
    # Every Listener, Host and Mapping of the example is compiled into the route table (none
    # skipped for its kind or ambassador_id).
    r = harness.run_cli(["routes", str(folder)])
    assert r.returncode == 0, r.stdout + r.stderr
    for path in glob.glob(os.path.join(DEPLOY, "example", "*.yaml")):
        for doc in load_docs(path):
            if doc["kind"] in ("Listener", "Host", "Mapping"):
                ref = f"{doc['kind']}/{doc['metadata']['namespace']}/{doc['metadata']['name']}"
                assert ref in r.stdout, f"{ref} is not in the route table:\n{r.stdout}"


def test_the_binary_knows_every_flag_the_manifests_pass(proxenos_bin):
    r = harness.run_cli(["run", "--help"])
    assert r.returncode == 0, r.stderr
    known = set(re.findall(r"(--[a-z][a-z0-9-]*)", r.stdout))
    docs = render({"scope": {"singleNamespace": True}})
    args = container()[1]["args"] + [a for d in docs if d["kind"] == "Deployment"
                                     for a in d["spec"]["template"]["spec"]["containers"][0][
                                         "args"]]
    assert args[0] == "run"
    used = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    assert used - known == set(), f"flags `proxenos run` does not know: {used - known}"


def test_proxenos_validate_fails_without_the_secret(proxenos_bin):
    """The check above can fail: the example as shipped lacks the Host's Secret."""
    r = harness.run_cli(["validate", os.path.join(DEPLOY, "example")])
    assert r.returncode != 0
    assert "example-com-tls" in r.stdout + r.stderr
