"""Text from manifests cannot drive a terminal, plant a CI command or break out of Markdown."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from reconciler.diff import FieldChange
from reconciler.logs import _Text
from reconciler.manifests import ManifestError
from reconciler.model import DeploymentKey
from reconciler.plan import Action, Change, Plan, Reason
from reconciler.render import render_json, render_markdown, render_text
from reconciler.simulator import BackgroundServer, Faults, Simulator, SimulatorConfig, Timings

from ..conftest import API_KEY, manifest
from ..inproc import run_cli

HOSTILE_KEY = "A\n```\n**Plan: 0 to create** forged\n::error file=x::pwned\x1b[2J\x9b"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def hostile_plan() -> Plan:
    change = Change(
        DeploymentKey(1, "alpha-svc"),
        Action.UPDATE,
        Reason.DRIFT,
        (FieldChange(f"envs.{HOSTILE_KEY}", "a\x1b[31m", "b```` \x07"),),
        source="manifests/x\x1b[2J.yaml:2",
        fields=("envs",),
    )
    return Plan((change,), "sha256:0")


def test_text_plan_escapes_control_characters() -> None:
    text = render_text(hostile_plan())
    assert not CONTROL.search(text)
    assert not any(line.startswith("::") for line in text.splitlines())
    assert "\\x1b[2J" in text


def test_markdown_plan_cannot_be_broken_out_of() -> None:
    text = render_markdown(hostile_plan())
    assert not CONTROL.search(text)
    lines = text.splitlines()
    opening = next(i for i, line in enumerate(lines) if line.endswith("diff"))
    fence = lines[opening].removesuffix("diff")
    closing = lines.index(fence, opening + 1)
    # exactly one line of diff inside the fence, and no line inside can close it
    assert closing == opening + 2
    assert len(fence) > 4  # longer than the run of four backticks in the value
    assert sum(line.startswith("**Plan:") for line in lines) == 1  # the real summary only
    assert not any(line.startswith("::") for line in lines)


def test_json_plan_escapes_c1_and_stays_json() -> None:
    text = render_json(hostile_plan())
    assert not CONTROL.search(text)
    assert json.loads(text)["actions"][0]["changes"][0]["path"] == f"envs.{HOSTILE_KEY}"


def test_manifest_errors_print_on_one_line() -> None:
    error = ManifestError("::error file=a::b.yaml", 3, 1, "spec.x\n::warning::y", "bad \x1b[2J")
    text = str(error)
    assert "\n" not in text and "\x1b" not in text
    assert text.startswith("./::error file=a::b.yaml:3:1: spec.x\\n::warning::y: bad \\x1b[2J")


def test_text_log_lines_are_one_line_each() -> None:
    record = logging.LogRecord(
        "reconciler", logging.ERROR, "f", 1, "x %s", ("a\n::error::b\x1b",), None
    )
    line = _Text().format(record)
    assert "\n" not in line and "\x1b" not in line and "\\n::error::b\\x1b" in line


def test_github_annotations_escape_control_characters() -> None:
    from reconciler.cli.manifests import _github

    text = _github(ManifestError("a.yaml", 3, 1, "spec.x\x1b[2J", "bad\n::error::forged\x07"))
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text
    assert text.count("::error") == 1 + text.count("%0A::error")


def test_the_apis_words_cannot_drive_a_terminal_or_a_runner(tmp_path: Path) -> None:
    # a task's error and a container's message are the API's words (a registry's, a pod's):
    # printed raw, an ESC or a newline and `::error` in them reached the terminal and CI log
    hostile = "pull failed\x1b[2J\n::error file=main.py::forged\x07"
    faults = Faults(task_error_image="broken", stuck_image="stuck")
    config = SimulatorConfig(
        api_key=API_KEY,
        timings=Timings(task_queue=0.02, task_run=0.1, rollout=0.1, delete=0.05),
        faults=faults,
    )
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "a.yaml").write_text(manifest("broken-svc", image="nginx:broken"))
    (folder / "b.yaml").write_text(manifest("stuck-svc", image="nginx:stuck"))
    with BackgroundServer(Simulator(config)) as server:
        cloud = server.simulator.cloud
        cloud._image_error = lambda image: hostile if "broken" in image else None  # type: ignore[method-assign]
        phase = cloud._phase

        def stuck_phase(dep: Any, now: float) -> tuple[str, bool, float, str | None]:
            status, created, ready, error = phase(dep, now)
            return (status, created, ready, hostile if error else error)

        cloud._phase = stuck_phase  # type: ignore[method-assign]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
        env.update(GCORE_BASE_URL=server.url, GCORE_API_KEY=API_KEY)
        state = ("--state", str(tmp_path / "state.db"))
        runs = [  # the words are the point, not the process: in-process (tests/inproc.py)
            run_cli([*args, *state], tmp_path, env)
            for args in (
                ("apply", str(folder), "--auto-approve", "--timeout", "1.5"),
                ("status",),
                ("describe", "stuck-svc"),
                ("plan", str(folder), "--no-preflight"),
            )
        ]
    assert "pull failed" in runs[0].stdout + runs[0].stderr  # the words are there, escaped
    for run in runs:
        text = run.stdout + run.stderr
        assert not CONTROL.search(text.replace("\n", "")), text
        assert not any(line.startswith("::") for line in text.splitlines()), text
