"""`reconciler logs` and `reconciler rotate-key`.

Log lines are the API's text: control characters are escaped before they reach a terminal.
`rotate-key` replaces an API key (delete, then create) after showing what it will do, and writes
the new secret to its 0600 file; it asks on a terminal unless `--auto-approve`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ReconcilerError
from .common import Subparsers, add_target_flags

if TYPE_CHECKING:
    from ..api.objects import LogLine
    from ..engine import Target

Sleep = Callable[[float], Awaitable[None]]


def printable(text: str) -> str:
    """`text` with control characters (escape sequences, carriage returns) made visible."""
    return "".join(
        c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode() for c in text
    )


def _project(args: argparse.Namespace, target: Target) -> int:
    project = args.project if args.project is not None else target.settings.project_id
    if project is None:
        raise ReconcilerError("no project: pass --project or set GCORE_CLOUD_PROJECT_ID")
    return int(project)


def add_logs(sub: Subparsers) -> None:
    p = sub.add_parser(
        "logs",
        help="print a deployment's logs",
        description="Print a deployment's log lines (oldest first): time, pod, region, message.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--project", type=int, metavar="P", help="default: GCORE_CLOUD_PROJECT_ID")
    p.add_argument("--region", type=int, metavar="R", help="only this region")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument("--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)")
    p.add_argument("--interval", type=float, default=2.0, help=argparse.SUPPRESS)
    add_target_flags(p)
    p.set_defaults(func=_cmd_logs)


def format_line(line: LogLine) -> str:
    region = f"r{line.region_id}" if line.region_id is not None else "-"
    return printable(f"{line.time} {line.pod} {region} {line.message}")


async def follow_logs(
    fetch: Callable[[], Awaitable[list[LogLine]]],
    emit: Callable[[str], None],
    *,
    sleep: Sleep,
    interval: float,
    rounds: int | None = None,
) -> None:
    """Print lines as they come: each round prints the lines not printed yet."""
    seen: set[tuple[str, str, str]] = set()
    done = 0
    while rounds is None or done < rounds:
        for line in await fetch():
            mark = (line.time, line.pod, line.message)
            if mark not in seen:
                seen.add(mark)
                emit(format_line(line))
        done += 1
        if rounds is None or done < rounds:
            await sleep(interval)


def _cmd_logs(args: argparse.Namespace) -> int:
    import asyncio

    from ..api.objects import InferenceObjects
    from ..engine import Target, connect
    from ..errors import ApiError
    from ..model import DeploymentKey, LiveDeployment
    from ..redact import Redactor, live_redactor
    from .inventory import records_at

    target = Target.from_env(state=args.state, simulate=args.simulate)
    project = _project(args, target)
    record = records_at(args.state).get(DeploymentKey(project, args.name))

    async def run() -> None:
        async with connect(target) as api:
            objects = InferenceObjects(api)
            # pods print what they were given (a pulled image, their envs): what the API holds
            # of the deployment's secrets (envs; an owned one's sensitive fields) stays hidden
            redact = Redactor()
            try:
                answer = await api.get_deployment(project, args.name)
                live = LiveDeployment.from_answer(project, answer.model_dump(mode="json"))
                paths = record.sensitive_paths if record is not None else frozenset()
                redact = live_redactor(live.spec_view, paths)
            except ApiError:
                pass  # the logs may still be there; they say what they say

            async def fetch() -> list[LogLine]:
                return await objects.logs(project, args.name, region_id=args.region, tail=args.tail)

            rounds = None if args.follow else 1
            await follow_logs(
                fetch,
                lambda line: print(redact(line)),
                sleep=asyncio.sleep,
                interval=args.interval,
                rounds=rounds,
            )

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    return 0


def add_rotate_key(sub: Subparsers) -> None:
    p = sub.add_parser(
        "rotate-key",
        help="replace an API key and write its new secret",
        description="Replace an inference API key (delete, then create with the same name, "
        "description and expiry) and write the new secret to --secrets-dir. Deployments name "
        "keys by name, so they keep using it.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--project", type=int, metavar="P", help="default: GCORE_CLOUD_PROJECT_ID")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument("--secrets-dir", metavar="DIR", help="default: .reconciler/secrets")
    add_target_flags(p)
    p.set_defaults(func=_cmd_rotate_key)


def secrets_dir_of(args: argparse.Namespace, target: Target) -> Path:
    """`--secrets-dir`, else `secrets/` beside a state file, else under the working directory."""
    if getattr(args, "secrets_dir", None):
        return Path(args.secrets_dir)
    if "://" in str(target.state_path):
        return Path(".reconciler") / "secrets"
    return target.state_path.parent / "secrets"


def _cmd_rotate_key(args: argparse.Namespace) -> int:
    import asyncio

    from ..engine import Target

    target = Target.from_env(state=args.state, simulate=args.simulate)
    project = _project(args, target)
    folder = secrets_dir_of(args, target)
    print(f"  -/+ API key {project}/{args.name}  replace (rotate-key)")
    if not args.auto_approve:
        if not sys.stdin.isatty():
            raise ReconcilerError(
                "rotate-key needs confirmation: stdin is not a terminal (use --auto-approve)"
            )
        if input("Rotate this key? Only 'yes' is accepted: ").strip() != "yes":
            print("rotate-key cancelled: nothing was changed", file=sys.stderr)
            return 1
    path = asyncio.run(rotate_key(target, project, args.name, folder))
    print(f"rotated: API key {project}/{args.name}; secret written to {path}")
    return 0


async def rotate_key(target: Target, project: int, name: str, folder: Path) -> Path:
    """Delete and re-create the key with its live description and expiry; write the secret."""
    from ..api.objects import InferenceObjects
    from ..engine import connect
    from ..errors import NotFoundError
    from ..kinds import Kind, ObjectKey
    from ..objects_apply import write_secret

    async with connect(target) as api:
        objects = InferenceObjects(api)
        try:
            live = await objects.get(Kind.API_KEY, project, name)
        except NotFoundError:
            raise ReconcilerError(f"API key {project}/{name} not found") from None
        body = {k: v for k, v in live.view(Kind.API_KEY).items() if v is not None}
        await objects.delete(Kind.API_KEY, project, name)
        _, secret = await objects.create(Kind.API_KEY, project, name, body)
    if secret is None:
        raise ReconcilerError(f"API key {project}/{name}: the API returned no secret")
    return write_secret(folder, ObjectKey(Kind.API_KEY, project, name), secret)
