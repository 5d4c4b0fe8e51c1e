"""`reconciler get`, `describe` and `import`: owned deployments beside the API's answer.

Unlike `state list|show|rm` (in `inventory`), these ask the API (or the simulator): `get` and
`describe` show the live status and spec next to the record, `import` records a live deployment
as owned without sending anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ReconcilerError
from ..textsafe import escape
from .common import Subparsers, add_target_flags
from .inventory import (
    NotOwned,
    add_name,
    open_inventory,
    record_json,
    records_at,
    resolve,
    table,
    when_applied,
)

if TYPE_CHECKING:
    from ..api import ApiClient
    from ..model import DeploymentKey


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
    from ..health import readiness
    from ..redact import live_redactor, shown_live
    from .common import target_of

    target = target_of(args)
    records = records_at(args.state)
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
            view = None
            if found is not None:
                redact = live_redactor(found.spec_view, chosen[key].sensitive_paths)
                view = shown_live(dict(found.spec_view), redact)
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
            image = "-"
            if found is not None:
                redact = live_redactor(found.spec_view, records[key].sensitive_paths)
                image = redact(str(found.spec_view.get("image", "-")))
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
    from ..model import DeploymentKey, LiveDeployment, Record, RecordOutcome
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
                answer = await api.get_deployment(key.project_id, key.name)
            except NotFoundError:
                raise NotOwned(f"{key}: no such deployment in the API") from None
        live = LiveDeployment.from_answer(key.project_id, answer.model_dump(mode="json"))
        if live.managed_by:
            raise ReconcilerError(
                f"{key}: {live.managed_by} manages it; it is never adopted, updated or deleted here"
            )

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
        "record (revision, outcome, when); its last tasks and their state; the spec last applied "
        "(secrets as keyed hashes); "
        "and the API's answer, normalised (envs values hidden). Exit 1 if it is not owned.",
    )
    add_name(p)
    add_target_flags(p)
    p.set_defaults(func=_cmd_describe)


def _cmd_describe(args: argparse.Namespace) -> int:
    import asyncio

    import yaml

    from .. import engine
    from ..redact import live_redactor, shown_live
    from .common import target_of

    target = target_of(args)
    records = records_at(args.state)
    key = resolve(args.name, args.project, list(records))
    record = records[key]
    recent = _recent_tasks(args.state, key)

    async def fetch() -> tuple[dict[DeploymentKey, Any], list[str], list[str]]:
        from ..api.objects import InferenceObjects
        from ..errors import ApiError
        from .objects import format_line

        async with engine.connect(target) as api:
            live = await engine.fetch_live(api, {key.project_id})
            tasks = [await _task_line(api, *one) for one in recent]
            logs: list[str] = []
            if key in live:
                try:
                    lines = await InferenceObjects(api).logs(key.project_id, key.name, tail=5)
                    logs = [format_line(line) for line in lines]
                except ApiError as exc:
                    logs = [f"(no logs: {exc})"]
            return live, tasks, logs

    live, tasks, logs = asyncio.run(fetch())
    found = live.get(key)
    # the API's words may echo a secret it was sent: take out what the live answer holds of them;
    # with no live answer that cannot be checked, and a task's error gives way to the Message
    # line (the outcome recorded when it failed, redacted then)
    redact = live_redactor(found.spec_view if found else {}, record.sensitive_paths)
    if found is None:
        tasks = [x.split("  error: ")[0] + ("  error: see Message" if "  error: " in x else "")
                 for x in tasks]  # fmt: skip
    tasks, logs = [redact(x) for x in tasks], [redact(x) for x in logs]
    [row] = [r for r in asyncio.run(engine.status(target)) if r.key == key]
    lines = [
        f"Name:          {key.name}",
        f"Project:       {key.project_id}",
        f"Sync:          {row.sync.value}",
        f"Health:        {row.health.value}",
        f"Status:        {row.status or '-'}",
        f"Message:       {row.message or '-'}",
        f"Revision:      {record.revision or '-'}",
        f"Last applied:  {when_applied(record.applied_at)} ({record.outcome})",
    ]
    if record.labels:
        lines.append("Labels:        " + ", ".join(f"{k}={v}" for k, v in record.labels.items()))
    if record.annotations:
        pairs = ", ".join(f"{k}={v}" for k, v in record.annotations.items())
        lines.append(f"Annotations:   {pairs}")
    if found is not None and found.containers_status:
        lines.append("Containers:")
        for c in found.containers_status:
            error = f"  error: {redact(escape(c.error_message))}" if c.error_message else ""
            lines.append(f"  region {c.region_id}: {c.ready}/{c.total} ready{error}")
    if tasks:
        lines.append("Last tasks:")
        lines += ["  " + line for line in tasks]
    lines.append("Applied spec:")
    applied = yaml.safe_dump(dict(record.last_applied), sort_keys=False)
    lines += ["  " + x for x in applied.splitlines()]
    lines.append("Live spec:")
    if found is None:
        lines.append("  (not found in the API)")
    else:
        view = shown_live(dict(found.spec_view), redact)
        lines += ["  " + x for x in yaml.safe_dump(view, sort_keys=False).splitlines()]
    if logs:
        lines.append("Recent logs:")
        lines += ["  " + line for line in logs]
    print("\n".join(lines))
    return 0


def _recent_tasks(location: str | None, key: DeploymentKey) -> list[tuple[str, str, str]]:
    """The task IDs of the deployment's last journaled actions, newest first (at most five),
    each with its action and when it started."""
    store = open_inventory(location)
    if store is None:
        return []
    try:
        entries = store.journal_history(key)
    finally:
        store.close()
    found = [
        (task_id, entry.action, when_applied(entry.started_at))
        for entry in reversed(entries)
        for task_id in entry.task_ids
    ]
    return found[:5]


async def _task_line(api: ApiClient, task_id: str, action: str, when: str) -> str:
    """One task as the API reports it now: its state, and its error if it failed."""
    from ..errors import ApiError, NotFoundError

    try:
        task = await api.get_task(task_id)
    except NotFoundError:
        return f"{task_id}  -  {action} at {when}  (no longer kept by the API)"
    except ApiError as exc:
        return f"{task_id}  ?  {action} at {when}  (cannot read it: {exc})"
    error = f"  error: {escape(task.error)}" if task.error else ""
    return f"{task_id}  {task.state}  {action} at {when}{error}"
