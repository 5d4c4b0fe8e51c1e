"""The everyday commands end to end against the simulator over real HTTP on loopback.

The other CLI tests use `--simulate` (the simulator in process, behind an HTTP transport); here
the same commands run as a user runs them against an API: `GCORE_BASE_URL` names a simulator
listening on a loopback port, `GCORE_API_KEY` its key, and every request crosses a socket.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.simulator import BackgroundServer, Simulator, SimulatorConfig

from .conftest import API_KEY, manifest
from .inproc import FAST
from .test_cli_fixes import ROOT
from .test_cli_fixes import cli as _cli


@pytest.fixture
def api() -> Iterator[BackgroundServer]:
    with BackgroundServer(Simulator(SimulatorConfig(api_key=API_KEY, timings=FAST))) as server:
        yield server


@pytest.fixture
def work(tmp_path: Path, api: BackgroundServer) -> Path:
    (tmp_path / "m").mkdir()
    shutil.copy(ROOT / "manifests" / "my-instance.yaml", tmp_path / "m")
    (tmp_path / "api").write_text(api.url)
    return tmp_path


def cli(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"GCORE_API_KEY": API_KEY, "GCORE_BASE_URL": (work / "api").read_text()}
    return _cli(work, *args, env=env)


def _apply(work: Path, *args: str) -> None:
    done = cli(work, "apply", "--auto-approve", *args)
    assert done.returncode == 0, done.stderr


def _live(api: BackgroundServer) -> set[str]:
    return {name for _, name in api.simulator.cloud.deployments}


def _live_image(work: Path, name: str) -> str:
    [item] = json.loads(cli(work, "get", name, "-o", "json").stdout)["deployments"]
    return str(item["live"]["image"])


def test_diff_get_and_describe(work: Path) -> None:
    _apply(work, "m/")
    path = work / "m" / "my-instance.yaml"
    path.write_text(path.read_text().replace("max: 3", "max: 5"))
    diff = cli(work, "diff", "m/")
    assert diff.returncode == 2, diff.stderr
    assert "-    max: 3" in diff.stdout.splitlines() and "+    max: 5" in diff.stdout.splitlines()
    table = cli(work, "get").stdout.splitlines()
    assert table[1].split() == ["my-instance", "1", "Synced", "Healthy", "ACTIVE", "-"]
    described = cli(work, "describe", "my-instance")
    assert described.returncode == 0, described.stderr
    lines = described.stdout.splitlines()
    assert "Health:        Healthy" in lines
    tasks = lines[lines.index("Last tasks:") + 1]
    assert tasks.split()[1:3] == ["FINISHED", "create"]
    assert "simulated cloud" not in described.stderr  # a real API, as far as it knows


def test_target_destroy_and_the_deletion_budget(work: Path, api: BackgroundServer) -> None:
    for name in ("alpha-svc", "beta-svc", "gamma-svc"):
        (work / "m" / f"{name}.yaml").write_text(manifest(name))
    _apply(work, "m/", "--target", "alpha-svc")
    assert _live(api) == {"alpha-svc"}
    _apply(work, "m/")
    assert _live(api) == {"alpha-svc", "beta-svc", "gamma-svc", "my-instance"}
    (work / "empty").mkdir()
    (work / "empty" / "my-instance.yaml").write_text((work / "m" / "my-instance.yaml").read_text())
    over = cli(work, "plan", "empty/", "--prune", "--max-deletes", "2")
    assert over.returncode == 1
    assert "would delete 3 deployments, more than the budget of 2" in over.stderr
    assert "--max-deletes 3" in over.stderr
    one = cli(work, "destroy", "--auto-approve", "m/", "--target", "beta-svc")
    assert one.returncode == 0, one.stderr
    assert "1/beta-svc delete: deleted" in one.stdout
    assert _live(api) == {"alpha-svc", "gamma-svc", "my-instance"}
    rest = cli(work, "destroy", "--auto-approve", "m/")
    assert rest.returncode == 0, rest.stderr
    assert _live(api) == set()
    assert "nothing is owned yet" in cli(work, "state", "list").stdout


def test_import_and_the_state_commands(work: Path, api: BackgroundServer) -> None:
    _apply(work, "m/", "--state", "elsewhere/state.db")  # live, owned by another state
    imported = cli(work, "import", "my-instance", "--project", "1")
    assert imported.returncode == 0, imported.stderr
    assert "imported; it is owned now, and nothing was changed" in imported.stderr
    [row] = cli(work, "state", "list").stdout.splitlines()[1:]
    assert row.split()[:2] == ["1/my-instance", "converged"]
    shown = json.loads(cli(work, "state", "show", "my-instance").stdout)
    assert shown["message"] == "imported" and shown["last_applied"] == {}
    plan = cli(work, "plan", "m/")
    assert plan.returncode == 0 and "No changes" in plan.stdout  # nothing to reset
    assert cli(work, "state", "rm", "my-instance").returncode == 0
    assert "nothing is owned yet" in cli(work, "state", "list").stdout
    assert _live(api) == {"my-instance"}  # untouched


def test_history_and_rollback(work: Path) -> None:
    path = work / "m" / "my-instance.yaml"
    _apply(work, "m/")
    path.write_text(path.read_text().replace("nginx:latest", "nginx:1.27"))
    _apply(work, "m/")
    assert _live_image(work, "my-instance") == "nginx:1.27"
    history = json.loads(cli(work, "history", "my-instance", "--format", "json").stdout)
    assert [(h["number"], h["action"], h["result"]) for h in history["history"]] == [
        (1, "create", "converged"),
        (2, "update", "converged"),
    ]
    back = cli(work, "rollback", "my-instance", "m/", "--to", "1", "--auto-approve")
    assert back.returncode == 0, back.stderr
    assert 'image: "nginx:1.27" -> "nginx:latest"' in back.stdout
    assert _live_image(work, "my-instance") == "nginx:latest"


def test_apply_no_wait_then_the_next_apply_follows_up(work: Path) -> None:
    sent = cli(work, "apply", "--auto-approve", "--no-wait", "m/")
    assert sent.returncode == 0, sent.stderr
    assert "1/my-instance create: submitted (not waited for" in sent.stdout
    followed = cli(work, "apply", "--auto-approve", "m/")
    assert followed.returncode == 0, followed.stderr
    assert "following up 1 create submitted by apply --no-wait: 1/my-instance" in followed.stderr
    [row] = json.loads(cli(work, "status", "--format", "json").stdout)["deployments"]
    assert (row["sync"], row["health"]) == ("Synced", "Healthy")


def test_color_follows_the_flag_and_the_environment(work: Path) -> None:
    plain = cli(work, "plan", "m/")
    assert "\033[" not in plain.stdout
    colored = cli(work, "plan", "m/", "--color", "always")
    assert "\033[32m" in colored.stdout
    forced = _cli(
        work,
        "plan",
        "m/",
        env={
            "GCORE_API_KEY": API_KEY,
            "GCORE_BASE_URL": (work / "api").read_text(),
            "FORCE_COLOR": "1",
        },
    )
    assert "\033[32m" in forced.stdout


def test_a_plan_saved_on_no_state_applies_and_creates_nothing_before(work: Path) -> None:
    saved = cli(work, "plan", "m/", "--out", "plan.json")
    assert saved.returncode == 0, saved.stderr
    assert not (work / ".reconciler").exists()  # the fingerprint was keyed by the API key
    applied = cli(work, "apply", "--plan", "plan.json")
    assert applied.returncode == 0, applied.stderr
    assert "1/my-instance create: converged" in applied.stdout
