"""Every canary secret stays out of every output of plan, apply and status (real processes over
real HTTP to the simulator), out of the state bytes, and out of an API error that echoes one."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.simulator import BackgroundServer, Faults, Simulator, SimulatorConfig, Timings

from ..canary import CANARIES, assert_no_canary, state_bytes
from ..inproc import run_cli

DEPLOYMENT = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: {name}, project_id: 1}}
spec:
  image: nginx:latest
  flavor_name: {flavor}
  listening_port: 80
  containers: [{{region_id: 1, scale: {{min: 1, max: 1}}}}]
  envs:
    TOKEN: "${{CANARY_VAR}}"
    PLAIN: {env_value}
"""
SECRET = """\
apiVersion: reconciler/v1
kind: InferenceSecret
metadata: {name: sqs-reader, project_id: 1}
spec:
  type: aws-iam
  data: {aws_access_key_id: AKIAEXAMPLE, aws_secret_access_key: "${SECRET_FIELD}"}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BackgroundServer]:
    timings = Timings(task_queue=0.02, task_run=0.1, rollout=0.1, delete=0.05)
    config = SimulatorConfig(
        api_key=CANARIES["api_key"], timings=timings, state_file=str(tmp_path / "sim.json")
    )
    with BackgroundServer(Simulator(config)) as srv:
        yield srv


def cli(
    server: BackgroundServer, root: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env.update(extra_env or {})
    env.update(
        GCORE_BASE_URL=server.url,
        GCORE_API_KEY=CANARIES["api_key"],
        CANARY_VAR=CANARIES["interpolated"],
        FLV=CANARIES["flavor"],
        SECRET_FIELD=CANARIES["secret_field"],
        RECONCILER_WEBHOOK_SECRET=CANARIES["webhook_secret"],
    )
    return run_cli([*args, "--state", str(root / "state.db")], root, env)


def test_no_canary_in_any_output(tmp_path: Path, server: BackgroundServer) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    good = DEPLOYMENT.format(
        name="good-svc",
        flavor="inference-16vcpu-232gib-1xh100-80gb",
        env_value=CANARIES["env_value"],
    )
    leaky = DEPLOYMENT.format(name="leaky-svc", flavor='"${FLV}"', env_value=CANARIES["env_value"])
    (folder / "good.yaml").write_text(good)
    (folder / "leaky.yaml").write_text(leaky)
    (folder / "secret.yaml").write_text(SECRET)
    outputs: dict[str, str | bytes] = {}
    # preflight refuses the unknown (interpolated) flavor at its manifest, naming it only as
    # sensitive; the runs after it skip preflight, so the API's own echo is tested too
    run = cli(server, tmp_path, "plan", str(folder))
    assert run.returncode == 1 and "flavor (sensitive) does not exist" in run.stderr
    outputs["plan preflight"] = run.stdout + run.stderr
    for fmt in ("text", "json", "markdown"):
        run = cli(
            server,
            tmp_path,
            "plan",
            str(folder),
            "--format",
            fmt,
            "--out",
            str(tmp_path / "p.json"),
            "--no-preflight",
        )
        assert run.returncode == 0, run.stderr
        outputs[f"plan {fmt} stdout"], outputs[f"plan {fmt} stderr"] = run.stdout, run.stderr
        outputs[f"plan {fmt} file"] = (tmp_path / "p.json").read_bytes()
    for log_format in ("json", "text"):
        run = cli(
            server,
            tmp_path,
            "apply",
            str(folder),
            "--auto-approve",
            "--log-format",
            log_format,
        )
        outputs[f"apply {log_format} stdout"] = run.stdout
        outputs[f"apply {log_format} stderr"] = run.stderr
    first = str(outputs["apply json stdout"]) + str(outputs["apply json stderr"])
    assert "does not exist" in first and "(sensitive)" in first  # the API's echo, redacted
    status = cli(server, tmp_path, "status", "--format", "json")
    outputs["status"] = status.stdout + status.stderr
    outputs["state"] = state_bytes(tmp_path / "state.db")
    assert_no_canary(outputs)
    # the simulated cloud holds what it was sent (envs, secrets), like the real API; never the
    # credentials that were not part of any request body
    assert_no_canary(
        {"simulator file": (tmp_path / "sim.json").read_bytes()},
        [CANARIES["api_key"], CANARIES["webhook_secret"], CANARIES["git_token"]],
    )


def test_no_canary_in_what_the_api_says_about_a_failed_rollout(tmp_path: Path) -> None:
    # the API names the image in a failed task's error and in a stuck container's message: an
    # interpolated image is a secret there too, however the answer was read (one task, a list)
    timings = Timings(task_queue=0.02, task_run=0.1, rollout=0.1, delete=0.05)
    faults = Faults(task_error_image="canary-var", stuck_image="canary-env")
    config = SimulatorConfig(api_key=CANARIES["api_key"], timings=timings, faults=faults)
    folder = tmp_path / "manifests"
    folder.mkdir()
    for name, variable in (("failing-svc", "CANARY_VAR"), ("stuck-svc", "STUCK")):
        text = DEPLOYMENT.format(
            name=name, flavor="inference-16vcpu-232gib-1xh100-80gb", env_value="plain"
        )
        (folder / f"{name}.yaml").write_text(
            text.replace("image: nginx:latest", f'image: "${{{variable}}}"')
        )
    outputs: dict[str, str | bytes] = {}
    with BackgroundServer(Simulator(config)) as server:
        for log_format in ("json", "text"):
            run = cli(
                server, tmp_path, "apply", str(folder), "--auto-approve", "--timeout", "1.5",
                "--log-format", log_format, extra_env={"STUCK": CANARIES["env_value"]},
            )  # fmt: skip
            assert run.returncode != 0
            outputs[f"apply {log_format}"] = run.stdout + run.stderr
        for command in (
            ("status", "--format", "json"),
            ("status",),
            ("get", "-o", "wide"),
            ("get", "-o", "json"),
            ("describe", "failing-svc"),
            ("describe", "stuck-svc"),
            ("logs", "stuck-svc", "--project", "1"),
        ):  # these read the state and the API, not the manifests
            run = cli(server, tmp_path, *command)
            assert run.returncode == 0, run.stderr
            outputs[" ".join(command)] = run.stdout + run.stderr
    outputs["state"] = state_bytes(tmp_path / "state.db")
    first = str(outputs["apply json"])
    assert "Failed to deploy image '(sensitive)'" in first, first
    assert_no_canary(outputs)
