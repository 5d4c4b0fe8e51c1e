"""The `reconciler` command line.

Every command returns an exit code; every error we expect (`ReconcilerError`) is printed as one
line on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TextIO

from . import __version__, engine
from .config import ApiSettings
from .engine import Target
from .errors import ReconcilerError
from .executor import ApplyOptions, Event, Reporter
from .manifests import ManifestErrors, load_manifests
from .plan import Plan, PlanOptions
from .progress import LiveReporter, LogReporter, summary_lines
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
        saved = plan.to_json()
        saved["inputs"] = {
            "paths": [str(Path(p).resolve()) for p in args.paths],
            "prune": options.prune,
            "allow_empty": options.allow_empty,
            "adopt": options.adopt,
            "selector": dict(options.selector),
        }
        _write_atomic(args.out, json.dumps(saved, indent=2) + "\n")
    return 2 if args.detailed_exitcode and plan.has_changes else 0


def _add_apply(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        "--parallelism",
        type=int,
        default=16,
        metavar="N",
        help="most API requests in flight at once (default 16)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=900.0,
        metavar="S",
        help="seconds each deployment may take to converge (default 900)",
    )
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    _add_planning_flags(p)
    _add_target_flags(p)
    p.set_defaults(func=_cmd_apply)


def _saved_plan(path: str) -> tuple[list[str], PlanOptions, str]:
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
            self.live = LiveReporter().__enter__()
        self.live(event)

    def close(self) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


def _confirm(plan: Plan) -> bool:
    answer = input("\nApply these changes? Only 'yes' is accepted: ")
    return answer.strip() == "yes"


def _cmd_apply(args: argparse.Namespace) -> int:
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
        paths, options, fingerprint = args.paths, _options(args), None
    desired = engine.load(paths, target)
    apply_options = ApplyOptions(parallelism=args.parallelism, timeout=args.timeout)
    live_output = args.log_format == "text" and sys.stderr.isatty()
    lazy = _LazyLive()
    reporter: Reporter = lazy if live_output else LogReporter(fmt=args.log_format)

    def on_plan(plan: Plan) -> None:
        if args.log_format == "text":
            sys.stdout.write(render(plan, "text", color=_use_color(sys.stdout)))
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
                    }
                )
            )
    else:
        print("\n".join(lines))
    return 0 if result.ok else 1


def _add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="sync and health of every owned deployment",
        description="Show, for every deployment this reconciler owns, whether the API still "
        "matches what was applied (sync), its health, status, revision and last apply.",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_target_flags(p)
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
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


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run as a long-lived GitOps service",
        description="Watch a manifest directory or a git branch and keep the deployments in "
        "step: reconcile on every change, webhook and interval, correct drift, and expose "
        "/healthz, /readyz, /metrics and /api/status. Stops cleanly on SIGTERM.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--manifests", metavar="DIR", help="watch this directory")
    where.add_argument("--git-url", metavar="URL", help="follow a branch of this repository")
    p.add_argument("--branch", default="main", help="the branch to follow (default main)")
    p.add_argument(
        "--interval",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="seconds between resyncs (git fetch, drift check); default 60",
    )
    p.add_argument(
        "--no-self-heal",
        action="store_true",
        help="report drift (OutOfSync) instead of correcting it",
    )
    p.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="where to serve the HTTP endpoints (default 127.0.0.1:8080)",
    )
    p.add_argument("--parallelism", type=int, default=16, metavar="N")
    p.add_argument("--timeout", type=_seconds, default=900.0, metavar="S")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    _add_planning_flags(p)
    _add_target_flags(p)
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from . import logs
    from .service import ServeOptions, Service
    from .sources import DirectorySource, GitSource, Source
    from .web import run_service

    logs.configure(args.log_format)
    if args.no_adopt:
        raise ReconcilerError("serve always adopts a deployment that has a manifest")
    target = Target.from_env(state=args.state, simulate=args.simulate)
    source: Source
    if args.manifests:
        source = DirectorySource(Path(args.manifests))
    else:
        source = GitSource(args.git_url, args.branch, target.state_path.parent / "git")
    options = ServeOptions(
        interval=args.interval,
        prune=args.prune,
        allow_empty=args.allow_empty,
        self_heal=not args.no_self_heal,
        selector=MappingProxyType(dict(args.selector)),
        apply=ApplyOptions(parallelism=args.parallelism, timeout=args.timeout),
    )
    secret = os.environ.get("RECONCILER_WEBHOOK_SECRET") or None
    service = Service(source, target, options, webhook_secret=secret)
    host, port = args.listen
    asyncio.run(run_service(service, host, port))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="Declarative GitOps reconciler for Gcore Everywhere Inference deployments.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_validate(sub)
    _add_plan(sub)
    _add_apply(sub)
    _add_status(sub)
    _add_serve(sub)
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
