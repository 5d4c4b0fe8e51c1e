"""Crash safety with real processes: `kill -9` an apply at chosen moments, then apply again.

Every run must end with all deployments converged, at most one successful create per name seen
by the simulator, and a state that passes its integrity check. Each test runs on a SQLite file
and on a real PostgreSQL (`state_location`), where the dead apply's lock is released by the
server itself and two applies at once share one inventory.
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
from reconciler.state import open_backend, open_store

from .conftest import API_KEY, manifest

pytestmark = pytest.mark.slow  # kill -9 of real processes, several seconds each

NAMES = ["svc-a", "svc-b", "svc-c"]


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    timings = Timings(task_queue=0.1, task_run=0.6, rollout=0.4, delete=0.2)
    sim = Simulator(SimulatorConfig(api_key=API_KEY, timings=timings, faults=Faults(latency=0.3)))
    with BackgroundServer(sim) as srv:
        yield srv


def start_apply(server: BackgroundServer, root: Path, state: str) -> subprocess.Popen[str]:
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
            state,
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


MOMENTS = {  # a new matcher per test: each counts the requests of its own run
    "before-a-post-is-answered": lambda: first("POST", "/deployments"),
    "mid-polling": lambda: first("GET", "/cloud/v1/tasks"),
    "between-actions": lambda: first("POST", "/deployments", nth=2),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_minus_nine_then_apply_again(
    moment: str, server: BackgroundServer, tmp_path: Path, state_location: str
) -> None:
    (tmp_path / "manifests").mkdir()
    for name in NAMES:
        (tmp_path / "manifests" / f"{name}.yaml").write_text(manifest(name, max_=1))
    reached = threading.Event()
    when = MOMENTS[moment]()

    def hook(method: str, path: str) -> None:
        if when(method, path):
            reached.set()

    server.simulator.on_request = hook
    victim = start_apply(server, tmp_path, state_location)
    try:
        assert reached.wait(30), f"the apply never reached {moment}"
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.wait(30)
    assert victim.returncode == -signal.SIGKILL
    server.simulator.on_request = None
    left = open_store(state_location)
    assert left.unfinished(), "the kill should leave journaled work for the next apply"
    holder = left.holder()
    if "://" in state_location:
        assert holder is None  # the server released the dead session's advisory lock
    else:
        assert holder is not None and holder.pid == victim.pid
    left.close()

    survivor = start_apply(server, tmp_path, state_location)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err + out

    cloud = server.simulator.cloud
    live = {name: cloud.view(d)["status"] for (_, name), d in cloud.deployments.items()}
    assert live == dict.fromkeys(NAMES, "ACTIVE")
    assert all(n <= 1 for n in server.simulator.creates.values()), server.simulator.creates
    store = open_backend(state_location)
    assert store.integrity_ok()
    assert sorted(k.name for k in store.records()) == NAMES
    assert store.unfinished() == []
    store.close()


def test_two_applies_at_once_share_one_inventory(
    server: BackgroundServer, tmp_path: Path, state_location: str
) -> None:
    """One waits for the other's lock (or is refused naming it); never a duplicate create."""
    (tmp_path / "manifests").mkdir()
    for name in NAMES:
        (tmp_path / "manifests" / f"{name}.yaml").write_text(manifest(name, max_=1))
    runs = [start_apply(server, tmp_path, state_location) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]  # a few lines each: pipes never fill
    results = [(run.returncode, out, err) for run, (out, err) in zip(runs, outputs, strict=True)]
    for code, out, err in results:
        assert code == 0 or "is locked by another apply (pid " in err, (code, out, err)
    assert any(code == 0 for code, _, _ in results)

    cloud = server.simulator.cloud
    live = {name: cloud.view(d)["status"] for (_, name), d in cloud.deployments.items()}
    assert live == dict.fromkeys(NAMES, "ACTIVE")
    assert dict(server.simulator.creates) == {(1, n): 1 for n in NAMES}
    store = open_store(state_location)
    assert sorted(k.name for k in store.records()) == NAMES
    assert store.unfinished() == [] and store.holder() is None
    store.close()
