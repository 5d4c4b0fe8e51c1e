"""The whole project end to end: `reconciler` commands over real HTTP to the simulator.

The example folder (one registry credential, one secret, two API keys, three deployments using
them) applies from empty in one run, in an order the simulator accepts (it refuses a deployment
naming an object that does not exist, and the delete of a credential or secret still named);
a plan right after is empty; a commit stops a deployment and the next starts it again; removing
everything with --prune deletes in reverse order. Every output, plan format, state byte and
simulator answer is then searched for the canary secret values.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.simulator import BackgroundServer, Simulator, SimulatorConfig, Timings

from .canary import assert_no_canary, state_bytes
from .inproc import run_cli

EXAMPLE = Path(__file__).parent.parent / "examples" / "whole-project"
API_KEY = "whole-project-key-0123"
GHCR = "canary-ghcr-token-4b8e1d7f"
AWS = "canary-aws-secret-9c2a6e3b"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BackgroundServer]:
    timings = Timings(task_queue=0.02, task_run=0.1, rollout=0.1, delete=0.05)
    config = SimulatorConfig(
        api_key=API_KEY, timings=timings, state_file=str(tmp_path / "sim.json")
    )
    with BackgroundServer(Simulator(config)) as srv:
        yield srv


def cli(
    server: BackgroundServer, root: Path, *args: str, state: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env.update(
        GCORE_BASE_URL=server.url,
        GCORE_API_KEY=API_KEY,
        GCORE_CLOUD_PROJECT_ID="1",
        GHCR_TOKEN=GHCR,
        AWS_SECRET_ACCESS_KEY=AWS,
    )
    where = ["--state", state or str(root / "state.db")] if args[0] != "validate" else []
    return run_cli([*args, *where], root, env)  # in-process, as a process sees it (inproc.py)


def _order(server: BackgroundServer, method: str) -> list[str]:
    """The collections (or deployments) that answered `method` successfully, in order."""
    found = []
    for verb, path, status in server.simulator.requests:
        if verb == method and status < 300 and "/tasks" not in path:
            parts = path.split("/")
            found.append(parts[5] if method == "POST" else f"{parts[5]}/{parts[6]}")
    return found


def test_the_whole_project_applies_stops_starts_and_prunes_in_order(
    tmp_path: Path, server: BackgroundServer
) -> None:
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLE, folder)
    outputs: dict[str, str | bytes] = {}

    def run(name: str, *args: str, expect: int = 0) -> str:
        done = cli(server, tmp_path, *args)
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = done.stdout, done.stderr
        assert done.returncode == expect, done.stdout + done.stderr
        return done.stdout

    for fmt in ("text", "json", "markdown"):
        run(f"plan {fmt}", "plan", str(folder), "--format", fmt, "--out", "saved.json")
        outputs[f"plan {fmt} file"] = (tmp_path / "saved.json").read_bytes()
    plan = json.loads(str(outputs["plan json stdout"]))
    waves = {(a["kind"], a["name"]): a["wave"] for a in plan["actions"]}
    assert waves[("InferenceRegistryCredential", "ghcr-acme")] == 1
    assert waves[("InferenceDeployment", "search-api")] == 2
    assert plan["summary"]["create"] == 7 and plan["summary"]["stop"] == 1

    applied = run("apply", "apply", str(folder), "--auto-approve")
    creates = _order(server, "POST")
    last_object = max(creates.index(c) for c in ("registry_credentials", "secrets", "api_keys"))
    assert creates.index("deployments") > last_object  # every object before any deployment
    key_file = tmp_path / "secrets" / "1" / "search-clients"
    assert (
        f"secret written to {key_file.relative_to(tmp_path)}" in applied or str(key_file) in applied
    )
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    outputs["state after apply"] = state_bytes(tmp_path / "state.db")

    assert "No changes." in run("plan again", "plan", str(folder), "--detailed-exitcode")
    status = json.loads(run("status", "status", "--format", "json"))
    health = {d["name"]: (d["health"], d["status"]) for d in status["deployments"]}
    assert health["gpu-batch"] == ("Suspended", "DISABLED")
    assert health["search-api"] == ("Healthy", "ACTIVE")
    assert {o["kind"] for o in status["objects"]} == {
        "InferenceRegistryCredential",
        "InferenceSecret",
        "InferenceApiKey",
    }
    assert all(o["sync"] == "Synced" for o in status["objects"])

    gpu = folder / "gpu-batch.yaml"
    gpu.write_text(gpu.read_text().replace("stopped: true", "stopped: false"))
    assert "start" in run("start", "apply", str(folder), "--auto-approve")
    status = json.loads(run("status started", "status", "--format", "json"))
    assert {d["name"]: d["status"] for d in status["deployments"]}["gpu-batch"] == "ACTIVE"
    gpu.write_text(gpu.read_text().replace("stopped: false", "stopped: true"))
    run("stop", "apply", str(folder), "--auto-approve", "--log-format", "json")
    status = json.loads(run("status stopped", "status", "--format", "json"))
    assert {d["name"]: d["health"] for d in status["deployments"]}["gpu-batch"] == "Suspended"
    assert run("plan stopped", "plan", str(folder), "--detailed-exitcode").count("No changes.")

    empty = tmp_path / "empty"
    empty.mkdir()
    before = len(server.simulator.requests)
    run("prune", "apply", str(empty), "--auto-approve", "--prune", "--allow-empty")
    deletes = [
        path.split("/")[5]
        for verb, path, status in server.simulator.requests[before:]
        if verb == "DELETE" and status < 300
    ]
    assert deletes.count("deployments") == 3
    last_deployment = max(i for i, c in enumerate(deletes) if c == "deployments")
    first_object = min(i for i, c in enumerate(deletes) if c != "deployments")
    assert first_object > last_deployment  # the objects go after every deployment that named them
    assert not any(code == 409 for _, _, code in server.simulator.requests)
    outputs["state after prune"] = state_bytes(tmp_path / "state.db")

    with httpx.Client(base_url=server.url, headers={"Authorization": f"APIKey {API_KEY}"}) as http:
        for path in ("registry_credentials", "secrets", "api_keys", "deployments"):
            outputs[f"GET {path}"] = http.get(f"/cloud/v3/inference/1/{path}").content
    outputs["simulator file"] = (tmp_path / "sim.json").read_bytes()
    key_secret = key_file.read_text().strip()
    assert_no_canary(outputs, [GHCR, AWS, key_secret])


def test_a_reference_to_nothing_fails_at_its_line(tmp_path: Path, server: BackgroundServer) -> None:
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLE, folder)
    (folder / "objects.yaml").unlink()

    done = cli(server, tmp_path, "plan", str(folder))
    offline = cli(server, tmp_path, "validate", str(folder))

    assert done.returncode == 1
    where = f"{folder / 'search-api.yaml'}:9:21: spec.credentials_name: "
    assert where + "registry credential 1/ghcr-acme is neither declared nor live" in done.stderr
    assert offline.returncode == 0 and "is not declared (warning" in offline.stderr
    assert not server.simulator.requests or all(
        verb == "GET" for verb, _, _ in server.simulator.requests
    )


async def test_a_failure_message_carries_the_last_log_lines(tmp_path: Path) -> None:
    from reconciler.config import ApiSettings, Secret
    from reconciler.engine import Target, apply, status
    from reconciler.execute import ApplyOptions, PollOptions, Result
    from reconciler.manifests import load_desired
    from reconciler.plan import PlanOptions
    from reconciler.simulator import Faults

    from .conftest import manifest

    timings = Timings(task_queue=0.02, task_run=0.05, rollout=0.05, delete=0.05)
    config = SimulatorConfig(api_key=API_KEY, timings=timings, faults=Faults(stuck_image="broken"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "app.yaml").write_text(manifest("broken-app", image="acme/broken:1"))
    with BackgroundServer(Simulator(config)) as server:
        target = Target(
            ApiSettings(base_url=server.url, api_key=Secret(API_KEY)), tmp_path / "s.db"
        )
        options = ApplyOptions(
            timeout=10.0, degraded_grace=0.2, poll=PollOptions(initial=0.05, cap=0.1)
        )
        report = await apply(load_desired([tmp_path / "m"], env={}), target, PlanOptions(), options)
        rows = await status(target)

    [outcome] = report.outcomes
    assert outcome.result is Result.FAILED
    assert "Degraded" in outcome.error and "log line(s):" in outcome.error
    assert "Error: failed to pull image 'acme/broken:1'" in outcome.error
    assert "broken-app-" in outcome.error  # the pod's name
    assert "Error: failed to pull image" in rows[0].message  # status shows it too


@pytest.mark.slow
def test_the_whole_project_on_a_postgresql_state(
    tmp_path: Path, server: BackgroundServer, pg_dsn: str
) -> None:
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLE, folder)

    def run(*args: str) -> str:
        done = cli(server, tmp_path, *args, state=pg_dsn)
        assert done.returncode == 0, done.stdout + done.stderr
        assert GHCR not in done.stdout + done.stderr and AWS not in done.stdout + done.stderr
        return done.stdout

    run("apply", str(folder), "--auto-approve")
    assert "No changes." in run("plan", str(folder), "--detailed-exitcode")
    status = json.loads(run("status", "--format", "json"))
    assert {(o["kind"], o["sync"]) for o in status["objects"]} == {
        ("InferenceRegistryCredential", "Synced"),
        ("InferenceSecret", "Synced"),
        ("InferenceApiKey", "Synced"),
    }
    exported = run("state", "export")
    assert GHCR not in exported and AWS not in exported
    assert len(json.loads(exported)["objects"]) == 4
