"""Benchmark: how fast the loader refuses hostile files (an alias bomb, an oversize file).

Target: each refused in well under 1 s on a 2-core machine. The tests check the bound on work
(nodes built, parser never reached); this prints the time. Best of several runs.

    python bench/hostile.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from reconciler.manifests import load_manifests

MINIMAL = """\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {name: demo-app, project_id: 1}
spec:
  image: nginx:latest
  flavor_name: inference-16vcpu-232gib-1xh100-80gb
  listening_port: 80
  containers: [{region_id: 1, scale: {min: 1, max: 2}}]
"""


def alias_bomb() -> str:
    """9**10 nodes once every alias is expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def best_of(path: Path, runs: int, expect: str) -> float:
    times: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        _, errors = load_manifests([path], env={})
        times.append(time.perf_counter() - started)
        assert any(expect in e.message for e in errors), errors
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.yaml"
        bomb.write_text(alias_bomb())
        big = Path(tmp) / "big.yaml"
        big.write_text(MINIMAL + "#" + "x" * (2 * 1024 * 1024) + "\n")
        figures = {
            "alias_bomb": best_of(bomb, args.runs, "alias bomb"),
            "oversize": best_of(big, args.runs, "the limit is 1 MiB"),
        }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"hostile files refused (best of {args.runs} runs; target: each well under 1000 ms)")
    for name, seconds in figures.items():
        print(f"  {name:<12} {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
