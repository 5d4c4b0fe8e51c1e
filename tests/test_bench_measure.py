"""The benchmarks' figures of a command are that command's own: `bench/simproc.run_measured`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))

from simproc import run_measured


def test_a_command_started_by_a_big_process_reports_its_own_peak_rss() -> None:
    """On Linux a child's ru_maxrss starts at its parent's high-water mark: `reconciler plan`
    started by bench/plan.py after its in-process run of 10,000 reported 267 MB, 146 MB its own."""
    held = b"x" * (192 * 2**20)  # this process: over 192 MB resident
    try:
        run = run_measured([sys.executable, "-c", "print('hello')"])
    finally:
        del held
    assert run.returncode == 0
    assert run.stdout == "hello\n"
    assert 0 < run.rss_mb < 100
    assert run.cpu > 0 and run.wall >= run.cpu / 2


def test_the_exit_code_is_the_commands() -> None:
    run = run_measured([sys.executable, "-c", "import sys; print('out'); sys.exit(3)"])
    assert (run.returncode, run.stdout) == (3, "out\n")
