"""WebSockets through the gateway: Mapping `allow_upgrade: [websocket]` (or `use_websocket: true`)
proxies the HTTP/1.1 Upgrade handshake, and only after the upstream's 101 does the connection
become a two-way byte tunnel. Real clients and servers: Python's `websockets` on both ends."""

import asyncio
import os
import socket
import threading
import time

import pytest
import websockets

import harness
from harness import FakeUpstream, RawConn, mapping, wait_until


class WsEchoServer:
    """A real RFC 6455 server (the `websockets` library) echoing every message, in a thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.handshakes = []
        self.closes = []  # (code, reason) of each connection's close, as the server saw it
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def _echo(self, ws, path=None):
        self.handshakes.append({"path": path or getattr(ws, "path", None),
                                "host": ws.request_headers.get("host")})
        try:
            async for message in ws:
                if message == "close-me":
                    await ws.close(4002, "server-bye")
                    break
                await ws.send(message)
        except websockets.ConnectionClosed:
            pass
        self.closes.append((ws.close_code, ws.close_reason))

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.server = await websockets.serve(self._echo, "127.0.0.1", 0, max_size=None,
                                                 ping_interval=None)
            self.port = self.server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.server.wait_closed()

        try:
            self.loop.run_until_complete(main())
        except RuntimeError:
            pass

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.thread.join(5)


@pytest.fixture
def ws_echo():
    server = WsEchoServer()
    yield server
    server.stop()


def run(coro, timeout):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def echo_round_trips(url, messages, **kwargs):
    async with websockets.connect(url, max_size=None, ping_interval=None, **kwargs) as ws:
        out = []
        for m in messages:
            await ws.send(m)
            out.append(await ws.recv())
        await ws.close()
        return out, ws.close_code


@pytest.mark.parametrize("fields", [{"allow_upgrade": ["websocket"]}, {"use_websocket": True},
                                    {"allow_upgrade": ["WebSocket"]}])
def test_websocket_echo_through_the_gateway(start_gateway, ws_echo, T, fields):
    gw = start_gateway([mapping("ws", "/ws/", ws_echo.addr, rewrite="/echo/", **fields)])
    big = os.urandom(4 * 1024 * 1024)
    messages = ["hello", b"\x00\x01binary\xff", "x" * 70000, big]
    out, code = run(echo_round_trips(f"ws://127.0.0.1:{gw.port}/ws/chat", messages), T(30))
    assert out == messages
    assert code == 1000  # the close handshake went through both ways
    assert ws_echo.handshakes[-1]["path"] == "/echo/chat"


def test_many_concurrent_websockets(start_gateway, ws_echo, T):
    gw = start_gateway([mapping("ws", "/ws/", ws_echo.addr, allow_upgrade=["websocket"])])
    n = 200 if not harness.SANITIZED else 50

    async def one(i):
        out, code = await echo_round_trips(f"ws://127.0.0.1:{gw.port}/ws/{i}",
                                           [f"m{i}-{k}" for k in range(5)])
        return out == [f"m{i}-{k}" for k in range(5)] and code == 1000

    async def all_of_them():
        return await asyncio.gather(*(one(i) for i in range(n)))

    assert all(run(all_of_them(), T(60)))


def test_route_timeout_does_not_cut_a_busy_tunnel(start_gateway, ws_echo, T):
    # A 300 ms route timeout; the tunnel lives for well over a second with traffic.
    gw = start_gateway([mapping("ws", "/ws/", ws_echo.addr, allow_upgrade=["websocket"],
                                timeout_ms=300)])

    async def chat():
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}/ws/", ping_interval=None) as ws:
            for i in range(12):
                await ws.send(str(i))
                assert await ws.recv() == str(i)
                await asyncio.sleep(0.1)
            await ws.close()
            return ws.close_code

    assert run(chat(), T(20)) == 1000


def test_idle_timeout_closes_a_silent_tunnel(start_gateway, ws_echo, T):
    gw = start_gateway([mapping("ws", "/ws/", ws_echo.addr, allow_upgrade=["websocket"],
                                idle_timeout_ms=400)])

    async def idle():
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}/ws/", ping_interval=None) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            started = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()  # nothing comes; the gateway closes the silent tunnel
            return time.monotonic() - started

    waited = run(idle(), T(20))
    assert waited >= 0.3


def test_upgrade_refused_without_allow_upgrade(start_gateway, ws_echo, T):
    gw = start_gateway([mapping("plain", "/ws/", ws_echo.addr)])

    async def attempt():
        with pytest.raises(websockets.InvalidStatusCode) as info:
            async with websockets.connect(f"ws://127.0.0.1:{gw.port}/ws/"):
                pass
        return info.value.status_code

    assert run(attempt(), T(10)) == 403
    assert ws_echo.handshakes == []  # never reached the upstream


def test_upstream_200_to_an_upgrade_is_not_a_tunnel(start_gateway, T):
    served = []

    def answer_200(conn, data):
        while True:
            served.append(data.split(b"\r\n")[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk

    up = FakeUpstream(answer_200)
    gw = start_gateway([mapping("ws", "/ws/", up.addr, allow_upgrade=["websocket"])])
    upgrade = (b"GET /ws/a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    with RawConn(gw.port, timeout=T(5)) as c:
        # Bytes sent behind the upgrade request (tunnel bytes, here an HTTP request) are not
        # forwarded without a 101, nor parsed as a next request: the connection closes.
        r = c.request(upgrade + b"GET /ws/b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 200 and r.body == b"no"
        assert r.header("upgrade") is None
        assert r.header("connection") == "close"
        assert c.wait_closed() and c.buf == b""
    assert served == [b"GET /a HTTP/1.1"]


def test_upgrade_headers_reach_the_upstream_and_tunnel_carries_raw_bytes(start_gateway, T):
    """A non-WebSocket upgrade protocol allowed by name: the tunnel carries arbitrary bytes,
    and the client's half-close reaches the upstream while its answer still flows back."""
    heads = []

    def raw_tunnel(conn, data):
        heads.append(data)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: my-proto\r\n"
                     b"Connection: Upgrade\r\n\r\nhello-from-upstream")
        received = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break  # the client's FIN, passed on by the gateway
            received += chunk
        conn.sendall(b"|got:" + received)
        conn.shutdown(socket.SHUT_WR)

    up = FakeUpstream(raw_tunnel)
    gw = start_gateway([mapping("t", "/t/", up.addr, allow_upgrade=["my-proto"])])
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=T(5))
    s.sendall(b"GET /t/ HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: my-proto\r\n\r\n")
    buf = b""
    while b"hello-from-upstream" not in buf:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    head = buf.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 101")
    assert b"upgrade: my-proto" in head and b"connection: upgrade" in head
    s.sendall(b"\x00\x01raw bytes\xff")
    s.shutdown(socket.SHUT_WR)
    rest = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    s.close()
    assert rest == b"|got:\x00\x01raw bytes\xff"
    h = heads[0].lower()
    assert b"upgrade: my-proto" in h and b"connection: upgrade" in h


def test_close_codes_and_reasons_pass_both_ways(start_gateway, ws_echo, T):
    gw = start_gateway([mapping("ws", "/ws/", ws_echo.addr, allow_upgrade=["websocket"])])
    url = f"ws://127.0.0.1:{gw.port}/ws/"

    async def client_closes():
        async with websockets.connect(url, ping_interval=None) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            await ws.close(4001, "client-bye")
            return ws.close_code, ws.close_reason

    async def server_closes():
        async with websockets.connect(url, ping_interval=None) as ws:
            await ws.send("close-me")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            return info.value.code, info.value.reason

    # The client's code and reason reach the server, whose echo of them comes back.
    assert run(client_closes(), T(10)) == (4001, "client-bye")
    assert wait_until(lambda: (4001, "client-bye") in ws_echo.closes, T(5))
    # The server's close frame reaches the client intact.
    assert run(server_closes(), T(10)) == (4002, "server-bye")
