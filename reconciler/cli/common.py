"""What the commands share: argument types, common flags, output helpers.

Imports stay light (see the package docstring): option types are imported where they are built.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, TextIO, TypeAlias

from ..errors import ReconcilerError

if TYPE_CHECKING:
    from ..engine import Target
    from ..execute import ApplyOptions
    from ..model import DesiredState
    from ..plan import PlanOptions

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction  # not subscriptable at run time


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


DEFAULT_MAX_DELETES = 10


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def selector(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def add_target_flags(p: argparse.ArgumentParser) -> None:
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


def add_planning_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prune", action="store_true", help="delete owned deployments with no manifest")
    add_allow_empty(p)
    p.add_argument(
        "--max-deletes",
        type=non_negative_int,
        default=DEFAULT_MAX_DELETES,
        metavar="N",
        help="refuse a plan that deletes more than N deployments (default "
        f"{DEFAULT_MAX_DELETES}; serve: per reconcile)",
    )
    p.add_argument(
        "--selector",
        type=selector,
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


def add_allow_empty(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="accept paths that hold no manifest (and let --prune delete everything); "
        "default: that is an error",
    )


def require_manifests(desired: DesiredState, paths: Sequence[str], allow_empty: bool) -> None:
    """A path with no manifests is a mistake (a typo, a broken checkout) unless said otherwise."""
    if len(desired) or desired.objects or allow_empty:
        return
    where = ", ".join(paths)
    what = (
        "no *.yaml or *.yml file"
        if desired.files == 0
        else f"no deployment in {desired.files} file{'s' if desired.files != 1 else ''}"
    )
    raise ReconcilerError(f"{what} under {where}; pass --allow-empty if that is intended")


def target_of(args: argparse.Namespace) -> Target:
    """The API and state to use; on the simulator, say so first, so nobody mistakes it for the
    real cloud."""
    from ..engine import Target

    target = Target.from_env(state=args.state, simulate=args.simulate)
    if target.simulate:
        if getattr(args, "log_format", "text") == "json":  # keep stderr all JSON lines
            note = json.dumps({"simulated_cloud": str(target.simulator_file)})
        else:
            note = f"(simulated cloud: {target.simulator_file})"
        print(note, file=sys.stderr, flush=True)
    return target


def add_target_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help="only this deployment (NAME or PROJECT/NAME; repeatable)",
    )


def plan_options(args: argparse.Namespace) -> PlanOptions:
    from ..plan import PlanOptions

    return PlanOptions(
        prune=args.prune,
        allow_empty=args.allow_empty,
        adopt=not args.no_adopt,
        selector=MappingProxyType(dict(args.selector)),
        max_deletes=args.max_deletes,
        targets=frozenset(getattr(args, "target", None) or ()),
    )


def use_color(stream: TextIO, choice: str = "auto") -> bool:
    """`--color always|never`, else FORCE_COLOR, else NO_COLOR, else whether it is a terminal
    (https://no-color.org, https://force-color.org)."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("FORCE_COLOR"):
        return True
    if "NO_COLOR" in os.environ:
        return False
    return stream.isatty()


def add_color_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output: auto (default: on a terminal, unless NO_COLOR is set; "
        "FORCE_COLOR forces it), always or never",
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or one line saying why not (a busy port is common)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Connections accepted from it inherit TCP_NODELAY (asyncio sets it only on sockets made with
    # proto IPPROTO_TCP): without it each response waits ~40 ms for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "address in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise ReconcilerError(f"cannot listen on {host}:{port}: {why}") from None
    return sock


def write_atomic(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.replace(target)


def add_execution_flags(p: argparse.ArgumentParser) -> None:
    """How actions run: shared by `apply` and `serve`."""
    p.add_argument(
        "--parallelism",
        type=positive_int,
        default=16,
        metavar="N",
        help="most API requests in flight at once (default 16)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=900.0,
        metavar="S",
        help="seconds each deployment may take to converge (default 900)",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="progress and logs as text lines or JSON lines (default text)",
    )


def apply_options_of(args: argparse.Namespace) -> ApplyOptions:
    if args.parallelism < 1:
        raise ReconcilerError(f"--parallelism must be at least 1, got {args.parallelism}")
    from ..execute import ApplyOptions

    adopt = not getattr(args, "no_adopt", False)
    wait = not getattr(args, "no_wait", False)
    return ApplyOptions(parallelism=args.parallelism, timeout=args.timeout, adopt=adopt, wait=wait)
