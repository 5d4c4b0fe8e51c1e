"""Benchmark: plan 1,000 manifests against a simulator holding those 1,000 deployments.

The simulator runs in its own process (`reconciler simulator`), reached over HTTP, so its CPU
is not counted as ours. Every deployment exists and is recorded first, so the plan is all
noops: the full load, list, normalise and diff path with nothing to skip.

The deployments are seeded into the simulator's state file (all ACTIVE), then planned twice:
in this process, stage by stage (load, list, diff, render), and as `reconciler plan` in its own
process (wall, CPU and peak RSS of that process alone).

    python bench/plan.py [--count 1000] [--runs 3] [--state postgresql://…] [--drift 0.1]

`--state URL` keeps the inventory in that PostgreSQL database (it must be empty: the benchmark
fills it) instead of a SQLite file in a temporary folder.

With `--drift F`, a fraction F of the live deployments differ from their manifests (another
image, one more replica), so the plan holds that many updates and the diff's slow path runs; the
time spent inside deepdiff (which only that path calls) is reported with its share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.api import ApiClient
from reconciler.config import ApiSettings, Secret
from reconciler.engine import fetch_live
from reconciler.manifests import load_desired
from reconciler.plan import PlanOptions, applied_record, make_plan
from reconciler.render import render
from reconciler.state import StateStore, open_store

sys.path.insert(0, str(Path(__file__).parent))
from load import MANIFEST
from simproc import KEY, Run, run_measured, seed_file, simulator_process

ENV = {"HF_TOKEN": "hf_benchmark_token"}


def write_manifests(root: Path, count: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        text = MANIFEST.format(i=i, project=1 + i % 3, team=i % 10)
        (root / f"svc-{i:05d}.yaml").write_text(text)


class DeepDiffTimer:
    """Wraps `deepdiff.DeepDiff` (the diff imports it where it calls it) to add up the time
    inside it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        import deepdiff as diff_module

        self.module = diff_module
        self.original = getattr(diff_module, "DeepDiff", None)
        if self.original is not None:
            diff_module.DeepDiff = self  # type: ignore[attr-defined]

    def __call__(self, *args: object, **kwargs: object) -> object:
        started = time.process_time()
        try:
            return self.original(*args, **kwargs)  # type: ignore[misc]
        finally:
            self.seconds += time.process_time() - started
            self.calls += 1


def drifted(body: dict[str, object], index: int, drift: float) -> dict[str, object]:
    """The live body: every 1/drift-th deployment was changed out of band."""
    if drift <= 0 or index % max(1, round(1 / drift)):
        return body
    containers = [dict(c) for c in body["containers"]]  # type: ignore[attr-defined]
    containers[0] = {**containers[0], "scale": {**containers[0]["scale"], "max": 4}}
    return {**body, "image": "registry.example.com/models/drifted:1", "containers": containers}


def populate(root: Path, sim_file: Path, store: StateStore, drift: float = 0.0) -> None:
    """Every manifest's deployment exists (ACTIVE, in the simulator's file) and is recorded."""
    desired = load_desired([root], env=ENV)
    seed_file(
        sim_file,
        (
            (d.key.project_id, drifted({"name": d.key.name, **d.spec.body()}, i, drift))
            for i, d in enumerate(desired)
        ),
    )
    for d in desired:
        store.save_record(applied_record(d, store.hash_value, applied_at=0, outcome="converged"))


COMPILE = (
    "import compileall, os, reconciler; "
    "compileall.compile_dir(os.path.dirname(reconciler.__file__), quiet=1)"
)


def compile_package() -> None:
    """Compile the package the CLI runs (the one `python -m reconciler` finds from here), as
    installing it does (pip compiles every module): where PYTHONDONTWRITEBYTECODE is set, as in
    the container image, a checkout would otherwise be compiled anew by every run (~0.06 s of a
    plan of 1,000)."""
    subprocess.run([sys.executable, "-c", COMPILE], check=True)


def cli_plan(url: str, root: Path, state: str) -> Run:
    """`reconciler plan` as a user runs it, in its own process (its modules compiled)."""
    env = {**os.environ, **ENV, "GCORE_BASE_URL": url, "GCORE_API_KEY": KEY}
    cmd = [sys.executable, "-m", "reconciler", "plan", str(root), "--state", state]
    run = run_measured(cmd, env)
    assert run.returncode == 0, run.stdout[-2000:]
    return run


