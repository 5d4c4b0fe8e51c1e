"""The README, run as a newcomer would: every `$ reconciler ...` in its console blocks, in a fresh
folder, in order, and every line it shows must still come out.

Normalised before comparing: durations (`2.3s`), clock times and dates, and lines that only a
terminal shows (the live progress table and bar). `...` in the README stands for lines left out.
Blocks that need a PostgreSQL server, a running service or a shell `export` are run by their own
suites (test_state_postgres, test_service, test_ui) and skipped here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .test_cli_fixes import cli

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
SKIP = ("postgresql://", "curl ", "export ", "\\", "docker ", "kubectl ")
# commands a block can run from the README's own files (manifests/, broken/app.yaml)
STANDALONE = {"validate", "plan", "apply", "diff", "status", "state", "get", "destroy", "schema"}
FILE = re.compile(r"\b(?:broken|manifests|examples)/[\w./-]+\.ya?ml\b")
TERMINAL_ONLY = re.compile(r"━|^✓  |^✗  ")  # the live table and bar need a terminal


@dataclass
class Step:
    command: list[str]
    expected: list[str] = field(default_factory=list)
    line: int = 0


def _blocks() -> list[list[Step]]:
    blocks: list[list[Step]] = []
    inside = False
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if line.startswith("```console"):
            inside, steps = True, []
            blocks.append(steps)
            continue
        if inside and line.startswith("```"):
            inside = False
            continue
        if not inside:
            continue
        if line.startswith("$ "):
            text = line[2:]
            words = ["#shell", text] if text.rstrip().endswith("\\") else shlex.split(text)
            steps.append(Step(words, [], number))
        elif steps:
            steps[-1].expected.append(line)
    return blocks


def _runnable(block: list[Step]) -> bool:
    return all(
        s.command[:1] in (["reconciler"], ["sed"])
        and not any(m in " ".join(s.command) for m in SKIP)
        for s in block
    )


def normalise(line: str) -> str:
    line = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>", line)
    line = re.sub(r"\b\d+\.\d+s\b", "<seconds>", line)
    return line.rstrip()


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("newcomer")
    shutil.copytree(ROOT / "manifests", folder / "manifests")
    (folder / "broken").mkdir()
    shutil.copy(ROOT / "tests" / "data" / "readme" / "broken-app.yaml", folder / "broken/app.yaml")
    return folder


def _unprovided(block: list[Step], folder: Path) -> list[str]:
    """Files a block names (arguments, or files its output names) that the README never gives."""
    commands = [s for s in block if s.command[0] == "reconciler"]
    named = {w for s in commands for w in s.command[1:] if "/" in w and not w.startswith("-")}
    named |= {m for s in block for line in s.expected for m in FILE.findall(line)}
    return sorted(n for n in named if not (folder / n).exists())


BLOCKS = [b for b in _blocks() if b and _runnable(b)]


def test_the_readme_has_runnable_examples() -> None:
    commands = {s.command[1] for b in BLOCKS for s in b}
    assert {"validate", "plan", "apply", "state", "get"} <= commands


def test_the_readme_blocks_still_show_what_they_say(newcomer: Path) -> None:
    """Every runnable block, in the README's order, in one folder: a block may stand on what an
    earlier one did (apply, then state list), so they run in one test, never spread over workers.
    """
    ran = 0
    for block in BLOCKS:
        story = sorted({s.command[1] for s in block if s.command[0] == "reconciler"} - STANDALONE)
        if story or _unprovided(block, newcomer):
            continue  # works on another example's live deployments, or files the README omits
        _run_block(newcomer, block)
        ran += 1
    assert ran >= 5, f"only {ran} README blocks could run on their own"


def _run_block(newcomer: Path, block: list[Step]) -> None:
    for step in block:
        if step.command[0] == "sed":  # the edit a block starts from
            subprocess.run(step.command, cwd=newcomer, check=True)
            continue
        result = cli(newcomer, *step.command[1:])
        assert "Traceback" not in result.stderr, result.stderr
        actual = [normalise(x) for x in (result.stdout + result.stderr).splitlines()]
        for shown in step.expected:
            if shown.strip() in ("", "...") or TERMINAL_ONLY.search(shown):
                continue
            assert normalise(shown) in actual, (
                f"README.md:{step.line}: `{' '.join(step.command)}` no longer shows\n"
                f"  {shown}\nit shows:\n  " + "\n  ".join(actual)
            )
