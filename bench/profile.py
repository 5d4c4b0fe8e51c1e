"""Profile the large runs with pyinstrument: where the reconciler's own time goes.

The simulator runs in its own process (its CPU is not ours); the set-up (writing manifests,
creating the deployments a plan finds) is outside the profiled part.

    python bench/profile.py plan --count 10000
    python bench/profile.py apply --count 2000

Needs `pip install pyinstrument` (a profiling tool, not a dependency of the package).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from reconciler.api import ApiClient
from reconciler.config import ApiSettings, Secret
from reconciler.engine import Target, apply, fetch_live
from reconciler.execute import ApplyOptions
from reconciler.manifests import load_desired
from reconciler.plan import PlanOptions, make_plan
from reconciler.render import render
from reconciler.state import SqliteStateStore

sys.path.insert(0, str(Path(__file__).parent))
from plan import ENV, populate, write_manifests
from simproc import KEY, simulator_process

SMALL = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: svc-{i:05d}, project_id: {project}}}
spec:
  image: nginx:latest
  flavor_name: inference-16vcpu-232gib-1xh100-80gb
  listening_port: 80
  containers: [{{region_id: 1, scale: {{min: 1, max: 3}}}}]
"""


async def profile_plan(root: Path, count: int) -> Profiler:
    write_manifests(root, count)
    store = SqliteStateStore(root.parent / "state.db")
    populate(root, root.parent / "sim.json", store)
    flags = ("--task-queue", "0", "--task-run", "0", "--rollout", "0")
    with simulator_process(*flags, "--state-file", str(root.parent / "sim.json")) as url:
        async with ApiClient(ApiSettings(base_url=url, api_key=Secret(KEY))) as api:
            profiler = Profiler(async_mode="enabled")
            profiler.start()
            desired = load_desired([root], env=ENV)
            live = await fetch_live(api, {d.key.project_id for d in desired})
            plan = make_plan(desired, store.records(), live, store.hash_value, PlanOptions())
            render(plan, "text")
            profiler.stop()
    store.close()
    return profiler


def profile_apply(root: Path, count: int) -> Profiler:
    flags = ("--task-queue", "0.1", "--task-run", "0.4", "--rollout", "0.2")
    with simulator_process(*flags) as url:
        return _profile_apply(url, root, count)


def _profile_apply(url: str, root: Path, count: int) -> Profiler:
    for i in range(count):
        (root / f"svc-{i:05d}.yaml").write_text(SMALL.format(i=i, project=1 + i % 3))
    desired = load_desired([root], env={})
    target = Target(ApiSettings(base_url=url, api_key=Secret(KEY)), root.parent / "state.db")
    profiler = Profiler(async_mode="disabled")  # CPU where it is spent; idle shows as epoll
    profiler.start()
    report = asyncio.run(apply(desired, target, PlanOptions(), ApplyOptions()))
    profiler.stop()
    assert report.ok and len(report.outcomes) == count
    return profiler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("plan", "apply"))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=14, help="lines of the call tree shown")
    args = parser.parse_args()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "manifests"
        root.mkdir()
        if args.what == "plan":
            profiler = asyncio.run(profile_plan(root, args.count))
        else:
            profiler = profile_apply(root, args.count)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.what} {args.count}: process CPU {time.process_time() - cpu0:.2f} s, "
        f"wall {time.perf_counter() - wall0:.2f} s (set-up included), peak RSS {rss:.0f} MB"
    )
    print_top(profiler, args.depth)


def print_top(profiler: Profiler, count: int) -> None:
    """The functions with the most time of their own (self time, summed over call sites)."""
    session = profiler.last_session
    assert session is not None
    own: dict[str, float] = {}
    inclusive: dict[str, float] = {}

    def walk(frame: Frame, seen: frozenset[str]) -> None:
        name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        if name not in seen:  # recursion: count a frame's time once in its inclusive total
            inclusive[name] = inclusive.get(name, 0.0) + frame.time
        for child in frame.children:
            if child.is_synthetic:  # "[self]" and the like: time spent in `frame` itself
                own[name] = own.get(name, 0.0) + child.time
            else:
                walk(child, seen | {name})
        if not frame.children:
            own[name] = own.get(name, 0.0) + frame.time

    root = session.root_frame()
    assert root is not None
    walk(root, frozenset())
    total = root.time
    print(f"profiled {total:.2f} s; top {count} by self time:")
    for name, spent in sorted(own.items(), key=lambda kv: -kv[1])[:count]:
        print(f"  {spent:6.3f} s {spent / total:5.1%}  {name}")
    print(f"top {count} of our own functions by inclusive time:")
    ours = {k: v for k, v in inclusive.items() if "reconciler/" in k}
    for name, spent in sorted(ours.items(), key=lambda kv: -kv[1])[:count]:
        print(f"  {spent:6.3f} s {spent / total:5.1%}  {name}")


if __name__ == "__main__":
    main()
