"""`reconciler destroy PATH...`: delete the owned deployments those manifests describe.

It is an apply whose desired set is empty and whose scope is the manifests' deployments: the
same plan first, the same confirmation, journal and exit codes, the same safety as `--prune`
(only what this reconciler owns; `reconciler/prune: "false"` protects unless `--force`; the
deletion budget `--max-deletes`). Objects (credentials, secrets, API keys) are left alone.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ReconcilerError
from .common import (
    DEFAULT_MAX_DELETES,
    Subparsers,
    add_color_flag,
    add_execution_flags,
    add_target_flag,
    add_target_flags,
    apply_options_of,
    non_negative_int,
    require_manifests,
    target_of,
)


def add_destroy(sub: Subparsers) -> None:
    p = sub.add_parser(
        "destroy",
        help="delete the owned deployments these manifests describe",
        description="Plan, confirm, then delete every deployment the manifests under PATH "
        'describe that this reconciler owns. A deployment annotated reconciler/prune: "false" '
        "is kept unless --force. Exit 0 when all are gone, 1 on any failure.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--force",
        action="store_true",
        help='also delete deployments annotated reconciler/prune: "false"',
    )
    p.add_argument(
        "--max-deletes",
        type=non_negative_int,
        default=DEFAULT_MAX_DELETES,
        metavar="N",
        help=f"refuse to delete more than N deployments (default {DEFAULT_MAX_DELETES})",
    )
    p.add_argument(
        "--secrets-from",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder valueFrom.file may read secrets from (repeatable)",
    )
    p.add_argument("--secrets-dir", metavar="DIR", help="where file-based secrets live (as apply)")
    add_target_flag(p)
    add_color_flag(p)
    add_execution_flags(p)
    add_target_flags(p)
    p.set_defaults(func=_cmd_destroy, secrets_dir=None)


def _cmd_destroy(args: argparse.Namespace) -> int:
    from .. import engine
    from ..model import DesiredState
    from ..plan import PlanOptions, targeted
    from .applying import execute
    from .inventory import owned_keys

    apply_options_of(args)
    target = target_of(args)
    asking = not args.auto_approve
    if asking and not sys.stdin.isatty():
        raise ReconcilerError(
            "refusing to destroy without confirmation: stdin is not a terminal. "
            "Review with `reconciler plan`, then pass --auto-approve"
        )
    described = engine.load(args.paths, target, secrets_from=args.secrets_from)
    require_manifests(described, args.paths, allow_empty=False)
    chosen = frozenset(args.target)
    keys = [d.key for d in described if targeted(d.key, chosen)]
    if chosen and not keys:
        raise ReconcilerError(
            f"--target {', '.join(sorted(chosen))}: no such deployment in {', '.join(args.paths)}"
        )
    owned = set(owned_keys(args.state))
    keys = [k for k in keys if k in owned]  # never what this reconciler does not own
    if not keys:
        print("Nothing to destroy: none of these deployments is owned.")
        return 0
    options = PlanOptions(
        prune=True,
        allow_empty=True,
        targets=frozenset(str(k) for k in keys),
        force=args.force,
        max_deletes=args.max_deletes,
    )
    nothing = DesiredState((), described.files)
    return execute(args, target, nothing, options, None, asking=asking)
