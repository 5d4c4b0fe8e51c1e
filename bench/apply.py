"""Benchmark: how fast apply converges, how many requests it spends, and against the SDK loop.

One run against the simulator in its own process over HTTP, with tasks taking about 1 s
(0.1 s queued + 0.9 s running), 1 s for replicas to come up, and 10 ms added to every request:

- wall time for `apply` to converge 1 deployment, then 100 (target: 100 within 1.5x of 1);
- API requests per converged deployment (target: <= 4 at 100);
- 20 deployments by `apply`, and the same 20 by a plain loop over the official SDK's
  `create_and_poll` with its default polling (the script one would otherwise write), and the
  ratio (target: apply >= 10x faster). The SDK loop waits only for each task; apply waits until
  every deployment is ACTIVE.

    python bench/apply.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from reconciler.config import ApiSettings, Secret
from reconciler.engine import ApplyReport, Target, apply
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


def ours(url: str, project: int, count: int, root: Path) -> ApplyReport:
    folder = root / f"project-{project}"
    folder.mkdir()
    for i in range(count):
        text = MANIFEST.format(name=f"svc-{project}-{i:03d}", project=project)
        (folder / f"svc-{i:03d}.yaml").write_text(text)
    desired = load_desired([folder], env={})
    target = Target(ApiSettings(base_url=url, api_key=Secret(KEY)), folder / "state.db")
    report = asyncio.run(apply(desired, target, PlanOptions(), ApplyOptions()))
    assert report.ok and len(report.outcomes) == count, report.outcomes[:3]
    return report


def sdk_loop(url: str, project: int, count: int) -> float:
    from gcore import Gcore

    client = Gcore(api_key=KEY, base_url=url, cloud_project_id=project)
    started = time.perf_counter()
    for i in range(count):
        client.cloud.inference.deployments.create_and_poll(
            name=f"sdk-{project}-{i:03d}",
            image="nginx:latest",
            listening_port=80,
            flavor_name=FLAVOR,
            containers=[{"region_id": 1, "scale": {"min": 1, "max": 3}}],
        )
    client.close()
    return time.perf_counter() - started


def main() -> None:
    flags = ("--task-queue", "0.1", "--task-run", "0.9", "--rollout", "1.0", "--latency", "0.01")
    with simulator_process(*flags) as url, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = ours(url, 1, 1, root)
        hundred = ours(url, 2, 100, root)
        twenty = ours(url, 3, 20, root)
        sdk = sdk_loop(url, 4, 20)
    print("apply against the simulator over HTTP (task ~1 s, rollout 1 s, +10 ms per request)")
    print(
        f"  converge   1 deployment : {one.seconds:6.2f} s, {one.requests} requests "
        f"({one.requests:.1f} per deployment)"
    )
    print(
        f"  converge 100 deployments: {hundred.seconds:6.2f} s, {hundred.requests} requests "
        f"({hundred.requests / 100:.2f} per deployment; target <= 4)"
    )
    print(f"  100 vs 1: {hundred.seconds / one.seconds:.2f}x the time (target <= 1.5x)")
    print(
        f"  20 deployments: apply {twenty.seconds:.2f} s (until ACTIVE) vs SDK create_and_poll "
        f"loop {sdk:.2f} s (until each task FINISHED): {sdk / twenty.seconds:.1f}x faster "
        "(target >= 10x)"
    )


if __name__ == "__main__":
    main()
