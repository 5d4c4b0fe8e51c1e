"""Nothing under a manifest path is skipped silently or hangs the load.

An unreadable folder or file, a FIFO named *.yaml (or a symlink to one) and a symlink loop are
each a located error that stops the run; the valid files beside them do not make a partial set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.manifests import load_manifests

from ..conftest import manifest

TIMEOUT = 20


@pytest.fixture
def tree() -> Iterator[Path]:
    """A manifest folder any user can traverse (the unreadable-file tests give up root's bypass)."""
    root = Path(tempfile.mkdtemp(prefix="reconciler-hardening-"))
    root.chmod(0o755)
    (root / "ok.yaml").write_text(manifest("good-svc"))
    yield root
    for folder, dirs, _ in os.walk(root):
        for d in dirs:
            Path(folder, d).chmod(0o755)
    shutil.rmtree(root)


def validate(*paths: Path, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    return cli("validate", *map(str, paths), unprivileged=unprivileged)


def cli(*args: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reconciler", *args]
    if unprivileged and os.geteuid() == 0:
        # Root reads anything: drop the two capabilities that bypass file permissions (it stays
        # root, so the interpreter and the project, wherever they are installed, still load).
        no_bypass = "--bounding-set=-dac_override,-dac_read_search"
        command = ["setpriv", no_bypass, "--inh-caps=-dac_override,-dac_read_search", *command]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd="/"
    )


def test_an_unreadable_folder_stops_the_run(tree: Path) -> None:
    hidden = tree / "team-b"
    hidden.mkdir()
    (hidden / "other.yaml").write_text(manifest("other-svc"))
    hidden.chmod(0o000)
    result = validate(tree, unprivileged=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{hidden}:1:1: cannot read folder: Permission denied" in result.stdout
    assert "Traceback" not in result.stderr


def test_an_unreadable_file_stops_the_run(tree: Path) -> None:
    secret = tree / "locked.yaml"
    secret.write_text(manifest("locked-svc"))
    secret.chmod(0o000)
    result = validate(tree, unprivileged=True)
    assert result.returncode == 1
    assert f"{secret}:1:1: cannot read: Permission denied" in result.stdout


@pytest.mark.parametrize("via_symlink", [False, True])
def test_a_fifo_named_yaml_is_refused_without_hanging(tree: Path, via_symlink: bool) -> None:
    fifo = tree / "pipe.yaml"
    os.mkfifo(fifo if not via_symlink else tree / "real-pipe")
    if via_symlink:
        fifo.symlink_to(tree / "real-pipe")
    result = validate(tree)  # a hang would raise TimeoutExpired
    assert result.returncode == 1
    assert f"{fifo}:1:1: not a regular file (a FIFO); not read" in result.stdout
    given = validate(fifo)
    assert given.returncode == 1 and "not a regular file (a FIFO)" in given.stdout


def test_a_symlink_loop_is_a_located_error(tree: Path) -> None:
    (tree / "a.yaml").symlink_to(tree / "b.yaml")
    (tree / "b.yaml").symlink_to(tree / "a.yaml")
    _, errors = load_manifests([tree])
    assert [str(e) for e in errors] == [
        f"{tree}/a.yaml:1:1: cannot follow: symlink loop",
        f"{tree}/b.yaml:1:1: cannot follow: symlink loop",
    ]
    result = validate(tree / "a.yaml")
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_a_folder_symlink_loop_is_a_located_error(tree: Path) -> None:
    (tree / "x").symlink_to(tree / "y")
    (tree / "y").symlink_to(tree / "x")
    (tree / "x.yaml").symlink_to(tree / "x")
    _, errors = load_manifests([tree])
    assert f"{tree}/x.yaml:1:1: cannot follow: symlink loop" in [str(e) for e in errors]


def test_prune_never_runs_past_an_unreadable_folder(tree: Path) -> None:
    # the data-loss path: a folder skipped silently made its deployments orphans, and --prune
    # deleted them
    team = tree / "team-b"
    team.mkdir()
    (team / "beta.yaml").write_text(manifest("beta-svc"))
    state = ("--simulate", "--state", str(tree / ".state" / "state.db"))
    applied = cli("apply", str(tree), "--auto-approve", *state)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    team.chmod(0o000)
    for command in ("plan", "apply"):
        extra = ("--auto-approve",) if command == "apply" else ()
        run = cli(command, str(tree), "--prune", *extra, *state, unprivileged=True)
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"{team}:1:1: cannot read folder: Permission denied" in run.stdout + run.stderr
        assert "delete" not in run.stdout
    team.chmod(0o755)
    final = cli("plan", str(tree), "--prune", "--detailed-exitcode", *state)
    assert final.returncode == 0, final.stdout + final.stderr  # beta-svc is still there
