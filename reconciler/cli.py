"""The `reconciler` command line.

Every command returns an exit code; every error we expect (`ReconcilerError`) is printed as one
line on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TextIO

from . import __version__, engine
from .config import ApiSettings
from .engine import Target
from .errors import ReconcilerError
from .manifests import ManifestErrors, load_manifests
from .plan import Plan, PlanOptions
from .render import render
from .simulator import Faults, Simulator, SimulatorConfig, Timings, serve
from .spec import json_schema
from .state import SqliteStateStore

Command = Callable[[argparse.Namespace], int]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _add_simulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulator",
        help="serve a simulated Gcore inference API over HTTP",
        description="Serve a wire-faithful simulator of Gcore's inference deployments and "
        "tasks API. Point GCORE_BASE_URL at it.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--api-key", help="the only key accepted (default: $GCORE_API_KEY, else any)")
    p.add_argument("--state-file", help="persist the simulated cloud to this JSON file")
    p.add_argument("--page-cap", type=int, default=100, help="most items one list page holds")
    t = p.add_argument_group("timings (seconds)")
    t.add_argument("--task-queue", type=_seconds, default=Timings.task_queue)
    t.add_argument("--task-run", type=_seconds, default=Timings.task_run)
    t.add_argument("--rollout", type=_seconds, default=Timings.rollout)
    t.add_argument("--delete", type=_seconds, default=Timings.delete)
    f = p.add_argument_group("fault injection")
    f.add_argument("--seed", type=int, help="seed the fault RNG for a reproducible run")
    f.add_argument("--latency", type=_seconds, default=0.0, help="seconds added to each request")
    f.add_argument("--error-rate", type=_fraction, default=0.0, help="fraction answered 503")
    f.add_argument("--rate-limit-rate", type=_fraction, default=0.0, help="fraction answered 429")
    f.add_argument("--retry-after", type=_seconds, default=1.0, help="Retry-After of a 429")
    f.add_argument(
        "--lost-response-rate",
        type=_fraction,
        default=0.0,
        help="fraction of mutating requests that take effect, then drop the connection",
    )
    f.add_argument("--task-error-image", metavar="REGEX", help="tasks for these images fail")
    f.add_argument(
        "--stuck-image",
        metavar="REGEX",
        help="deployments of these images stay PARTIALLYDEPLOYED with a container error",
    )
    p.set_defaults(func=_cmd_simulator)


def _cmd_simulator(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        api_key=args.api_key or os.environ.get("GCORE_API_KEY") or None,
        page_cap=args.page_cap,
        state_file=args.state_file,
        timings=Timings(
            task_queue=args.task_queue,
            task_run=args.task_run,
            rollout=args.rollout,
            delete=args.delete,
        ),
        faults=Faults(
            seed=args.seed,
            latency=args.latency,
            error_rate=args.error_rate,
            rate_limit_rate=args.rate_limit_rate,
            retry_after=args.retry_after,
            lost_response_rate=args.lost_response_rate,
            task_error_image=args.task_error_image,
            stuck_image=args.stuck_image,
        ),
    )
    try:
        simulator = Simulator(config)
    except ValueError as exc:
        raise ReconcilerError(str(exc)) from None
    keyed = "the configured API key" if config.api_key else "any non-empty API key"
    print(
        f"simulator: http://{args.host}:{args.port} (accepts {keyed}); "
        f"export GCORE_BASE_URL=http://{args.host}:{args.port}",
        file=sys.stderr,
    )
    serve(simulator, args.host, args.port)
    return 0


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        help="validate manifests and print every error",
        description="Validate manifests (files, or directories searched recursively) and print "
        "every error as FILE:LINE:COL: PATH: MESSAGE. Exit 0 when all are valid, 1 otherwise.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=_cmd_validate)


def _cmd_validate(args: argparse.Namespace) -> int:
    settings = ApiSettings.from_env()
    state, errors = load_manifests(args.paths, default_project_id=settings.project_id)
    for error in errors:
        print(error)
    files = f"{state.files} file{'s' if state.files != 1 else ''}"
    if errors:
        bad = len({e.file for e in errors})
        print(
            f"{len(errors)} error{'s' if len(errors) != 1 else ''} in "
            f"{bad} file{'s' if bad != 1 else ''}; nothing is valid until all are fixed",
            file=sys.stderr,
        )
        return 1
    count = len(state)
    print(f"ok: {count} deployment{'s' if count != 1 else ''} in {files}", file=sys.stderr)
    return 0


def _add_schema(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of a manifest (for editors)",
        description="Print the JSON Schema of a manifest document. Save it and point "
        "yaml-language-server at it with `# yaml-language-server: $schema=PATH`.",
    )
    p.set_defaults(func=_cmd_schema)


def _cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def _selector(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def _add_target_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        metavar="PATH",
        help="state file (default: $RECONCILER_STATE, else .reconciler/state.db)",
    )
    p.add_argument(
        "--simulate",
        action="store_true",
        help="use the embedded simulator (kept beside the state file); needs no API key",
    )


def _add_planning_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prune", action="store_true", help="delete owned deployments with no manifest")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="allow --prune to delete everything when no manifest is found",
    )
    p.add_argument(
        "--selector",
        type=_selector,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only deployments with this label (repeat to require several)",
    )
    p.add_argument(
        "--no-adopt",
        action="store_true",
        help="fail instead of taking over a live deployment that has a manifest but no record",
    )


def _options(args: argparse.Namespace) -> PlanOptions:
    return PlanOptions(
        prune=args.prune,
        allow_empty=args.allow_empty,
        adopt=not args.no_adopt,
        selector=MappingProxyType(dict(args.selector)),
    )


def _add_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    _add_planning_flags(p)
    _add_target_flags(p)
    p.set_defaults(func=_cmd_plan)


def _use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def _write_atomic(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.replace(target)


def _cmd_plan(args: argparse.Namespace) -> int:
    target = Target.from_env(state=args.state, simulate=args.simulate)
    desired = engine.load(args.paths, target)
    options = _options(args)

    async def run() -> Plan:
        store = SqliteStateStore(target.state_path)
        try:
            async with engine.connect(target) as api:
                plan, _ = await engine.plan_against(desired, store, api, options)
                return plan
        finally:
            store.close()

    plan = asyncio.run(run())
    sys.stdout.write(render(plan, args.format, color=_use_color(sys.stdout)))
    if args.out:
        _write_atomic(args.out, render(plan, "json"))
    return 2 if args.detailed_exitcode and plan.has_changes else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="Declarative GitOps reconciler for Gcore Everywhere Inference deployments.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_validate(sub)
    _add_plan(sub)
    _add_schema(sub)
    _add_simulator(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 1
    try:
        return func(args)
    except ManifestErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        count = len(exc.errors)
        print(f"{count} manifest error{'s' if count != 1 else ''}; nothing done", file=sys.stderr)
        return 1
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
