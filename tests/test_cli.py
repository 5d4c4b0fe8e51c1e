"""The command line: `validate` and `schema` (contract: DESIGN.md §7)."""

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

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")


def test_validate_valid_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(ROOT / "manifests"), str(DATA / "valid")])
    out, err = capsys.readouterr()
    assert code == 0
    assert out == ""
    assert err.strip() == "ok: 12 deployments in 9 files"


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
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", *args, "--state", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


def test_plan_simulate_detailed_exitcode(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    none = _plan(tmp_path, str(empty), "--simulate", "--detailed-exitcode")
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
