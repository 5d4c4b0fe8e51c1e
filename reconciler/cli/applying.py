"""`reconciler apply`: plan, confirm, execute, summarise (`destroy` and `rollback` share it).

The confirmation question runs with Ctrl-C restored to its usual meaning, so Ctrl-C or EOF at
the prompt cancels before anything is sent; afterwards SIGINT and SIGTERM cancel the apply,
whose journal lets the next one resume.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ReconcilerError
from ..textsafe import escape
from .common import (
    Subparsers,
    add_color_flag,
    add_execution_flags,
    add_planning_flags,
    add_target_flag,
    add_target_flags,
    apply_options_of,
    plan_options,
    require_manifests,
    target_of,
    use_color,
)
from .manifests import add_secrets_from
from .planning import warn
from .savedplan import read

if TYPE_CHECKING:
    import asyncio
    import signal

    from .. import engine
    from ..execute import Event, Reporter
    from ..model import DesiredState
    from ..objects_apply import ObjectOutcome
    from ..plan import Plan, PlanOptions
    from ..progress import LiveReporter


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
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="submit and record, but do not wait for convergence (the next apply follows up)",
    )
    add_target_flag(p)
    add_color_flag(p)
    add_execution_flags(p)
    add_planning_flags(p)
    add_target_flags(p)
    add_secrets_from(p)
    p.add_argument(
        "--secrets-dir",
        metavar="DIR",
        help="where API key secrets are written, one 0600 file per key "
        "(default: secrets/ beside the state file)",
    )
    p.set_defaults(func=_cmd_apply)


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
    """Ask on the terminal. Runs inside the event loop, whose SIGINT handler would only act once
    `input()` returned: for the question, Ctrl-C goes back to raising KeyboardInterrupt here,
    and Ctrl-C or Ctrl-D (EOF) means no."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    loop.remove_signal_handler(signal.SIGINT)
    try:
        answer = input("\nApply these changes? Only 'yes' is accepted: ")
    except (KeyboardInterrupt, EOFError):
        print(file=sys.stderr)
        return False  # the SIGINT handler stays off: nothing is left to interrupt
    _cancel_on(loop, signal.SIGINT)
    return answer.strip() == "yes"


def _cancel_on(loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> None:
    import asyncio

    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(sig, task.cancel)


def _check_apply_args(args: argparse.Namespace) -> None:
    """What is wrong with the command line itself, before anything else is looked at."""
    if args.plan and args.paths:
        raise ReconcilerError("give manifest paths, or --plan FILE, not both")
    if not args.plan and not args.paths:
        raise ReconcilerError("give manifest paths, or --plan FILE")
    if args.plan and (
        args.prune or args.selector or args.no_adopt or args.allow_empty or args.target
    ):
        raise ReconcilerError(
            "--plan FILE applies the plan as it was made: "
            "--prune, --selector, --target, --no-adopt and --allow-empty belong to "
            "`reconciler plan`"
        )


def _resuming(target: engine.Target) -> list[str]:
    """What the journal holds open, in words (read before the apply resumes or follows it up):
    work an interrupted apply left, and work `apply --no-wait` submitted without waiting."""
    from .. import engine
    from ..execute import FollowUp

    groups: dict[tuple[FollowUp, str], list[str]] = {}
    for entry in engine.unfinished(target):
        groups.setdefault((entry.follow_up, entry.action.value), []).append(str(entry.key))
    lines = []
    for (follow_up, action), keys in sorted(groups.items()):
        count, named = len(keys), ", ".join(keys)
        if follow_up is FollowUp.NOT_WAITED:
            lines.append(f"following up {count} {action} submitted by apply --no-wait: {named}")
        else:
            lines.append(f"resuming {count} interrupted {action} of {named}")
    return lines


def _cmd_apply(args: argparse.Namespace) -> int:
    from .. import engine

    _check_apply_args(args)
    apply_options_of(args)  # a bad flag is the first thing said
    target = target_of(args)
    asking = not args.auto_approve and not args.plan
    if asking and not sys.stdin.isatty():
        raise ReconcilerError(
            "refusing to apply without confirmation: stdin is not a terminal. "
            "Review with `reconciler plan`, then pass --auto-approve"
        )
    if args.plan:
        paths, options, fingerprint = read(args.plan)
    else:
        paths, options, fingerprint = args.paths, plan_options(args), None
    desired = engine.load(paths, target, secrets_from=args.secrets_from)
    require_manifests(desired, paths, options.allow_empty)
    return execute(args, target, desired, options, fingerprint, asking=asking)


def execute(
    args: argparse.Namespace,
    target: engine.Target,
    desired: DesiredState,
    options: PlanOptions,
    fingerprint: str | None,
    *,
    asking: bool,
) -> int:
    """Resume, plan, show, confirm, apply, summarise: `apply` and `destroy` share it."""
    import asyncio
    import signal

    from .. import engine
    from ..progress import LogReporter, summary_lines
    from ..render import render

    apply_options = apply_options_of(args)
    for line in _resuming(target):
        print(line, file=sys.stderr)
    live_output = args.log_format == "text" and sys.stderr.isatty()
    lazy = _LazyLive()
    reporter: Reporter = lazy if live_output else LogReporter(fmt=args.log_format)
    color = use_color(sys.stdout, args.color)

    def on_plan(plan: Plan) -> None:
        if args.log_format == "json":
            print(json.dumps({"plan": plan.to_json()}, ensure_ascii=False))
        else:
            sys.stdout.write(render(plan, "text", color=color))
        sys.stdout.flush()
        warn(plan)

    async def run() -> engine.ApplyReport:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            _cancel_on(loop, sig)
        return await engine.apply(
            desired,
            target,
            options,
            apply_options,
            engine.ApplyHooks(
                report=reporter,
                confirm=_confirm if asking else (lambda plan: True),
                on_plan=on_plan,
            ),
            expected_fingerprint=fingerprint,
            secrets_dir=Path(args.secrets_dir) if args.secrets_dir else None,
        )

    try:
        result = asyncio.run(run())
    except engine.Declined:
        lazy.close()
        print("Apply cancelled.", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        lazy.close()
        print(
            f"interrupted: operations in flight are journaled in {target.state_shown}; "
            "the next apply resumes them",
            file=sys.stderr,
        )
        return 130
    lazy.close()
    deletes = [o for o in result.object_outcomes if o.action.value == "delete"]
    _print_object_outcomes([o for o in result.object_outcomes if o not in deletes], args)
    if not result.outcomes:
        _print_object_outcomes(deletes, args)
        return 0 if result.ok else 1
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
    _print_object_outcomes(deletes, args)
    return 0 if result.ok else 1


def _print_object_outcomes(done: list[ObjectOutcome], args: argparse.Namespace) -> None:
    for one in done:
        mark = "✓" if one.ok else "✗"
        text = f"{mark} {one.key} {one.action.value}: {one.message}"
        print(escape(text) if args.log_format == "text" else json.dumps(object_json(one)))


def object_json(done: ObjectOutcome) -> dict[str, object]:
    """One object's outcome as a JSON line (the secret file's path, never the secret)."""
    return {
        "kind": done.key.kind.value,
        "project_id": done.key.project_id,
        "name": done.key.name,
        "action": done.action.value,
        "result": "converged" if done.ok else "failed",
        "error": "" if done.ok else done.message,
        "secret_file": done.secret_file,
    }
