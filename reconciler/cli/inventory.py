"""`reconciler state list|show|rm` and `reconciler get`: the inventory, as kubectl shows it.

`state` commands read only the state store (no API, no key); `get` adds the live status of each
owned deployment. A deployment is named `NAME` (unique among owned ones) or `PROJECT/NAME`, or
`NAME --project P`. A state that does not exist is an empty inventory and is not created.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ReconcilerError
from .common import Subparsers, add_target_flags

if TYPE_CHECKING:
    from ..model import DeploymentKey, Record
    from ..state import StateStore


def _add_state_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        metavar="PATH|URL",
        help="state file or postgresql:// URL (default: $RECONCILER_STATE, "
        "else .reconciler/state.db)",
    )


def _add_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="a deployment: NAME or PROJECT/NAME")
    p.add_argument("--project", type=int, metavar="P", help="its project, when NAME is not unique")


def add_inventory(group: Subparsers) -> None:
    listing = group.add_parser(
        "list",
        help="every owned deployment, from the state store",
        description="List the inventory: every deployment this reconciler owns, how its last "
        "apply went, its revision and when. Reads only the state store.",
    )
    _add_state_flag(listing)
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
    _add_name(show)
    _add_state_flag(show)
    show.set_defaults(func=_cmd_show)

    remove = group.add_parser(
        "rm",
        help="stop owning a deployment (the live one is untouched)",
        description="Remove one deployment from the inventory. Nothing is sent to the API: "
        "the deployment keeps running, and is no longer pruned, reported or corrected. A "
        "manifest that still names it would adopt it again.",
    )
    _add_name(remove)
    _add_state_flag(remove)
    remove.set_defaults(func=_cmd_rm)


def _open(location: str | None) -> StateStore | None:
    """The store, or None when a file store does not exist yet (read: empty; not created)."""
    import os
    from pathlib import Path

    from ..state import DEFAULT_STATE_PATH, open_backend

    chosen = location or os.environ.get("RECONCILER_STATE") or DEFAULT_STATE_PATH
    if "://" not in chosen and not Path(chosen).exists():
        return None
    return open_backend(chosen)


def _records(location: str | None) -> dict[DeploymentKey, Record]:
    store = _open(location)
    if store is None:
        return {}
    try:
        return store.records()
    finally:
        store.close()


def owned_keys(location: str | None) -> list[DeploymentKey]:
    """Every owned deployment's key (none when the state does not exist)."""
    return sorted(_records(location))


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


def _applied(when: float | None) -> str:
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
        "applied_at": _applied(record.applied_at),
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
    records = _records(args.state)
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
                _applied(record.applied_at),
                record.message,
            )
        )
    print(table(rows))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    records = _records(args.state)
    key = resolve(args.name, args.project, list(records))
    print(json.dumps(record_json(records[key]), indent=2, sort_keys=True))
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    store = _open(args.state)
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


# -- get -----------------------------------------------------------------------------------------


