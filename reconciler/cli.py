"""The `reconciler` command line.

Every command returns an exit code; every error we expect (`ReconcilerError`) is printed as one
line on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .config import ApiSettings
from .errors import ReconcilerError
from .manifests import load_manifests
from .simulator import Faults, Simulator, SimulatorConfig, Timings, serve
from .spec import json_schema

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="Declarative GitOps reconciler for Gcore Everywhere Inference deployments.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_validate(sub)
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
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
