"""Client helpers for the echo backend's gRPC service `echo.Echo`, with Debian's python3-grpcio and
no generated stubs: messages are opaque bytes (identity serializers).

    ch = grpc_echo.channel("127.0.0.1:8080")            # h2c; tls=... for TLS
    r = grpc_echo.unary(ch, b"hi", metadata={"x-a": "1"})
    r.code, r.details, r.messages, r.initial, r.trailing  # grpc.StatusCode, str, [bytes], dicts

Calls never raise on a non-OK status: the status is in the result. Methods of the backend:
  Unary         one message -> the same bytes
  ServerStream  one message P -> N messages b"P-0", b"P-1", ... (N from metadata x-count, else P as
                a decimal number, else 1; x-message-bytes: M -> M bytes of b"a" each), x-delay-ms
                apart
  ClientStream  messages -> one message, their concatenation (trailer x-message-count)
  Bidi          each message echoed as it arrives
Metadata: x-delay-ms, x-fail-status + x-fail-message (+ x-fail-after: K messages first); the
response headers echo request metadata as x-echo-<name>; trailers carry x-message-count.
"""

import queue
import threading
import time

import grpc

SERVICE = "echo.Echo"
# No proxy from the environment, no message size limits (large-message tests).
BASE_OPTIONS = (
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
)


def _ident(b):
    return b


def _md(metadata):
    if metadata is None:
        return None
    if isinstance(metadata, dict):
        return tuple((k.lower(), str(v)) for k, v in metadata.items())
    return tuple((k.lower(), v) for k, v in metadata)


def _dict(md):
    return {k: v for k, v in (md or ())}


def channel(target, tls=None, server_name=None, client_cert=None, client_key=None, options=()):
    """A channel to `target` ("host:port"). `tls`: CA certificate PEM bytes for a TLS channel;
    `server_name` overrides the name checked (and sent as SNI); client_cert/client_key (PEM bytes)
    for mutual TLS."""
    opts = list(BASE_OPTIONS) + list(options)
    if tls is None:
        return grpc.insecure_channel(target, options=opts)
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls, private_key=client_key, certificate_chain=client_cert
    )
    return grpc.secure_channel(target, creds, options=opts)


class Result:
    """Outcome of a call: every response message received, the status and both metadata sets."""

    def __init__(self, messages, code, details, initial, trailing, elapsed, arrivals=None):
        self.messages = messages
        self.code = code
        self.details = details
        self.initial = _dict(initial)
        self.trailing = _dict(trailing)
        self.initial_list = list(initial or ())
        self.trailing_list = list(trailing or ())
        self.elapsed = elapsed
        self.arrivals = arrivals or []  # monotonic seconds since the call started, per message

    @property
    def ok(self):
        return self.code == grpc.StatusCode.OK

    @property
    def message(self):
        assert len(self.messages) == 1, self.messages
        return self.messages[0]

    def __repr__(self):
        return (f"Result(code={self.code}, details={self.details!r}, "
                f"messages={[m[:40] for m in self.messages]}, initial={self.initial}, "
                f"trailing={self.trailing})")


def _status(call):
    """(code, details, initial, trailing) of a finished call or RpcError."""
    try:
        initial = call.initial_metadata()
    except Exception:  # a call that failed before headers
        initial = ()
    return call.code(), call.details(), initial, call.trailing_metadata()


def _method(ch, kind, name):
    path = f"/{SERVICE}/{name}"
    factory = getattr(ch, kind)
    return factory(path, request_serializer=_ident, response_deserializer=_ident)


def unary(ch, payload, metadata=None, timeout=None, method="Unary"):
    start = time.monotonic()
    fn = _method(ch, "unary_unary", method)
    try:
        response, call = fn.with_call(payload, metadata=_md(metadata), timeout=timeout)
        messages = [response]
    except grpc.RpcError as e:
        call, messages = e, []
    return Result(messages, *_status(call), time.monotonic() - start)


def _collect(call, start):
    messages, arrivals = [], []
    try:
        for m in call:
            messages.append(m)
            arrivals.append(time.monotonic() - start)
    except grpc.RpcError:
        pass  # the status is read from the call below
    return messages, arrivals


def server_stream(ch, payload, metadata=None, timeout=None, method="ServerStream"):
    """Runs the whole call; `arrivals` tells when each message came in."""
    start = time.monotonic()
    call = _method(ch, "unary_stream", method)(payload, metadata=_md(metadata), timeout=timeout)
    messages, arrivals = _collect(call, start)
    return Result(messages, *_status(call), time.monotonic() - start, arrivals)


def server_stream_call(ch, payload, metadata=None, timeout=None):
    """The raw grpc call object (an iterator of messages) for tests that read at their own pace;
    call.cancel() ends it."""
    return _method(ch, "unary_stream", "ServerStream")(
        payload, metadata=_md(metadata), timeout=timeout
    )


def client_stream(ch, payloads, metadata=None, timeout=None, method="ClientStream"):
    start = time.monotonic()
    fn = _method(ch, "stream_unary", method)
    try:
        response, call = fn.with_call(iter(list(payloads)), metadata=_md(metadata),
                                      timeout=timeout)
        messages = [response]
    except grpc.RpcError as e:
        call, messages = e, []
    return Result(messages, *_status(call), time.monotonic() - start)


def bidi(ch, payloads, metadata=None, timeout=None, method="Bidi"):
    """Sends all `payloads`, half-closes, collects every echo."""
    start = time.monotonic()
    call = _method(ch, "stream_stream", method)(
        iter(list(payloads)), metadata=_md(metadata), timeout=timeout
    )
    messages, arrivals = _collect(call, start)
    return Result(messages, *_status(call), time.monotonic() - start, arrivals)


_END = object()


class BidiSession:
    """An interactive bidirectional call: send() one message, recv() its echo, then the next;
    done_sending() half-closes; finish() waits for the status.

        with grpc_echo.BidiSession(ch) as s:
            s.send(b"a"); assert s.recv() == b"a"
            s.done_sending(); r = s.finish()
    """

    def __init__(self, ch, metadata=None, timeout=None, method="Bidi"):
        self._start = time.monotonic()
        self._requests = queue.Queue()
        self._responses = queue.Queue()
        self.call = _method(ch, "stream_stream", method)(
            self._request_iter(), metadata=_md(metadata), timeout=timeout
        )
        self._messages = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _request_iter(self):
        while True:
            item = self._requests.get()
            if item is _END:
                return
            yield item

    def _read(self):
        try:
            for m in self.call:
                self._responses.put(m)
        except grpc.RpcError:
            pass
        self._responses.put(_END)

    def send(self, payload):
        self._requests.put(payload)

    def done_sending(self):
        self._requests.put(_END)

    def recv(self, timeout=5.0):
        """The next response message, or None when the call ended. Raises queue.Empty on
        timeout."""
        item = self._responses.get(timeout=timeout)
        if item is _END:
            self._responses.put(_END)  # stay ended for later calls
            return None
        self._messages.append(item)
        return item

    def finish(self, timeout=10.0):
        """Reads what is left and returns the Result (all messages received through recv() and
        after)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("bidi call did not finish")
            if self.recv(timeout=left) is None:
                break
        return Result(list(self._messages), *_status(self.call), time.monotonic() - self._start)

    def cancel(self):
        self.call.cancel()
        self._requests.put(_END)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.call.done():
            self.cancel()
