"""The confirmation prompt on a real pseudo-terminal: Ctrl-C and Ctrl-D cancel, nothing is sent."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import pexpect
import pytest

ROOT = Path(__file__).parent.parent
PROMPT = "Only 'yes' is accepted: "


def _spawn(cwd: Path, *args: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCORE_", "RECONCILER_"))}
    env.update(NO_COLOR="1", COLUMNS="100", LINES="40")
    return pexpect.spawn(
        sys.executable,
        ["-m", "reconciler", *args],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(40, 100),
    )


_READ = {"x86_64": "0", "aarch64": "63"}.get(platform.machine())  # read(2)'s number


def _reading_the_terminal(child: pexpect.spawn) -> None:
    """Wait until the child is blocked reading its terminal (Linux: /proc/PID/syscall).

    The prompt shows before `input()` reads: a Ctrl-C sent in between is taken by Python's
    signal handler while no read is under way, and the read that follows waits for a line that
    never comes. A person cannot type that fast; a test can, so it waits for the read first."""
    path = Path(f"/proc/{child.pid}/syscall")
    if _READ is None or not path.exists():
        return
    deadline = time.monotonic() + 20
    while not path.read_text().startswith(f"{_READ} 0x0 "):  # read(0, ...)
        assert time.monotonic() < deadline, "the prompt never read the terminal"
        time.sleep(0.01)


def _nothing_created(cwd: Path) -> bool:
    cloud = cwd / ".reconciler" / "simulator.json"
    return not cloud.exists() or "my-instance" not in json.dumps(json.loads(cloud.read_text()))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "manifests").mkdir()
    source = ROOT / "manifests" / "my-instance.yaml"
    (tmp_path / "manifests" / "my-instance.yaml").write_text(source.read_text())
    return tmp_path


@pytest.mark.parametrize("key", ["ctrl-c", "ctrl-d"])
def test_interrupt_or_eof_at_the_prompt_cancels(workdir: Path, key: str) -> None:
    child = _spawn(workdir, "apply", "--simulate", "manifests/")
    child.expect_exact(PROMPT)
    _reading_the_terminal(child)
    if key == "ctrl-c":
        child.sendintr()
    else:
        child.sendeof()
    child.expect(pexpect.EOF)
    output = child.before
    child.close()
    assert "Apply cancelled." in output
    assert "Traceback" not in output and "EOFError" not in output
    assert child.exitstatus == 1
    assert _nothing_created(workdir)


def test_yes_after_ctrl_c_does_not_apply(workdir: Path) -> None:
    child = _spawn(workdir, "apply", "--simulate", "manifests/")
    child.expect_exact(PROMPT)
    _reading_the_terminal(child)
    child.sendintr()
    child.sendline("yes")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert _nothing_created(workdir)


def test_yes_at_the_prompt_applies(workdir: Path) -> None:
    child = _spawn(workdir, "apply", "--simulate", "manifests/")
    child.expect_exact(PROMPT)
    child.sendline("yes")
    child.expect(pexpect.EOF)
    output = child.before
    child.close()
    assert child.exitstatus == 0, output
    assert "1/my-instance create: converged" in output


def test_a_saved_plan_applies_without_asking(workdir: Path) -> None:
    made = _spawn(workdir, "plan", "--simulate", "manifests/", "--out", "plan.json")
    made.expect(pexpect.EOF)
    made.close()
    assert made.exitstatus == 0
    child = _spawn(workdir, "apply", "--simulate", "--plan", "plan.json")
    index = child.expect_exact([PROMPT, pexpect.EOF])
    output = child.before
    child.close()
    assert index == 1, "apply --plan asked for confirmation"
    assert child.exitstatus == 0, output
