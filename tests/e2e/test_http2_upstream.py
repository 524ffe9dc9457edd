"""The HTTP/2 upstream leg (Mapping `grpc: true`) against a hand-built h2c server: a stream the
upstream refuses (RST_STREAM REFUSED_STREAM, never processed, RFC 9113 §8.7) is replayed once on
another connection, body included; a second refusal is the client's 503. The upstream's first
SETTINGS frame may reach the gateway in pieces: requests wait for the whole frame, so its
SETTINGS_MAX_CONCURRENT_STREAMS is honoured from the first stream on. Request trailers (from
HTTP/2 and chunked HTTP/1.1 clients) reach it as a trailing HEADERS frame, replays included."""

import hashlib
import socket
import struct
import subprocess
import threading
import time

import pytest
import requests

import harness
from harness import FakeUpstream, mapping, module

hpack = pytest.importorskip("hpack")

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
REFUSED_STREAM = 0x7


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


class RawH2Upstream:
    """An h2c server written with raw frames. It advertises SETTINGS_MAX_CONCURRENT_STREAMS =
    `max_streams` (its SETTINGS sent in two pieces `split_delay` apart when set), refuses with
    REFUSED_STREAM any stream beyond that many open at once and the first `refuse_first` streams
    it ever sees (at their HEADERS, or once their whole body came with `refuse_after_body`), and
    answers the others `hold` seconds after their request ended: 200 with
    "<body length> <body sha256>", followed by " name=value;name=value" when the request ended
    with trailers."""

    def __init__(self, max_streams=100, refuse_first=0, hold=0.0, split_delay=0.0, answer=None,
                 refuse_after_body=False):
        # answer(stream, path, encoder) -> frames to send instead of the usual answer, or None.
        self.answer = answer
        self.paths = {}  # stream -> :path of its request
        self.max_streams = max_streams
        self.refuse_first = refuse_first
        self.refuse_after_body = refuse_after_body
        self.hold = hold
        self.split_delay = split_delay
        self.lock = threading.Lock()
        self.seen = 0
        self.refused = 0
        self.answered = 0
        self.max_open = 0
        self.trailers = []  # every trailer block received, in order
        self.resets = []  # (stream, error code) of every RST_STREAM received
        self.upstream = FakeUpstream(self._serve)

    @property
    def addr(self):
        return self.upstream.addr

    @property
    def connections(self):
        return self.upstream.connections

    def _serve(self, conn, data):
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        while len(data) < len(preface):
            data += conn.recv(65536)
        buf = data[len(preface):]
        settings = frame(SETTINGS, 0, 0, struct.pack(">HI", 0x3, self.max_streams))
        if self.split_delay:
            conn.sendall(settings[:5])
            time.sleep(self.split_delay)
            conn.sendall(settings[5:])
        else:
            conn.sendall(settings)
        encoder = hpack.Encoder()
        decoder = hpack.Decoder()  # every block is decoded, to keep the HPACK table in step
        open_streams = {}  # stream -> body bytes, while the request is still coming
        ended_with = {}  # stream -> its trailers
        due = []  # (time, stream, body) answers waiting for their hold
        doomed = set()  # streams to refuse once their request has ended

        def ended(sid):
            body = open_streams.pop(sid)
            if sid in doomed:
                doomed.discard(sid)
                conn.sendall(frame(RST_STREAM, 0, sid, struct.pack(">I", REFUSED_STREAM)))
            else:
                due.append((time.monotonic() + self.hold, sid, body))
        conn.settimeout(0.01)
        while True:
            now = time.monotonic()
            for item in [d for d in due if d[0] <= now]:
                due.remove(item)
                _, sid, body = item
                custom = self.answer and self.answer(sid, self.paths.get(sid, ""), encoder)
                if custom:
                    conn.sendall(custom)
                    continue
                block = encoder.encode([(":status", "200"), ("content-type", "text/plain")])
                answer = b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
                if sid in ended_with:
                    answer += b" " + ";".join(f"{k}={v}" for k, v in ended_with.pop(sid)).encode()
                conn.sendall(frame(HEADERS, END_HEADERS, sid, block) +
                             frame(DATA, END_STREAM, sid, answer))
                with self.lock:
                    self.answered += 1
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags = buf[3], buf[4]
                sid = struct.unpack(">I", buf[5:9])[0] & 0x7FFFFFFF
                payload = buf[9:9 + length]
                buf = buf[9 + length:]
                if kind == SETTINGS and not flags & ACK:
                    conn.sendall(frame(SETTINGS, ACK, 0))
                elif kind == PING and not flags & ACK:
                    conn.sendall(frame(PING, ACK, 0, payload))
                elif kind == HEADERS and sid in open_streams:
                    fields = decoder.decode(payload)  # trailers: they end the request
                    with self.lock:
                        self.trailers.append(fields)
                    ended_with[sid] = fields
                    if flags & END_STREAM:
                        ended(sid)
                elif kind == HEADERS:
                    self.paths[sid] = dict(decoder.decode(payload)).get(":path", "")
                    with self.lock:
                        self.seen += 1
                        busy = len(open_streams) + len(due) >= self.max_streams
                        refuse = busy or self.seen <= self.refuse_first
                        if refuse:
                            self.refused += 1
                    if refuse and self.refuse_after_body and not busy:
                        doomed.add(sid)
                    elif refuse:
                        conn.sendall(frame(RST_STREAM, 0, sid, struct.pack(">I", REFUSED_STREAM)))
                        continue
                    open_streams[sid] = b""
                    with self.lock:
                        self.max_open = max(self.max_open, len(open_streams) + len(due))
                    if flags & END_STREAM:
                        ended(sid)
                elif kind == DATA and sid in open_streams:
                    pad = payload[0] if flags & 0x8 else 0
                    open_streams[sid] += payload[1 if flags & 0x8 else 0:len(payload) - pad]
                    if length:
                        # Give the window back at once: bodies here are small.
                        inc = struct.pack(">I", length)
                        conn.sendall(frame(0x8, 0, 0, inc) + frame(0x8, 0, sid, inc))
                    if flags & END_STREAM:
                        ended(sid)
                elif kind == RST_STREAM:
                    open_streams.pop(sid, None)
                    due = [d for d in due if d[1] != sid]
                    with self.lock:
                        self.resets.append((sid, int.from_bytes(payload[:4], "big")))
                elif kind == GOAWAY:
                    return


