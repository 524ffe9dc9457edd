#!/usr/bin/python3
"""A fake kube-apiserver: the real list/watch/write wire protocol, misbehaving on command.

Standard library only. Wire behaviour follows ../shared/spec/kubernetes-api.md §1, §3 and §7:
collection URLs (/api/v1/..., /apis/G/V/..., with or without /namespaces/NS), LIST with
limit/continue paging and a shared list resourceVersion (built-in kinds' items carry no
kind/apiVersion), WATCH as a chunked stream of newline-terminated JSON events flushed one by one,
synthetic ADDEDs for resourceVersion unset/"0", an in-band ERROR 410 for a resourceVersion older
than the history window, BOOKMARKs when allowWatchBookmarks=true (one before the timeoutSeconds
close), 422 for sendInitialEvents (WatchList gate off), 504 for a too-large resourceVersion, and
Bearer-token auth (401).

Writes (§3), each persisted one producing a watch event:
  GET  .../R/NAME and .../R/NAME/status        the object (404 NotFound with the real message)
  POST .../R (namespaced: .../namespaces/NS/R)  create: 201; 409 AlreadyExists; a set
       resourceVersion → 500; `.status` dropped when the kind has a status subresource
  PUT  .../R/NAME and .../R/NAME/status        update: metadata.resourceVersion stale → 409
       Conflict ("the object has been modified; ..."); absent → 422 for custom resources (groups
       not in BUILTIN_GROUPS), unconditional for built-ins; name mismatch → 400; missing → 404
  PATCH (same paths) application/merge-patch+json (RFC 7386) and application/json-patch+json
       (RFC 6902, failed `test` → 422); strategic-merge-patch only for built-ins (applied as a
       merge patch: lists replaced whole); a patched resourceVersion must match (409); other
       media types → 415
  With a status subresource (default for every kind but leases, secrets, configmaps, endpoints,
  endpointslices, events, ingressclasses, namespaces; see `register`), /status writes change
  only `.status` and object writes keep the stored `.status`. metadata.generation starts at 1
  and bumps when anything but metadata/status changes. uid, creationTimestamp, generation and
  resourceVersion are the server's. A write that changes nothing is not persisted (the
  resourceVersion stays, no watch event). coordination.k8s.io leases validate spec.acquireTime/
  renewTime as MicroTime (exactly 6 fractional digits, 400 otherwise) and leaseDurationSeconds
  > 0 (422). Built-in collections (KNOWN_KINDS: leases, services, ingresses, ...) spring into
  existence on a write or an object GET, as they always exist in a real cluster.

Run: fake_kube_api.py [--port 0] [--token T] [--tls-cert F --tls-key F] [--state FILE]
     [--rv-offset 1] [--unavailable-ms 0]; prints "PORT <n>". The listen backlog is 256 (a
     gateway opens some 25 lists at once; socketserver's default of 5 would leave the rest
     waiting for a 1 s SYN retransmit).

Restarts (§1.8). With --state FILE the store (collections, objects, resourceVersion) is written
to FILE (atomically) after every change and read back at start, so a fake killed and started
again with the same --state and --port keeps its objects. Its history is not kept: the restarted
server's resourceVersion is the saved one plus --rv-offset (default 1: etcd moved on while the
apiserver was down) and its history window starts there, so a watch from any RV the old process
handed out gets the in-band ERROR 410 and a continue token from before the restart an HTTP 410,
as from a real apiserver whose watch cache was rebuilt (--rv-offset 0: a watch from the very
last RV resumes). --unavailable-ms N: for N ms after start every API request gets 429
"storage is (re)initializing" with Retry-After: 1, like a cacher that is not ready yet.

The test drives it through /fake/* (JSON bodies, POST):
  register {group, version, resource, kind, namespaced, status_subresource?}
           an (empty) collection: lists answer 200
  apply    {group, version, resource, kind?, object}      create or modify (RV always bumped,
           no RV rules, `.status` taken as given)
  apply_many {group, version, resource, kind?, namespaced?, objects: [...]}
           `apply` of each object in turn (one RV and one watch event each), one request and one
           --state save: {count, resourceVersion}
  delete   {group, version, resource, namespace?, name}
  fault    {match, status, count=1, retry_after?, message?, method?, verb?, body?,
            mode="status"|"in_band_410"|"close"|"delay", delay_ms=1000}
           the next `count` (-1 = forever) requests whose "path?query" contains `match` (and,
           when given, whose method is `method`, whose verb is `verb` -- list, watch, get,
           create, update or patch -- and whose body contains `body`) get it; "close"
           cuts a watch, or any object request/write without an answer; "delay" holds the
           request delay_ms, then serves it normally
  clear_faults {}
  bookmark {}              every open watch sends a BOOKMARK at the current RV
  expire_watches {}        every open watch sends ERROR 410 and ends
  close_watches {}         every open watch is cut (no terminating chunk)
  compact {}               forget history: watches from an older RV get an in-band 410
                           (and continue tokens from an older list an HTTP 410)
  restart {rv_offset=1, unavailable_ms=0}
                           an apiserver restart without a new process: every open watch is cut
                           (no terminating chunk), the RV moves on by rv_offset and history is
                           forgotten (as `compact`), then for unavailable_ms every API request
                           gets 429 "storage is (re)initializing", Retry-After: 1
  slow_consumer {max_pending}
                           the cacher's slow-consumer cut-off: a watch that has more than
                           max_pending undelivered events at once (a burst it could not absorb;
                           the initial replay does not count) is ended, cleanly, as the
                           apiserver ends a watcher whose buffer is full; 0 turns it off
  token {token}            the token accepted from now on ("" = no auth)
  GET /fake/requests       the requests seen: [{method, path, auth, t (CLOCK_MONOTONIC s, as
                           Python's time.monotonic())}], POST reset_log clears it
  GET /fake/watchers       {watchers: open watches, slow_cut: watches ended by the
                           slow-consumer cut-off, restarts: `restart` controls + process
                           restarts from --state}
  GET /fake/object?group=G&version=V&resource=R&namespace=NS&name=N
                           the stored object (not logged, no faults), 404 when absent
"""

