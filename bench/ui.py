"""Benchmark the web page: how fast it answers, and what polling tabs cost the API.

The service runs as its own process (`reconciler serve --interval 600`) against the simulator
over HTTP (in this process, so its request hook counts the service's list calls). With 100
deployments converged:

- the overview and a deployment page: latency of a fresh snapshot (one list per project read
  from the API) and of a cached one (target: fresh under 1 s, half the 2 s refresh period;
  cached under 100 ms);
- five tabs polling the overview every 2 s (as the page's script does) for `--window` seconds:
  the deployment list calls that caused (target: at most one per snapshot period, 2 s, however
  many tabs).

    python bench/ui.py [--count 100] [--window 20] [--tabs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from reconciler.simulator import BackgroundServer, Simulator, SimulatorConfig, Timings

sys.path.insert(0, str(Path(__file__).parent))
from serve import MANIFEST, wait_converged
from simproc import KEY, free_port

TTL = 2.0  # the page's snapshot period (UiOptions.snapshot_ttl)


def timed(client: httpx.Client, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(url)
    response.raise_for_status()
    return time.perf_counter() - started, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--window", type=float, default=20.0, help="polling window, seconds")
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()

    timings = Timings(task_queue=0.05, task_run=0.2, rollout=0.2, delete=0.1)
    simulator = Simulator(SimulatorConfig(api_key=KEY, timings=timings))
    lists: list[float] = []
    lock = threading.Lock()

    def hook(method: str, path: str) -> None:
        if method == "GET" and path.rstrip("/").endswith("/deployments"):
            with lock:
                lists.append(time.monotonic())

    simulator.on_request = hook
    with BackgroundServer(simulator) as sim, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "manifests"
        folder.mkdir()
        for i in range(args.count):
            (folder / f"svc-{i:03d}.yaml").write_text(MANIFEST.format(i=i, description="v0"))
        port = free_port()
        env = {**os.environ, "GCORE_BASE_URL": sim.url, "GCORE_API_KEY": KEY}
        command = [sys.executable, "-m", "reconciler", "serve", "--manifests", str(folder)]
        command += ["--interval", "600", "--listen", f"127.0.0.1:{port}"]
        command += ["--state", str(Path(tmp) / "state.db")]
        service = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_converged(url, args.count)
            figures: dict[str, list[float]] = {}
            sizes: dict[str, int] = {}
            with httpx.Client(timeout=30) as client:
                for name, path in (("overview", "/"), ("deployment", "/deployments/1/svc-001")):
                    for _ in range(args.samples):
                        time.sleep(TTL + 0.1)  # the snapshot has expired: a fresh read
                        fresh, sizes[name] = timed(client, url + path)
                        cached, _ = timed(client, url + path)
                        figures.setdefault(f"{name} fresh", []).append(fresh)
                        figures.setdefault(f"{name} cached", []).append(cached)

                stop = time.monotonic() + args.window
                with lock:
                    before = len(lists)

                def tab() -> None:
                    with httpx.Client(timeout=30) as own:
                        while time.monotonic() < stop:
                            own.get(url + "/")
                            time.sleep(2.0)

                threads = [threading.Thread(target=tab) for _ in range(args.tabs)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                with lock:
                    polled = len(lists) - before
        finally:
            service.terminate()
            service.wait(30)
    print(f"web page: {args.count} deployments converged, service in its own process")
    for name, values in figures.items():
        page = name.split()[0]
        print(
            f"  {name:<18} median {statistics.median(values) * 1000:6.1f} ms, "
            f"max {max(values) * 1000:6.1f} ms ({sizes[page] // 1024} KiB)"
        )
    print(
        f"  {args.tabs} tabs polling every 2 s for {args.window:.0f} s: {polled} deployment list "
        f"calls (target <= {int(args.window / TTL) + 1}: one per {TTL:.0f} s snapshot period)"
    )


if __name__ == "__main__":
    main()