def add_get(sub: Subparsers) -> None:
    p = sub.add_parser(
        "get",
        help="owned deployments with their live status (like kubectl get)",
        description="Show owned deployments (all, or the NAMEs given) with sync, health and "
        "API status. -o json or yaml prints each one's record and live answer (normalised to "
        "the request shape, sensitive values hidden); -o wide adds the image, the regions and "
        "the replicas. Exit 1 if a NAME is not owned.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="NAME or PROJECT/NAME (default: all)")
    p.add_argument(
        "-o",
        "--output",
        choices=("table", "wide", "json", "yaml"),
        default="table",
        help="(default table)",
    )
    p.add_argument(
        "--project", type=int, metavar="P", help="the project of the NAMEs, when not unique"
    )
    add_target_flags(p)
    p.set_defaults(func=_cmd_get)


def _cmd_get(args: argparse.Namespace) -> int:
    import asyncio

    from .. import engine
    from ..diff import SENSITIVE
    from ..health import readiness
    from .common import target_of

    target = target_of(args)
    records = _records(args.state)
    keys = [resolve(n, args.project, list(records)) for n in args.names] or sorted(records)
    chosen = {k: records[k] for k in keys}

    async def fetch() -> dict[DeploymentKey, Any]:
        async with engine.connect(target) as api:
            return await engine.fetch_live(api, {k.project_id for k in chosen})

    live = asyncio.run(fetch()) if chosen else {}
    rows = {r.key: r for r in asyncio.run(engine.status(target)) if r.key in chosen}
    if args.output in ("json", "yaml"):
        items = []
        for key in keys:
            found = live.get(key)
            view = dict(found.spec_view) if found is not None else None
            if view is not None and view.get("envs"):
                view["envs"] = {k: SENSITIVE for k in view["envs"]}
            items.append(
                {
                    "record": record_json(chosen[key]),
                    "status": rows[key].to_json(),
                    "live": view,
                }
            )
        if args.output == "json":
            print(json.dumps({"deployments": items}, indent=2, sort_keys=True))
        else:
            import yaml

            print(yaml.safe_dump({"deployments": items}, sort_keys=True), end="")
        return 0
    if not keys:
        print("No deployments are owned yet: run `reconciler apply`.")
        return 0
    head = ("NAME", "PROJECT", "SYNC", "HEALTH", "STATUS", "REVISION")
    wide = args.output == "wide"
    out: list[tuple[str, ...]] = [(*head, "IMAGE", "REGIONS", "READY") if wide else head]
    for key in keys:
        row = rows[key]
        cells: tuple[str, ...] = (
            key.name,
            str(key.project_id),
            row.sync.value,
            row.health.value,
            row.status or "-",
            (row.revision or "-")[:12],
        )
        if wide:
            found = live.get(key)
            image = str(found.spec_view.get("image", "-")) if found else "-"
            regions = ",".join(str(c.region_id) for c in found.containers_status) if found else "-"
            ready, total = readiness(found)
            cells = (*cells, image, regions or "-", f"{ready}/{total}")
        out.append(cells)
    print(table(out))
    return 0


# -- import --------------------------------------------------------------------------------------


def add_import(sub: Subparsers) -> None:
    p = sub.add_parser(
        "import",
        help="take ownership of one live deployment (record it, change nothing)",
        description="Record a live deployment as owned, without sending anything: for users "
        "who run with --no-adopt. The record holds no applied fields yet, so the next plan "
        "compares only what a manifest sets (nothing is reset), and --prune may delete it once "
        "no manifest names it.",
    )
    p.add_argument("name", metavar="NAME", help="the deployment's name (or PROJECT/NAME)")
    p.add_argument(
        "--project",
        type=int,
        metavar="P",
        help="its project (default: $GCORE_CLOUD_PROJECT_ID)",
    )
    add_target_flags(p)
    p.set_defaults(func=_cmd_import)


def _cmd_import(args: argparse.Namespace) -> int:
    import asyncio
    import time
    from types import MappingProxyType

    from .. import engine
    from ..errors import NotFoundError
    from ..model import DeploymentKey, Record, RecordOutcome
    from .common import target_of

    target = target_of(args)
    name, project = args.name, args.project
    head, sep, tail = name.partition("/")
    if sep and head.isdigit():
        project, name = int(head), tail
    project = project if project is not None else target.settings.project_id
    if project is None:
        raise ReconcilerError("which project? pass --project P, or set GCORE_CLOUD_PROJECT_ID")
    key = DeploymentKey(project, name)

    async def exists() -> None:
        async with engine.connect(target) as api:
            try:
                await api.get_deployment(key.project_id, key.name)
            except NotFoundError:
                raise NotOwned(f"{key}: no such deployment in the API") from None

    asyncio.run(exists())
    with engine.open_state(target) as store:
        store.acquire_lock()
        if key in store.records():
            raise ReconcilerError(f"{key} is owned already")
        store.save_record(
            Record(
                key=key,
                last_applied=MappingProxyType({}),  # nothing applied: nothing to reset
                applied_at=time.time(),
                outcome=RecordOutcome.CONVERGED,
                message="imported",
            )
        )
    print(f"{key}: imported; it is owned now, and nothing was changed", file=sys.stderr)
    return 0


# -- describe ------------------------------------------------------------------------------------


def add_describe(sub: Subparsers) -> None:
    p = sub.add_parser(
        "describe",
        help="one owned deployment in full: status, what was applied, the live answer",
        description="Describe one owned deployment: its sync, health, status and message; the "
        "record (revision, outcome, when); the spec last applied (secrets as keyed hashes); "
        "and the API's answer, normalised (envs values hidden). Exit 1 if it is not owned.",
    )
    _add_name(p)
    add_target_flags(p)
    p.set_defaults(func=_cmd_describe)


def _cmd_describe(args: argparse.Namespace) -> int:
    import asyncio

    import yaml

    from .. import engine
    from ..diff import SENSITIVE
    from .common import target_of

    target = target_of(args)
    records = _records(args.state)
    key = resolve(args.name, args.project, list(records))
    record = records[key]

    async def fetch() -> tuple[dict[DeploymentKey, Any], list[str]]:
        from ..api.objects import InferenceObjects
        from ..errors import ApiError
        from .objects import format_line

        async with engine.connect(target) as api:
            live = await engine.fetch_live(api, {key.project_id})
            logs: list[str] = []
            if key in live:
                try:
                    lines = await InferenceObjects(api).logs(key.project_id, key.name, tail=5)
                    logs = [format_line(line) for line in lines]
                except ApiError as exc:
                    logs = [f"(no logs: {exc})"]
            return live, logs

    live, logs = asyncio.run(fetch())
    found = live.get(key)
    [row] = [r for r in asyncio.run(engine.status(target)) if r.key == key]
    lines = [
        f"Name:          {key.name}",
        f"Project:       {key.project_id}",
        f"Sync:          {row.sync.value}",
        f"Health:        {row.health.value}",
        f"Status:        {row.status or '-'}",
        f"Message:       {row.message or '-'}",
        f"Revision:      {record.revision or '-'}",
        f"Last applied:  {_applied(record.applied_at)} ({record.outcome})",
    ]
    if record.labels:
        lines.append("Labels:        " + ", ".join(f"{k}={v}" for k, v in record.labels.items()))
    if record.annotations:
        pairs = ", ".join(f"{k}={v}" for k, v in record.annotations.items())
        lines.append(f"Annotations:   {pairs}")
    if found is not None and found.containers_status:
        lines.append("Containers:")
        for c in found.containers_status:
            error = f"  error: {c.error_message}" if c.error_message else ""
            lines.append(f"  region {c.region_id}: {c.ready}/{c.total} ready{error}")
    lines.append("Applied spec:")
    applied = yaml.safe_dump(dict(record.last_applied), sort_keys=False)
    lines += ["  " + x for x in applied.splitlines()]
    lines.append("Live spec:")
    if found is None:
        lines.append("  (not found in the API)")
    else:
        view = dict(found.spec_view)
        if view.get("envs"):
            view["envs"] = {k: SENSITIVE for k in view["envs"]}
        lines += ["  " + x for x in yaml.safe_dump(view, sort_keys=False).splitlines()]
    if logs:
        lines.append("Recent logs:")
        lines += ["  " + line for line in logs]
    print("\n".join(lines))
    return 0


# -- history -------------------------------------------------------------------------------------


def add_history(sub: Subparsers) -> None:
    p = sub.add_parser(
        "history",
        help="every recorded apply of one deployment: numbered, with outcome and time",
        description="List what was applied to one owned deployment, oldest first, numbered: "
        "the action, its result, the revision (a git SHA under serve) and when. Read from the "
        "state store's journal, which keeps finished entries for 30 days.",
    )
    _add_name(p)
    _add_state_flag(p)
    p.add_argument("--format", choices=("text", "json"), default="text", help="(default text)")
    p.set_defaults(func=_cmd_history)


def _cmd_history(args: argparse.Namespace) -> int:
    store = _open(args.state)
    if store is None:
        raise NotOwned(f"{args.name}: no owned deployment of that name (the inventory is empty)")
    try:
        key = resolve(args.name, args.project, list(store.records()))
        entries = store.journal_history(key)
    finally:
        store.close()
    rows = [
        {
            "number": number,
            "at": _applied(entry.started_at),
            "action": entry.action,
            "result": entry.result or "in progress",
            "revision": entry.intent.get("revision"),
            "message": entry.message,
        }
        for number, entry in enumerate(entries, 1)
    ]
    if args.format == "json":
        print(json.dumps({"deployment": str(key), "history": rows}, indent=2))
        return 0
    if not rows:
        print(f"{key}: no recorded applies (imported, or older than 30 days)")
        return 0
    out: list[tuple[str, ...]] = [("#", "AT", "ACTION", "RESULT", "REVISION", "MESSAGE")]
    for row in rows:
        out.append(
            (
                str(row["number"]),
                str(row["at"]),
                str(row["action"]),
                str(row["result"]),
                str(row["revision"] or "-")[:12],
                str(row["message"]),
            )
        )
    print(table(out))
    return 0
