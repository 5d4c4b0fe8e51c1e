"""Words a user reads: a failed create is not drift, kept orphans are not "in sync", no
"adopt (adopt)", "delete: converged" or "timed_out: timed out", drift names its fields, an
interrupted apply says it will resume (issue 11)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.diff import FieldChange
from reconciler.engine import status
from reconciler.execute import Outcome, Result
from reconciler.model import DeploymentKey, Record, RecordOutcome
from reconciler.plan import Action, Change, Plan, Reason
from reconciler.progress import summary_lines
from reconciler.render import render_markdown, render_text
from reconciler.status import status_rows

from .inproc import run_cli
from .test_apply import make_rig, manifest

ROOT = Path(__file__).parent.parent
KEY = DeploymentKey(1, "alpha-svc")


def test_a_failed_create_is_retried_not_called_drift(tmp_path: Path) -> None:
    # failed before: plan said `create (drift: missing)` and status "not found in the API"
    for rig in make_rig(tmp_path, task_error_image=r"^broken/"):
        rig.write("bad-svc", manifest("bad-svc", image="broken/model:1"))
        report = asyncio.run(rig.apply())
        [failed] = [o for o in report.outcomes if o.result is Result.FAILED]
        plan = asyncio.run(rig.full_plan())
        [change] = plan.changes
        assert change.action is Action.CREATE and change.reason is Reason.RETRY
        assert change.note == failed.error
        head = render_text(plan).splitlines()[2]
        assert head.startswith("  + 1/bad-svc  create (last attempt failed: task ")
        assert "broken/model:1" in head
        assert plan.to_json()["actions"][0]["note"] == failed.error
        [row] = asyncio.run(status(rig.target))
        assert row.message == f"last attempt failed: {failed.error}"


def test_kept_orphans_are_not_counted_in_sync() -> None:
    plan = Plan(
        (
            Change(KEY, Action.NOOP, Reason.IN_SYNC),
            Change(DeploymentKey(1, "old-svc"), Action.NOOP, Reason.ORPHAN_KEPT),
        ),
        "sha256:x",
    )
    lines = render_text(plan).splitlines()
    assert "No changes. 1 deployment in sync, 1 orphan kept." in lines


def test_adopt_is_not_said_twice_and_drift_names_its_fields() -> None:
    adopt = Change(KEY, Action.ADOPT, Reason.ADOPT, (), "m.yaml:1")
    drift = Change(
        DeploymentKey(1, "beta-svc"),
        Action.UPDATE,
        Reason.DRIFT,
        (FieldChange("image", "a", "b"),),
        "m.yaml:9",
        ("image",),
    )
    text = render_text(Plan((adopt, drift), "sha256:x"))
    assert "adopt (adopt)" not in text and "  = 1/alpha-svc  adopt  m.yaml:1" in text
    assert "update (drift: image)" in text
    assert "adopt (adopt)" not in render_markdown(Plan((adopt, drift), "sha256:x"))


def test_the_apply_summary_reads_naturally() -> None:
    lines = summary_lines(
        [
            Outcome(KEY, Action.DELETE, Result.CONVERGED, seconds=0.6),
            Outcome(
                DeploymentKey(1, "beta-svc"),
                Action.UPDATE,
                Result.TIMED_OUT,
                error="timed out after 900s while deploying",
            ),
            Outcome(DeploymentKey(1, "gamma-svc"), Action.CREATE, Result.FAILED, error="boom"),
        ],
        3.0,
    )
    assert lines[:3] == [
        "✓ 1/alpha-svc delete: deleted in 0.6s",
        "✗ 1/beta-svc update: timed out after 900s while deploying",
        "✗ 1/gamma-svc create: failed: boom",
    ]


def test_status_of_interrupted_work_says_it_will_resume() -> None:
    record = Record(KEY, {}, 1.0, RecordOutcome.APPLYING)
    [row] = status_rows({KEY: record}, {}, str, interrupted={KEY})
    assert row.message == "interrupted; the next apply resumes it"


def test_an_interrupted_apply_is_resumed_visibly(tmp_path: Path) -> None:
    # failed before: the next apply resumed in silence, and status said "last apply: applying"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    (tmp_path / "manifests").mkdir()
    source = ROOT / "manifests" / "my-instance.yaml"
    (tmp_path / "manifests" / "my-instance.yaml").write_text(source.read_text())
    command = [sys.executable, "-m", "reconciler"]
    proc = subprocess.Popen(
        [*command, "apply", "manifests/", "--simulate", "--auto-approve", "--log-format", "json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if json.loads(line).get("phase") == "task":
            proc.send_signal(signal.SIGTERM)
            break
    proc.communicate(timeout=30)
    assert proc.returncode == 130

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--simulate"], tmp_path, env)  # words only: in-process

    shown = run("status", "--format", "json")
    [row] = json.loads(shown.stdout)["deployments"]
    assert row["message"] == "interrupted; the next apply resumes it"
    resumed = run("apply", "manifests/", "--auto-approve")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming 1 interrupted create of 1/my-instance" in resumed.stderr


def test_a_connection_error_names_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # in-process, so the client's retries wait no real time (four backoffs, 7 s in a process);
    # the words are the same (test_cli.py runs the CLI as a process for "no traceback")
    import socket

    from reconciler.api import RetryPolicy
    from reconciler.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    for name in [k for k in os.environ if k.startswith(("GCORE_", "RECONCILER_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GCORE_API_KEY", "k")
    monkeypatch.setenv("GCORE_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.chdir(tmp_path)
    delays: list[float] = []

    def no_wait(self: RetryPolicy, retry: int, hint: float | None, rng: object) -> float:
        delays.append(min(self.base_delay * 2**retry, self.max_delay))
        return 0.0

    monkeypatch.setattr(RetryPolicy, "delay", no_wait)
    code = main(["plan", str(ROOT / "manifests")])
    assert code == 1
    assert delays == [0.5, 1.0, 2.0, 4.0]  # it did retry, as a process would
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: GET /cloud/v3/inference/1/deployments: ConnectError")
    assert line.endswith(f"(127.0.0.1:{port})")
