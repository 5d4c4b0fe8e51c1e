"""`reconciler diff PATH...`: the plan's field changes as a unified diff of YAML, per deployment.

What `kubectl diff` gives: for each deployment that would change, the live side and the desired
side as YAML, `---`/`+++`/`@@` hunks, coloured on a terminal. Both sides are built from the
plan's own field changes on top of the manifest's body, so the diff shows exactly what the plan
would send (server defaults and response-only fields never show), and sensitive values stay
`(sensitive)` (a changed one reads `(sensitive, changed)`). Exit 0 no differences, 2 some,
1 error: like `diff(1)`.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any

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
    from ..diff import FieldChange
    from ..model import DesiredDeployment
    from ..plan import Change

SENSITIVE = "(sensitive)"
CHANGED_SECRET = "(sensitive, changed)"
STEP = re.compile(r"([^.\[\]]+)|\[(\w+)=([^\]]+)\]|\[(\d+)\]")
PAINT = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}
RESET = "\033[0m"


def add_diff(sub: Subparsers) -> None:
    p = sub.add_parser(
        "diff",
        help="a unified diff of live vs desired, per deployment (like kubectl diff)",
        description="Show what apply would change as a unified diff of the live and the desired "
        "YAML of each deployment. Exit 0 when nothing differs, 2 when something does, 1 on "
        "error.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_target_flag(p)
    add_color_flag(p)
    add_planning_flags(p)
    add_target_flags(p)
    add_secrets_from(p)
    p.set_defaults(func=_cmd_diff)


def _steps(path: str) -> list[str | int | tuple[str, str]]:
    """`containers[region_id=1].scale.max` -> ['containers', ('region_id', '1'), 'scale', 'max']."""
    steps: list[str | int | tuple[str, str]] = []
    for name, field, value, index in STEP.findall(path):
        if name:
            steps.append(name)
        elif field:
            steps.append((field, value))
        else:
            steps.append(int(index))
    return steps


def _child(node: Any, step: str | int | tuple[str, str], make: bool) -> Any:
    if isinstance(step, tuple):
        field, value = step
        for item in node:
            if isinstance(item, dict) and str(item.get(field)) == value:
                return item
        if not make:
            return None
        item = {field: int(value) if value.isdigit() else value}
        node.append(item)
        return item
    if isinstance(step, int):
        return node[step] if step < len(node) else None
    if step not in node or node[step] is None:
        if not make:
            return None
        node[step] = {}
    return node[step]


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set (or, for None, remove) the value at a plan path inside `doc`."""
    steps = _steps(path)
    node: Any = doc
    for step in steps[:-1]:
        node = _child(node, step, make=value is not None)
        if node is None:
            return
    last = steps[-1]
    if isinstance(node, dict) and isinstance(last, str):
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value


def _masked(desired: DesiredDeployment) -> dict[str, Any]:
    """The manifest's body with every sensitive value as `(sensitive)`."""
    body = desired.body()  # a fresh decode: the caller's to change
    for path in desired.sensitive_paths:
        node: Any = body
        for step in path[:-1]:
            node = _child(node, step, make=False) if node is not None else None
        last = path[-1]
        if isinstance(node, dict) and last in node:
            node[last] = SENSITIVE
            continue
        if isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = SENSITIVE
    return body


def _sides(change: Change, desired: DesiredDeployment | None) -> tuple[str, str]:
    """(live YAML, desired YAML) of one change."""
    import copy

    import yaml

    from ..plan import Action

    def dump(doc: dict[str, Any] | None) -> str:
        return "" if doc is None else yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)

    if change.action is Action.DELETE or desired is None:
        return "(owned; no manifest)\n", ""
    after = _masked(desired)
    if change.action is Action.CREATE:
        return "", dump(after)
    before = copy.deepcopy(after)
    for field in change.changes:
        _put(before, field.path, _before(field))
        if field.sensitive:
            _put(after, field.path, CHANGED_SECRET if field.after is not None else None)
    return dump(before), dump(after)


def _before(field: FieldChange) -> Any:
    return SENSITIVE if field.sensitive and field.before is not None else field.before


def _cmd_diff(args: argparse.Namespace) -> int:
    import asyncio
    import difflib

    from .. import engine

    target = target_of(args)
    options = plan_options(args)
    desired = engine.load(args.paths, target, secrets_from=args.secrets_from)
    require_manifests(desired, args.paths, options.allow_empty)
    plan = asyncio.run(engine.plan(desired, target, options))
    by_key = desired.by_key()
    color = use_color(sys.stdout, args.color)
    differs = False
    for change in plan.changes:
        if not change.action.mutates:
            continue
        live, wanted = _sides(change, by_key.get(change.key))
        lines = list(
            difflib.unified_diff(
                live.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                fromfile=f"live/{change.key}",
                tofile=f"desired/{change.key}" + (f" ({change.why})" if change.why else ""),
            )
        )
        if not lines and change.action.value != "adopt":
            continue
        differs = True
        if not lines:  # an adoption that changes nothing: say so, or it would be invisible
            lines = [f"=== {change.key}: adopt (no field differs)\n"]
        for line in lines:
            text = line if line.endswith("\n") else line + "\n"
            mark = text[:1] if not text.startswith(("---", "+++")) else ""
            painted = f"{PAINT[mark]}{text.rstrip()}{RESET}\n" if mark in PAINT else text
            sys.stdout.write(painted if color else text)
    return 2 if differs else 0
