"""The webhook under abuse, over real HTTP on loopback: huge, slow, odd and replayed requests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from reconciler.simulator import BackgroundServer
from reconciler.sources import DirectorySource
from reconciler.web import HTTP_CONCURRENCY, build_app, head_timed, server_config
from reconciler.webhook import WebhookLimits

from ..uiharness import SECRET, Running

LIMITS = WebhookLimits(max_body=1024 * 1024, body_timeout=0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> AsyncIterator[tuple[Running, str]]:
    run: Running = await start(DirectorySource(folder), sim)
    port = free_port()
    config = uvicorn.Config(
        build_app(run.service, limits=LIMITS),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        access_log=False,
        http=head_timed(0.5),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield run, f"127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def raw(address: str, head: bytes, body: bytes = b"") -> tuple[asyncio.StreamReader, Any]:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + body)
    await writer.drain()
    return reader, writer


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


async def test_a_declared_huge_body_is_413_before_it_is_sent(
    served: tuple[Running, str],
) -> None:
    run, address = served
    head = (
        b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n"
        b"X-Hub-Signature-256: sha256=00\r\n\r\n"
    )
    reader, writer = await raw(address, head)  # not one byte of the body is sent
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 413"), status
    writer.close()
    assert run.service.triggers["webhook"] == 0


async def test_an_undeclared_body_over_the_cap_is_413(served: tuple[Running, str]) -> None:
    _, address = served
    head = b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    reader, writer = await raw(address, head)
    chunk = b"x" * 65536
    with contextlib.suppress(ConnectionError):
        for _ in range(17):  # 1.06 MiB
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 413"), status
    writer.close()


async def test_a_slow_body_is_cut_off(served: tuple[Running, str]) -> None:
    _, address = served
    head = b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    reader, writer = await raw(address, head, b"{")
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 408"), status
    rest = await asyncio.wait_for(reader.read(), 5)  # the server closes the connection
    assert rest.endswith(b'body too slow"}')
    writer.close()


async def test_a_non_ascii_signature_is_401(served: tuple[Running, str]) -> None:
    _, address = served
    head = (
        b"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"X-Hub-Signature-256: sha256=\xc3\xa9\xff\r\n\r\n{}"
    )
    reader, writer = await raw(address, head)
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 401"), status
    writer.close()


async def test_a_replayed_delivery_triggers_nothing(served: tuple[Running, str]) -> None:
    run, address = served
    body = b'{"ref": "refs/heads/main"}'
    headers = {"X-Hub-Signature-256": sign(body), "X-GitHub-Delivery": "72d3162e-1"}
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        first = await client.post("/hooks/git", content=body, headers=headers)
        again = await client.post("/hooks/git", content=body, headers=headers)
        other = await client.post(
            "/hooks/git", content=body, headers={**headers, "X-GitHub-Delivery": "72d3162e-2"}
        )
    assert first.status_code == 202 and other.status_code == 202
    assert again.status_code == 200 and again.json() == {"ok": True, "duplicate": True}
    assert run.service.triggers["webhook"] == 2


@pytest.mark.parametrize("head", [b"", b"POST /hooks/git HTTP/1.1\r\nHost: x\r\n"])
async def test_a_request_head_that_never_completes_is_cut_off(
    served: tuple[Running, str], head: bytes
) -> None:
    # a connection that sends nothing, or headers without their end, held its slot for ever
    # (uvicorn times out only idle keep-alive); enough of them and /healthz answered 503
    _, address = served
    reader, writer = await raw(address, head)
    rest = await asyncio.wait_for(reader.read(), 5)  # the server closes the connection
    assert rest == b""
    writer.close()


async def test_a_kept_alive_connection_must_send_its_next_head_in_time(
    served: tuple[Running, str],
) -> None:
    _, address = served
    reader, writer = await raw(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    # the next request, never finished: its first bytes stop uvicorn's keep-alive timer
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), 5)  # what is left of the first answer, then EOF
    assert b"HTTP/1.1" not in rest
    writer.close()


def test_serve_listens_with_the_head_timeout_and_the_connection_bound() -> None:
    """What `run_service` gives uvicorn: the protocol that closes a connection whose request head
    is late (the test above runs it with a short timeout), and the bound on connections."""
    config = server_config(Starlette(), "127.0.0.1", 0)
    assert issubclass(config.http, H11Protocol) and hasattr(config.http, "_head_late")
    assert config.limit_concurrency == HTTP_CONCURRENCY
    assert config.log_config is None and config.timeout_keep_alive == 5
