"""Three `serve` replicas (real processes) on one PostgreSQL inventory and one simulator, with 30
deployments in 6 projects: each project reconciled by exactly one replica, a kill -9'd replica's
projects taken over within about one interval, no duplicate create, everything converged, and a
changed manifest reaching the API promptly, whichever replica received the webhook."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.simulator import BackgroundServer, Simulator, SimulatorConfig, Timings
from tests.conftest import API_KEY, FLAVOR
from tests.pgserver import _free_port
from tests.test_git_source import git

pytestmark = pytest.mark.slow

PROJECTS = [1, 2, 3, 4, 5, 6]
INTERVAL = 2.0


def _manifest(project: int, n: int, image: str = "nginx:latest") -> str:
    return f"""\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: svc-{project}-{n}, project_id: {project}}}
spec:
  image: {image}
  flavor_name: {FLAVOR}
  listening_port: 80
  containers: [{{region_id: 1, scale: {{min: 1, max: 1}}}}]
"""


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    timings = Timings(task_queue=0.05, task_run=0.2, rollout=0.2, delete=0.1)
    with BackgroundServer(Simulator(SimulatorConfig(api_key=API_KEY, timings=timings))) as srv:
        yield srv


def _until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` until it holds; the seconds it took (the processes move on their own)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not reached in {timeout:g}s")
        time.sleep(0.05)
    return time.monotonic() - start


def _runs(port: int) -> float:
    """The replica's reconcile runs so far, whatever their result (from /metrics)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    prefix = "reconciler_reconcile_runs_total{"
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def _status(port: int) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def test_three_replicas_share_projects_and_take_over_a_killed_one(
    server: BackgroundServer, pg_dsn: str, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for project in PROJECTS:
        for n in range(5):
            (manifests / f"p{project}-{n}.yaml").write_text(_manifest(project, n))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env.update(GCORE_BASE_URL=server.url, GCORE_API_KEY=API_KEY, RECONCILER_STATE=pg_dsn)
    env["PYTHONPATH"] = str(Path(__file__).parent.parent)  # this checkout, run from tmp_path
    ports = [_free_port() for _ in range(3)]
    replicas = []
    logs = [open(tmp_path / f"r{i}.log", "w") for i in range(3)]  # noqa: SIM115  # closed below
    for i, port in enumerate(ports):
        (tmp_path / f"r{i}").mkdir()
        replicas.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "reconciler", "serve", "--manifests", str(manifests)),
                    *("--interval", str(INTERVAL), "--listen", f"127.0.0.1:{port}"),
                ],
                cwd=tmp_path / f"r{i}",
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=logs[i],
                stdin=subprocess.DEVNULL,
            )
        )
    try:
        cloud = server.simulator.cloud

        def converged() -> bool:
            views = [cloud.view(d)["status"] for d in list(cloud.deployments.values())]
            return len(views) == 30 and all(v == "ACTIVE" for v in views)

        def shares(live: list[int]) -> list[list[int]] | None:
            answers = [_status(ports[i]) for i in live]
            if any(a is None or a.get("projects") is None for a in answers):
                return None
            return [a["projects"] for a in answers if a is not None]

        def partitioned(live: list[int]) -> bool:
            held = shares(live)
            if held is None or any(not h for h in held):
                return False
            flat = [p for h in held for p in h]
            return sorted(flat) == PROJECTS  # every project, each held by exactly one

        _until(converged, 90, "30 deployments ACTIVE")
        try:
            _until(lambda: partitioned([0, 1, 2]), 30, "projects shared by three replicas")
        except AssertionError:
            tails = [(tmp_path / f"r{i}.log").read_text()[-1500:] for i in range(3)]
            raise AssertionError(f"shares {shares([0, 1, 2])}; logs {tails}") from None
        held = shares([0, 1, 2])
        assert held is not None and all(len(h) <= 3 for h in held)  # ceil(6 / 3) + 1
        metrics = httpx.get(f"http://127.0.0.1:{ports[0]}/metrics", timeout=5).text
        assert f"reconciler_projects_held {float(len(held[0]))}" in metrics
        expected = {(p, f"svc-{p}-{n}"): 1 for p in PROJECTS for n in range(5)}
        assert dict(server.simulator.creates) == expected

        victim_projects = held[1]
        replicas[1].send_signal(signal.SIGKILL)
        assert replicas[1].wait(30) == -signal.SIGKILL
        before = [_runs(ports[i]) for i in (0, 2)]
        # bounded generously to fail fast; the bound that can fail is on reconciles, not seconds
        took = _until(lambda: partitioned([0, 2]), 60, "takeover by the survivors")
        spent = [_runs(ports[i]) - runs for i, runs in zip((0, 2), before, strict=True)]
        assert max(spent) <= 3, spent  # the next reconcile, one in flight, one polled past
        print(f"takeover after kill -9: {took:.2f} s, {spent} reconciles (interval {INTERVAL:g} s)")
        after = shares([0, 2])
        assert after is not None and set(victim_projects) <= {p for h in after for p in h}

        # A change in one project reaches the API promptly, whichever replica holds it: within
        # the next few reconciles (counted; seconds are only printed, the machine may be loaded)
        project = victim_projects[0]
        before = [_runs(ports[i]) for i in (0, 2)]
        (manifests / f"p{project}-0.yaml").write_text(_manifest(project, 0, image="nginx:1.27"))
        key = (project, f"svc-{project}-0")
        reached = _until(
            lambda: cloud.view(cloud.deployments[key])["image"] == "nginx:1.27",
            60,
            "the change reaching the API",
        )
        spent = [_runs(ports[i]) - runs for i, runs in zip((0, 2), before, strict=True)]
        assert max(spent) <= 3, spent
        print(f"manifest change to the API: {reached:.2f} s, {spent} reconciles")
        _until(converged, 30, "everything converged after the takeover")
        assert all(n == 1 for n in server.simulator.creates.values()), server.simulator.creates
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                replica.wait(30)
            except subprocess.TimeoutExpired:
                replica.kill()
        for log in logs:
            log.close()


