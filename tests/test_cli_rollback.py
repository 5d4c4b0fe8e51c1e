"""`rollback NAME --to N PATH...`: re-apply a spec from the history, secrets from the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .test_cli_fixes import ROOT, cli


def _live_max(work: Path) -> int:
    cloud = json.loads((work / ".reconciler" / "simulator.json").read_text())
    [deployment] = cloud["deployments"]
    return int(deployment["spec"]["containers"][0]["scale"]["max"])


def test_rollback_to_a_history_number(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    path = tmp_path / "manifests" / "my-instance.yaml"
    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    path.write_text(path.read_text().replace("max: 3", "max: 4"))
    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    assert _live_max(tmp_path) == 4

    back = cli(
        tmp_path,
        "rollback",
        "--simulate",
        "my-instance",
        "manifests/",
        "--to",
        "1",
        "--auto-approve",
    )
    assert back.returncode == 0, back.stderr
    assert "rolling 1/my-instance back to history #1" in back.stderr
    assert "containers[region_id=1].scale.max: 4 -> 3" in back.stdout
    assert "1/my-instance update: converged" in back.stdout
    assert _live_max(tmp_path) == 3
    history = json.loads(cli(tmp_path, "history", "my-instance", "--format", "json").stdout)
    assert [h["action"] for h in history["history"]] == ["create", "update", "update"]


def test_a_changed_secret_cannot_be_rebuilt(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    path = tmp_path / "manifests" / "my-instance.yaml"
    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    path.write_text(path.read_text().replace('DEBUG_MODE: "False"', 'DEBUG_MODE: "True"'))
    refused = cli(
        tmp_path,
        "rollback",
        "--simulate",
        "my-instance",
        "manifests/",
        "--to",
        "1",
        "--auto-approve",
    )
    assert refused.returncode == 1
    assert "its secret(s) envs.DEBUG_MODE differ in the manifest now" in refused.stderr
    assert "True" not in refused.stderr and "False" not in refused.stderr
    unknown = cli(tmp_path, "rollback", "--simulate", "my-instance", "manifests/", "--to", "9")
    assert unknown.returncode == 1 and "--to 9: no applied revision" in unknown.stderr
