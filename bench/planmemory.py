"""Memory of a plan, stage by stage: the RSS after loading the manifests, reading the records,
listing the live deployments and making the plan, in one process, as `engine.plan_against`
holds them (records and live answers kept compact).

    python bench/planmemory.py [--count 10000]

The simulator runs in its own process, seeded as in bench/plan.py (every deployment exists, is
recorded, and is in sync). Linux only (RSS from /proc/self).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from reconciler.api import ApiClient
from reconciler.config import ApiSettings, Secret
from reconciler.engine import fetch_live
from reconciler.manifests import load_desired
from reconciler.model import DeploymentKey, LiveDeployment
from reconciler.plan import PlanOptions, make_plan
from reconciler.state import open_store

sys.path.insert(0, str(Path(__file__).parent))
from plan import ENV, populate, write_manifests
from simproc import KEY, simulator_process


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would start at its parent's peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000)
    count = parser.parse_args().count
    with tempfile.TemporaryDirectory() as tmp:
        root, state = Path(tmp) / "manifests", str(Path(tmp) / "state.db")
        write_manifests(root, count)
        seeding = open_store(state)
        populate(root, Path(tmp) / "sim.json", seeding)
        seeding.close()
        flags = ("--task-queue", "0", "--task-run", "0", "--rollout", "0")
        with simulator_process(*flags, "--state-file", str(Path(tmp) / "sim.json")) as url:
            # in a fresh process: this one has held 10,000 deployments while seeding
            subprocess.run(
                [sys.executable, __file__, "--measure", url, str(root), state], check=True
            )


def measure(url: str, root: str, state: str) -> None:
    stages = [("imports", rss_mb())]
    desired = load_desired([root], env=ENV)
    stages.append(("desired state", rss_mb()))
    store = open_store(state)
    records = {k: r.compacted() for k, r in store.records().items()}  # as plan_against keeps them
    stages.append(("records", rss_mb()))

    async def listed() -> dict[DeploymentKey, LiveDeployment]:
        settings = ApiSettings(base_url=url, api_key=Secret(KEY))
        async with ApiClient(settings) as api:
            return await fetch_live(api, {d.key.project_id for d in desired}, compact=True)

    live = asyncio.run(listed())
    stages.append(("live", rss_mb()))
    plan = make_plan(desired, records, live, store.hash_value, PlanOptions())
    stages.append(("plan", rss_mb()))
    assert not plan.has_changes and len(plan.changes) == len(desired)
    previous = 0.0
    print(f"plan memory, {len(desired)} deployments (RSS after each stage, one process)")
    for name, mb in stages:
        print(f"  {name:14s} {mb:6.0f} MB  (+{mb - previous:.0f})")
        previous = mb
    print(f"  peak RSS       {peak_mb():6.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--measure":
        measure(*sys.argv[2:])
    else:
        main()
