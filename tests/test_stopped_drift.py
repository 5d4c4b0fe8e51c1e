"""`spec.stopped` as desired state, against the simulator over HTTP: a deployment kept stopped
that someone starts out of band is drift (plan, status, serve), and the next apply or reconcile
stops it again; without self-heal it is only reported. The same for one stopped out of band that
the manifest wants running. A manifest that flips `stopped` is a change, not drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler import engine
from reconciler.config import ApiSettings, Secret
from reconciler.engine import Target
from reconciler.execute import ApplyOptions, PollOptions
from reconciler.health import Health, Sync
from reconciler.manifests import load_desired
from reconciler.model import DeploymentKey
from reconciler.plan import Action, PlanOptions, Reason
from reconciler.service import ServeOptions, Service
from reconciler.simulator import BackgroundServer, Simulator, SimulatorConfig, Timings
from reconciler.sources import DirectorySource

from .conftest import API_KEY, eventually, manifest

APPLY = ApplyOptions(timeout=10, poll=PollOptions(initial=0.02, cap=0.05))
KEY = DeploymentKey(1, "gpu-batch")


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    timings = Timings(task_queue=0.01, task_run=0.02, rollout=0.02, delete=0.02)
    with BackgroundServer(Simulator(SimulatorConfig(api_key=API_KEY, timings=timings))) as srv:
        yield srv


def _write(folder: Path, *, stopped: bool) -> None:
    extra = f"  stopped: {'true' if stopped else 'false'}\n"
    (folder / "gpu-batch.yaml").write_text(manifest("gpu-batch", extra=extra))


def _target(server: BackgroundServer, tmp_path: Path) -> Target:
    return Target(ApiSettings(base_url=server.url, api_key=Secret(API_KEY)), tmp_path / "s.db")


def _power(server: BackgroundServer, verb: str) -> None:
    """Start or stop the deployment out of band, as someone with the API key would."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"APIKey {API_KEY}"}) as api:
        api.post(f"/cloud/v3/inference/1/deployments/gpu-batch/{verb}").raise_for_status()


def _status(server: BackgroundServer) -> str:
    return str(
        server.simulator.cloud.view(server.simulator.cloud.deployments[(1, "gpu-batch")])["status"]
    )


async def _apply(folder: Path, target: Target) -> engine.ApplyReport:
    report = await engine.apply(load_desired([folder], env={}), target, PlanOptions(), APPLY)
    assert report.ok, report.outcomes
    return report


async def _plan(folder: Path, target: Target) -> tuple[Action, Reason]:
    plan = await engine.plan(load_desired([folder], env={}), target, PlanOptions())
    [change] = plan.changes
    return change.action, change.reason


async def test_a_stopped_deployment_started_out_of_band_is_drift_and_stopped_again(
    server: BackgroundServer, folder: Path, tmp_path: Path
) -> None:
    target = _target(server, tmp_path)
    _write(folder, stopped=True)
    await _apply(folder, target)
    assert _status(server) == "DISABLED"
    assert await _plan(folder, target) == (Action.NOOP, Reason.IN_SYNC)

    _power(server, "start")
    await eventually(lambda: _status(server) == "ACTIVE")

    action, reason = await _plan(folder, target)
    assert action is Action.STOP and reason is Reason.DRIFT_STARTED and reason.is_drift
    [row] = await engine.status(target)
    assert row.sync is Sync.OUT_OF_SYNC and "started out of band" in row.message

    await _apply(folder, target)
    assert _status(server) == "DISABLED"
    [row] = await engine.status(target)
    assert (row.sync, row.health, row.message) == (Sync.SYNCED, Health.SUSPENDED, "")


async def test_a_manifest_that_flips_stopped_is_a_change_not_drift(
    server: BackgroundServer, folder: Path, tmp_path: Path
) -> None:
    target = _target(server, tmp_path)
    _write(folder, stopped=False)
    await _apply(folder, target)

    _write(folder, stopped=True)
    assert await _plan(folder, target) == (Action.STOP, Reason.STOPPED)
    await _apply(folder, target)
    _write(folder, stopped=False)
    assert await _plan(folder, target) == (Action.START, Reason.RUNNING)
    await _apply(folder, target)
    assert _status(server) == "ACTIVE"

    _power(server, "stop")  # the manifest wants it running: a stop out of band is drift too
    await eventually(lambda: _status(server) == "DISABLED")
    action, reason = await _plan(folder, target)
    assert action is Action.START and reason is Reason.DRIFT_STOPPED and reason.is_drift


async def test_serve_reports_the_start_without_self_heal_and_stops_it_with(
    server: BackgroundServer, folder: Path, tmp_path: Path
) -> None:
    target = _target(server, tmp_path)
    _write(folder, stopped=True)

    def service(self_heal: bool) -> Service:
        options = ServeOptions(apply=APPLY, self_heal=self_heal)
        return Service(DirectorySource(folder), target, options)

    assert (await service(True).reconcile_once()).result == "ok"
    _power(server, "start")
    await eventually(lambda: _status(server) == "ACTIVE")

    watching = service(False)
    assert (await watching.reconcile_once()).result == "ok"
    assert _status(server) == "ACTIVE"  # reported, left alone
    assert watching.drifted == {KEY: "drift: started out of band"}
    [row] = watching.status_json()["deployments"]
    assert row["sync"] == "OutOfSync" and "started out of band" in row["message"]
    assert watching.metrics.value("reconciler_drift_detected_total") == 1

    healing = service(True)
    assert (await healing.reconcile_once()).result == "ok"
    assert _status(server) == "DISABLED"
    [row] = healing.status_json()["deployments"]
    assert (row["sync"], row["health"]) == ("Synced", "Suspended")
