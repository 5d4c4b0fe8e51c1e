"""`reconciler plan`, `reconciler apply` and `reconciler status`.

The engine (pydantic, httpx, SQLite) and rich load inside the commands, not with the parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..errors import ReconcilerError
from .common import (
    Subparsers,
    add_execution_flags,
    add_planning_flags,
    add_target_flags,
    apply_options_of,
    plan_options,
    use_color,
    write_atomic,
)

if TYPE_CHECKING:
    from .. import engine
    from ..execute import Event, Reporter
    from ..plan import Plan, PlanOptions
    from ..progress import LiveReporter


def add_plan(sub: Subparsers) -> None:
    p = sub.add_parser(
        "plan",
        help="show what apply would do (a dry run)",
        description="Compare manifests with what was applied and what the API reports, and "
        "show the actions that would make them agree. Changes nothing.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.add_argument("--out", metavar="FILE", help="also save the plan as JSON, for apply --plan")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there are no changes, 2 when there are, 1 on error",
    )
    add_planning_flags(p)
    add_target_flags(p)
    p.set_defaults(func=_cmd_plan)


def _cmd_plan(args: argparse.Namespace) -> int:
    import asyncio

    from .. import engine
    from ..engine import Target
    from ..render import render
    from ..state import SqliteStateStore

    target = Target.from_env(state=args.state, simulate=args.simulate)
    desired = engine.load(args.paths, target)
    options = plan_options(args)

    async def run() -> Plan:
        store = SqliteStateStore(target.state_path)
        try:
            async with engine.connect(target) as api:
                plan, _ = await engine.plan_against(desired, store, api, options)
                return plan
        finally:
            store.close()

    plan = asyncio.run(run())
    sys.stdout.write(render(plan, args.format, color=use_color(sys.stdout)))
    if args.out:
        saved = plan.to_json()
        saved["inputs"] = {
            "paths": [str(Path(p).resolve()) for p in args.paths],
            "prune": options.prune,
            "allow_empty": options.allow_empty,
            "adopt": options.adopt,
            "selector": dict(options.selector),
        }
        write_atomic(args.out, json.dumps(saved, indent=2) + "\n")
    return 2 if args.detailed_exitcode and plan.has_changes else 0


def add_apply(sub: Subparsers) -> None:
    p = sub.add_parser(
        "apply",
        help="apply manifests (or a saved plan) and wait until every deployment converges",
        description="Plan, confirm, then create, update, adopt and delete deployments, tracking "
        "each task and waiting until every deployment is healthy. Resumes what an interrupted "
        "apply left unfinished. Exit 0 when all converged, 1 on any failure.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--plan", metavar="FILE", help="apply exactly this saved plan (plan --out)")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    add_execution_flags(p)
    add_planning_flags(p)
    add_target_flags(p)
    p.set_defaults(func=_cmd_apply)


def _saved_plan(path: str) -> tuple[list[str], PlanOptions, str]:
    from ..plan import PlanOptions

    try:
        data = json.loads(Path(path).read_text())
        inputs = data["inputs"]
        if data.get("format_version") != 1:
            raise ReconcilerError(f"{path}: unsupported plan format {data.get('format_version')}")
        options = PlanOptions(
            prune=bool(inputs["prune"]),
            allow_empty=bool(inputs["allow_empty"]),
            adopt=bool(inputs["adopt"]),
            selector=MappingProxyType(dict(inputs["selector"])),
        )
        return list(inputs["paths"]), options, str(data["fingerprint"])
    except OSError as exc:
        raise ReconcilerError(f"{path}: cannot read the plan ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ReconcilerError(f"{path}: not a saved plan (made by plan --out): {exc}") from None


class _LazyLive:
    """Starts the live display at the first event, after any confirmation prompt is done."""

    def __init__(self) -> None:
        self.live: LiveReporter | None = None

    def __call__(self, event: Event) -> None:
        if self.live is None:
            from ..progress import LiveReporter

            self.live = LiveReporter().__enter__()
        self.live(event)

    def close(self) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


def _confirm(plan: Plan) -> bool:
    answer = input("\nApply these changes? Only 'yes' is accepted: ")
    return answer.strip() == "yes"


def _cmd_apply(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from .. import engine
    from ..engine import Target
    from ..progress import LogReporter, summary_lines
    from ..render import render

    if bool(args.plan) == bool(args.paths):
        raise ReconcilerError("give manifest paths, or --plan FILE (not both)")
    if not args.auto_approve and not sys.stdin.isatty():
        raise ReconcilerError(
            "refusing to apply without confirmation: stdin is not a terminal. "
            "Review with `reconciler plan`, then pass --auto-approve"
        )
    target = Target.from_env(state=args.state, simulate=args.simulate)
    if args.plan:
        paths, options, fingerprint = _saved_plan(args.plan)
    else:
        paths, options, fingerprint = args.paths, plan_options(args), None
    desired = engine.load(paths, target)
    apply_options = apply_options_of(args)
    live_output = args.log_format == "text" and sys.stderr.isatty()
    lazy = _LazyLive()
    reporter: Reporter = lazy if live_output else LogReporter(fmt=args.log_format)

    def on_plan(plan: Plan) -> None:
        if args.log_format == "text":
            sys.stdout.write(render(plan, "text", color=use_color(sys.stdout)))
            sys.stdout.flush()

    async def run() -> engine.ApplyReport:
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()
        assert main_task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, main_task.cancel)
        return await engine.apply(
            desired,
            target,
            options,
            apply_options,
            report=reporter,
            confirm=(lambda plan: True) if args.auto_approve else _confirm,
            on_plan=on_plan,
            expected_fingerprint=fingerprint,
        )

    try:
        result = asyncio.run(run())
    except asyncio.CancelledError:
        lazy.close()
        print(
            f"interrupted: operations in flight are journaled in {target.state_path}; "
            "the next apply resumes them",
            file=sys.stderr,
        )
        return 130
    lazy.close()
    if not result.outcomes:
        return 0
    lines = summary_lines(result.outcomes, result.seconds)
    if args.log_format == "json":
        for outcome in result.outcomes:
            print(
                json.dumps(
                    {
                        "deployment": str(outcome.key),
                        "action": outcome.action.value,
                        "result": outcome.result.value,
                        "error": outcome.error,
                        "seconds": round(outcome.seconds, 3),
                        "task_ids": list(outcome.task_ids),
                        "reason": str(outcome.reason or ""),
                    }
                )
            )
    else:
        print("\n".join(lines))
    return 0 if result.ok else 1


def add_status(sub: Subparsers) -> None:
    p = sub.add_parser(
        "status",
        help="sync and health of every owned deployment",
        description="Show, for every deployment this reconciler owns, whether the API still "
        "matches what was applied (sync), its health, status, revision and last apply.",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    add_target_flags(p)
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    import asyncio

    from .. import engine
    from ..engine import Target

    target = Target.from_env(state=args.state, simulate=args.simulate)
    rows = asyncio.run(engine.status(target))
    if args.format == "json":
        print(json.dumps({"deployments": [r.to_json() for r in rows]}, indent=2))
        return 0
    if not rows:
        print("No deployments are owned yet: run `reconciler apply`.")
        return 0
    table = [("DEPLOYMENT", "SYNC", "HEALTH", "STATUS", "REVISION", "LAST APPLIED", "MESSAGE")]
    for row in rows:
        data = row.to_json()
        table.append(
            (
                str(row.key),
                row.sync.value,
                row.health.value,
                row.status or "-",
                (row.revision or "-")[:12],
                str(data["last_applied_at"] or "-"),
                row.message,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0
