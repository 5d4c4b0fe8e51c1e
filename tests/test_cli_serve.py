"""`serve` and `simulator` at their edges: busy ports, missing folders, readiness that names
its cause, an emptied folder."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.cli.common import listening_socket
from reconciler.config import ApiSettings, Secret
from reconciler.engine import Target
from reconciler.service import ServeOptions, Service
from reconciler.simulator import BackgroundServer, Simulator
from reconciler.sources import DirectorySource, GitSource, Source
from reconciler.web import build_app

from .conftest import API_KEY, manifest
from .inproc import run_cli
from .uiharness import APPLY, sim_server


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command's words and exit code, in-process (tests/inproc.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    return run_cli(args, cwd, env)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_on_a_busy_port_is_one_line(tmp_path: Path, busy_port: int) -> None:
    (tmp_path / "m").mkdir()
    result = cli(
        tmp_path, "serve", "--simulate", "--manifests", "m", "--listen", f"127.0.0.1:{busy_port}"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{busy_port}: address in use"
    ]


def test_simulator_on_a_busy_port_is_one_line(tmp_path: Path, busy_port: int) -> None:
    result = cli(tmp_path, "simulator", "--port", str(busy_port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{busy_port}: address in use"
    )
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_missing_manifest_folder(tmp_path: Path) -> None:
    # failed before: the folder was created and watched, and the service went green
    result = cli(tmp_path, "serve", "--simulate", "--manifests", "nowhere/")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --manifests nowhere/: no such directory"
    assert not (tmp_path / "nowhere").exists()


def test_serve_and_simulator_have_different_default_ports(tmp_path: Path) -> None:
    from reconciler.cli.service import TIMINGS
    from reconciler.simulator.config import Timings

    simulator = cli(tmp_path, "simulator", "--help").stdout
    serve = cli(tmp_path, "serve", "--help").stdout
    assert "default 8089" in " ".join(simulator.split())
    assert "default 127.0.0.1:8080" in " ".join(serve.split())
    assert {f.replace("-", "_"): d for f, _, d in TIMINGS} == vars(Timings())


# -- readiness names its cause -----------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[BackgroundServer]:
    with sim_server() as server:  # quick timings: the lifecycle's length is not the point here
        yield server


def _service(tmp_path: Path, source: Source, api: BackgroundServer, **options: bool) -> Service:
    settings = ApiSettings(base_url=api.url, api_key=Secret(API_KEY))
    options = {"apply": APPLY, **options}
    return Service(source, Target(settings, tmp_path / "state.db"), ServeOptions(**options))


async def _readyz(service: Service) -> tuple[int, str, dict[str, object]]:
    transport = httpx.ASGITransport(app=build_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as app:
        ready = await app.get("/readyz")
        status = (await app.get("/api/status")).json()
    return ready.status_code, ready.text, status


async def test_a_git_error_is_not_called_an_api_outage(
    tmp_path: Path, api: BackgroundServer
) -> None:
    source = GitSource(f"file://{tmp_path}/no-such-repo", "main", tmp_path / "git")
    service = _service(tmp_path, source, api)
    await service.reconcile_once()
    code, text, status = await _readyz(service)
    assert code == 503
    assert text.startswith("not ready: cannot fetch the manifests: git clone")
    assert "API unreachable" not in text
    assert status["not_ready"] == text.removeprefix("not ready: ").strip()


async def test_a_manifest_error_is_the_named_cause(tmp_path: Path, api: BackgroundServer) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        manifest("alpha-svc").replace("listening_port: 80", "listening_port: 0")
    )
    service = _service(tmp_path, DirectorySource(folder), api)
    await service.reconcile_once()
    code, text, _ = await _readyz(service)
    assert code == 503
    assert (
        text == "not ready: 1 manifest error at revision (directory); "
        "the last good revision stays in force\n"
    )


async def test_an_emptied_folder_applies_nothing_and_says_so(
    tmp_path: Path, api: BackgroundServer
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a.yaml").write_text(manifest("alpha-svc"))
    service = _service(tmp_path, DirectorySource(folder), api, prune=True)
    first = await service.reconcile_once()
    assert first.result == "ok", first.errors
    (folder / "a.yaml").unlink()
    emptied = await service.reconcile_once()
    assert emptied.result == "empty"
    code, text, status = await _readyz(service)
    assert code == 503 and "no manifest in" in text and "--allow-empty" in text
    assert status["last_reconcile"]["errors"] == [text.removeprefix("not ready: ").strip()]  # type: ignore[index]
    assert (1, "alpha-svc") in api.simulator.cloud.deployments  # nothing was pruned


def _accepted_nodelay(listener: socket.socket) -> int:
    listener.listen(1)
    with socket.create_connection(listener.getsockname()[:2]):
        accepted, _ = listener.accept()
        with accepted:
            return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_serve_and_the_simulator_answer_without_waiting_for_a_delayed_ack(
    simulator: Simulator,
) -> None:
    """The sockets serve and the simulator listen on hand TCP_NODELAY to what they accept (asyncio
    sets it only on sockets made with proto IPPROTO_TCP): a response written as headers, then
    body, must not wait ~40 ms for the client's delayed ACK."""
    with listening_socket("127.0.0.1", 0) as listener:
        assert _accepted_nodelay(listener)
    background = BackgroundServer(simulator)
    try:
        assert background._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        background._sock.close()
