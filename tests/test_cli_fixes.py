"""CLI traps that once let a mistake pass, or hid its cause (issue 11's "Fix" list).

Each test runs the real command (in-process as a subprocess would see it, tests/inproc.py) in a
temporary working directory, on the embedded simulator (or with no key at all, where the point is
that nothing is contacted).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .inproc import run_cli

ROOT = Path(__file__).parent.parent


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    clean.pop("FORCE_COLOR", None)
    clean.update(env or {})
    return run_cli(args, cwd, clean)  # in-process: see tests/inproc.py


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "manifests").mkdir()
    shutil.copy(ROOT / "manifests" / "my-instance.yaml", tmp_path / "manifests")
    (tmp_path / "empty").mkdir()
    return tmp_path


# -- a path with no manifests is not success -------------------------------------------------


@pytest.mark.parametrize(
    "command", [["validate"], ["plan", "--simulate"], ["apply", "--simulate", "--auto-approve"]]
)
def test_a_missing_path_is_an_error(work: Path, command: list[str]) -> None:
    result = cli(work, *command, "manifsts/")
    assert result.returncode == 1
    assert "manifsts" in result.stderr + result.stdout
    assert "no such file or directory" in result.stderr + result.stdout


@pytest.mark.parametrize(
    "command", [["validate"], ["plan", "--simulate"], ["apply", "--simulate", "--auto-approve"]]
)
def test_an_empty_folder_is_an_error_unless_allowed(work: Path, command: list[str]) -> None:
    # failed before: `validate empty/` said "ok: 0 deployments", plan and apply exited 0
    result = cli(work, *command, "empty/")
    assert result.returncode == 1, result.stdout
    assert "no *.yaml or *.yml file under empty/; pass --allow-empty" in result.stderr
    allowed = cli(work, *command, "empty/", "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr


def test_a_folder_of_non_manifests_yaml_says_how_many_files(work: Path) -> None:
    (work / "empty" / "notes.yaml").write_text("# nothing here\n")
    result = cli(work, "validate", "empty/")
    assert result.returncode == 1
    assert "no deployment in 1 file under empty/" in result.stderr


# -- errors in the order a user fixes them ---------------------------------------------------


def test_a_missing_key_comes_before_the_confirmation_question(work: Path) -> None:
    # failed before: without a terminal, the refusal to ask hid the missing key
    result = cli(work, "apply", "manifests/")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: GCORE_API_KEY is not set: export your Gcore API key, or use --simulate"
    ]


def test_neither_paths_nor_plan_does_not_say_not_both(work: Path) -> None:
    result = cli(work, "apply", "--simulate")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "error: give manifest paths, or --plan FILE"
    both = cli(work, "apply", "--simulate", "manifests/", "--plan", "p.json")
    assert both.stderr.splitlines()[-1] == "error: give manifest paths, or --plan FILE, not both"


@pytest.mark.parametrize(
    ("flag", "value", "text"),
    [("--timeout", "0", "must be more than 0 seconds"), ("--parallelism", "0", "at least 1")],
)
def test_bad_flags_are_refused_before_anything_else(
    work: Path, flag: str, value: str, text: str
) -> None:
    # no key, no terminal and a bad manifest path: the flag is still the first thing said
    result = cli(work, "apply", "nowhere/", flag, value)
    assert result.returncode == 2
    assert text in result.stderr and "Traceback" not in result.stderr
    assert not (work / ".reconciler").exists()


# -- saved plans -------------------------------------------------------------------------------


def test_a_saved_plan_is_portable_between_checkouts(
    work: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    made = cli(work, "plan", "--simulate", "manifests/", "--out", "plan.json")
    assert made.returncode == 0, made.stderr
    saved = json.loads((work / "plan.json").read_text())
    assert saved["inputs"]["paths"] == ["manifests"]  # failed before: an absolute path
    other = tmp_path_factory.mktemp("other-checkout")
    shutil.copytree(work / "manifests", other / "manifests")
    assert not (work / ".reconciler").exists()  # plan --out creates no state to carry over
    shutil.copy(work / "plan.json", other / "plan.json")
    shutil.rmtree(work / "manifests")  # the first checkout is gone
    applied = cli(other, "apply", "--simulate", "--plan", "plan.json")
    assert applied.returncode == 0, applied.stderr
    assert "1/my-instance create: converged" in applied.stdout


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format_version": 1, "fingerprint": "sha256:x"}', "it has no `inputs`"),
        ('{"format_version": 7}', "unsupported format_version 7"),
        (
            '{"format_version": 1, "fingerprint": "sha256:x", "inputs": {"paths": ["m"]}}',
            "`inputs.prune` must be true or false",
        ),
    ],
)
def test_a_bad_plan_file_says_what_is_wrong(work: Path, content: str, said: str) -> None:
    # failed before: "not a saved plan (made by plan --out): 'inputs'", a raw KeyError's words
    # (--auto-approve: the old apply --plan asked first; a saved plan no longer asks)
    (work / "plan.json").write_text(content)
    result = cli(work, "apply", "--simulate", "--auto-approve", "--plan", "plan.json")
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert said in line and "KeyError" not in line


# -- wording -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("apiVersion: reconciler/v1\nkind: InferenceDeployment\nmetadata:\n\tname: x\n", "4:1"),
        ("metadata:\n  name: x\n\tproject_id: 1\n", "3:1"),
    ],
)
def test_a_tab_in_yaml_says_tabs_are_not_allowed(work: Path, text: str, where: str) -> None:
    # failed before: with libyaml's loader, "found character that cannot start any token"
    (work / "tabs.yaml").write_text(text)
    result = cli(work, "validate", "tabs.yaml")
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        f"tabs.yaml:{where}: YAML syntax error: tabs are not allowed for indentation"
    )


def test_log_format_json_still_shows_the_plan(work: Path) -> None:
    # failed before: with --log-format json the plan was not shown at all
    result = cli(
        work, "apply", "--simulate", "--auto-approve", "--log-format", "json", "manifests/"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    plans = [line["plan"] for line in lines if "plan" in line]
    assert len(plans) == 1 and plans[0]["summary"]["create"] == 1


@pytest.mark.parametrize(
    "command",
    [
        ["plan", "manifests/"],
        ["apply", "--auto-approve", "manifests/"],
        ["status"],
    ],
)
def test_the_simulator_says_so_first(work: Path, command: list[str]) -> None:
    result = cli(work, *command, "--simulate")
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first == "(simulated cloud: .reconciler/simulator.json)"


def test_every_flag_in_help_has_a_description_and_its_default() -> None:
    from reconciler.cli import build_parser

    parser = build_parser()
    missing = []
    no_default = []
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        for action in sub._actions:
            if not action.option_strings or action.help == "==SUPPRESS==":
                continue
            flag = f"{name} {action.option_strings[-1]}"
            if not action.help:
                missing.append(flag)
            elif (
                action.default not in (None, False, [], "==SUPPRESS==")
                and "default" not in action.help
            ):
                no_default.append(flag)
    assert missing == []
    assert no_default == []


# -- read-only commands ------------------------------------------------------------------------


def test_plan_and_status_do_not_create_the_state(work: Path) -> None:
    # failed before: both created .reconciler/state.db (and its key) on a mere read
    planned = cli(work, "plan", "--simulate", "manifests/", "--state", "st/state.db")
    assert planned.returncode == 0, planned.stderr
    assert "1 to create" in planned.stdout
    shown = cli(work, "status", "--simulate", "--state", "st/state.db")
    assert shown.returncode == 0, shown.stderr
    assert "No deployments are owned yet" in shown.stdout
    assert not (work / "st").exists()


def test_plan_out_does_not_create_the_state_and_its_plan_applies(work: Path) -> None:
    # failed before: plan --out created st/state.db and its key, to fingerprint the secrets
    # (every envs value is one) with the state's key
    first = cli(work, "plan", "--simulate", "manifests/", "--state", "st/state.db", "--out", "p1")
    assert first.returncode == 0, first.stderr
    assert not (work / "st").exists()
    second = cli(work, "plan", "--simulate", "manifests/", "--state", "st/state.db", "--out", "p2")
    assert second.returncode == 0, second.stderr
    fingerprints = [json.loads((work / p).read_text())["fingerprint"] for p in ("p1", "p2")]
    assert fingerprints[0] == fingerprints[1]  # the same inputs, the same fingerprint
    applied = cli(work, "apply", "--simulate", "--state", "st/state.db", "--plan", "p1")
    assert applied.returncode == 0, applied.stderr  # the saved plan's fingerprint held
    assert "1/my-instance create: converged" in applied.stdout


def test_a_secret_changed_after_plan_out_on_no_state_makes_the_plan_stale(work: Path) -> None:
    manifest = work / "manifests" / "my-instance.yaml"
    manifest.write_text(manifest.read_text().replace('"False"', '"${MODE}"'))
    made = cli(work, "plan", "--simulate", "manifests/", "--out", "p.json", env={"MODE": "q7x1"})
    assert made.returncode == 0, made.stderr
    assert "q7x1" not in (work / "p.json").read_text()
    stale = cli(work, "apply", "--simulate", "--plan", "p.json", env={"MODE": "q7x2"})
    assert stale.returncode == 1
    assert "plan is stale" in stale.stderr
    assert "No deployments are owned yet" in cli(work, "status", "--simulate").stdout


# -- validate --format ---------------------------------------------------------------------------


def _broken(work: Path) -> None:
    (work / "broken").mkdir()
    text = (ROOT / "manifests" / "my-instance.yaml").read_text()
    (work / "broken" / "app.yaml").write_text(
        text.replace("listening_port: 80", "listening_port: 0")
    )


def test_validate_format_github_gives_annotations(work: Path) -> None:
    _broken(work)
    result = cli(work, "validate", "--format", "github", "broken/")
    assert result.returncode == 1
    [line] = result.stdout.splitlines()
    assert re.fullmatch(
        r"::error file=broken/app\.yaml,line=\d+,col=\d+,title=spec\.listening_port::"
        r"must be at least 1, got number 0",
        line,
    ), line


def test_validate_format_json(work: Path) -> None:
    _broken(work)
    bad = cli(work, "validate", "--format", "json", "broken/")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["valid"] is False
    [error] = report["errors"]
    assert error["file"] == "broken/app.yaml" and error["path"] == "spec.listening_port"
    good = cli(work, "validate", "--format", "json", "manifests/")
    assert good.returncode == 0
    assert json.loads(good.stdout) == {
        "valid": True,
        "files": 1,
        "deployments": 1,
        "objects": 0,
        "errors": [],
    }


# -- the deletion budget -----------------------------------------------------------------------


def test_a_plan_over_the_deletion_budget_is_refused(work: Path) -> None:
    from .conftest import manifest

    for name in ("alpha-svc", "beta-svc", "gamma-svc"):
        (work / "manifests" / f"{name}.yaml").write_text(manifest(name))
    applied = cli(work, "apply", "--simulate", "--auto-approve", "manifests/")
    assert applied.returncode == 0, applied.stderr
    for name in ("alpha-svc", "beta-svc", "gamma-svc"):
        (work / "manifests" / f"{name}.yaml").unlink()
    refused = cli(work, "plan", "--simulate", "--prune", "--max-deletes", "2", "manifests/")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        "error: the plan would delete 3 deployments, more than the budget of 2 (a renamed "
        "folder or a bad merge must not empty production); if this is intended, "
        "pass --max-deletes 3"
    )
    also = cli(
        work, "apply", "--simulate", "--auto-approve", "--prune", "--max-deletes", "2", "manifests/"
    )
    assert also.returncode == 1 and "more than the budget of 2" in also.stderr
    allowed = cli(work, "plan", "--simulate", "--prune", "--max-deletes", "3", "manifests/")
    assert allowed.returncode == 0 and "3 to delete" in allowed.stdout


async def test_serve_keeps_the_same_budget(tmp_path: Path) -> None:
    from reconciler.config import ApiSettings, Secret
    from reconciler.engine import Target
    from reconciler.service import ServeOptions, Service
    from reconciler.sources import DirectorySource

    from .conftest import API_KEY, manifest
    from .uiharness import APPLY, sim_server

    folder = tmp_path / "m"
    folder.mkdir()
    names = ["alpha-svc", "beta-svc", "gamma-svc"]
    for name in names:
        (folder / f"{name}.yaml").write_text(manifest(name))
    (folder / "keep-svc.yaml").write_text(manifest("keep-svc"))
    with sim_server() as server:  # quick timings: the lifecycle's length is not the point
        settings = ApiSettings(base_url=server.url, api_key=Secret(API_KEY))
        service = Service(
            DirectorySource(folder),
            Target(settings, tmp_path / "state.db"),
            ServeOptions(prune=True, max_deletes=2, apply=APPLY),
        )
        first = await service.reconcile_once()
        assert first.result == "ok", first.errors
        for name in names:
            (folder / f"{name}.yaml").unlink()
        refused = await service.reconcile_once()
        assert refused.result == "error"
        assert "more than the budget of 2" in refused.errors[0]
        assert all((1, n) in server.simulator.cloud.deployments for n in names)
