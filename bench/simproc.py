"""Run `reconciler simulator` in its own process for a benchmark (so its CPU is not ours)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from reconciler.simulator.config import Timings

KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def simulator_process(*flags: str) -> Iterator[str]:
    """A simulator on a free loopback port, with `flags`; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "simulator",
            "--port",
            str(port),
            "--api-key",
            KEY,
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                httpx.get(
                    f"{url}/cloud/v3/inference/flavors", headers={"Authorization": f"APIKey {KEY}"}
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise SystemExit("the simulator did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def seed_file(path: Path, deployments: Iterable[tuple[int, dict[str, Any]]]) -> None:
    """A simulator state file holding these deployments (project, create body), all ACTIVE.

    Much faster than creating them over HTTP, and the same cloud: each body goes through the
    simulator's own validation and `Cloud.create`, at a clock long past every task's end.
    """
    from reconciler.simulator.cloud import Cloud
    from reconciler.simulator.config import SimulatorConfig
    from reconciler.simulator.schema import validate_create

    config = SimulatorConfig(timings=Timings(task_queue=0, task_run=0, rollout=0, delete=0))
    cloud = Cloud(config, clock=lambda: 0.0)
    flavors = {f["name"] for f in config.flavors}
    for project_id, body in deployments:
        spec = validate_create(dict(body), flavors, set(config.regions))
        cloud.create(project_id, spec, request_id="seed")
    cloud.tasks.clear()  # a deployment whose task is unknown counts as created
    cloud.config = replace(config, state_file=str(path))
    cloud.save()


@dataclass(frozen=True)
class Run:
    """One command run in its own process: wall and CPU seconds, peak RSS, exit code, output."""

    wall: float
    cpu: float
    rss_mb: float
    returncode: int
    stdout: str


# A command is started by a small launcher, which reports the command's own figures: on Linux a
# child's peak RSS (ru_maxrss) starts at its parent's (exec keeps the high-water mark of the image
# it replaces), so a `reconciler plan` started straight from a benchmark that has just planned
# 10,000 deployments in-process would report the benchmark's peak, not its own.
LAUNCHER = """
import os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as report:
    cpu = usage.ru_utime + usage.ru_stime
    report.write(f"{os.waitstatus_to_exitcode(status)} {wall} {cpu} {usage.ru_maxrss}")
"""


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run `cmd`; its own wall and CPU time (user+sys) and peak RSS, measured by a launcher
    (see LAUNCHER), not from other children."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "usage"
        launch = [sys.executable, "-c", LAUNCHER, str(report), *cmd]
        proc = subprocess.Popen(launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        out = proc.stdout.read().decode(errors="replace")
        proc.wait()
        code, wall, cpu, rss_kb = report.read_text().split()
    return Run(float(wall), float(cpu), int(rss_kb) / 1024, int(code), out)
