"""Crash safety with real processes: `kill -9` an apply at chosen moments, then apply again.

Every run must end with all deployments converged, at most one successful create per name seen
by the simulator, and a state file that passes `PRAGMA integrity_check`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.simulator import BackgroundServer, Faults, Simulator, SimulatorConfig, Timings
from reconciler.state import SqliteStateStore

from .conftest import API_KEY, manifest

pytestmark = pytest.mark.slow  # kill -9 of real processes, several seconds each

NAMES = ["svc-a", "svc-b", "svc-c"]


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    timings = Timings(task_queue=0.1, task_run=0.6, rollout=0.4, delete=0.2)
    sim = Simulator(SimulatorConfig(api_key=API_KEY, timings=timings, faults=Faults(latency=0.3)))
    with BackgroundServer(sim) as srv:
        yield srv


def start_apply(server: BackgroundServer, root: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env.update(GCORE_BASE_URL=server.url, GCORE_API_KEY=API_KEY)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            str(root / "manifests"),
            "--auto-approve",
            "--parallelism",
            "1",
            "--state",
            str(root / "state.db"),
            "--log-format",
            "json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def first(method: str, fragment: str, nth: int = 1) -> Callable[[str, str], bool]:
    seen = [0]

    def match(m: str, path: str) -> bool:
        if m == method and fragment in path:
            seen[0] += 1
        return seen[0] >= nth

    return match


MOMENTS = {
    "before-a-post-is-answered": first("POST", "/deployments"),
    "mid-polling": first("GET", "/cloud/v1/tasks"),
    "between-actions": first("POST", "/deployments", nth=2),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_minus_nine_then_apply_again(
    moment: str, server: BackgroundServer, tmp_path: Path
) -> None:
    (tmp_path / "manifests").mkdir()
    for name in NAMES:
        (tmp_path / "manifests" / f"{name}.yaml").write_text(manifest(name, max_=1))
    reached = threading.Event()
    when = MOMENTS[moment]

    def hook(method: str, path: str) -> None:
        if when(method, path):
            reached.set()

    server.simulator.on_request = hook
    victim = start_apply(server, tmp_path)
    try:
        assert reached.wait(30), f"the apply never reached {moment}"
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.wait(30)
    assert victim.returncode == -signal.SIGKILL
    server.simulator.on_request = None
    left = SqliteStateStore(tmp_path / "state.db")
    assert left.unfinished(), "the kill should leave journaled work for the next apply"
    assert left.holder() is not None and left.holder().pid == victim.pid  # type: ignore[union-attr]
    left.close()

    survivor = start_apply(server, tmp_path)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err + out

    cloud = server.simulator.cloud
    live = {name: cloud.view(d)["status"] for (_, name), d in cloud.deployments.items()}
    assert live == dict.fromkeys(NAMES, "ACTIVE")
    assert all(n <= 1 for n in server.simulator.creates.values()), server.simulator.creates
    store = SqliteStateStore(tmp_path / "state.db")
    assert store.integrity_ok()
    assert sorted(k.name for k in store.records()) == NAMES
    assert store.unfinished() == []
    store.close()
