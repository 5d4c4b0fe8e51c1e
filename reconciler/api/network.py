"""httpcore's network layer on asyncio directly, for the API client's connection pool.

httpcore's default layer goes through anyio, which yields to the event loop on every write and
read (a checkpoint) and rebuilds a table of socket attributes each time the pool asks whether an
idle connection is still usable (for every idle connection, on every request). Applying 2,000
deployments, this layer took the reconciler's own CPU from 2.2-2.5 ms to 1.85-1.9 ms per
deployment (`bench/apply.py --count 2000 --task 0.5 --rollout 0.2 --latency 0`). It keeps the same
contract (httpcore's `AsyncNetworkBackend`: TCP connect, TLS upgrade, read, write, close, the
same timeout and error classes) over one asyncio `Protocol` per connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore import (
    AsyncNetworkBackend,
    AsyncNetworkStream,
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)

SocketOption = Any  # httpcore's SOCKET_OPTION (not exported): what setsockopt takes


class _Protocol(asyncio.Protocol):
    """Buffers what arrives; wakes the one reader waiting; pauses the writer when asked."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    async def readable(self) -> None:
        while not self.buffer and not self.eof:
            self._readable = asyncio.get_running_loop().create_future()
            await self._readable

    async def writable(self) -> None:
        if self._writable is not None and not self._writable.done():
            await self._writable


class _Stream(AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            try:
                async with asyncio.timeout(timeout):
                    await protocol.readable()
            except TimeoutError:
                raise ReadTimeout("timed out reading the answer") from None
        if protocol.buffer:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]
            return data
        if protocol.error is not None:
            raise ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the server closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise WriteError("the connection is closed")
        try:
            self._transport.write(buffer)
        except OSError as exc:
            raise WriteError(str(exc)) from exc
        try:
            async with asyncio.timeout(timeout):
                await self._protocol.writable()
        except TimeoutError:
            raise WriteTimeout("timed out sending the request") from None
        if self._protocol.error is not None:
            raise WriteError(str(self._protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                )
        except TimeoutError:
            self._transport.close()
            raise ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise ConnectError(str(exc)) from exc
        assert isinstance(transport, asyncio.Transport)
        return _Stream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # an idle connection with something to read, or at its end, cannot take a request
            return bool(self._protocol.buffer) or self._protocol.eof
        names = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }
        return self._transport.get_extra_info(names[info]) if info in names else None


class AsyncioBackend(AsyncNetworkBackend):
    """TCP connections on the running asyncio loop (TLS through `start_tls`)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port, local_addr=local
                )
        except TimeoutError:
            raise ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in socket_options or ():
                sock.setsockopt(*option)
        assert isinstance(transport, asyncio.Transport)
        return _Stream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        raise ConnectError("unix sockets are not used by this client")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class LeanPool(httpcore.AsyncConnectionPool):
    """httpcore's pool, its bookkeeping in one pass over the connections.

    httpcore runs `_assign_requests_to_connections` whenever a request starts or ends; for each
    idle connection it counts every connection again (a list built to take its length), and
    for each queued request it lists both the available and the idle ones. This makes the same
    decisions, in the same order, with the same results (`tests/test_api_pool.py` holds the
    two side by side on random pools), without the quadratic part."""

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        connections = self._connections
        for connection in list(connections):
            if connection.is_closed():
                connections.remove(connection)
            elif connection.has_expired() or (
                connection.is_idle() and len(connections) > self._max_keepalive_connections
            ):
                connections.remove(connection)
                closing.append(connection)
        for pool_request in [r for r in self._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            reused = next(
                (c for c in connections if c.can_handle_request(origin) and c.is_available()),
                None,
            )
            if reused is not None:
                pool_request.assign_to_connection(reused)
                continue
            if len(connections) >= self._max_connections:
                idle = next((c for c in connections if c.is_idle()), None)
                if idle is None:
                    continue  # it waits for a connection to be free
                connections.remove(idle)
                closing.append(idle)
            connection = self.create_connection(origin)
            connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing


def use_asyncio_network(client: httpx.AsyncClient) -> bool:
    """Put the client's own connection pool on `AsyncioBackend`, as a `LeanPool`; true if it
    could.

    Only the pool httpx made for the client itself (not a proxy's), found where httpx keeps it;
    with another httpx, the pool keeps its default layer (slower, the same behaviour)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if type(pool) is not httpcore.AsyncConnectionPool or not hasattr(pool, "_network_backend"):
        return False
    pool._network_backend = AsyncioBackend()
    pool.__class__ = LeanPool
    return True
