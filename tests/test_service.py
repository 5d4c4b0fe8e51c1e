"""The service with its real parts: a watchdog observer, git repositories, HTTP, the simulator."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.config import ApiSettings, Secret
from reconciler.engine import Target
from reconciler.model import DeploymentKey
from reconciler.service import ServeOptions, Service
from reconciler.simulator import BackgroundServer, Simulator, SimulatorConfig
from reconciler.sources import DirectorySource, GitSource
from reconciler.web import build_app

from .conftest import API_KEY, eventually, manifest
from .fakes import FakeTime
from .githttp import git
from .uiharness import FAST, SECRET, Running, Starter, sim_server

APPLY = Starter.APPLY


# -- file events -------------------------------------------------------------------------------


async def test_file_events_create_update_and_prune(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> None:
    run: Running = await start(DirectorySource(folder), sim, prune=True, allow_empty=True)

    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    await eventually(run.status_is("alpha-svc", "ACTIVE"))

    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc", image="nginx:1.27"))
    await eventually(lambda: (run.live("alpha-svc") or {}).get("image") == "nginx:1.27")

    (folder / "alpha-svc.yaml").unlink()
    await eventually(lambda: run.live("alpha-svc") is None)
    assert run.service.triggers["files"] >= 3


async def test_editor_temp_files_and_hidden_folders_are_ignored(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> None:
    (folder / ".git").mkdir()
    run: Running = await start(DirectorySource(folder), sim)
    for name in (".alpha.yaml.swp", "alpha.yaml~", "#alpha.yaml#", ".git/config", "notes.txt"):
        (folder / name).write_text("x")
    (folder / "beta-svc.yaml").write_text(manifest("beta-svc"))  # the one that counts
    await eventually(run.status_is("beta-svc", "ACTIVE"))
    assert run.service.triggers["files"] == 1


async def test_a_burst_of_writes_coalesces(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler import sources

    seen: list[str] = []  # every path the observer thread has handed to the service's filter
    real_filter = sources.is_manifest_event

    def recording(root: Path, event: Any) -> bool:
        seen.append(str(event.src_path))
        return real_filter(root, event)

    monkeypatch.setattr(sources, "is_manifest_event", recording)
    run: Running = await start(DirectorySource(folder), sim)
    before = run.service.runs
    for i in range(50):
        (folder / f"svc-{i % 5}.yaml").write_text(manifest(f"svc-{i % 5}", description=f"v{i}"))
    await eventually(lambda: all(run.live(f"svc-{i}") for i in range(5)))
    # The absence check, without waiting a guessed time: the observer hands events over in
    # order, so once it has handed over a later one (not a manifest: it triggers nothing), every
    # write of the burst has reached the service; then its last debounce timer is let fire.
    (folder / "zz-after-the-burst.txt").write_text("x")
    await eventually(lambda: any(p.endswith("zz-after-the-burst.txt") for p in seen))
    await asyncio.sleep(0)  # the loop runs the debounce calls the observer queued before it
    last = run.service._debounce
    assert last is not None
    loop = asyncio.get_running_loop()
    await eventually(lambda: loop.time() > last.when())
    await asyncio.sleep(0)  # a timer due is run at the start of the loop's next pass
    # every run after `before` came from a debounced file trigger: at most as many as fired
    assert 1 <= run.service.triggers["files"] <= 2, run.service.triggers
    await eventually(lambda: run.service.running_since is None)
    runs = run.service.runs - before
    assert 1 <= runs <= 2, runs
    assert run.service.metrics.value("reconciler_reconcile_runs_total", {"result": "ok"}) <= 3


# -- bad revisions and failures ----------------------------------------------------------------


async def test_an_invalid_manifest_applies_nothing_until_fixed(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> None:
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    run: Running = await start(DirectorySource(folder), sim)
    await eventually(run.status_is("alpha-svc", "ACTIVE"))

    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc", image="nginx:2"))
    (folder / "broken.yaml").write_text(
        manifest("broken-svc").replace("listening_port: 80", "listening_port: 0")
    )
    await eventually(lambda: bool(run.service.manifest_errors))
    await eventually(lambda: run.service.running_since is None)
    assert (run.live("alpha-svc") or {})["image"] == "nginx:latest"  # nothing from the bad set
    assert run.live("broken-svc") is None
    status = run.service.status_json()
    assert status["last_reconcile"]["result"] == "invalid"
    assert any("broken.yaml" in e and "listening_port" in e for e in status["manifest_errors"])
    assert run.service.metrics.value("reconciler_manifest_errors") == 1

    (folder / "broken.yaml").write_text(manifest("broken-svc"))
    await eventually(run.status_is("broken-svc", "ACTIVE"))
    await eventually(lambda: (run.live("alpha-svc") or {}).get("image") == "nginx:2")
    assert run.service.manifest_errors == []


async def test_a_failing_deployment_backs_off_without_holding_others(
    tmp_path: Path, folder: Path
) -> None:
    """Backoff on fake time: reconciles are run one by one, the clock moved between them."""
    (folder / "good-svc.yaml").write_text(manifest("good-svc"))
    (folder / "bad-svc.yaml").write_text(manifest("bad-svc", image="broken/model:1"))
    time = FakeTime()
    with sim_server(task_error_image="^broken/") as server:
        settings = ApiSettings(base_url=server.url, api_key=Secret(API_KEY))
        service = Service(
            DirectorySource(folder),
            Target(settings, tmp_path / "state.db"),
            ServeOptions(apply=APPLY, backoff_initial=5.0, backoff_cap=15.0),
            clock=time.clock,
        )
        creates = server.simulator.creates
        bad = DeploymentKey(1, "bad-svc")

        async def reconcile_at(moment: float) -> None:
            time.now = moment
            await service.reconcile_once()

        await reconcile_at(0.0)
        assert service.backoff[bad] == (1, 5.0)
        assert creates == {(1, "good-svc"): 1, (1, "bad-svc"): 1}
        await reconcile_at(4.9)  # still backing off: not sent again
        assert creates[(1, "bad-svc")] == 1
        await reconcile_at(5.1)  # due: retried, and the next wait doubles
        assert creates[(1, "bad-svc")] == 2 and service.backoff[bad] == (2, 15.1)
        await reconcile_at(15.0)
        assert creates[(1, "bad-svc")] == 2
        await reconcile_at(15.2)  # due again; the wait is capped at 15 s
        assert creates[(1, "bad-svc")] == 3 and service.backoff[bad] == (3, 30.2)
        assert creates[(1, "good-svc")] == 1  # never held back, never sent again
        assert (
            server.simulator.cloud.view(server.simulator.cloud.get(1, "good-svc"))["status"]
            == "ACTIVE"
        )


async def test_api_down_means_not_ready_then_recovers(
    folder: Path, start: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from reconciler.api import RetryPolicy

    # the client still retries each request; only its backoff (7 s per request) is not slept
    monkeypatch.setattr(RetryPolicy, "delay", lambda *_: 0.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    down = Simulator(SimulatorConfig(api_key=API_KEY, timings=FAST))
    placeholder = BackgroundServer(down, port=port)  # bound later; for its URL only
    placeholder._sock.close()
    run: Running = await start(DirectorySource(folder), placeholder)
    assert not run.service.ready
    assert run.service.last is not None and run.service.last.result == "error"
    with BackgroundServer(down, port=port) as server:
        run.cloud = server.simulator.cloud
        await eventually(lambda: run.service.ready, timeout=15)
        await eventually(run.status_is("alpha-svc", "ACTIVE"))


# -- drift -------------------------------------------------------------------------------------


async def test_drift_is_corrected_within_an_interval(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> None:
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc", description="as written"))
    run: Running = await start(DirectorySource(folder), sim, interval=0.5)
    await eventually(run.status_is("alpha-svc", "ACTIVE"))
    sim.simulator.cloud.update(1, "alpha-svc", {"description": "edited by hand"}, "r")
    await eventually(
        lambda: (run.live("alpha-svc") or {})["description"] == "as written", timeout=3
    )
    assert run.service.metrics.value("reconciler_drift_detected_total") >= 1


async def test_without_self_heal_drift_is_reported(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> None:
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc", description="as written"))
    run: Running = await start(DirectorySource(folder), sim, interval=0.3, self_heal=False)
    await eventually(run.status_is("alpha-svc", "ACTIVE"))
    sim.simulator.cloud.update(1, "alpha-svc", {"description": "edited by hand"}, "r")
    await eventually(lambda: any(r.sync.value == "OutOfSync" for r in run.service.rows))
    assert (run.live("alpha-svc") or {})["description"] == "edited by hand"
    [row] = run.service.status_json()["deployments"]
    assert row["sync"] == "OutOfSync" and "description" in row["message"]


# -- git ---------------------------------------------------------------------------------------


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


async def test_git_revisions_apply_and_a_bad_one_is_skipped(
    tmp_path: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    first = commit(repo, {"alpha-svc.yaml": manifest("alpha-svc")}, "first")
    source = GitSource(f"file://{repo}", "main", tmp_path / "cache")
    run: Running = await start(source, sim)
    assert run.status_is("alpha-svc", "ACTIVE")()
    app = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(run.service)), base_url="http://service"
    )
    status = (await app.get("/api/status")).json()
    assert status["revision"] == first
    assert status["deployments"][0]["revision"] == first

    bad = commit(
        repo,
        {
            "alpha-svc.yaml": manifest("alpha-svc", image="nginx:2"),
            "beta-svc.yaml": "apiVersion: reconciler/v1\nkind: Nope\n",
        },
        "bad",
    )
    runs = run.service.runs
    await signed_push(app)
    await eventually(lambda: run.service.runs > runs and run.service.running_since is None)
    status = (await app.get("/api/status")).json()
    assert status["revision"] == first  # the last good one stays in force
    assert status["last_reconcile"]["revision"] == bad
    assert any("beta-svc.yaml" in e for e in status["last_reconcile"]["errors"])
    assert (run.live("alpha-svc") or {})["image"] == "nginx:latest"

    good = commit(repo, {"beta-svc.yaml": manifest("beta-svc")}, "fixed")
    await signed_push(app)
    await eventually(run.status_is("beta-svc", "ACTIVE"))
    await eventually(
        lambda: (
            run.service.running_since is None
            and run.service.good is not None
            and run.service.good[1] == good
        )
    )
    status = (await app.get("/api/status")).json()
    assert status["revision"] == good
    assert {d["name"]: d["revision"] for d in status["deployments"]} == {
        "alpha-svc": good,
        "beta-svc": good,
    }
    assert (run.live("alpha-svc") or {})["image"] == "nginx:2"
    metrics = (await app.get("/metrics")).text
    assert f'reconciler_last_applied_revision_info{{revision="{good}"}} 1.0' in metrics
    await app.aclose()


async def signed_push(app: httpx.AsyncClient) -> None:
    body = b'{"ref": "refs/heads/main"}'
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = await app.post("/hooks/git", content=body, headers={"X-Hub-Signature-256": sig})
    assert answer.status_code == 202


async def test_webhook_signatures(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> None:
    run: Running = await start(DirectorySource(folder), sim, allow_empty=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(run.service)), base_url="http://service"
    ) as app:
        body = b"{}"
        wrong = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
        assert (await app.post("/hooks/git", content=body)).status_code == 401
        bad = await app.post("/hooks/git", content=body, headers={"X-Hub-Signature-256": wrong})
        assert bad.status_code == 401
        assert run.service.triggers["webhook"] == 0
        await signed_push(app)
        assert run.service.triggers["webhook"] == 1

        assert (await app.get("/healthz")).status_code == 200
        assert (await app.get("/readyz")).text == "ready\n"
        metrics = (await app.get("/metrics")).text
        for name in (
            "reconciler_reconcile_runs_total",
            "reconciler_reconcile_duration_seconds",
            "reconciler_deployments",
            "reconciler_api_requests_total",
            "reconciler_task_wait_seconds",
            "reconciler_drift_detected_total",
        ):
            assert name in metrics, name


# -- the process -------------------------------------------------------------------------------


@pytest.mark.slow  # a real process stopped by a signal
def test_sigterm_stops_the_service_process_in_time(tmp_path: Path, folder: Path) -> None:
    import os
    import signal
    import socket
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (folder / "alpha-svc.yaml").write_text(manifest("alpha-svc"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "serve",
            "--manifests",
            str(folder),
            "--simulate",
            "--state",
            str(tmp_path / "state.db"),
            "--listen",
            f"127.0.0.1:{port}",
            "--log-format",
            "json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the service never became ready")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert took < 10, f"an idle service took {took:.1f}s to stop"  # waits are below 60 s
    assert '"message": "stopped"' in err


async def test_another_apply_holding_the_lock_is_not_an_api_outage(
    folder: Path, sim: BackgroundServer, start: Callable[..., Any]
) -> None:
    from reconciler.state import SqliteStateStore

    run: Running = await start(DirectorySource(folder), sim, lock_timeout=0.2, allow_empty=True)
    assert run.service.ready
    other = SqliteStateStore(run.service.target.state_path)
    other.acquire_lock()
    try:
        runs = run.service.runs
        run.service.trigger("test")
        await eventually(lambda: run.service.runs > runs and run.service.running_since is None)
        assert run.service.last is not None and run.service.last.result == "locked"
        assert "locked by another apply" in run.service.last.errors[0]
        assert run.service.ready  # the API is fine; readiness stays
    finally:
        other.close()