import argparse
import base64
import bisect
import copy
import datetime
import http.server
import json
import os
import random
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

BUILTIN_GROUPS = {"", "apps", "networking.k8s.io", "discovery.k8s.io", "coordination.k8s.io",
                  "apiextensions.k8s.io", "events.k8s.io"}
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
           422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}
# Kinds of built-in collections the fake may create on demand (a plural's kind is not derivable).
KNOWN_KINDS = {"leases": ("Lease", True), "services": ("Service", True),
               "endpoints": ("Endpoints", True), "endpointslices": ("EndpointSlice", True),
               "secrets": ("Secret", True), "configmaps": ("ConfigMap", True),
               "ingresses": ("Ingress", True), "ingressclasses": ("IngressClass", False),
               "namespaces": ("Namespace", False), "events": ("Event", True),
               "customresourcedefinitions": ("CustomResourceDefinition", False)}
NO_STATUS_SUBRESOURCE = {"leases", "secrets", "configmaps", "endpoints", "endpointslices",
                         "events", "ingressclasses", "namespaces"}
MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
CONFLICT_MESSAGE = ("the object has been modified; please apply your changes to the latest "
                    "version and try again")


def status_object(code, message, reason=None, details=None):
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason or REASONS.get(code, "Unknown"), "code": code}
    if details:
        out["details"] = details
    return out


class WriteError(Exception):
    """A write rejected with a Status object."""

    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.status = status_object(code, message, reason, details)


class Collection:
    def __init__(self, group, version, resource, kind, namespaced, status_subresource=None):
        self.group, self.version, self.resource = group, version, resource
        self.kind, self.namespaced = kind, namespaced
        self.status_subresource = resource not in NO_STATUS_SUBRESOURCE \
            if status_subresource is None else bool(status_subresource)
        self.objects = {}  # "ns/name" -> object
        self.events = []   # (rv, type, object)

    def api_version(self):
        return self.version if not self.group else self.group + "/" + self.version

    def qualified_resource(self):  # "mappings.getambassador.io", "services"
        return self.resource + ("." + self.group if self.group else "")

    def qualified_kind(self):  # "Mapping.getambassador.io", "Service"
        return self.kind + ("." + self.group if self.group else "")

    def details(self, name):
        return {"name": name, "group": self.group, "kind": self.resource}


