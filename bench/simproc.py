"""Run `reconciler simulator` in its own process for a benchmark (so its CPU is not ours)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

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
