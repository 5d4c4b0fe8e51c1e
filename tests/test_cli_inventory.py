"""`state list|show|rm`, `get` and `completion`, end to end on the embedded simulator."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .test_cli_fixes import ROOT, cli


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("inventory")
    (work / "manifests").mkdir()
    shutil.copy(ROOT / "manifests" / "my-instance.yaml", work / "manifests")
    result = cli(work, "apply", "--simulate", "--auto-approve", "manifests/")
    assert result.returncode == 0, result.stderr
    return work


def test_state_list_and_show(applied: Path) -> None:
    listed = cli(applied, "state", "list")
    assert listed.returncode == 0, listed.stderr
    head, row = listed.stdout.splitlines()
    assert head.split() == ["DEPLOYMENT", "OUTCOME", "REVISION", "APPLIED", "AT", "MESSAGE"]
    assert row.split()[:3] == ["1/my-instance", "converged", "-"]
    as_json = json.loads(cli(applied, "state", "list", "--format", "json").stdout)
    [record] = as_json["deployments"]
    assert record["name"] == "my-instance" and record["labels"] == {"team": "demo"}
    shown = json.loads(cli(applied, "state", "show", "1/my-instance").stdout)
    assert shown["last_applied"]["image"] == "nginx:latest"
    assert shown["last_applied"]["envs"]["DEBUG_MODE"].startswith("hmac-sha256:")  # never clear
    missing = cli(applied, "state", "show", "nope-svc")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: nope-svc: no owned deployment of that name (see `state list`)"
    )


def test_get_table_wide_json_and_yaml(applied: Path) -> None:
    table = cli(applied, "get", "--simulate")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split() == [
        "my-instance",
        "1",
        "Synced",
        "Healthy",
        "ACTIVE",
        "-",
    ]
    wide = cli(applied, "get", "--simulate", "-o", "wide", "my-instance").stdout.splitlines()
    assert wide[1].split()[-3:] == ["nginx:latest", "1", "1/1"]
    [item] = json.loads(cli(applied, "get", "--simulate", "-o", "json").stdout)["deployments"]
    assert item["status"]["health"] == "Healthy"
    assert item["live"]["envs"] == {"DEBUG_MODE": "(sensitive)"}  # the API's clear value hidden
    [again] = yaml.safe_load(cli(applied, "get", "--simulate", "-o", "yaml").stdout)["deployments"]
    assert again == item
    assert cli(applied, "get", "--simulate", "nope-svc").returncode == 1


def test_state_rm_stops_owning_without_touching_the_live_one(applied: Path) -> None:
    gone = cli(applied, "state", "rm", "my-instance")
    assert gone.returncode == 0, gone.stderr
    assert "removed from the inventory; the live deployment is untouched" in gone.stderr
    assert "nothing is owned yet" in cli(applied, "state", "list").stdout
    cloud = json.loads((applied / ".reconciler" / "simulator.json").read_text())
    assert "my-instance" in json.dumps(cloud)
    replan = cli(applied, "plan", "--simulate", "manifests/")
    assert "= 1/my-instance  adopt" in replan.stdout


def test_read_only_inventory_commands_create_no_state(tmp_path: Path) -> None:
    assert "nothing is owned yet" in cli(tmp_path, "state", "list").stdout
    assert not (tmp_path / ".reconciler").exists()


def test_bash_completion_completes_commands_and_flags() -> None:
    script = cli(ROOT, "completion", "bash").stdout

    def complete(*words: str) -> list[str]:
        probe = (
            f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; "
            '_reconciler; echo "${COMPREPLY[@]}"'
        )
        out = subprocess.run(
            ["bash", "-c", script + "\n" + probe], capture_output=True, text=True, check=True
        )
        return out.stdout.split()

    assert complete("reconciler", "pl") == ["plan"]
    assert "--max-deletes" in complete("reconciler", "apply", "--m")
    assert complete("reconciler", "state", "l") == ["list"]
    assert complete("reconciler", "completion", "--h") == ["--help"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_get_a_script(shell: str) -> None:
    result = cli(ROOT, "completion", shell)
    assert result.returncode == 0
    if shell == "fish":
        assert "complete -c reconciler -n __fish_use_subcommand -a plan" in result.stdout
    else:
        assert result.stdout.startswith("# zsh completion") and "bashcompinit" in result.stdout


def test_import_refuses_a_deployment_another_object_manages(tmp_path: Path) -> None:
    # a deployment an inference Application made is never adopted: not by a plan, not by import
    (tmp_path / "manifests").mkdir()
    shutil.copy(ROOT / "manifests" / "my-instance.yaml", tmp_path / "manifests")
    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    assert cli(tmp_path, "state", "rm", "my-instance").returncode == 0
    cloud = tmp_path / ".reconciler" / "simulator.json"
    data = json.loads(cloud.read_text())
    for deployment in data["deployments"]:
        deployment["object_references"] = [{"kind": "AppDeployment", "name": "my-app"}]
    cloud.write_text(json.dumps(data))
    refused = cli(tmp_path, "import", "--simulate", "my-instance", "--project", "1")
    assert refused.returncode == 1, refused.stderr
    assert "AppDeployment my-app manages it" in refused.stderr
    assert cli(tmp_path, "get", "--simulate").stdout.startswith("No deployments are owned")


def test_import_takes_ownership_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    shutil.copy(ROOT / "manifests" / "my-instance.yaml", tmp_path / "manifests")
    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    assert cli(tmp_path, "state", "rm", "my-instance").returncode == 0
    refused = cli(tmp_path, "plan", "--simulate", "--no-adopt", "manifests/")
    assert refused.returncode == 1 and "refusing to adopt" in refused.stderr
    before = (tmp_path / ".reconciler" / "simulator.json").read_text()

    imported = cli(tmp_path, "import", "--simulate", "my-instance", "--project", "1")
    assert imported.returncode == 0, imported.stderr
    assert "1/my-instance: imported; it is owned now, and nothing was changed" in imported.stderr
    assert (tmp_path / ".reconciler" / "simulator.json").read_text() == before
    planned = cli(tmp_path, "plan", "--simulate", "--no-adopt", "manifests/")
    assert planned.returncode == 0, planned.stderr
    assert "No changes. 1 deployment in sync." in planned.stdout
    [row] = json.loads(cli(tmp_path, "status", "--simulate", "--format", "json").stdout)[
        "deployments"
    ]
    assert row["sync"] == "Synced"
    again = cli(tmp_path, "import", "--simulate", "1/my-instance")
    assert again.returncode == 1 and "owned already" in again.stderr
    missing = cli(tmp_path, "import", "--simulate", "1/nope-svc")
    assert missing.returncode == 1 and "no such deployment in the API" in missing.stderr


def test_describe_shows_status_record_and_live(applied: Path) -> None:
    if "nothing is owned yet" in cli(applied, "state", "list").stdout:
        assert cli(applied, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    shown = cli(applied, "describe", "--simulate", "my-instance")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:5] == [
        "Name:          my-instance",
        "Project:       1",
        "Sync:          Synced",
        "Health:        Healthy",
        "Status:        ACTIVE",
    ]
    assert "  region 1: 1/1 ready" in lines
    assert "Applied spec:" in lines and "Live spec:" in lines
    assert "    DEBUG_MODE: (sensitive)" in lines  # the live answer's clear value hidden
    assert "False" not in shown.stdout
    logs = lines[lines.index("Recent logs:") + 1 :]
    assert logs and all(" r1 " in line for line in logs)
    assert cli(applied, "describe", "--simulate", "nope-svc").returncode == 1


def test_describe_shows_the_last_tasks_and_their_states(tmp_path: Path) -> None:
    from reconciler.model import DeploymentKey
    from reconciler.state import open_store

    (tmp_path / "manifests").mkdir()
    shutil.copy(ROOT / "manifests" / "my-instance.yaml", tmp_path / "manifests")
    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    store = open_store(str(tmp_path / ".reconciler" / "state.db"))
    try:
        [task_id] = store.journal_history(DeploymentKey(1, "my-instance"))[-1].task_ids
    finally:
        store.close()
    lines = cli(tmp_path, "describe", "--simulate", "my-instance").stdout.splitlines()
    # failed before: describe showed no task at all
    tasks = lines[lines.index("Last tasks:") + 1 :]
    assert tasks[0].split()[:3] == [task_id, "FINISHED", "create"]


def test_history_numbers_every_apply(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    path = tmp_path / "manifests" / "my-instance.yaml"
    shutil.copy(ROOT / "manifests" / "my-instance.yaml", path)
    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    path.write_text(path.read_text().replace("max: 3", "max: 4"))
    assert cli(tmp_path, "apply", "--simulate", "--auto-approve", "manifests/").returncode == 0
    shown = cli(tmp_path, "history", "my-instance")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["#", "AT", "ACTION", "RESULT", "REVISION", "MESSAGE"]
    assert [line.split()[0::2][:3] for line in lines[1:]] == [
        ["1", "create", "-"],
        ["2", "update", "-"],
    ]
    data = json.loads(cli(tmp_path, "history", "1/my-instance", "--format", "json").stdout)
    assert [(h["number"], h["action"], h["result"]) for h in data["history"]] == [
        (1, "create", "converged"),
        (2, "update", "converged"),
    ]
    assert cli(tmp_path, "history", "nope-svc").returncode == 1


def test_a_closed_pipe_is_not_a_traceback(applied: Path) -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    result = subprocess.run(
        f"{sys.executable} -m reconciler schema | head -1",
        shell=True,
        cwd=applied,
        capture_output=True,
        text=True,
        env=env,
    )
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