class State:
    def __init__(self, token):
        self.cond = threading.Condition()
        self.rv = 1000
        self.min_rv = 0  # watches from an RV below this get 410
        self.collections = {}
        self.faults = []
        self.token = token
        self.requests = []
        self.watchers = 0
        self.bookmark_gen = 0
        self.expire_gen = 0
        self.close_gen = 0
        self.state_path = None  # --state
        self.unavailable_until = 0.0  # monotonic; 429 "storage is (re)initializing" before it
        self.slow_max_pending = 0
        self.slow_cut = 0
        self.restarts = 0

    def changed(self):
        """Called under `cond` after every change of the store: persists it with --state."""
        if not self.state_path:
            return
        data = {"resourceVersion": self.rv, "collections": [
            {"group": c.group, "version": c.version, "resource": c.resource, "kind": c.kind,
             "namespaced": c.namespaced, "status_subresource": c.status_subresource,
             "objects": list(c.objects.values())} for c in self.collections.values()]}
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.state_path)  # a kill mid-save leaves the previous state

    def load(self, rv_offset):
        """Reads --state: the objects and RV survive, the history window starts anew."""
        with open(self.state_path) as f:
            data = json.load(f)
        for c in data.get("collections", []):
            coll = self.collection(c["group"], c["version"], c["resource"], c["kind"],
                                   c["namespaced"], create=True,
                                   status_subresource=c.get("status_subresource"))
            for obj in c.get("objects", []):
                coll.objects[key_of(obj)] = obj
        self.rv = int(data.get("resourceVersion", self.rv)) + rv_offset
        self.min_rv = self.rv
        self.restarts += 1

    def restart(self, rv_offset, unavailable_ms):
        self.close_gen += 1
        self.rv += rv_offset
        self.min_rv = self.rv
        for c in self.collections.values():
            c.events = []
        self.unavailable_until = time.monotonic() + unavailable_ms / 1000.0
        self.restarts += 1

    def collection(self, group, version, resource, kind=None, namespaced=True, create=False,
                   status_subresource=None):
        key = (group, version, resource)
        c = self.collections.get(key)
        if c is None and create:
            c = Collection(group, version, resource, kind or resource.capitalize(), namespaced,
                           status_subresource)
            self.collections[key] = c
        return c

    def builtin_collection(self, group, version, resource):
        """A built-in kind always exists in a real cluster: create it on first use."""
        c = self.collection(group, version, resource)
        if c is None and group in BUILTIN_GROUPS and resource in KNOWN_KINDS:
            kind, namespaced = KNOWN_KINDS[resource]
            c = self.collection(group, version, resource, kind, namespaced, create=True)
        return c

    def take_fault(self, target, method="GET", body="", verb=""):
        for f in self.faults:
            if f.get("method") and f["method"] != method:
                continue
            if f.get("verb") and f["verb"] != verb:
                continue
            if f.get("body") and f["body"] not in body:
                continue
            if f["match"] in target and f["count"] != 0:
                if f["count"] > 0:
                    f["count"] -= 1
                return dict(f)
        return None


STATE = None


def key_of(obj):
    meta = obj.get("metadata", {})
    ns = meta.get("namespace", "")
    return (ns + "/" if ns else "") + meta["name"]


def label_match(obj, selector):
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels", {}) or {}
    for term in selector.split(","):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_match(obj, selector):
    if not selector:
        return True
    meta = obj.get("metadata", {})
    for term in selector.split(","):
        neg = "!=" in term
        k, v = term.split("!=" if neg else "=", 1)
        v = v.lstrip("=")
        actual = {"metadata.name": meta.get("name"),
                  "metadata.namespace": meta.get("namespace")}.get(k)
        if (actual == v) == neg:
            return False
    return True


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_of(coll, obj):
    """What metadata.generation tracks: everything but metadata (and status with a subresource)."""
    skip = ("metadata", "status") if coll.status_subresource else ("metadata",)
    return {k: v for k, v in obj.items() if k not in skip}


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch: null deletes, objects merge, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def _pointer(path):
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise WriteError(422, "invalid JSON pointer %r" % (path,))
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _child(node, token):
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    raise WriteError(422, "the server rejected our request due to an error in our request: "
                     "path element %r not found" % token)


def _get(doc, path):
    for token in path:
        doc = _child(doc, token)
    return doc


def _add(doc, path, value):
    if not path:
        return value
    parent, last = _get(doc, path[:-1]), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and last == "-":
        parent.append(value)
    elif isinstance(parent, list) and last.isdigit() and int(last) <= len(parent):
        parent.insert(int(last), value)
    else:
        raise WriteError(422, "the server rejected our request due to an error in our "
                         "request: cannot add at %r" % last)
    return doc


def _remove(doc, path):
    if not path:
        raise WriteError(422, "cannot remove the whole document")
    _child(_get(doc, path[:-1]), path[-1])  # must exist
    parent, last = _get(doc, path[:-1]), path[-1]
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return doc


