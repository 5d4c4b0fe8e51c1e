"""Benchmark: apply N deployments against the simulator in its own process, over HTTP.

`apply` runs in this process (`engine.apply`, as the CLI runs it), timed from the call to the
last convergence; its CPU is this process's CPU time over that call (the simulator's is not
ours). With `--sdk`, the same N deployments are made instead by the loop a user would write
over the official SDK: `create_and_poll` one at a time, then `get` until ACTIVE at the same
polling interval (`default` is the SDK's own, 3 s; or a number of seconds).

    python bench/apply.py --count 100 [--task 1.0] [--rollout 0.3] [--latency 0.01] [--json]
    python bench/apply.py --count 2000 --state postgresql://...   (an empty inventory)
    python bench/apply.py --count 10 --sdk default
    python bench/apply.py --count 10 --sdk 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reconciler.config import ApiSettings, Secret
from reconciler.engine import Target, apply
from reconciler.execute import ApplyOptions
from reconciler.manifests import load_desired
from reconciler.plan import PlanOptions

sys.path.insert(0, str(Path(__file__).parent))
from simproc import KEY, simulator_process

FLAVOR = "inference-16vcpu-232gib-1xh100-80gb"
MANIFEST = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: {name}, project_id: {project}}}
spec:
  image: nginx:latest
  flavor_name: inference-16vcpu-232gib-1xh100-80gb
  listening_port: 80
  containers: [{{region_id: 1, scale: {{min: 1, max: 3}}}}]
"""


def ours(url: str, count: int, projects: int, root: Path, state: str | None) -> dict[str, Any]:
    folder = root / "manifests"
    folder.mkdir()
    for i in range(count):
        name = f"svc-{i:05d}"
        text = MANIFEST.format(name=name, project=1 + i % projects)
        (folder / f"{name}.yaml").write_text(text)
    target = Target(
        ApiSettings(base_url=url, api_key=Secret(KEY)), root / "state.db", state_url=state
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    desired = load_desired([folder], env={})
    report = asyncio.run(apply(desired, target, PlanOptions(), ApplyOptions()))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert report.ok and len(report.outcomes) == count, report.outcomes[:3]
    return {
        "count": count,
        "wall": wall,
        "cpu": cpu,
        "cpu_per_deployment_ms": cpu / count * 1000,
        "requests": report.requests,
        "requests_per_deployment": report.requests / count,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def sdk_loop(url: str, count: int, interval: str) -> dict[str, Any]:
    from gcore import Gcore

    every = 3 if interval == "default" else int(float(interval))
    client = Gcore(api_key=KEY, base_url=url, cloud_project_id=1)
    if interval != "default":
        client = client.with_options(polling_interval_seconds=every)
    deployments = client.cloud.inference.deployments
    started = time.perf_counter()
    for i in range(count):
        made = deployments.create_and_poll(
            name=f"sdk-{i:05d}",
            image="nginx:latest",
            listening_port=80,
            flavor_name=FLAVOR,
            containers=[{"region_id": 1, "scale": {"min": 1, "max": 3}}],
        )
        while made.status != "ACTIVE":  # the task is done; wait for the replicas too
            time.sleep(every)
            made = deployments.get(made.name)
    wall = time.perf_counter() - started
    client.close()
    return {"count": count, "wall": wall, "sdk_interval": interval}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--projects", type=int, default=1, help="spread over this many projects")
    parser.add_argument("--task", type=float, default=1.0, help="seconds a task runs")
    parser.add_argument("--rollout", type=float, default=0.3, help="seconds replicas take")
    parser.add_argument("--latency", type=float, default=0.01, help="seconds added per request")
    parser.add_argument("--sdk", metavar="INTERVAL", help="run the SDK loop instead: default or S")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--state", help="a postgresql:// URL of an empty inventory (default: SQLite)"
    )
    args = parser.parse_args()
    flags = ["--task-queue", "0", "--task-run", str(args.task), "--rollout", str(args.rollout)]
    flags += ["--latency", str(args.latency), "--page-cap", "1000"]
    with simulator_process(*flags) as url, tempfile.TemporaryDirectory() as tmp:
        if args.sdk:
            figures = sdk_loop(url, args.count, args.sdk)
        else:
            figures = ours(url, args.count, args.projects, Path(tmp), args.state)
    figures["server_seconds"] = args.task + args.rollout
    figures["over_server"] = figures["wall"] - figures["server_seconds"]
    if args.json:
        print(json.dumps(figures))
        return
    who = f"SDK loop (polling {args.sdk})" if args.sdk else "apply"
    print(
        f"{who}: {args.count} deployments, task {args.task} s + rollout {args.rollout} s, "
        f"+{args.latency * 1000:.0f} ms per request"
    )
    for key, value in figures.items():
        print(f"  {key:24} {value:.3f}" if isinstance(value, float) else f"  {key:24} {value}")


if __name__ == "__main__":
    main()
