"""`reconciler state list|show|rm`: the inventory, as kubectl shows it, and what reads it.

These read only the state store (no API, no key); `get`, `describe` and `import` (in `live`)
add the API's answer, `history` and `rollback` the journal. A deployment is named `NAME`
(unique among owned ones) or `PROJECT/NAME`, or `NAME --project P`. A state that does not
exist is an empty inventory and is not created.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ReconcilerError
from .common import Subparsers

if TYPE_CHECKING:
    from ..model import DeploymentKey, Record
    from ..state import StateStore


def add_state_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        metavar="PATH|URL",
        help="state file or postgresql:// URL (default: $RECONCILER_STATE, "
        "else .reconciler/state.db)",
    )


def add_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="a deployment: NAME or PROJECT/NAME")
    p.add_argument("--project", type=int, metavar="P", help="its project, when NAME is not unique")


def add_inventory(group: Subparsers) -> None:
    listing = group.add_parser(
        "list",
        help="every owned deployment, from the state store",
        description="List the inventory: every deployment this reconciler owns, how its last "
        "apply went, its revision and when. Reads only the state store.",
    )
    add_state_flag(listing)
    listing.add_argument(
        "--format", choices=("text", "json"), default="text", help="(default text)"
    )
    listing.set_defaults(func=_cmd_list)

    show = group.add_parser(
        "show",
        help="one owned deployment's record (secrets as hashes)",
        description="Print one record as JSON: the last-applied spec (sensitive values as "
        "keyed hashes), labels, annotations, revision, outcome.",
    )
    add_name(show)
    add_state_flag(show)
    show.set_defaults(func=_cmd_show)

    remove = group.add_parser(
        "rm",
        help="stop owning a deployment (the live one is untouched)",
        description="Remove one deployment from the inventory. Nothing is sent to the API: "
        "the deployment keeps running, and is no longer pruned, reported or corrected. A "
        "manifest that still names it would adopt it again.",
    )
    add_name(remove)
    add_state_flag(remove)
    remove.set_defaults(func=_cmd_rm)


def open_inventory(location: str | None) -> StateStore | None:
    """The store, or None when a file store does not exist yet (read: empty; not created)."""
    import os
    from pathlib import Path

    from ..state import DEFAULT_STATE_PATH, open_backend

    chosen = location or os.environ.get("RECONCILER_STATE") or DEFAULT_STATE_PATH
    if "://" not in chosen and not Path(chosen).exists():
        return None
    return open_backend(chosen)


def records_at(location: str | None) -> dict[DeploymentKey, Record]:
    store = open_inventory(location)
    if store is None:
        return {}
    try:
        return store.records()
    finally:
        store.close()


def owned_keys(location: str | None) -> list[DeploymentKey]:
    """Every owned deployment's key (none when the state does not exist)."""
    return sorted(records_at(location))


def resolve(name: str, project: int | None, keys: list[DeploymentKey]) -> DeploymentKey:
    """`NAME`, `PROJECT/NAME` or `NAME --project P` -> the one owned key it means."""
    head, sep, tail = name.partition("/")
    if sep and head.isdigit():
        project, name = int(head), tail
    found = [k for k in keys if k.name == name and (project is None or k.project_id == project)]
    if not found:
        where = f" in project {project}" if project is not None else ""
        raise NotOwned(f"{name}: no owned deployment of that name{where} (see `state list`)")
    if len(found) > 1:
        projects = ", ".join(str(k.project_id) for k in found)
        raise ReconcilerError(f"{name} is owned in projects {projects}: pass --project P")
    return found[0]


class NotOwned(ReconcilerError):
    """No owned deployment by that name."""


def when_applied(when: float | None) -> str:
    from datetime import UTC, datetime

    if not when:
        return "-"
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_json(record: Record) -> dict[str, Any]:
    return {
        "project_id": record.key.project_id,
        "name": record.key.name,
        "outcome": str(record.outcome),
        "message": record.message,
        "revision": record.revision,
        "applied_at": when_applied(record.applied_at),
        "labels": dict(record.labels),
        "annotations": dict(record.annotations),
        "sensitive_paths": sorted(".".join(map(str, p)) for p in record.sensitive_paths),
        "last_applied": dict(record.last_applied),
    }


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _cmd_list(args: argparse.Namespace) -> int:
    records = records_at(args.state)
    if args.format == "json":
        print(json.dumps({"deployments": [record_json(r) for r in records.values()]}, indent=2))
        return 0
    if not records:
        print("The inventory is empty: nothing is owned yet.")
        return 0
    rows: list[tuple[str, ...]] = [("DEPLOYMENT", "OUTCOME", "REVISION", "APPLIED AT", "MESSAGE")]
    for key, record in sorted(records.items()):
        rows.append(
            (
                str(key),
                str(record.outcome),
                (record.revision or "-")[:12],
                when_applied(record.applied_at),
                record.message,
            )
        )
    print(table(rows))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    records = records_at(args.state)
    key = resolve(args.name, args.project, list(records))
    print(json.dumps(record_json(records[key]), indent=2, sort_keys=True))
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    store = open_inventory(args.state)
    if store is None:
        raise NotOwned(f"{args.name}: no owned deployment of that name (the inventory is empty)")
    try:
        key = resolve(args.name, args.project, list(store.records()))
        store.acquire_lock()
        store.forget(key)
    finally:
        store.close()
    print(f"{key}: removed from the inventory; the live deployment is untouched", file=sys.stderr)
    return 0
