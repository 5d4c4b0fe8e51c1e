"""The service's HTTP endpoints, and running the service with them until SIGTERM.

- `GET /healthz`: the loop is alive (200), or a reconcile has been stuck far past its deadline.
- `GET /readyz`: the first reconcile is done and the API answered the last one (200), else 503.
- `GET /metrics`: Prometheus exposition.
- `GET /api/status`: owned deployments (as `reconciler status --format json`), the revision in
  force, the last reconcile and its errors.
- `GET /`, `/deployments/{project}/{name}`, `/plan`: the web page (`reconciler/ui/`).
- `POST /hooks/git`: a GitHub-style push webhook, verified by HMAC-SHA256 of the body
  (`X-Hub-Signature-256: sha256=<hex>`) with `RECONCILER_WEBHOOK_SECRET`; triggers a fetch.
  The body is capped and timed (see `webhook.py`); a replayed delivery ID triggers nothing.

A request's head (request line and headers) must arrive whole within `HEAD_TIMEOUT` seconds of
the connection or of the previous answer on it; uvicorn itself times out only an idle kept-alive
connection, so a client that sent nothing, or headers without their end, held a slot for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from .service import Service
from .ui import UiOptions, ui_routes
from .webhook import Deliveries, WebhookLimits, read_body, signature_ok

log = logging.getLogger("reconciler.web")
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HTTP_CONCURRENCY = 200  # connections at once; more are answered 503 by uvicorn
HEAD_TIMEOUT = 10.0


__all__ = ["build_app", "head_timed", "run_service", "server_config", "signature_ok"]


def server_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    """How `serve` listens: a bounded number of connections, idle ones closed after 5 s, a request
    head not whole within HEAD_TIMEOUT closed, uvicorn's records through our log handler."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's records go through our handler (text or JSON)
        lifespan="off",
        access_log=False,
        limit_concurrency=HTTP_CONCURRENCY,
        timeout_keep_alive=5,
        http=head_timed(),
    )


def head_timed(timeout: float = HEAD_TIMEOUT) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request head is not whole within
    `timeout` seconds of the connection or of the previous answer on it."""

    class HeadTimed(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _waiting_from: object = None  # the request cycle in force when the timer was set

        def _arm(self) -> None:
            self._disarm()
            self._waiting_from = self.cycle
            self._head_timer = self.loop.call_later(timeout, self._head_late)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not self._waiting_from:  # a whole head arrived: a new request
                self._disarm()

        def on_response_complete(self) -> None:
            self._arm()  # before: answering may start a pipelined request (which disarms)
            super().on_response_complete()

    return HeadTimed


def build_app(
    service: Service, ui: UiOptions | None = None, limits: WebhookLimits | None = None
) -> Starlette:
    limits = limits or WebhookLimits()
    deliveries = Deliveries()

    async def healthz(request: Request) -> Response:
        since = service.running_since
        limit = service.options.apply.timeout + 300
        if since is not None and time.monotonic() - since > limit:
            return PlainTextResponse("reconcile stuck\n", status_code=503)
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        if service.ready:
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"not ready: {service.not_ready}\n", status_code=503)

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.exposition(), media_type=PROMETHEUS_TYPE)

    async def status(request: Request) -> Response:
        return JSONResponse(service.status_json())

    async def hook(request: Request) -> Response:
        secret = service.webhook_secret
        if not secret:
            return JSONResponse(
                {"error": "webhook disabled: set RECONCILER_WEBHOOK_SECRET"}, status_code=404
            )
        body = await read_body(request, limits)
        if isinstance(body, Response):
            return body
        if not signature_ok(secret, body, request.headers.get("x-hub-signature-256")):
            log.warning("webhook refused: bad or missing X-Hub-Signature-256")
            return JSONResponse({"error": "bad or missing signature"}, status_code=401)
        if not deliveries.first_time(request.headers.get("x-github-delivery")):
            log.info("webhook: delivery already seen; ignored")
            return JSONResponse({"ok": True, "duplicate": True})
        event = request.headers.get("x-github-event", "push")
        if event == "ping":
            return JSONResponse({"ok": True, "event": "ping"})
        service.trigger("webhook")
        return JSONResponse({"ok": True, "triggered": True}, status_code=202)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/api/status", status),
            Route("/hooks/git", hook, methods=["POST"]),
            *ui_routes(service, ui),  # the web page: reconciler/ui/
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_service(
    service: Service,
    host: str,
    port: int,
    ui: UiOptions | None = None,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Serve HTTP and reconcile until SIGTERM/SIGINT; then stop within the shutdown grace."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = _Server(server_config(build_app(service, ui), host, port))
    sockets = [sock] if sock is not None else None
    http = asyncio.create_task(server.serve(sockets=sockets), name="http")
    await asyncio.sleep(0)
    log.info("serving on http://%s:%d; manifests from %s", host, port, service.source.describe())
    try:
        await service.run(stop)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(http, 5)
        log.info("stopped")
