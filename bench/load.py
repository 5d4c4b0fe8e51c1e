"""Benchmark: load and validate 1,000 manifests in 1,000 files.

Target: under 1 s on a 2-core machine. Prints the best of several runs, and per file.

    python bench/load.py [--count 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from reconciler.manifests import load_manifests

MANIFEST = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata:
  name: svc-{i:05d}
  project_id: {project}
  labels: {{team: team-{team}}}
spec:
  image: registry.example.com/models/svc-{i}:1.{i}
  flavor_name: inference-16vcpu-232gib-1xh100-80gb
  listening_port: 8080
  description: benchmark deployment {i}
  command: ["python", "-m", "server", "--port", "8080"]
  containers:
    - region_id: 1
      scale:
        min: 1
        max: 3
        cooldown_period: 60
        triggers:
          cpu: {{threshold: 80}}
          memory: {{threshold: 70}}
          http: {{rate: 100, window: 60}}
    - region_id: 2
      scale: {{min: 0, max: 2}}
  envs:
    MODEL: svc-{i}
    HF_TOKEN: "${{HF_TOKEN}}"
  probes:
    readiness_probe:
      enabled: true
      probe:
        http_get: {{port: 8080, path: /health}}
        period_seconds: 5
  logging: {{enabled: true, destination_region_id: 1, retention_policy: {{period: 7}}}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.count):
            folder = root / f"team-{i % 10}"
            folder.mkdir(exist_ok=True)
            text = MANIFEST.format(i=i, project=1 + i % 3, team=i % 10)
            (folder / f"svc-{i:05d}.yaml").write_text(text)
        env = {"HF_TOKEN": "hf_benchmark_token"}
        times: list[float] = []
        cpus: list[float] = []
        for _ in range(args.runs):
            started, cpu = time.perf_counter(), time.process_time()
            state, errors = load_manifests([root], env=env)
            times.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            assert not errors, errors[:3]
            assert len(state) == args.count
    best, worst = min(times), max(times)
    if args.json:
        print(json.dumps({"count": args.count, "best": best, "worst": worst, "cpu": min(cpus)}))
        return
    print(f"load: {args.count} manifests in {args.count} files")
    print(f"  best {best * 1000:.0f} ms, worst {worst * 1000:.0f} ms over {args.runs} runs")
    print(f"  {best / args.count * 1e6:.0f} us per file (target: whole set under 1000 ms)")


if __name__ == "__main__":
    main()
