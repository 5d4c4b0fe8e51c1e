"""`reconciler serve` with credentials, secrets and API keys, as a real process over real HTTP.

A secret value read with `valueFrom.file` from a folder granted with `--secrets-from`, another
from `${VAR}`; the API key's secret (given once, on create) lands in `--secrets-dir`, 0600, and
in no log line, no `/api/status` or page body, no state byte. `/api/status` lists the objects
as `status --format json` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.simulator import BackgroundServer, Simulator, SimulatorConfig, Timings
from reconciler.simulator.objects import _digest

from .canary import assert_no_canary, state_bytes
from .conftest import manifest
from .hardening.test_serve_process import free_port, wait_until_up
from .inproc import run_cli

API_KEY = "serve-objects-key-0123"
FILE_SECRET = "canary-file-password-7d2c9e4a1b"
ENV_SECRET = "canary-env-aws-key-3b8f0c6d2e"
OBJECTS = """\
apiVersion: reconciler/v1
kind: InferenceRegistryCredential
metadata: {name: ghcr-acme, project_id: 1}
spec:
  registry_url: ghcr.io
  username: acme-bot
  password: {valueFrom: {file: ../granted/ghcr-token}}
---
apiVersion: reconciler/v1
kind: InferenceSecret
metadata: {name: sqs-reader, project_id: 1}
spec:
  type: aws-iam
  data: {aws_access_key_id: AKIAEXAMPLEKEYID0001, aws_secret_access_key: "${AWS_SECRET}"}
---
apiVersion: reconciler/v1
kind: InferenceApiKey
metadata: {name: search-clients, project_id: 1}
spec: {description: search team clients}
"""


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    timings = Timings(task_queue=0.02, task_run=0.05, rollout=0.05, delete=0.05)
    with BackgroundServer(Simulator(SimulatorConfig(api_key=API_KEY, timings=timings))) as srv:
        yield srv


def _serve(tmp_path: Path, server: BackgroundServer, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env.update(GCORE_BASE_URL=server.url, GCORE_API_KEY=API_KEY, AWS_SECRET=ENV_SECRET)
    env["PYTHONPATH"] = str(Path(__file__).parent.parent)  # this checkout, run from tmp_path
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "serve", "--manifests", "manifests",
         "--secrets-from", "granted", "--secrets-dir", "keys", "--state", "state/state.db",
         "--listen", f"127.0.0.1:{port}", "--log-format", "json", "--interval", "3600"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _reconciled(base: str, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """/api/status once a reconcile has finished (bounded by a deadline, not a sleep)."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "the service exited"
        status: dict[str, Any] = httpx.get(f"{base}/api/status", timeout=5).json()
        if status["last_reconcile"] is not None and not status["reconciling"]:
            return status
        assert time.monotonic() < deadline, f"no reconcile finished: {status}"
        time.sleep(0.05)


def test_serve_grants_secret_folders_and_keeps_api_key_secrets_in_the_secrets_dir(
    tmp_path: Path, server: BackgroundServer
) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "granted").mkdir()
    (tmp_path / "granted" / "ghcr-token").write_text(FILE_SECRET + "\n")
    (tmp_path / "manifests" / "objects.yaml").write_text(OBJECTS)
    (tmp_path / "manifests" / "app.yaml").write_text(
        manifest(
            "search-api", extra="  credentials_name: ghcr-acme\n  api_keys: [search-clients]\n"
        )
    )
    port = free_port()
    proc = _serve(tmp_path, server, port)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz", proc)
        status = _reconciled(base, proc)
        bodies = {
            path: httpx.get(f"{base}{path}", timeout=5).text
            for path in ("/", "/api/status", "/metrics")
        }
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert status["last_reconcile"]["result"] == "ok", status
    assert status["manifest_errors"] == []
    objects = {(o["kind"], o["name"]): o for o in status["objects"]}
    assert set(objects) == {
        ("InferenceRegistryCredential", "ghcr-acme"),
        ("InferenceSecret", "sqs-reader"),
        ("InferenceApiKey", "search-clients"),
    }
    for row in objects.values():
        assert row["project_id"] == 1 and row["sync"] == "Synced", row
        assert row["last_applied_at"] and row["message"] == ""
    assert [d["name"] for d in status["deployments"]] == ["search-api"]

    key_file = tmp_path / "keys" / "1" / "search-clients"
    assert "API key 1/search-clients create: secret written to keys/1/search-clients" in err
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key_secret = key_file.read_text().strip()
    assert key_secret
    assert not (tmp_path / "state" / "secrets").exists()  # --secrets-dir, not the default
    credential = server.simulator.cloud.objects.get("registry_credentials", 1, "ghcr-acme")
    assert credential.digests["password"] == _digest(FILE_SECRET)  # read from the granted file
    outputs: dict[str, str | bytes] = {**bodies, "stdout": out, "stderr": err}
    outputs["state"] = state_bytes(tmp_path / "state" / "state.db")
    assert_no_canary(outputs, [FILE_SECRET, ENV_SECRET, key_secret])


def test_serve_refuses_a_missing_secrets_from_folder(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    done = run_cli(
        ["serve", "--simulate", "--manifests", "m", "--secrets-from", "nowhere", "--listen",
         f"127.0.0.1:{free_port()}"],
        tmp_path, {},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == "error: --secrets-from nowhere: no such directory"


def test_a_failed_object_is_named_in_the_reconciles_errors() -> None:
    from reconciler.engine import ApplyReport
    from reconciler.kinds import Kind, ObjectKey
    from reconciler.objects_apply import ObjectOutcome
    from reconciler.objects_plan import ObjectAction
    from reconciler.plan import Plan
    from reconciler.runs import failures

    key = ObjectKey(Kind.SECRET, 1, "sqs-reader")
    failed = ObjectOutcome(key, ObjectAction.CREATE, False, "API 422: bad secret")
    report = ApplyReport(Plan((), "sha256:x"), [], [], 0.1, object_outcomes=(failed,))

    assert not report.ok
    assert failures(report) == ["secret 1/sqs-reader: API 422: bad secret"]
