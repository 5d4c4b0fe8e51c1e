"""`destroy` and `--target`, end to end on the embedded simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import manifest
from .test_cli_fixes import cli

PROTECTED = '  annotations: {reconciler/prune: "false"}\n'


def _live(work: Path) -> set[str]:
    cloud = json.loads((work / ".reconciler" / "simulator.json").read_text())
    return {d["name"] for d in cloud["deployments"]}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "alpha.yaml").write_text(manifest("alpha-svc"))
    (folder / "beta.yaml").write_text(manifest("beta-svc"))
    keep = manifest("keep-svc").replace(
        "metadata: {name: keep-svc, project_id: 1}",
        "metadata:\n  name: keep-svc\n  project_id: 1\n" + PROTECTED,
    )
    (folder / "keep.yaml").write_text(keep)
    applied = cli(tmp_path, "apply", "--simulate", "--auto-approve", "m/")
    assert applied.returncode == 0, applied.stderr
    return tmp_path


def test_target_narrows_plan_and_apply(work: Path) -> None:
    for name in ("alpha.yaml", "beta.yaml"):
        path = work / "m" / name
        path.write_text(path.read_text().replace("min: 1, max: 2", "min: 1, max: 3"))
    planned = cli(work, "plan", "--simulate", "m/", "--target", "alpha-svc")
    assert planned.returncode == 0, planned.stderr
    assert "1/alpha-svc  update" in planned.stdout and "beta-svc" not in planned.stdout
    unknown = cli(work, "plan", "--simulate", "m/", "--target", "gamma-svc")
    assert unknown.returncode == 1
    assert "--target gamma-svc: no such deployment" in unknown.stderr


def test_destroy_deletes_what_the_manifests_describe_but_the_protected(work: Path) -> None:
    refused = cli(work, "destroy", "--simulate", "m/")
    assert refused.returncode == 1 and "refusing to destroy without confirmation" in refused.stderr
    one = cli(work, "destroy", "--simulate", "--auto-approve", "m/", "--target", "1/alpha-svc")
    assert one.returncode == 0, one.stderr
    assert "1/alpha-svc delete: deleted" in one.stdout
    assert _live(work) == {"beta-svc", "keep-svc"}
    rest = cli(work, "destroy", "--simulate", "--auto-approve", "m/")
    assert rest.returncode == 0, rest.stderr
    assert 'orphan: kept (reconciler/prune is "false")' in rest.stdout
    assert _live(work) == {"keep-svc"}
    forced = cli(work, "destroy", "--simulate", "--auto-approve", "--force", "m/")
    assert forced.returncode == 0, forced.stderr
    assert _live(work) == set()
    listed = cli(work, "state", "list")
    assert "nothing is owned yet" in listed.stdout
    again = cli(work, "destroy", "--simulate", "--auto-approve", "m/")
    assert again.returncode == 0
    assert again.stdout.strip() == "Nothing to destroy: none of these deployments is owned."