async def measure(
    root: Path, api: ApiClient, store: StateStore, drift: float = 0.0
) -> dict[str, float]:
    figures: dict[str, float] = {}
    wall0, cpu0 = time.perf_counter(), time.process_time()

    t = time.process_time()
    desired = load_desired([root], env=ENV)
    figures["load_cpu"] = time.process_time() - t

    records = store.records()
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    gets_before = api.requests[("GET", 200)]
    live = await fetch_live(api, {d.key.project_id for d in desired})
    figures["live_pages"] = api.requests[("GET", 200)] - gets_before
    figures["live_wall"] = time.perf_counter() - t_wall
    figures["live_cpu"] = time.process_time() - t_cpu

    timer = DeepDiffTimer()
    t = time.process_time()
    plan = make_plan(desired, records, live, store.hash_value, PlanOptions())
    figures["diff_cpu"] = time.process_time() - t
    if timer.original is not None:
        timer.module.DeepDiff = timer.original  # type: ignore[attr-defined]
    figures["deepdiff_cpu"] = timer.seconds
    figures["deepdiff_calls"] = timer.calls

    t = time.process_time()
    text = render(plan, "text")
    render(plan, "json")
    figures["render_cpu"] = time.process_time() - t

    figures["wall"] = time.perf_counter() - wall0
    figures["cpu"] = time.process_time() - cpu0
    assert drift > 0 or not plan.has_changes, text[:2000]
    assert len(plan.changes) == len(desired)
    figures["updates"] = plan.summary()["update"]
    return figures


async def main_async(
    count: int, runs: int, as_json: bool, state: str | None, drift: float = 0.0
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "manifests"
        write_manifests(root, count)
        location = state or str(Path(tmp) / "state.db")
        store = open_store(location)
        if store.records():
            raise SystemExit("bench/plan.py: --state must name an empty inventory")
        populate(root, Path(tmp) / "sim.json", store, drift)
        flags = ("--task-queue", "0", "--task-run", "0", "--rollout", "0")
        with simulator_process(*flags, "--state-file", str(Path(tmp) / "sim.json")) as url:
            settings = ApiSettings(base_url=url, api_key=Secret(KEY))
            async with ApiClient(settings) as api:
                results = [await measure(root, api, store, drift) for _ in range(runs)]
            store.close()
            compile_package()
            cli = [cli_plan(url, root, location) for _ in range(runs)]
    best = min(results, key=lambda r: r["wall"])
    own = best["load_cpu"] + best["diff_cpu"] + best["render_cpu"]
    top = min(cli, key=lambda r: r.wall)
    if as_json:
        figures = {
            **{f"inprocess_{k}": v for k, v in best.items()},
            "cli_wall": top.wall,
            "cli_walls": [r.wall for r in cli],
            "cli_cpu": top.cpu,
            "cli_peak_rss_mb": max(r.rss_mb for r in cli),
        }
        print(json.dumps(figures))
        return
    sync = "all in sync" if not drift else f"{best['updates']:.0f} drifted"
    print(
        f"plan: {count} manifests against {count} live deployments ({sync}), "
        f"best of {runs} runs, {os.cpu_count()} cores, state in "
        f"{'PostgreSQL' if state else 'SQLite'}"
    )
    print(f"  wall time                          {best['wall'] * 1000:7.0f} ms")
    print(f"  reconciler CPU: load+validate      {best['load_cpu'] * 1000:7.0f} ms")
    print(f"                  diff+plan          {best['diff_cpu'] * 1000:7.0f} ms")
    share = best["deepdiff_cpu"] / best["diff_cpu"] if best["diff_cpu"] else 0.0
    print(
        f"                  of which deepdiff  {best['deepdiff_cpu'] * 1000:7.0f} ms   "
        f"({best['deepdiff_calls']:.0f} calls, {share:.0%} of diff+plan, "
        f"{best['deepdiff_cpu'] / best['cpu']:.0%} of the whole plan's CPU)"
    )
    print(f"                  render text+json   {best['render_cpu'] * 1000:7.0f} ms")
    print(f"                  sum                {own * 1000:7.0f} ms")
    print(
        f"  live list (HTTP, {best['live_pages']:.0f} pages): "
        f"wall {best['live_wall'] * 1000:.0f} ms, "
        f"client CPU {best['live_cpu'] * 1000:.0f} ms"
    )
    print(f"  whole process CPU                  {best['cpu'] * 1000:7.0f} ms")
    print(
        f"  `reconciler plan` (its own process): wall {top.wall:.2f} s "
        f"(runs {', '.join(f'{r.wall:.2f}' for r in cli)}), CPU {top.cpu:.2f} s, "
        f"peak RSS {max(r.rss_mb for r in cli):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--state", metavar="URL", help="an empty postgresql:// inventory")
    parser.add_argument("--drift", type=float, default=0.0, help="fraction changed out of band")
    args = parser.parse_args()
    asyncio.run(main_async(args.count, args.runs, args.json, args.state, args.drift))


if __name__ == "__main__":
    main()
