"""Serving a simulator: over real HTTP with uvicorn, or in-process through httpx.

`serve()` blocks (the `reconciler simulator` command). `BackgroundServer` runs uvicorn in a thread
on an ephemeral loopback port: the end-to-end tests and the benchmarks use it, so the client
talks real HTTP. `transport()` answers in process: the embedded `--simulate` mode and fast unit
tests use it; it maps a simulated lost response to the transport error a real connection drop
gives.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self

import httpx
import uvicorn

from .app import LostResponse, Simulator


def serve(
    simulator: Simulator,
    host: str,
    port: int,
    log_level: str = "info",
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted; on `sock` if given (bound already, so a busy port was reported
    before anything started)."""
    config = uvicorn.Config(simulator, host=host, port=port, log_level=log_level, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)


class BackgroundServer:
    """uvicorn in a daemon thread, bound to an ephemeral port on 127.0.0.1."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: no ~40 ms wait for a delayed ACK per response
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(
            simulator, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name="simulator",
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        # uvicorn sets `started` once it accepts connections on our socket
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the simulator failed to start")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _SimulatorTransport(httpx.AsyncBaseTransport):
    def __init__(self, simulator: Simulator) -> None:
        self._inner = httpx.ASGITransport(app=simulator)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except LostResponse:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None


def transport(simulator: Simulator) -> httpx.AsyncBaseTransport:
    """An in-process transport to `simulator`, for unit tests."""
    return _SimulatorTransport(simulator)
