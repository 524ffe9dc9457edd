#!/usr/bin/python3
"""A fake kube-apiserver that speaks the real list/watch wire protocol and misbehaves on command.

Standard library only. Wire behaviour follows ../shared/spec/kubernetes-api.md §1 and §7:
collection URLs (/api/v1/..., /apis/G/V/..., with or without /namespaces/NS), LIST with
limit/continue paging and a shared list resourceVersion (built-in kinds' items carry no
kind/apiVersion), WATCH as a chunked stream of newline-terminated JSON events flushed one by one,
synthetic ADDEDs for resourceVersion unset/"0", an in-band ERROR 410 for a resourceVersion older
than the history window, BOOKMARKs when allowWatchBookmarks=true (one before the timeoutSeconds
close), 422 for sendInitialEvents (WatchList gate off), 504 for a too-large resourceVersion, and
Bearer-token auth (401).

Run: fake_kube_api.py [--port 0] [--token T] [--tls-cert F --tls-key F]; prints "PORT <n>".

The test drives it through /fake/* (JSON bodies, POST):
  register {group, version, resource, kind, namespaced}   an (empty) collection: lists answer 200
  apply    {group, version, resource, kind?, object}      create or modify (RV bumped)
  delete   {group, version, resource, namespace?, name}
  fault    {match, status, count=1, retry_after?, message?, mode="status"|"in_band_410"|"close"}
           the next `count` (-1 = forever) requests whose "path?query" contains `match` get it
  clear_faults {}
  bookmark {}              every open watch sends a BOOKMARK at the current RV
  expire_watches {}        every open watch sends ERROR 410 and ends
  close_watches {}         every open watch is cut (no terminating chunk)
  compact {}               forget history: watches from an older RV get an in-band 410
  token {token}            the token accepted from now on ("" = no auth)
  GET /fake/requests       the requests seen: [{method, path, auth}], POST reset_log clears it
  GET /fake/watchers       number of open watches
"""

import argparse
import base64
import http.server
import json
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
           409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


def status_object(code, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": REASONS.get(code, "Unknown"), "code": code}


class Collection:
    def __init__(self, group, version, resource, kind, namespaced):
        self.group, self.version, self.resource = group, version, resource
        self.kind, self.namespaced = kind, namespaced
        self.objects = {}  # "ns/name" -> object
        self.events = []   # (rv, type, object)

    def api_version(self):
        return self.version if not self.group else self.group + "/" + self.version


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

    def collection(self, group, version, resource, kind=None, namespaced=True, create=False):
        key = (group, version, resource)
        c = self.collections.get(key)
        if c is None and create:
            c = Collection(group, version, resource, kind or resource.capitalize(), namespaced)
            self.collections[key] = c
        return c

    def take_fault(self, target):
        for f in self.faults:
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

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/fake/"):
            self.control(method, url.path[6:])
            return
        with STATE.cond:
            STATE.requests.append({"method": method, "path": self.path,
                                   "auth": self.headers.get("Authorization", "")})
            token = STATE.token
        if token and self.headers.get("Authorization") != "Bearer " + token:
            self.send_status(401, "Unauthorized")
            return
        parsed = self.parse_collection(url.path)
        if parsed is None:
            self.send_status(404, "the server could not find the requested resource")
            return
        group, version, ns, resource = parsed
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        with STATE.cond:
            fault = STATE.take_fault(self.path)
        if fault and fault.get("mode", "status") == "status":
            self.send_status(fault["status"], fault.get("message", "injected"),
                             fault.get("retry_after"))
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

    def parse_collection(self, path):
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        ns = ""
        if len(rest) == 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if len(rest) != 1:
            return None
        return group, version, ns, rest[0]

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
                pending = [(rv, t, o) for (rv, t, o) in coll.events if rv > pos]
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
                pos = max(pos, max([rv for rv, _, _ in coll.events], default=pos))
            self.event("BOOKMARK", {"kind": coll.kind, "apiVersion": coll.api_version(),
                                    "metadata": {"resourceVersion": str(pos)}})
        self.chunk(b"")

    # ---- control
    def control(self, method, what):
        if method == "GET" and what == "requests":
            with STATE.cond:
                self.send_json(200, list(STATE.requests))
            return
        if method == "GET" and what == "watchers":
            with STATE.cond:
                self.send_json(200, {"watchers": STATE.watchers})
            return
        body = self.read_body()
        with STATE.cond:
            result = self.control_locked(what, body)
            STATE.cond.notify_all()
        if result is None:
            self.send_status(404, "unknown control " + what)
        else:
            self.send_json(200, result)

    def control_locked(self, what, body):
        s = STATE
        if what == "register":
            s.collection(body.get("group", ""), body["version"], body["resource"],
                         body.get("kind"), body.get("namespaced", True), create=True)
            return {}
        if what in ("apply", "delete"):
            coll = s.collection(body.get("group", ""), body["version"], body["resource"],
                                body.get("kind"), body.get("namespaced", True), create=True)
            s.rv += 1
            if what == "apply":
                obj = json.loads(json.dumps(body["object"]))
                obj["kind"] = coll.kind
                obj["apiVersion"] = coll.api_version()
                meta = obj.setdefault("metadata", {})
                if coll.namespaced:
                    meta.setdefault("namespace", "default")
                key = key_of(obj)
                old = coll.objects.get(key)
                meta["resourceVersion"] = str(s.rv)
                meta["uid"] = old["metadata"]["uid"] if old else "uid-%d" % s.rv
                coll.objects[key] = obj
                coll.events.append((s.rv, "MODIFIED" if old else "ADDED", obj))
                return obj
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


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    STATE = State(args.token)
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
