"""Run the CLI in this process as a subprocess would see it: its own environment, working
directory, stdin at end of file (not a terminal), captured stdout and stderr, an exit code.

A Python subprocess costs about half a second of CPU before it does anything; tests that check
what a command says and returns call `main()` here instead. The tests that are about being a
process (no traceback, signals, lazy imports, a terminal) keep real subprocesses.

`--simulate` runs on a simulator whose tasks and rollouts take about 0.2 s instead of about 2 s
(`FAST`): the same lifecycle (NEW, RUNNING, PARTIALLYDEPLOYED, ACTIVE), less waiting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.simulator import SimulatorConfig, Timings

_NOISY = ("httpx", "httpcore", "watchdog", "uvicorn.access")
FAST = Timings(task_queue=0.02, task_run=0.1, rollout=0.1, delete=0.05)


def _fast_config(**config: Any) -> SimulatorConfig:
    config.setdefault("timings", FAST)
    for mode in filter(None, os.environ.get("RECONCILER_TEST_SIM_MODES", "").split(",")):
        config.setdefault(mode.replace("-", "_"), True)
    return SimulatorConfig(**config)


class _Stream(io.TextIOWrapper):
    """A text stream over bytes (so `.buffer` works), never a terminal."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="strict", newline=None)

    def text(self) -> str:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue().decode("utf-8")


@contextlib.contextmanager
def _process_state(cwd: Path, env: Mapping[str, str]) -> Iterator[None]:
    """Swap in `env` and `cwd`, and put back the environment, directory and logging after."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    root = logging.getLogger()
    saved_logging = (list(root.handlers), root.level)
    saved_levels = {name: logging.getLogger(name).level for name in _NOISY}
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        root.handlers[:], level = saved_logging
        root.setLevel(level)
        for name, saved in saved_levels.items():
            logging.getLogger(name).setLevel(saved)


def run_cli(
    args: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`python -m reconciler *args` with `env` in `cwd` and stdin at end of file, in-process."""
    from reconciler import target
    from reconciler.cli import main

    out, err = _Stream(), _Stream()
    saved_config = target.SimulatorConfig
    target.SimulatorConfig = _fast_config  # type: ignore[assignment,misc]
    with (
        _process_state(cwd, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        saved_stdin = sys.stdin
        sys.stdin = io.StringIO("")
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors, --help
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin = saved_stdin
            target.SimulatorConfig = saved_config  # type: ignore[misc]
    argv = [sys.executable, "-m", "reconciler", *args]
    return subprocess.CompletedProcess(argv, code, out.text(), err.text())
