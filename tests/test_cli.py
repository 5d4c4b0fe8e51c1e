"""The command line as users run it (contract: DESIGN.md §7): validate and schema, plan and apply
with `--simulate` (in-process, see tests/inproc.py; validate and SIGTERM as real processes), saved
and stale plans, SIGTERM during an apply, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.cli import main

from .inproc import run_cli

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")


def test_validate_valid_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(ROOT / "manifests"), str(DATA / "valid")])
    out, err = capsys.readouterr()
    assert code == 0
    assert out == ""
    *warnings, summary = err.strip().splitlines()
    assert summary == "ok: 12 deployments in 9 files"
    assert len(warnings) == 4  # every-field.yaml and triggers.yaml name objects they don't declare
    assert all("is not declared (warning" in w for w in warnings)


def test_validate_prints_every_error_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    invalid = sorted((DATA / "invalid").glob("*.yaml"))
    code = main(["validate", *map(str, invalid)])
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert len(lines) >= len(invalid)
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    assert len({LINE.match(line)["file"] for line in lines}) == len(invalid)  # type: ignore[index]
    assert re.fullmatch(r"\d+ errors in \d+ files; nothing is valid until all are fixed\n", err)


def test_validate_as_a_process_never_shows_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\x00\xff\xfe garbage \x89PNG")
    (tmp_path / "tabs.yaml").write_text("a:\n\tb: 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path), str(DATA / "invalid")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{tmp_path / 'binary.yaml'}:1:" in result.stdout


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "schema"], capture_output=True, text=True, check=True
    )
    loaded: dict[str, Any] = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def _documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.mark.parametrize(
    "path",
    [ROOT / "manifests" / "my-instance.yaml", *sorted((DATA / "valid").glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_schema_accepts_valid_manifests(schema: dict[str, Any], path: Path) -> None:
    for document in _documents(path):
        jsonschema.validate(document, schema)


@pytest.mark.parametrize(
    "name",
    [
        "port-too-big",
        "unknown-field-typo",
        "missing-image",
        "name-uppercase",
        "threshold-over-100",
        "unknown-kind",
        "env-value-number",
    ],
)
def test_schema_rejects_invalid_manifests(schema: dict[str, Any], name: str) -> None:
    [document] = _documents(DATA / "invalid" / f"{name}.yaml")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 1
    assert "validate" in capsys.readouterr().out


# -- plan --------------------------------------------------------------------------------------


def _plan(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GCORE_")}
    full_env.update(env or {})
    return run_cli(["plan", *args, "--state", str(tmp_path / "s.db")], tmp_path, full_env)


def test_plan_simulate_detailed_exitcode(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    none = _plan(tmp_path, str(empty), "--simulate", "--detailed-exitcode", "--allow-empty")
    assert none.returncode == 0, none.stderr
    assert "No changes." in none.stdout

    some = _plan(tmp_path, str(ROOT / "manifests"), "--simulate", "--detailed-exitcode")
    assert some.returncode == 2, some.stderr
    assert "+ 1/my-instance  create (new)" in some.stdout
    plain = _plan(tmp_path, str(ROOT / "manifests"), "--simulate")
    assert plain.returncode == 0

    broken = _plan(
        tmp_path, str(DATA / "invalid" / "port-zero.yaml"), "--simulate", "--detailed-exitcode"
    )
    assert broken.returncode == 1
    assert "port-zero.yaml:10:" in broken.stderr and "Traceback" not in broken.stderr


def test_plan_out_saves_json_and_formats_render(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = _plan(
        tmp_path, str(ROOT / "manifests"), "--simulate", "--out", str(out), "--format", "markdown"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("## reconciler plan")
    saved = json.loads(out.read_text())
    assert saved["format_version"] == 1
    assert saved["actions"][0]["name"] == "my-instance"
    as_json = _plan(tmp_path, str(ROOT / "manifests"), "--simulate", "--format", "json")
    assert json.loads(as_json.stdout)["summary"]["create"] == 1


def test_plan_without_a_key_is_one_line(tmp_path: Path) -> None:
    result = _plan(tmp_path, str(ROOT / "manifests"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: GCORE_API_KEY is not set: export your Gcore API key, or use --simulate"
    ]


# -- apply and status ----------------------------------------------------------------------------


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    return run_cli([*args, "--state", str(tmp_path / "s.db")], tmp_path, env)


def _copy_manifests(tmp_path: Path) -> Path:
    target = tmp_path / "manifests"
    target.mkdir()
    (target / "my-instance.yaml").write_text((ROOT / "manifests" / "my-instance.yaml").read_text())
    return target


def test_apply_refuses_without_a_terminal_or_auto_approve(tmp_path: Path) -> None:
    result = _run(tmp_path, "apply", str(ROOT / "manifests"), "--simulate")
    assert result.returncode == 1
    assert "refusing to apply without confirmation" in result.stderr
    assert not (tmp_path / "simulator.json").exists()  # nothing happened


def test_apply_simulate_then_plan_and_status(tmp_path: Path) -> None:
    applied = _run(tmp_path, "apply", str(ROOT / "manifests"), "--simulate", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert "✓ 1/my-instance create: converged" in applied.stdout
    assert "Apply: 1 converged, 0 failed, 0 timed out" in applied.stdout
    assert "1/my-instance create converged" in applied.stderr  # a log line per phase
    again = _run(tmp_path, "plan", str(ROOT / "manifests"), "--simulate", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    shown = _run(tmp_path, "status", "--simulate", "--format", "json")
    [row] = json.loads(shown.stdout)["deployments"]
    assert {k: row[k] for k in ("project_id", "name", "sync", "health", "status")} == {
        "project_id": 1,
        "name": "my-instance",
        "sync": "Synced",
        "health": "Healthy",
        "status": "ACTIVE",
    }
    assert row["last_applied_at"].endswith("Z")


def test_apply_a_saved_plan_and_refuse_a_stale_one(tmp_path: Path) -> None:
    manifests = _copy_manifests(tmp_path)
    saved = tmp_path / "plan.json"
    made = _run(tmp_path, "plan", str(manifests), "--simulate", "--out", str(saved))
    assert made.returncode == 0, made.stderr

    text = (manifests / "my-instance.yaml").read_text()
    (manifests / "my-instance.yaml").write_text(text.replace("max: 3", "max: 4"))
    stale = _run(tmp_path, "apply", "--plan", str(saved), "--simulate", "--auto-approve")
    assert stale.returncode == 1
    assert "plan is stale" in stale.stderr and "run plan again" in stale.stderr

    (manifests / "my-instance.yaml").write_text(text)
    fresh = _run(tmp_path, "apply", "--plan", str(saved), "--simulate", "--auto-approve")
    assert fresh.returncode == 0, fresh.stderr


@pytest.mark.slow  # a real process stopped by a signal
def test_sigterm_during_apply_journals_and_the_next_apply_resumes(tmp_path: Path) -> None:
    import os
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            str(ROOT / "manifests"),
            "--simulate",
            "--auto-approve",
            "--log-format",
            "json",
            "--state",
            str(tmp_path / "s.db"),
        ],
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
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "the next apply resumes them" in err
    resumed = _run(tmp_path, "apply", str(ROOT / "manifests"), "--simulate", "--auto-approve")
    assert resumed.returncode == 0, resumed.stderr
    assert "0 to create" in resumed.stdout or "No changes" in resumed.stdout


def test_apply_exits_1_naming_the_deployment_and_the_api_error(tmp_path: Path) -> None:
    manifests = _copy_manifests(tmp_path)
    (manifests / "other.yaml").write_text(
        (manifests / "my-instance.yaml")
        .read_text()
        .replace("name: my-instance", "name: no-such-flavor")
        .replace("inference-16vcpu-232gib-1xh100-80gb", "inference-999gpu")
    )
    result = _run(tmp_path, "apply", str(manifests), "--simulate", "--auto-approve")
    assert result.returncode == 1
    assert "✓ 1/my-instance create: converged" in result.stdout
    failed = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert len(failed) == 1
    assert "1/no-such-flavor create: failed" in failed[0]
    assert "422 ValidationError" in failed[0] and "flavor_name" in failed[0]
    assert "Apply: 1 converged, 1 failed" in result.stdout
