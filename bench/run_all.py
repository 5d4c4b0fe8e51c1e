"""Run every benchmark and write `bench/RESULTS.md`: each figure, its target, and its command.

Every figure comes from a command run in its own process (the command is printed beside it, so
any figure can be checked by hand): `reconciler` itself for start-up and validate, and the
`bench/*.py` scripts (which start the simulator in a process of their own) for the rest. Wall
times on a shared machine are noisy, so the CPU time (user+sys) is given beside them, and the
machine's load average before and after the run is recorded.

    python bench/run_all.py                     # everything (about 20 minutes)
    python bench/run_all.py --quick             # smaller sizes, to check the harness
    python bench/run_all.py --sdk-sizes 1 10    # the SDK loop at fewer sizes (it is slow)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from simproc import run_measured

HERE = Path(__file__).parent
ROOT = HERE.parent
PY = sys.executable


@dataclass
class Row:
    figure: str
    measured: str
    target: str
    met: bool | None
    command: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    sdk: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, measured: str, target: str, met: bool | None, cmd: str) -> None:
        self.rows.append(Row(figure, measured, target, met, cmd))
        mark = {True: "met", False: "NOT met", None: ""}[met]
        print(f"{figure}: {measured} (target {target}) {mark}", flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench(script: str, *args: str) -> tuple[dict[str, Any], str]:
    """Run `python bench/SCRIPT ARGS --json`; its figures and the command (as shown)."""
    cmd = [PY, str(HERE / script), *args, "--json"]
    shown = " ".join(["python", f"bench/{script}", *args])
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{shown} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), shown


def fmt_runs(values: list[float], unit: str = "s") -> str:
    return ", ".join(f"{v:.2f}" for v in values) + f" {unit}"


# -- sections ---------------------------------------------------------------------------------


def startup(report: Report, runs: int) -> None:
    manifest = str(ROOT / "manifests" / "my-instance.yaml")
    env = {**os.environ, "GCORE_CLOUD_PROJECT_ID": "1"}
    for figure, argv, target in (
        ("`reconciler --version` (process start to exit)", ["--version"], 0.10),
        ("`reconciler validate` of one file", ["validate", manifest], 0.25),
    ):
        results = [run_measured([PY, "-m", "reconciler", *argv], env) for _ in range(runs)]
        assert all(r.returncode == 0 for r in results), results[0].stdout
        wall = statistics.median(r.wall for r in results)
        cpu = statistics.median(r.cpu for r in results)
        shown = "reconciler " + " ".join(a.replace(str(ROOT) + "/", "") for a in argv)
        report.add(
            figure,
            f"median {wall:.3f} s wall, {cpu:.3f} s CPU (runs: "
            f"{fmt_runs([r.wall for r in results])})",
            f"<= {target:.2f} s",
            wall <= target,
            f"`{shown}` x{runs}",
        )


def apply_small(report: Report, runs: int) -> None:
    ones = [bench("apply.py", "--count", "1") for _ in range(runs)]
    hundreds = [bench("apply.py", "--count", "100") for _ in range(max(1, runs - 1))]
    over = statistics.median(f["over_server"] for f, _ in ones)
    one_wall = statistics.median(f["wall"] for f, _ in ones)
    report.add(
        "apply 1 deployment, wall over the server's own time (task 1.0 s + rollout 0.3 s)",
        f"+{over:.2f} s (walls: {fmt_runs([f['wall'] for f, _ in ones])}; "
        f"{statistics.median(f['requests'] for f, _ in ones):.0f} requests)",
        "<= +0.4 s",
        over <= 0.4,
        f"`{ones[0][1]}` x{runs}",
    )
    hundred_wall = statistics.median(f["wall"] for f, _ in hundreds)
    ratio = hundred_wall / one_wall
    report.add(
        "apply 100 vs apply 1 (wall)",
        f"{ratio:.2f}x ({hundred_wall:.2f} s vs {one_wall:.2f} s; "
        f"{statistics.median(f['requests_per_deployment'] for f, _ in hundreds):.2f} "
        "requests per deployment)",
        "<= 1.15x",
        ratio <= 1.15,
        f"`{hundreds[0][1]}` x{len(hundreds)}",
    )


def apply_large(report: Report, cpu_count: int, big_count: int) -> None:
    large = ("--task", "0.5", "--rollout", "0.2", "--latency", "0")
    figures, cmd = bench("apply.py", "--count", str(cpu_count), *large)
    per = figures["cpu_per_deployment_ms"]
    report.add(
        f"reconciler's own CPU per converged deployment, apply {cpu_count:,}",
        f"{per:.2f} ms ({figures['cpu']:.1f} s CPU, {figures['wall']:.1f} s wall)",
        "<= 1.5 ms",
        per <= 1.5,
        f"`{cmd}`",
    )
    figures, cmd = bench("apply.py", "--count", str(big_count), "--projects", "3", *large)
    ok = (
        figures["wall"] <= 25
        and figures["peak_rss_mb"] <= 150
        and figures["requests_per_deployment"] <= 1.02
    )
    report.add(
        f"apply {big_count:,}: wall / peak RSS / requests per deployment",
        f"{figures['wall']:.1f} s / {figures['peak_rss_mb']:.0f} MB / "
        f"{figures['requests_per_deployment']:.3f} ({figures['cpu']:.1f} s CPU)",
        "<= 25 s / <= 150 MB / <= 1.02",
        ok,
        f"`{cmd}`",
    )


def plans(report: Report, small: int, big: int) -> None:
    figures, cmd = bench("plan.py", "--count", str(small), "--runs", "3")
    report.add(
        f"plan {small:,}, wall of the CLI",
        f"{figures['cli_wall']:.2f} s best (runs: {fmt_runs(figures['cli_walls'])}), "
        f"{figures['cli_cpu']:.2f} s CPU",
        "<= 0.8 s",
        figures["cli_wall"] <= 0.8,
        f"`{cmd}`",
    )
    figures, cmd = bench("plan.py", "--count", str(big), "--runs", "1")
    report.add(
        f"plan {big:,} (all unchanged), wall / peak RSS of the CLI",
        f"{figures['cli_wall']:.1f} s / {figures['cli_peak_rss_mb']:.0f} MB "
        f"({figures['cli_cpu']:.1f} s CPU)",
        "<= 4 s / <= 150 MB",
        figures["cli_wall"] <= 4 and figures["cli_peak_rss_mb"] <= 150,
        f"`{cmd}`",
    )


def loads(report: Report, sizes: tuple[int, ...]) -> None:
    for count in sizes:
        figures, cmd = bench("load.py", "--count", str(count), "--runs", "3")
        report.add(
            f"load and validate {count:,} manifests ({count:,} files)",
            f"{figures['best']:.2f} s best wall, {figures['cpu']:.2f} s CPU "
            f"({figures['cpu'] / count * 1e6:.0f} us CPU per file)",
            "(none; 1,000 under 1 s)" if count != 1000 else "< 1 s",
            None if count != 1000 else figures["best"] < 1,
            f"`{cmd}`",
        )


def serve(report: Report, idle: int) -> None:
    figures, cmd = bench("serve.py", "--idle", str(idle))
    report.add(
        "serve: change on disk -> first API call (100 deployments)",
        f"median {figures['latency_median'] * 1000:.0f} ms, max "
        f"{figures['latency_max'] * 1000:.0f} ms over {figures['changes']} changes",
        "< 1 s (300 ms is the debounce)",
        figures["latency_max"] < 1,
        f"`{cmd}`",
    )
    report.add(
        f"serve: idle CPU over {idle} s (one resync included)",
        f"{figures['idle_cpu_fraction'] * 100:.2f} % of one core",
        "< 1 %",
        figures["idle_cpu_fraction"] < 0.01,
        f"`{cmd}`",
    )


def sdk_side_by_side(report: Report, sizes: list[int]) -> None:
    for count in sizes:
        ours, ours_cmd = bench("apply.py", "--count", str(count))
        row = [f"{count}", f"{ours['wall']:.2f} s (`{ours_cmd}`)"]
        for interval in ("default", "1"):
            sdk, sdk_cmd = bench("apply.py", "--count", str(count), "--sdk", interval)
            row.append(f"{sdk['wall']:.2f} s, {sdk['wall'] / ours['wall']:.1f}x (`{sdk_cmd}`)")
            print(f"SDK loop {interval} x{count}: {sdk['wall']:.2f} s", flush=True)
        report.sdk.append((row[0], row[1], row[2], row[3]))


# -- the report -------------------------------------------------------------------------------


def write(report: Report, path: Path, header: list[str]) -> None:
    lines = ["# Benchmark results", "", *header, ""]
    lines += ["| figure | measured | target | met | command |", "|---|---|---|---|---|"]
    for r in report.rows:
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        lines.append(f"| {r.figure} | {r.measured} | {r.target} | {met} | {r.command} |")
    if report.sdk:
        lines += [
            "",
            "## Side by side: apply against the loop a user would write over the official SDK",
            "",
            "Same simulator settings (task 1.0 s, rollout 0.3 s, +10 ms per request). The SDK",
            "loop is `create_and_poll` one deployment at a time, then `get` until ACTIVE at the",
            "same interval (apply waits until ACTIVE too).",
            "",
            "| deployments | apply | SDK loop, default polling (3 s) | SDK loop, "
            "`polling_interval_seconds=1` |",
            "|---|---|---|---|",
        ]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in report.sdk]
    if report.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in report.notes]]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--sdk-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument(
        "--only",
        nargs="*",
        choices=("startup", "apply", "large", "plan", "load", "serve", "sdk"),
        help="run only these sections",
    )
    parser.add_argument("--note", action="append", default=[], help="a line for the notes")
    args = parser.parse_args()
    quick = args.quick
    sdk_sizes = args.sdk_sizes
    if sdk_sizes is None:
        sdk_sizes = [1, 2] if quick else [1, 10, 100]
    sections: dict[str, Callable[[Report], None]] = {
        "startup": lambda r: startup(r, 3 if quick else 7),
        "apply": lambda r: apply_small(r, 2 if quick else 3),
        "large": lambda r: apply_large(r, 200 if quick else 2000, 500 if quick else 10_000),
        "plan": lambda r: plans(r, 100 if quick else 1000, 300 if quick else 10_000),
        "load": lambda r: loads(r, (100,) if quick else (1000, 10_000)),
        "serve": lambda r: serve(r, 10 if quick else 65),
        "sdk": lambda r: sdk_side_by_side(r, sdk_sizes),
    }
    report = Report(notes=list(args.note))
    before, started = load_average(), time.time()
    for name, run in sections.items():
        if args.only and name not in args.only:
            continue
        run(report)
    after = load_average()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    header = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))} "
        f"({(time.time() - started) / 60:.0f} min) at commit {commit or '?'}, "
        f"`python bench/run_all.py{' --quick' if quick else ''}`, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores.",
        f"Load average (1, 5, 15 min) before: {before}; after: {after}. The machine was "
        "shared with other builds and test runs while this ran, so wall times carry their "
        "contention; CPU times (user+sys of the process measured) are given beside them.",
        "Simulator in its own process over loopback HTTP; small runs: task 1.0 s, rollout "
        "0.3 s, +10 ms per request; large runs: task 0.5 s, rollout 0.2 s; list pages of up "
        "to 1,000 for apply (the tasks API's documented maximum), the simulator's default "
        "100 for plan.",
    ]
    write(report, Path(args.out), header)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
