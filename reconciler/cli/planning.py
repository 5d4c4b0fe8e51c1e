"""`reconciler plan` and `reconciler status`: the commands that look and change nothing.

The engine (pydantic, httpx, SQLite) and rich load inside the commands, not with the parser.
`apply` is in `applying`, the saved plan's file format in `savedplan`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from ..textsafe import escape
from .common import (
    Subparsers,
    add_color_flag,
    add_planning_flags,
    add_target_flag,
    add_target_flags,
    plan_options,
    require_manifests,
    target_of,
    use_color,
)
from .manifests import add_secrets_from

if TYPE_CHECKING:
    from ..objects_engine import ObjectStatusRow
    from ..plan import Plan


def add_plan(sub: Subparsers) -> None:
    p = sub.add_parser(
        "plan",
        help="show what apply would do (a dry run)",
        description="Compare manifests with what was applied and what the API reports, and "
        "show the actions that would make them agree. Changes nothing.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="text for a terminal, json for scripts, markdown for a pull request (default text)",
    )
    p.add_argument("--out", metavar="FILE", help="also save the plan as JSON, for apply --plan")
    add_target_flag(p)
    add_color_flag(p)
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there are no changes, 2 when there are, 1 on error",
    )
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip checking flavors, regions and capacity against the API before planning",
    )
    add_planning_flags(p)
    add_target_flags(p)
    add_secrets_from(p)
    p.set_defaults(func=_cmd_plan)


def warn(plan: Plan) -> None:
    """Plan warnings (preflight capacity, unreadable answers) go to stderr, whatever the format."""
    from ..textsafe import escape

    for warning in plan.warnings:
        print(f"warning: {escape(warning)}", file=sys.stderr)


def _cmd_plan(args: argparse.Namespace) -> int:
    import asyncio

    from .. import engine
    from ..render import render

    target = target_of(args)
    options = replace(plan_options(args), preflight=not args.no_preflight)
    desired = engine.load(args.paths, target, secrets_from=args.secrets_from)
    require_manifests(desired, args.paths, options.allow_empty)
    plan = asyncio.run(engine.plan(desired, target, options))
    sys.stdout.write(render(plan, args.format, color=use_color(sys.stdout, args.color)))
    warn(plan)
    if args.out:
        from .savedplan import save

        save(args.out, plan, args.paths, options)
    return 2 if args.detailed_exitcode and plan.has_changes else 0


def add_status(sub: Subparsers) -> None:
    p = sub.add_parser(
        "status",
        help="sync and health of every owned deployment",
        description="Show, for every deployment this reconciler owns, whether the API still "
        "matches what was applied (sync), its health, status, revision and last apply.",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="a table, or the JSON document of DESIGN.md (default text)",
    )
    add_target_flags(p)
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    import asyncio

    from .. import engine

    target = target_of(args)
    rows = asyncio.run(engine.status(target))
    objects = asyncio.run(engine.status_objects(target))
    if args.format == "json":
        document = {
            "deployments": [r.to_json() for r in rows],
            "objects": [o.to_json() for o in objects],
        }
        print(json.dumps(document, indent=2))
        return 0
    _print_objects(objects)
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


def _print_objects(objects: list[ObjectStatusRow]) -> None:
    if not objects:
        return
    width = max(len(str(o.key)) for o in objects)
    print("OBJECT".ljust(width) + "  SYNC")
    for obj in objects:
        print(escape(f"{str(obj.key).ljust(width)}  {obj.sync}  {obj.message}".rstrip()))
    print()
