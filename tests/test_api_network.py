"""The API client's network layer on asyncio (reconciler.api.network), over real loopback."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from reconciler.api import ApiClient
from reconciler.api.network import AsyncioBackend, use_asyncio_network
from reconciler.config import ApiSettings, Secret

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def serving(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)


def url_of(server: asyncio.Server, scheme: str = "http") -> str:
    port = server.sockets[0].getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


def client(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """An httpx client whose own pool runs on the asyncio layer, as the API client's does."""
    http = httpx.AsyncClient(verify=verify)
    assert use_asyncio_network(http)
    return http


def test_the_api_client_uses_it() -> None:
    api = ApiClient(ApiSettings(base_url="http://127.0.0.1:9", api_key=Secret("k")))
    pool = api._http._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool._network_backend, AsyncioBackend)
    asyncio.run(api.aclose())


def test_answers_large_and_small_over_one_kept_alive_connection() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: many reads
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head = await read_head(reader)
            except asyncio.IncompleteReadError:
                break
            length = int(
                next(
                    (
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    b"0",
                )
            )
            body = await reader.readexactly(length)
            writer.write(answer(big if head.startswith(b"GET /big") else b"echo:" + body))
            await writer.drain()
        writer.close()

    async def run() -> None:
        server = await serving(handler)
        async with server, client() as http:
            first = await http.get(url_of(server) + "/big")
            second = await http.post(url_of(server) + "/x", content=b"hello")
            assert first.content == big
            assert second.content == b"echo:hello"
        assert connections == 1

    asyncio.run(run())


def test_a_refused_connection_is_a_connect_error() -> None:
    async def run() -> None:
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{free_port()}/")

    asyncio.run(run())


def test_an_answer_that_never_comes_is_a_read_timeout() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await release.wait()  # never answers while the client waits
        writer.close()

    async def run() -> None:
        server = await serving(handler)
        async with server, client() as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(url_of(server), timeout=httpx.Timeout(5.0, read=0.2))
            release.set()

    asyncio.run(run())


def test_a_connection_cut_mid_answer_is_an_error_not_a_short_answer() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.close()

    async def run() -> None:
        server = await serving(handler)
        async with server, client() as http:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await http.get(url_of(server))

    asyncio.run(run())


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(answer(b"once"))  # keep-alive by default, then closed while idle
        await writer.drain()
        writer.close()

    async def run() -> None:
        server = await serving(handler)
        async with server, client() as http:
            assert (await http.get(url_of(server))).content == b"once"
            for _ in range(50):  # until the close has reached the client's side
                await asyncio.sleep(0)
            assert (await http.get(url_of(server))).content == b"once"  # a new connection

    asyncio.run(run())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=str(cert))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(answer(b"over tls"))
        await writer.drain()
        writer.close()

    async def run() -> None:
        server = await serving(handler, served)
        async with server:
            async with client(trusted) as http:
                response = await http.get(url_of(server, "https"))
                assert response.content == b"over tls"
            async with client(ssl.create_default_context()) as untrusting:
                with pytest.raises(httpx.ConnectError):
                    await untrusting.get(url_of(server, "https"))

    asyncio.run(run())