SECRET = "replica-webhook-secret"


def _push_hook(port: int, delivery: str) -> None:
    """A signed GitHub-style push webhook to one replica."""
    body = b'{"ref": "refs/heads/main"}'
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": sig, "X-GitHub-Delivery": delivery}
    answer = httpx.post(f"http://127.0.0.1:{port}/hooks/git", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


def _triggers(port: int) -> dict[str, int]:
    """What asked the replica to reconcile so far, by reason (from /api/status)."""
    answer = _status(port)
    assert answer is not None
    return dict(answer["triggers"])


def _due_rows(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM reconciler.due").fetchone()
    assert row is not None
    return int(row[0])


def test_a_webhook_to_any_replica_reaches_the_projects_holder(
    server: BackgroundServer, pg_dsn: str, tmp_path: Path
) -> None:
    """The resync interval is far beyond the test and the source is git (no file events), so a
    replica reconciles only when a webhook reaches it or another replica marks its project due:
    a change delivered to a replica that does not hold its project can only reach the API
    through the due mark."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for project in PROJECTS:
        for n in range(2):
            (repo / f"p{project}-{n}.yaml").write_text(_manifest(project, n))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env.update(GCORE_BASE_URL=server.url, GCORE_API_KEY=API_KEY, RECONCILER_STATE=pg_dsn)
    env["PYTHONPATH"] = str(Path(__file__).parent.parent)  # this checkout, run from tmp_path
    env.update(RECONCILER_WEBHOOK_SECRET=SECRET)
    ports = [_free_port() for _ in range(3)]
    logs = [open(tmp_path / f"r{i}.log", "w") for i in range(3)]  # noqa: SIM115  # closed below
    replicas = []
    for i, port in enumerate(ports):
        (tmp_path / f"r{i}").mkdir()
        replicas.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "reconciler", "serve", "--git-url", f"file://{repo}"),
                    *("--interval", "3600", "--listen", f"127.0.0.1:{port}"),
                ],
                cwd=tmp_path / f"r{i}",
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=logs[i],
                stdin=subprocess.DEVNULL,
            )
        )
    deliveries = iter(range(10**6))
    try:
        cloud = server.simulator.cloud

        def converged() -> bool:
            views = [cloud.view(d)["status"] for d in list(cloud.deployments.values())]
            return len(views) == 12 and all(v == "ACTIVE" for v in views)

        def shares() -> list[list[int]] | None:
            answers = [_status(port) for port in ports]
            if any(a is None or a.get("projects") is None for a in answers):
                return None
            return [a["projects"] for a in answers if a is not None]

        def idle() -> bool:
            answers = [_status(port) for port in ports]
            return all(a is not None and not a["reconciling"] for a in answers)

        def partitioned() -> bool:
            """Nudge every replica (its reconcile rebalances); every project held exactly once,
            by three replicas, each within the cap."""
            for port in ports:
                _push_hook(port, f"settle-{next(deliveries)}")
            _until(idle, 30, "the replicas idle")
            held = shares()
            if held is None or any(not h or len(h) > 3 for h in held):
                return False
            return sorted(p for h in held for p in h) == PROJECTS

        def quiet() -> bool:
            """No due mark waiting and no reconcile running or finishing between two looks."""
            runs = [_runs(port) for port in ports]
            still = _due_rows(pg_dsn) == 0 and idle()
            return still and [_runs(port) for port in ports] == runs

        _until(converged, 90, "12 deployments ACTIVE")
        try:
            _until(partitioned, 60, "projects shared by three replicas")
        except AssertionError:
            tails = [(tmp_path / f"r{i}.log").read_text()[-1500:] for i in range(3)]
            raise AssertionError(f"shares {shares()}; logs {tails}") from None
        held = shares()
        assert held is not None
        assert dict(server.simulator.creates) == {
            (p, f"svc-{p}-{n}"): 1 for p in PROJECTS for n in range(2)
        }

        for image, to_holder in (("nginx:1.27", False), ("nginx:1.28", True)):
            holder = 0
            project = held[holder][0]
            receiver = holder if to_holder else 1
            _until(quiet, 30, "no due mark left, every replica idle")
            before = _runs(ports[holder])
            why = "webhook" if to_holder else "due"  # what makes the holder reconcile
            asked = _triggers(ports[holder]).get(why, 0)
            (repo / f"p{project}-0.yaml").write_text(_manifest(project, 0, image=image))
            git(repo, "commit", "-q", "-am", f"project {project}: {image}")
            _push_hook(ports[receiver], f"change-{next(deliveries)}")
            key = (project, f"svc-{project}-0")
            # bounded generously to fail fast; with a one-hour interval, only the webhook (to
            # the holder) or the due mark (to another replica) can bring the change in time
            reached = _until(
                lambda: cloud.view(cloud.deployments[key])["image"] == image,  # noqa: B023
                60,
                f"the change delivered to replica {receiver} reaching the API",
            )
            # the holder applied it (its reconcile is counted once it has read status back)
            _until(lambda: _runs(ports[holder]) > before, 30, "the holder's reconcile ending")  # noqa: B023
            assert _triggers(ports[holder]).get(why, 0) > asked
            print(f"webhook to the {'holder' if to_holder else 'non-holder'}: {reached:.2f} s")
            assert shares() == held  # nobody moved meanwhile
        _until(converged, 30, "everything converged")
        assert all(n == 1 for n in server.simulator.creates.values()), server.simulator.creates
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                replica.wait(30)
            except subprocess.TimeoutExpired:
                replica.kill()
        for log in logs:
            log.close()
