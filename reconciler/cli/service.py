"""`reconciler serve` and `reconciler simulator`: the long-lived processes."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..errors import ReconcilerError
from ..simulator.config import Timings  # plain dataclasses: the defaults shown in --help
from .common import (
    Subparsers,
    add_execution_flags,
    add_planning_flags,
    add_target_flags,
    apply_options_of,
    fraction,
    listening_socket,
    seconds,
    target_of,
)
from .manifests import add_secrets_from

SIMULATOR_PORT = 8089  # not 8080: the README runs the simulator and `serve` side by side
SERVE_PORT = 8080  # the Dockerfile's and the Kubernetes probes' port
# the simulator's phases: flag, what it times, default
TIMINGS = (
    ("task-queue", "a task waits as NEW", Timings.task_queue),
    ("task-run", "a task runs", Timings.task_run),
    ("rollout", "replicas take to come up after the task", Timings.rollout),
    ("delete", "a deployment stays DELETING", Timings.delete),
)

if TYPE_CHECKING:
    from ..service import Service
    from ..ui import UiOptions


def add_simulator(sub: Subparsers) -> None:
    p = sub.add_parser(
        "simulator",
        help="serve a simulated Gcore inference API over HTTP",
        description="Serve a wire-faithful simulator of Gcore's inference deployments and "
        "tasks API. Point GCORE_BASE_URL at it.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=SIMULATOR_PORT,
        help=f"port to listen on (default {SIMULATOR_PORT}; `serve` keeps 8080)",
    )
    p.add_argument("--api-key", help="the only key accepted (default: $GCORE_API_KEY, else any)")
    p.add_argument("--state-file", help="persist the simulated cloud to this JSON file")
    p.add_argument(
        "--page-cap", type=int, default=100, help="most items one list page holds (default 100)"
    )
    m = p.add_argument_group("real-API behaviours (README: Fidelity)")
    m.add_argument(
        "--sparse-answers",
        action="store_true",
        help="answer null wherever the SDK allows (and command as a list, tasks without project)",
    )
    m.add_argument(
        "--patch-merge",
        action="store_true",
        help="a PATCH merges nested objects (probes, logging, ingress_opts) instead of replacing",
    )
    t = p.add_argument_group("timings (seconds)")
    for flag, what, default in TIMINGS:
        t.add_argument(f"--{flag}", type=seconds, help=f"seconds {what} (default {default:g})")
    f = p.add_argument_group("fault injection")
    f.add_argument("--seed", type=int, help="seed the fault RNG for a reproducible run")
    f.add_argument("--latency", type=seconds, default=0.0, help="seconds added to each request")
    f.add_argument("--error-rate", type=fraction, default=0.0, help="fraction answered 503")
    f.add_argument("--rate-limit-rate", type=fraction, default=0.0, help="fraction answered 429")
    f.add_argument(
        "--retry-after", type=seconds, default=1.0, help="Retry-After of a 429 (default 1)"
    )
    f.add_argument(
        "--lost-response-rate",
        type=fraction,
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
    from ..simulator import Faults, Simulator, SimulatorConfig, serve

    config = SimulatorConfig(
        api_key=args.api_key or os.environ.get("GCORE_API_KEY") or None,
        page_cap=args.page_cap,
        state_file=args.state_file,
        sparse_answers=args.sparse_answers,
        patch_merge=args.patch_merge,
        timings=Timings(
            **{
                flag.replace("-", "_"): getattr(args, flag.replace("-", "_"))
                for flag, _, _ in TIMINGS
                if getattr(args, flag.replace("-", "_")) is not None
            }
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
    sock = listening_socket(args.host, args.port)
    keyed = "the configured API key" if config.api_key else "any non-empty API key"
    print(
        f"simulator: http://{args.host}:{args.port} (accepts {keyed}); "
        f"export GCORE_BASE_URL=http://{args.host}:{args.port}",
        file=sys.stderr,
    )
    serve(simulator, args.host, args.port, sock=sock)
    return 0


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def add_serve(sub: Subparsers) -> None:
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
        "--git-path",
        metavar="DIR",
        help="with --git-url: the folder inside the repository that holds the manifests "
        "(default: the whole repository)",
    )
    p.add_argument(
        "--interval",
        type=seconds,
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
        default=("127.0.0.1", SERVE_PORT),
        metavar="HOST:PORT",
        help="where to serve the HTTP endpoints (default 127.0.0.1:8080)",
    )
    p.add_argument(
        "--ui-actions",
        action="store_true",
        help="let the web page sync and refresh (needs RECONCILER_UI_TOKEN; read-only without)",
    )
    p.add_argument(
        "--notify-url",
        action="append",
        default=[],
        metavar="URL",
        help="POST a JSON event here on each change of state (failed, drift, manifest errors, "
        "recovery); repeatable",
    )
    add_secrets_from(p)
    p.add_argument(
        "--secrets-dir",
        metavar="DIR",
        help="where API key secrets are written, one 0600 file per key "
        "(default: secrets/ beside the state file)",
    )
    add_execution_flags(p)
    add_planning_flags(p)
    add_target_flags(p)
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from .. import logs
    from ..config import Secret
    from ..service import ServeOptions, Service
    from ..sources import DirectorySource, GitSource, Source
    from ..ui import UiOptions
    from ..urls import redact_url

    logs.configure(args.log_format)
    if args.no_adopt:
        raise ReconcilerError("serve always adopts a deployment that has a manifest")
    if args.git_path and not args.git_url:
        raise ReconcilerError("--git-path is a folder inside --git-url's repository")
    if args.manifests and not Path(args.manifests).is_dir():
        what = "not a directory" if Path(args.manifests).exists() else "no such directory"
        raise ReconcilerError(f"--manifests {args.manifests}: {what}")
    secret = os.environ.get("RECONCILER_WEBHOOK_SECRET") or None
    token = os.environ.get("RECONCILER_UI_TOKEN") or None
    if args.ui_actions and not token:
        raise ReconcilerError("--ui-actions needs RECONCILER_UI_TOKEN set to the page's token")
    for folder in args.secrets_from:
        if not Path(folder).is_dir():
            what = "not a directory" if Path(folder).exists() else "no such directory"
            raise ReconcilerError(f"--secrets-from {folder}: {what}")
    for url in args.notify_url:
        if not url.startswith(("http://", "https://")) or url[-3:] == "://":
            raise ReconcilerError(f"--notify-url: expected an http(s) URL, got {redact_url(url)}")
    ui = UiOptions(actions=args.ui_actions, token=Secret(token) if token else None)
    host, port = args.listen
    sock = listening_socket(host, port)
    target = target_of(args)
    source: Source
    if args.manifests:
        source = DirectorySource(Path(args.manifests))
    else:
        source = GitSource(
            args.git_url, args.branch, target.state_path.parent / "git", args.git_path or ""
        )
    options = ServeOptions(
        interval=args.interval,
        prune=args.prune,
        allow_empty=args.allow_empty,
        self_heal=not args.no_self_heal,
        max_deletes=args.max_deletes,
        selector=MappingProxyType(dict(args.selector)),
        apply=apply_options_of(args),
        secrets_from=tuple(args.secrets_from),
        secrets_dir=Path(args.secrets_dir) if args.secrets_dir else None,
    )
    leases = None
    if target.state_url is not None:  # replicas on one PostgreSQL inventory share the projects
        from ..replicas import ProjectLeases

        leases = ProjectLeases(target.state_url)
    service = Service(source, target, options, webhook_secret=secret, leases=leases)
    try:
        asyncio.run(_serve(service, host, port, ui, args.notify_url, sock))
    finally:
        if leases is not None:
            leases.close()
    return 0


async def _serve(
    service: Service,
    host: str,
    port: int,
    ui: UiOptions,
    notify: list[str],
    sock: socket.socket,
) -> None:
    from ..notify import Notifier
    from ..web import run_service

    notifier = Notifier(notify) if notify else None
    if notifier is not None:
        service.listeners.append(notifier)
    try:
        await run_service(service, host, port, ui, sock=sock)
    finally:
        if notifier is not None:
            await notifier.drain(timeout=3.0)
