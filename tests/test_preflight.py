"""Preflight in `plan`: flavors, regions and capacity are checked against the API (the simulator
over HTTP) before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.simulator import BackgroundServer

from .conftest import API_KEY, FLAVOR, make_simulator
from .inproc import run_cli

OTHER = "inference-4vcpu-16gib"


def manifest(name: str, flavor: str = FLAVOR, region: int = 1, min_: int = 1) -> str:
    return f"""\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: {name}, project_id: 1}}
spec:
  image: nginx:latest
  flavor_name: {flavor}
  listening_port: 80
  containers: [{{region_id: {region}, scale: {{min: {min_}, max: 5}}}}]
"""


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    capacity = {1: {FLAVOR: 3, OTHER: 0}, 2: {FLAVOR: 100, OTHER: 100}}
    with BackgroundServer(make_simulator(capacity=capacity)) as srv:
        yield srv


def plan(
    server: BackgroundServer, root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "GCORE_API_KEY": API_KEY,
        "GCORE_BASE_URL": server.url,
        "RECONCILER_STATE": str(root / "state.db"),
        **(env or {}),
    }
    return run_cli(["plan", str(root / "m"), *args], root, environment)


def write(root: Path, **files: str) -> None:
    (root / "m").mkdir(exist_ok=True)
    for name, text in files.items():
        (root / "m" / f"{name}.yaml").write_text(text)


def test_unknown_flavor_region_and_no_capacity_are_errors_at_the_manifest(
    server: BackgroundServer, tmp_path: Path
) -> None:
    write(
        tmp_path,
        a=manifest("alpha-svc", flavor="no-such-flavor"),
        b=manifest("beta-svc", region=9),
        c=manifest("gamma-svc", flavor=OTHER, region=1),
    )
    result = plan(server, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "a.yaml:1:1: spec.flavor_name: flavor 'no-such-flavor' does not exist" in result.stderr
    assert "c.yaml:1:1: spec.containers[0].region_id: region 1 has no capacity" in result.stderr
    assert "3 manifest errors; nothing done" in result.stderr
    requests = server.simulator.requests
    assert [m for m, _, _ in requests if m != "GET"] == []  # nothing sent
    flavor_calls = [p for _, p, _ in requests if p.endswith("/inference/flavors")]
    capacity_calls = [p for _, p, _ in requests if p.endswith("/inference/capacity")]
    assert len(flavor_calls) == 1 and len(capacity_calls) == 1  # once per run, not per manifest


def test_every_preflight_error_is_listed_with_its_place(
    server: BackgroundServer, tmp_path: Path
) -> None:
    write(
        tmp_path, b=manifest("beta-svc", region=9), c=manifest("gamma-svc", flavor=OTHER, region=1)
    )
    result = plan(server, tmp_path, "--format", "json")
    assert result.returncode == 1
    assert "b.yaml:1:1: spec.containers[0].region_id: region 9 does not exist" in result.stderr


def test_short_capacity_is_a_warning_on_stderr_and_in_the_json_plan(
    server: BackgroundServer, tmp_path: Path
) -> None:
    write(tmp_path, a=manifest("alpha-svc", min_=2), b=manifest("beta-svc", min_=2))
    result = plan(server, tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert warnings == [
        f"region 1 has capacity for 3 more replica(s) of flavor '{FLAVOR}'; "
        "the plan asks for 4 (total scale.min)"
    ]
    assert f"warning: {warnings[0]}" in result.stderr


def test_no_preflight_skips_the_checks(server: BackgroundServer, tmp_path: Path) -> None:
    write(tmp_path, a=manifest("alpha-svc", flavor="no-such-flavor"))
    result = plan(server, tmp_path, "--no-preflight")
    assert result.returncode == 0, result.stderr
    assert not [p for _, p, _ in server.simulator.requests if "/inference/capacity" in p]


def test_a_sensitive_flavor_is_never_echoed(server: BackgroundServer, tmp_path: Path) -> None:
    write(tmp_path, a=manifest("alpha-svc", flavor="${FLAVOR_SECRET}"))
    result = plan(server, tmp_path, env={"FLAVOR_SECRET": "private-flavor-x"})
    assert result.returncode == 1
    assert "private-flavor-x" not in result.stderr + result.stdout
    assert "flavor (sensitive) does not exist" in result.stderr