def json_patch(doc, ops):
    """RFC 6902 JSON patch; a failed `test` or a missing path is a 422."""
    if not isinstance(ops, list):
        raise WriteError(400, "json patch is not an array of operations")
    for op in ops:
        if not isinstance(op, dict):
            raise WriteError(400, "json patch operation is not an object")
        kind, path = op.get("op"), _pointer(op.get("path"))
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise WriteError(422, "the server rejected our request due to an error in our "
                                 "request: test failed at %s" % op.get("path"))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            _get(doc, path)
            if path and isinstance(_get(doc, path[:-1]), list):
                _get(doc, path[:-1])[int(path[-1])] = copy.deepcopy(op.get("value"))
            else:
                doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from"))
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, path, value)
        else:
            raise WriteError(400, "unknown json patch operation %r" % (kind,))
    return doc


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing
    def send_json(self, code, obj, extra_headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_status(self, code, message, retry_after=None):
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        self.send_json(code, status_object(code, message), headers)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, type_, obj):
        self.chunk(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

    # ---- dispatch
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/fake/"):
            self.control(method, url.path[6:], url.query)
            return
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        with STATE.cond:
            STATE.requests.append({"method": method, "path": self.path,
                                   "auth": self.headers.get("Authorization", ""),
                                   "t": time.monotonic()})
            token = STATE.token
        if token and self.headers.get("Authorization") != "Bearer " + token:
            self.send_status(401, "Unauthorized")
            return
        parsed = self.parse_path(url.path)
        if parsed is None:
            self.send_status(404, "the server could not find the requested resource")
            return
        group, version, ns, resource, name, sub = parsed
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if time.monotonic() < STATE.unavailable_until:
            self.send_status(429, "storage is (re)initializing", retry_after=1)
            return
        if name is None and method == "GET":
            verb = "watch" if query.get("watch") in ("1", "true") else "list"
        else:
            verb = {"GET": "get", "POST": "create", "PUT": "update",
                    "PATCH": "patch"}.get(method, "")
        with STATE.cond:
            fault = STATE.take_fault(self.path, method, raw.decode("utf-8", "replace"), verb)
        mode = fault.get("mode", "status") if fault else None
        if mode == "status":
            self.send_status(fault["status"], fault.get("message", "injected"),
                             fault.get("retry_after"))
            return
        if mode == "delay":
            time.sleep(fault.get("delay_ms", 1000) / 1000.0)
            fault = None
        is_collection_read = name is None and method == "GET"
        if mode == "close" and not is_collection_read:
            self.cut()
            return
        if not is_collection_read:
            self.write(method, group, version, ns, resource, name, sub, raw)
            return
        with STATE.cond:
            coll = STATE.collection(group, version, resource)
        if coll is None:
            self.send_status(404, "the server could not find the requested resource")
            return
        if query.get("watch") in ("1", "true"):
            self.watch(coll, ns, query, fault)
        else:
            self.list(coll, ns, query)

    def parse_path(self, path):
        """(group, version, namespace, resource, name or None, subresource) or None."""
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        ns = ""
        # /api/v1/namespaces/NS/R... versus the Namespace object /api/v1/namespaces/NS[/status].
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] != "status":
            ns, rest = rest[1], rest[2:]
        if not 1 <= len(rest) <= 3 or (len(rest) == 3 and rest[2] != "status"):
            return None
        name = rest[1] if len(rest) >= 2 else None
        return group, version, ns, rest[0], name, rest[2] if len(rest) == 3 else ""

    def visible(self, coll, obj, ns, query):
        if ns and obj.get("metadata", {}).get("namespace") != ns:
            return False
        return label_match(obj, query.get("labelSelector")) and \
            field_match(obj, query.get("fieldSelector"))

    def shaped(self, coll, obj):
        # Built-in list items carry no kind/apiVersion (spec §0.2).
        if coll.group in BUILTIN_GROUPS:
            obj = dict(obj)
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
        return obj

    # ---- LIST
    def list(self, coll, ns, query):
        rv_param = query.get("resourceVersion", "")
        with STATE.cond:
            if rv_param not in ("", "0") and rv_param.isdigit() and int(rv_param) > STATE.rv:
                self.send_status(504, "Too large resource version: %s, current: %d"
                                 % (rv_param, STATE.rv), retry_after=1)
                return
            cont = query.get("continue")
            start, list_rv = 0, STATE.rv
            if cont:
                try:
                    token = json.loads(base64.b64decode(cont))
                    start, list_rv = token["start"], token["rv"]
                except Exception:
                    self.send_status(400, "invalid continue token")
                    return
                if list_rv < STATE.min_rv:
                    self.send_status(410, "The provided continue parameter is too old to "
                                     "display a consistent list result. You can start a new "
                                     "list without the continue parameter.")
                    return
            items = [coll.objects[k] for k in sorted(coll.objects)
                     if self.visible(coll, coll.objects[k], ns, query)]
        limit = int(query.get("limit") or 0)
        meta = {"resourceVersion": str(list_rv)}
        if limit and start + limit < len(items):
            meta["continue"] = base64.b64encode(json.dumps(
                {"start": start + limit, "rv": list_rv}).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
            page = items[start:start + limit]
        else:
            page = items[start:]
        self.send_json(200, {"kind": coll.kind + "List", "apiVersion": coll.api_version(),
                             "metadata": meta, "items": [self.shaped(coll, o) for o in page]})

    # ---- WATCH
    def watch(self, coll, ns, query, fault):
        if query.get("sendInitialEvents"):
            self.send_status(422, "sendInitialEvents is forbidden for watch unless the "
                             "WatchList feature gate is enabled")
            return
        bookmarks = query.get("allowWatchBookmarks") == "true"
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        rv_param = query.get("resourceVersion", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            with STATE.cond:
                STATE.watchers += 1
                gens = (STATE.bookmark_gen, STATE.expire_gen, STATE.close_gen)
            self.watch_loop(coll, ns, query, fault, bookmarks, deadline, rv_param, gens)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        finally:
            with STATE.cond:
                STATE.watchers -= 1
                STATE.cond.notify_all()

    def expire(self, rv):
        self.event("ERROR", status_object(
            410, "too old resource version: %s (%d)" % (rv, STATE.min_rv)))
        self.chunk(b"")

    def cut(self):
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def watch_loop(self, coll, ns, query, fault, bookmarks, deadline, rv_param, gens):
        if fault and fault.get("mode") == "in_band_410":
            self.expire(rv_param)
            return
        if fault and fault.get("mode") == "close":
            self.cut()
            return
        with STATE.cond:
            start_rv = STATE.rv  # later events are live; earlier ones a replay
            if rv_param in ("", "0"):
                initial = [coll.objects[k] for k in sorted(coll.objects)
                           if self.visible(coll, coll.objects[k], ns, query)]
                pos = STATE.rv
            else:
                initial = []
                pos = int(rv_param) if rv_param.isdigit() else -1
                if pos < STATE.min_rv:
                    self.expire(rv_param)
                    return
        for obj in initial:
            self.event("ADDED", obj)
        bookmark_gen, expire_gen, close_gen = gens
        while True:
            with STATE.cond:
                # Events are appended in RV order: find the undelivered ones by bisection.
                pending = coll.events[bisect.bisect_right(coll.events, pos, key=lambda e: e[0]):]
                if not pending and STATE.bookmark_gen == bookmark_gen and \
                        STATE.expire_gen == expire_gen and STATE.close_gen == close_gen:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    STATE.cond.wait(min(left, 0.5))
                    continue
                send_bookmark = STATE.bookmark_gen != bookmark_gen
                bookmark_gen = STATE.bookmark_gen
                expire_now = STATE.expire_gen != expire_gen
                close_now = STATE.close_gen != close_gen
                current = STATE.rv
                # The replay of history a watch starts with never counts as a slow consumer.
                slow = 0 < STATE.slow_max_pending < sum(
                    1 for rv, _, o in pending if rv > start_rv and self.visible(coll, o, ns, query))
                if slow:
                    STATE.slow_cut += 1
            if slow:
                self.chunk(b"")  # the cacher closes the watcher's channel: a normal end
                return
            for rv, t, o in pending:
                pos = rv
                if self.visible(coll, o, ns, query):
                    self.event(t, o)
            if close_now:
                self.cut()
                return
            if expire_now:
                self.expire(str(pos))
                return
            if send_bookmark and bookmarks:
                pos = max(pos, current)
                self.event("BOOKMARK", {"kind": coll.kind, "apiVersion": coll.api_version(),
                                        "metadata": {"resourceVersion": str(pos)}})
        if bookmarks:
            with STATE.cond:
                pos = max(pos, coll.events[-1][0] if coll.events else pos)
            self.event("BOOKMARK", {"kind": coll.kind, "apiVersion": coll.api_version(),
                                    "metadata": {"resourceVersion": str(pos)}})
        self.chunk(b"")

    # ---- single objects and writes (spec §3)
    def write(self, method, group, version, ns, resource, name, sub, raw):
        with STATE.cond:
            coll = STATE.builtin_collection(group, version, resource)
        if coll is None or (coll.namespaced and not ns) or (not coll.namespaced and ns) or \
                (sub == "status" and not coll.status_subresource):
            self.send_status(404, "the server could not find the requested resource")
            return
        allowed = ("POST",) if name is None else ("GET", "PUT", "PATCH")
        if method not in allowed:
            self.send_status(405, "the server does not allow this method on the requested "
                             "resource")
            return
        try:
            if method == "GET":
                code, obj = 200, self.get_object(coll, ns, name)
            elif method == "PATCH":
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                code, obj = 200, self.patch_object(coll, ns, name, sub, raw, ctype)
            else:
                try:
                    body = json.loads(raw or b"null")
                except ValueError as e:
                    raise WriteError(400, "couldn't get version/kind; json parse error: %s" % e)
                if not isinstance(body, dict):
                    raise WriteError(400, "the body of the request is not a JSON object")
                if method == "POST":
                    code, obj = 201, self.create_object(coll, ns, body)
                else:
                    code, obj = 200, self.update_object(coll, ns, name, sub, body)
        except WriteError as e:
            self.send_json(e.status["code"], e.status)
            return
        self.send_json(code, obj)

    @staticmethod
    def object_key(ns, name):
        return (ns + "/" if ns else "") + name

    @staticmethod
    def not_found(coll, name):
        return WriteError(404, '%s "%s" not found' % (coll.qualified_resource(), name),
                          details=coll.details(name))

    def get_object(self, coll, ns, name):
        with STATE.cond:
            obj = coll.objects.get(self.object_key(ns, name))
            if obj is None:
                raise self.not_found(coll, name)
            return obj

    def create_object(self, coll, ns, obj):
        obj = copy.deepcopy(obj)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if coll.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise WriteError(400, "the namespace of the provided object does not match the "
                                 "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        name = meta.get("name")
        if not name:
            raise WriteError(422, '%s "" is invalid: metadata.name: Required value: name or '
                             'generateName is required' % coll.qualified_kind())
        if meta.get("resourceVersion"):
            raise WriteError(500, "resourceVersion should not be set on objects to be created")
        obj["kind"], obj["apiVersion"] = coll.kind, coll.api_version()
        if coll.status_subresource:
            obj.pop("status", None)
        self.validate(coll, name, obj)
        key = self.object_key(ns, name)
        with STATE.cond:
            if key in coll.objects:
                raise WriteError(409, '%s "%s" already exists' % (coll.qualified_resource(), name),
                                 reason="AlreadyExists", details=coll.details(name))
            meta["uid"] = "uid-%d" % (STATE.rv + 1)
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            return self.commit(coll, key, None, obj)

    def update_object(self, coll, ns, name, sub, body):
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name", "") != name:
            raise WriteError(400, "the name of the object (%s) does not match the name on the "
                             "URL (%s)" % (meta.get("name", ""), name))
        if coll.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise WriteError(400, "the namespace of the provided object does not match the "
                             "namespace sent on the request")
        key = self.object_key(ns, name)
        with STATE.cond:
            old = coll.objects.get(key)
            if old is None:
                raise self.not_found(coll, name)
            rv = str(meta.get("resourceVersion") or "")
            if not rv and coll.group not in BUILTIN_GROUPS:
                # Custom resources do not allow unconditional updates (registry store.go).
                raise WriteError(422, '%s "%s" is invalid: metadata.resourceVersion: Invalid '
                                 'value: 0x0: must be specified for an update'
                                 % (coll.qualified_kind(), name), details=coll.details(name))
            self.check_rv(coll, name, old, rv)
            new = self.merged(coll, old, body, sub)
            self.validate(coll, name, new)
            return self.commit(coll, key, old, new)

    def patch_object(self, coll, ns, name, sub, raw, ctype):
        try:
            patch = json.loads(raw or b"null")
        except ValueError as e:
            raise WriteError(400, "error decoding patch: %s" % e)
        merge = ctype == "application/merge-patch+json" or (
            ctype == "application/strategic-merge-patch+json" and coll.group in BUILTIN_GROUPS)
        if not merge and ctype != "application/json-patch+json":
            raise WriteError(415, "the body of the request was in an unknown format - accepted "
                             "media types include: application/json-patch+json, "
                             "application/merge-patch+json")
        key = self.object_key(ns, name)
        with STATE.cond:
            old = coll.objects.get(key)
            if old is None:
                raise self.not_found(coll, name)
            if merge:
                if not isinstance(patch, dict):
                    raise WriteError(400, "merge patch is not a JSON object")
                patched = merge_patch(copy.deepcopy(old), patch)
            else:
                patched = json_patch(copy.deepcopy(old), patch)
            if not isinstance(patched, dict):
                raise WriteError(422, "the patched object is not a JSON object")
            meta = patched.get("metadata") if isinstance(patched.get("metadata"), dict) else {}
            if meta.get("name") != name:
                raise WriteError(400, "the name of the object (%s) does not match the name on "
                                 "the URL (%s)" % (meta.get("name", ""), name))
            # A patch is unconditional unless it carries a resourceVersion.
            self.check_rv(coll, name, old, str(meta.get("resourceVersion") or ""))
            new = self.merged(coll, old, patched, sub)
            self.validate(coll, name, new)
            return self.commit(coll, key, old, new)

    @staticmethod
    def check_rv(coll, name, old, rv):
        if rv and rv != old["metadata"].get("resourceVersion"):
            raise WriteError(409, 'Operation cannot be fulfilled on %s "%s": %s'
                             % (coll.qualified_resource(), name, CONFLICT_MESSAGE),
                             details=coll.details(name))

    @staticmethod
    def merged(coll, old, incoming, sub):
        """The object a write of `incoming` to `sub` ("" or "status") stores."""
        if sub == "status":
            new = copy.deepcopy(old)
            if "status" in incoming:
                new["status"] = copy.deepcopy(incoming["status"])
            else:
                new.pop("status", None)
            return new
        new = copy.deepcopy(incoming)
        new["kind"], new["apiVersion"] = coll.kind, coll.api_version()
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        for k in ("name", "namespace", "uid", "creationTimestamp", "generation",
                  "resourceVersion"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        if coll.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if spec_of(coll, new) != spec_of(coll, old):
            meta["generation"] = int(old["metadata"].get("generation") or 1) + 1
        return new

    @staticmethod
    def validate(coll, name, obj):
        if coll.group != "coordination.k8s.io" or coll.resource != "leases":
            return
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        for field in ("acquireTime", "renewTime"):
            v = spec.get(field)
            if v is not None and (not isinstance(v, str) or not MICRO_TIME.match(v)):
                raise WriteError(400, 'Lease in version "v1" cannot be handled as a Lease: '
                                 'parsing time "%s" as "2006-01-02T15:04:05.000000Z07:00": '
                                 'cannot parse' % v)
        for field, low in (("leaseDurationSeconds", 1), ("leaseTransitions", 0)):
            v = spec.get(field)
            if v is not None and (not isinstance(v, int) or v < low):
                raise WriteError(422, '%s "%s" is invalid: spec.%s: Invalid value: %s: must be '
                                 'greater than %s' % (coll.qualified_kind(), name, field,
                                                      json.dumps(v),
                                                      "0" if low else "or equal to 0"),
                                 details=coll.details(name))

    @staticmethod
    def commit(coll, key, old, new):
        """Stores `new` under STATE.cond unless it equals `old` (etcd skips identical bytes)."""
        if old is not None:
            new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
            if new == old:
                return old
        STATE.rv += 1
        new["metadata"]["resourceVersion"] = str(STATE.rv)
        coll.objects[key] = new
        coll.events.append((STATE.rv, "MODIFIED" if old is not None else "ADDED", new))
        STATE.changed()
        STATE.cond.notify_all()
        return new

    # ---- control
    def control(self, method, what, query=""):
        if method == "GET" and what == "object":
            q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
            with STATE.cond:
                coll = STATE.collection(q.get("group", ""), q.get("version", ""),
                                        q.get("resource", ""))
                key = self.object_key(q.get("namespace", ""), q.get("name", ""))
                obj = coll.objects.get(key) if coll else None
                if obj is not None:
                    self.send_json(200, obj)
                    return
            self.send_status(404, "no such object")
            return
        if method == "GET" and what == "requests":
            with STATE.cond:
                self.send_json(200, list(STATE.requests))
            return
        if method == "GET" and what == "watchers":
            with STATE.cond:
                self.send_json(200, {"watchers": STATE.watchers, "slow_cut": STATE.slow_cut,
                                     "restarts": STATE.restarts})
            return
        body = self.read_body()
        with STATE.cond:
            result = self.control_locked(what, body)
            if result is not None and what in ("register", "apply", "apply_many", "delete",
                                               "restart"):
                STATE.changed()
            STATE.cond.notify_all()
        if result is None:
            self.send_status(404, "unknown control " + what)
        else:
            self.send_json(200, result)

    @staticmethod
    def apply_locked(coll, obj):
        s = STATE
        s.rv += 1
        obj = json.loads(json.dumps(obj))
        obj["kind"] = coll.kind
        obj["apiVersion"] = coll.api_version()
        meta = obj.setdefault("metadata", {})
        if coll.namespaced:
            meta.setdefault("namespace", "default")
        key = key_of(obj)
        old = coll.objects.get(key)
        meta["resourceVersion"] = str(s.rv)
        meta["uid"] = old["metadata"]["uid"] if old else "uid-%d" % s.rv
        meta.setdefault("creationTimestamp", old["metadata"].get("creationTimestamp")
                        if old else now_rfc3339())
        if "generation" not in meta:
            generation = int(old["metadata"].get("generation") or 1) if old else 1
            if old and spec_of(coll, obj) != spec_of(coll, old):
                generation += 1
            meta["generation"] = generation
        coll.objects[key] = obj
        coll.events.append((s.rv, "MODIFIED" if old else "ADDED", obj))
        return obj

    def control_locked(self, what, body):
        s = STATE
        if what in ("register", "apply", "apply_many", "delete"):
            kind = body.get("kind") or KNOWN_KINDS.get(body["resource"], (None,))[0]
            coll = s.collection(body.get("group", ""), body["version"], body["resource"],
                                kind, body.get("namespaced", True), create=True,
                                status_subresource=body.get("status_subresource"))
            if body.get("status_subresource") is not None:
                coll.status_subresource = bool(body["status_subresource"])
        if what == "register":
            return {}
        if what == "apply_many":
            for o in body.get("objects", []):
                self.apply_locked(coll, o)
            return {"count": len(body.get("objects", [])), "resourceVersion": str(s.rv)}
        if what in ("apply", "delete"):
            if what == "apply":
                return self.apply_locked(coll, body["object"])
            s.rv += 1
            ns = body.get("namespace", "default" if coll.namespaced else "")
            key = (ns + "/" if ns else "") + body["name"]
            old = coll.objects.pop(key, None)
            if old is None:
                s.rv -= 1
                return {"deleted": False}
            gone = json.loads(json.dumps(old))
            gone["metadata"]["resourceVersion"] = str(s.rv)
            coll.events.append((s.rv, "DELETED", gone))
            return {"deleted": True}
        if what == "fault":
            body.setdefault("count", 1)
            body.setdefault("status", 500)
            s.faults.append(body)
            return {}
        if what == "clear_faults":
            s.faults = []
            return {}
        if what == "bookmark":
            s.bookmark_gen += 1
            return {}
        if what == "expire_watches":
            s.expire_gen += 1
            return {}
        if what == "close_watches":
            s.close_gen += 1
            return {}
        if what == "compact":
            s.min_rv = s.rv  # a watch from the current RV is still fine
            for c in s.collections.values():
                c.events = []
            return {"min_rv": s.min_rv}
        if what == "restart":
            s.restart(int(body.get("rv_offset", 1)), float(body.get("unavailable_ms", 0)))
            return {"resourceVersion": str(s.rv)}
        if what == "slow_consumer":
            s.slow_max_pending = int(body.get("max_pending", 0))
            return {}
        if what == "token":
            s.token = body.get("token", "")
            return {}
        if what == "reset_log":
            s.requests = []
            return {}
        return None


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # listen backlog; the default 5 costs SYN retransmits (1 s)


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--state", help="save the store here on every change; load it at start")
    ap.add_argument("--rv-offset", type=int, default=1,
                    help="how far the RV moves on when --state is loaded")
    ap.add_argument("--unavailable-ms", type=float, default=0,
                    help="answer 429 'storage is (re)initializing' this long after start")
    args = ap.parse_args()
    STATE = State(args.token)
    if args.state:
        STATE.state_path = os.path.abspath(args.state)
        if os.path.exists(STATE.state_path):
            STATE.load(args.rv_offset)
    STATE.unavailable_until = time.monotonic() + args.unavailable_ms / 1000.0
    server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