def retries(gw, upstream):
    body = requests.get(gw.admin_url + "/metrics", timeout=5).text
    label = 'envoy_cluster_name="%s"' % upstream.addr.replace(".", "_").replace(":", "_")
    return sum(int(float(line.split()[-1])) for line in body.splitlines()
               if line.startswith("envoy_cluster_upstream_rq_retry{") and label in line)


def h2_gateway(start_gateway, upstream):
    # One worker: every request shares the worker's upstream connections.
    return start_gateway([mapping("h2up", "/up/", upstream.addr, grpc=True)], workers=1)


def curl(gw, path, *args, T):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", str(T(10)), "-w", " %{http_code}"]
                       + list(args) + [gw.url(path)], capture_output=True, timeout=T(15))
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition(b" ")
    return int(code), body


@pytest.mark.parametrize("client", ["http1", "h2c"])
def test_refused_stream_is_replayed_on_another_connection(start_gateway, T, client):
    up = RawH2Upstream(refuse_first=1)
    gw = h2_gateway(start_gateway, up)
    code, body = curl(gw, "/up/get", *(["--http2-prior-knowledge"] if client == "h2c" else []),
                      T=T)
    assert code == 200, body
    assert body == b"0 " + hashlib.sha256(b"").hexdigest().encode()
    assert up.refused == 1 and up.answered == 1
    assert up.connections == 2  # the refusing connection is avoided for the replay
    assert retries(gw, up) == 1


def post(gw, path, payload, client, T):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", str(T(10)), "-w", " %{http_code}",
                        "--data-binary", "@-", "-H", "content-type: application/octet-stream"]
                       + (["--http2-prior-knowledge"] if client == "h2c" else ["--http1.1"])
                       + [gw.url(path)], input=payload, capture_output=True, timeout=T(15))
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition(b" ")
    return int(code), body


@pytest.mark.parametrize("client", ["http1", "h2c"])
def test_refused_stream_replays_its_body(start_gateway, T, client):
    up = RawH2Upstream(refuse_first=1)
    gw = h2_gateway(start_gateway, up)
    payload = bytes(range(256)) * 40  # 10 KiB: held for the replay (up to 64 KiB)
    code, body = post(gw, "/up/post", payload, client, T)
    assert code == 200, (body, up.seen, up.refused, up.connections, retries(gw, up))
    assert body == b"%d %s" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
    assert up.refused == 1 and retries(gw, up) == 1


@pytest.mark.parametrize("client", ["http1", "h2c"])
def test_a_refused_body_beyond_64k_is_not_replayed(start_gateway, T, client):
    # The upstream opens its window wide, so the whole body has gone before the refusal: too
    # much to have kept, so the client gets the 503 instead of a request missing its start.
    up = RawH2Upstream(refuse_first=1, refuse_after_body=True)
    gw = h2_gateway(start_gateway, up)
    code, body = post(gw, "/up/big", b"z" * (100 * 1024), client, T)
    assert code == 503, body
    assert b"reset reason: remote reset" in body
    assert up.refused == 1 and retries(gw, up) == 0


