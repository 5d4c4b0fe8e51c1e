"""`reconciler diff`: live vs desired as a unified diff, exit 0/2/1 like diff(1)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .test_cli_fixes import ROOT, cli


def test_diff_before_and_after_apply_and_after_an_edit(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    new = cli(tmp_path, "diff", "--simulate", "manifests/")
    assert new.returncode == 2, new.stderr
    lines = new.stdout.splitlines()
    assert lines[:2] == ["--- live/1/my-instance", "+++ desired/1/my-instance (new)"]
    assert "+image: nginx:latest" in lines
    assert "+  DEBUG_MODE: (sensitive)" in lines and "False" not in new.stdout

    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    same = cli(tmp_path, "diff", "--simulate", "manifests/")
    assert same.returncode == 0 and same.stdout == ""

    path = tmp_path / "manifests" / "my-instance.yaml"
    text = path.read_text()
    path.write_text(
        text.replace("max: 3", "max: 5").replace('DEBUG_MODE: "False"', 'DEBUG_MODE: "True"')
    )
    edited = cli(tmp_path, "diff", "--simulate", "manifests/")
    assert edited.returncode == 2
    lines = edited.stdout.splitlines()
    assert "+++ desired/1/my-instance (manifest changed)" in lines
    assert "-    max: 3" in lines and "+    max: 5" in lines
    assert "-  DEBUG_MODE: (sensitive)" in lines
    assert "+  DEBUG_MODE: (sensitive, changed)" in lines
    assert "True" not in edited.stdout
    assert " description: My first instance" in lines and "-image: nginx:latest" not in lines
    colored = cli(tmp_path, "diff", "--simulate", "--color", "always", "manifests/")
    assert "\033[32m+    max: 5\033[0m" in colored.stdout


def test_diff_of_a_broken_manifest_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text("kind: Nope\n")
    result = cli(tmp_path, "diff", "--simulate", "m/")
    assert result.returncode == 1
