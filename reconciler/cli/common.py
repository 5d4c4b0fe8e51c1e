"""What the commands share: argument types, common flags, output helpers.

Imports stay light (see the package docstring): option types are imported where they are built.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, TextIO, TypeAlias

from ..errors import ReconcilerError

if TYPE_CHECKING:
    from ..execute import ApplyOptions
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
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="allow --prune to delete everything when no manifest is found",
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


def plan_options(args: argparse.Namespace) -> PlanOptions:
    from ..plan import PlanOptions

    return PlanOptions(
        prune=args.prune,
        allow_empty=args.allow_empty,
        adopt=not args.no_adopt,
        selector=MappingProxyType(dict(args.selector)),
    )


def use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


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
        type=int,
        default=16,
        metavar="N",
        help="most API requests in flight at once (default 16)",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=900.0,
        metavar="S",
        help="seconds each deployment may take to converge (default 900)",
    )
    p.add_argument("--log-format", choices=("text", "json"), default="text")


def apply_options_of(args: argparse.Namespace) -> ApplyOptions:
    if args.parallelism < 1:
        raise ReconcilerError(f"--parallelism must be at least 1, got {args.parallelism}")
    from ..execute import ApplyOptions

    return ApplyOptions(parallelism=args.parallelism, timeout=args.timeout)