def test_a_second_refusal_is_a_503(start_gateway, T):
    up = RawH2Upstream(refuse_first=2)
    gw = h2_gateway(start_gateway, up)
    code, body = curl(gw, "/up/twice", T=T)
    assert code == 503, body
    assert b"reset reason: remote reset" in body
    assert up.refused == 2 and up.answered == 0
    assert retries(gw, up) == 1  # once only
    # The next request is served normally.
    assert curl(gw, "/up/after", T=T)[0] == 200


def test_an_http1_client_that_goes_away_cancels_its_upstream_stream(start_gateway, T):
    # The request is complete and its answer far off (5 s): when the HTTP/1.1 client closes
    # its connection (FIN, as Envoy and nginx take it) the upstream stream is reset (CANCEL)
    # at once instead of running on, and the exchange is logged as a downstream disconnect.
    up = RawH2Upstream(hold=5.0)
    gw = h2_gateway(start_gateway, up)
    with harness.RawConn(gw.port) as c:
        c.send(b"POST /up/away HTTP/1.1\r\nHost: a.example\r\ncontent-length: 3\r\n\r\nabc")
        assert harness.wait_until(lambda: up.seen == 1, T(3))
    assert harness.wait_until(lambda: up.resets, T(2)), "the upstream stream was left open"
    assert up.resets[0][1] == 0x8  # CANCEL
    assert up.answered == 0
    assert harness.wait_until(lambda: [l for l in harness.access_log_lines(gw.stdout())
                                       if l["path"] == "/up/away" and l["flags"] == "DC"], T(3))


@pytest.mark.parametrize("split_delay", [0.0, 0.3])
def test_max_concurrent_streams_is_honoured_from_the_first_stream(start_gateway, T,
                                                                  split_delay):
    # The upstream takes one stream at a time and holds each answer: 6 concurrent requests
    # spread over connections (or wait) instead of being refused, even when its SETTINGS came
    # in two pieces and requests were already waiting for the connection.
    up = RawH2Upstream(max_streams=1, hold=0.2, split_delay=split_delay)
    gw = h2_gateway(start_gateway, up)
    n = 6
    r = subprocess.run(["h2load", "-n", str(n), "-c", "1", "-m", str(n), gw.url("/up/c")],
                       capture_output=True, timeout=T(30))
    out = r.stdout.decode()
    assert f"{n} succeeded" in out and "status codes: 6 2xx" in out, out
    assert up.refused == 0, (up.refused, up.connections)
    assert up.max_open == 1
    assert retries(gw, up) == 0


pytest.importorskip("h2")
from test_cors import curl as curl_fields  # noqa: E402
from test_request_trailers import h2_post_raw  # noqa: E402


def h2c_post(port, path, chunks, trailers, content_length=None, T=lambda s: s):
    head, body = h2_post_raw(port, path, chunks, trailers, content_length, T)
    return head[":status"], body


def answer(body, trailers):
    return b"%d %s %s" % (len(body), hashlib.sha256(body).hexdigest().encode(),
                          ";".join(f"{k}={v}" for k, v in trailers).encode())


@pytest.mark.parametrize("chunks,content_length", [
    ([b"a" * 1000, b"b" * 70000, b"c"], None),  # beyond the 64 KiB stream window
    ([], None),                                 # trailers alone end the request
    ([b"12345"], 5),                            # a sized body can carry them too in HTTP/2
])
def test_http2_request_trailers_reach_an_http2_upstream(start_gateway, T, chunks,
                                                        content_length):
    up = RawH2Upstream()
    gw = h2_gateway(start_gateway, up)
    trailers = [("x-checksum", "abc123"), ("x-count", "3")]
    status, body = h2c_post(gw.port, "/up/t", chunks, trailers, content_length=content_length,
                            T=T)
    assert status == "200", body
    assert body == answer(b"".join(chunks), trailers)
    assert up.trailers == [trailers]


def test_http1_chunked_trailers_reach_an_http2_upstream(start_gateway, T):
    up = RawH2Upstream()
    gw = h2_gateway(start_gateway, up)
    req = (b"POST /up/h1 HTTP/1.1\r\nHost: trailers.example\r\ntransfer-encoding: chunked\r\n"
           b"trailer: x-sig\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sig: s1\r\nx-more:  two words \r\n\r\n")
    with harness.RawConn(gw.port) as c:
        c.send(req)
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == answer(b"hello world", [("x-sig", "s1"), ("x-more", "two words")])
        # The next request on the connection has none.
        c.send(b"POST /up/h1 HTTP/1.1\r\nHost: trailers.example\r\n"
               b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"3 " + hashlib.sha256(b"abc").hexdigest().encode()
    assert len(up.trailers) == 1


def test_a_replayed_request_keeps_its_trailers(start_gateway, T):
    up = RawH2Upstream(refuse_first=1)
    gw = h2_gateway(start_gateway, up)
    status, body = h2c_post(gw.port, "/up/replay", [b"x" * 3000], [("x-sig", "s2")], T=T)
    assert status == "200", body
    assert body == answer(b"x" * 3000, [("x-sig", "s2")])
    assert up.refused == 1 and retries(gw, up) == 1


# Responses that break HTTP/2's message rules (RFC 9113 §8): the gateway refuses each one (it
# never reaches the client as if it were valid) and keeps the connection for the next request.
BAD_HEADS = {
    "uppercase name": [(":status", "200"), ("X-Upper", "1")],
    "connection field": [(":status", "200"), ("connection", "close")],
    "transfer-encoding field": [(":status", "200"), ("transfer-encoding", "chunked")],
    "te other than trailers": [(":status", "200"), ("te", "gzip")],
    "pseudo-header after a field": [("x-a", "1"), (":status", "200")],
    "no :status": [("content-type", "text/plain")],
    "two content-lengths": [(":status", "200"), ("content-length", "2"), ("content-length", "2")],
    "CR LF in a value": [(":status", "200"), ("x-a", "a\r\nx-injected: 1")],
}


def bad_answer(sid, path, encoder):
    name = path.rsplit("/", 1)[-1].replace("_", " ")
    if name in BAD_HEADS:
        return frame(HEADERS, END_HEADERS | END_STREAM, sid, encoder.encode(BAD_HEADS[name]))
    if name == "short body":
        block = encoder.encode([(":status", "200"), ("content-length", "10")])
        return frame(HEADERS, END_HEADERS, sid, block) + frame(DATA, END_STREAM, sid, b"12345")
    return None


@pytest.mark.parametrize("client", ["http1", "h2c"])
@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_a_malformed_upstream_head_is_refused(start_gateway, T, client, case):
    up = RawH2Upstream(answer=bad_answer)
    gw = h2_gateway(start_gateway, up)
    h2 = ["--http2-prior-knowledge"] if client == "h2c" else []
    code, body = curl(gw, "/up/" + case.replace(" ", "_"), *h2, T=T)
    assert code == 503, body
    assert b"upstream connect error or disconnect/reset before headers" in body, body
    assert b"x-injected" not in body
    # The same upstream connection serves the next request.
    assert curl(gw, "/up/fine", *h2, T=T)[0] == 200
    assert up.connections == 1


@pytest.mark.parametrize("client", ["http1", "h2c"])
def test_a_body_shorter_than_its_content_length_is_not_passed_off_as_whole(start_gateway, T,
                                                                           client):
    up = RawH2Upstream(answer=bad_answer)
    gw = h2_gateway(start_gateway, up)
    h2 = ["--http2-prior-knowledge"] if client == "h2c" else []
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", str(T(10))] + h2 +
                       [gw.url("/up/short_body")], capture_output=True, timeout=T(15))
    # The head had gone to the client already: the transfer fails instead of ending early.
    assert r.returncode != 0, r
    assert b"12345".startswith(r.stdout), r  # at most the bytes the upstream sent
    assert curl(gw, "/up/fine", *h2, T=T)[0] == 200


def plain_answer(sid, path, encoder):
    block = encoder.encode([(":status", "503"), ("content-type", "text/plain"),
                            ("content-length", "20"), ("x-from", "upstream")])
    return frame(HEADERS, END_HEADERS, sid, block) + \
        frame(DATA, 0, sid, b"no healthy ") + frame(DATA, END_STREAM, sid, b"upstream\n")


@pytest.mark.parametrize("client", ["http1", "h2c"])
def test_a_plain_answer_to_grpc_web_becomes_a_grpc_status(start_gateway, T, client):
    # The upstream of a gRPC-Web call answers with a plain-text 503 page: as Envoy's grpc_web
    # filter does, the client gets the HTTP status with the gRPC-Web content-type, grpc-status
    # mapped from it (503: UNAVAILABLE) and the body as grpc-message, which a browser can read,
    # instead of a body it cannot parse.
    up = RawH2Upstream(answer=plain_answer)
    gw = start_gateway([module({"enable_grpc_web": True}),
                        mapping("h2up", "/up/", up.addr, grpc=True)], workers=1)
    status, fields, body = curl_fields(gw, "/up/svc.S/Call", "-H",
                                       "content-type: application/grpc-web+proto", "-H",
                                       "x-grpc-web: 1", h2=client == "h2c",
                                       data=b"\x00\x00\x00\x00\x01x")
    lines = (status, fields)
    assert status.split()[1] == "503", lines
    assert fields["content-type"] == ["application/grpc-web+proto"], lines
    assert fields["grpc-status"] == ["14"], lines
    assert fields["grpc-message"] == ["no healthy upstream%0A"], lines
    assert fields["content-length"] == ["0"], lines
    assert fields["x-from"] == ["upstream"], lines
    assert body == b""
