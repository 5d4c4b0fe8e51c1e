"""Finishing what an interrupted apply left behind (DESIGN.md §5).

Every action is journaled before its request is sent and gets its task IDs as soon as they
return. On the next apply, before planning: an entry with task IDs has its tasks polled to the
end and its outcome recorded; a create without task IDs is looked up by name, so a create that
did happen is recorded as ours (and never sent twice), one that did not is left to the fresh
plan; any other unfinished entry is closed, as the fresh plan re-reads live state anyway.
"""

from __future__ import annotations

import asyncio
import time

from .api import ApiClient
from .errors import ApiError, NotFoundError
from .executor import ApplyOptions, Reporter
from .model import Record
from .state import JournalEntry, StateStore
from .tasks import Watcher


def record_from_intent(entry: JournalEntry, outcome: str, now: float) -> Record | None:
    intent = entry.intent
    if "last_applied" not in intent:
        return None
    return Record(
        key=entry.key,
        last_applied=intent["last_applied"],
        applied_at=now,
        outcome=outcome,
        revision=intent.get("revision"),
        sensitive_paths=frozenset(tuple(p) for p in intent.get("sensitive_paths", [])),
        labels=intent.get("labels", {}),
        annotations=intent.get("annotations", {}),
    )


async def resume(
    api: ApiClient, store: StateStore, options: ApplyOptions, report: Reporter | None = None
) -> list[JournalEntry]:
    """Settle what a previous apply left unfinished (a crash, a kill): poll its tasks, and for a
    create with no task IDs, look up the deployment before anything is sent again."""
    entries = store.unfinished()
    if not entries:
        return []
    slots = asyncio.Semaphore(max(1, options.parallelism))
    async with Watcher(api, slots, options.poll) as watcher:

        async def settle(entry: JournalEntry) -> None:
            key = entry.key
            if entry.task_ids:
                try:
                    tasks = [await watcher.task(key.project_id, t) for t in entry.task_ids]
                except ApiError as exc:
                    store.journal_done(entry.id, "failed", f"resumed: {exc}")
                    return
                errors = [t.error or "task failed" for t in tasks if t.state == "ERROR"]
                if entry.action == "delete" and not errors:
                    store.forget(key)
                result = "failed" if errors else "resumed"
                record = record_from_intent(entry, result, time.time())
                if record is not None and entry.action != "delete":
                    store.save_record(record)
                store.journal_done(entry.id, result, "; ".join(errors))
                return
            if entry.action == "create":
                try:
                    await api.get_deployment(key.project_id, key.name)
                except NotFoundError:
                    store.journal_done(
                        entry.id, "not applied", "resumed: the create never happened"
                    )
                    return
                record = record_from_intent(entry, "resumed", time.time())
                if record is not None:
                    store.save_record(record)  # it happened: it is ours
                store.journal_done(entry.id, "resumed", "resumed: the create had happened")
                return
            store.journal_done(entry.id, "unknown", "resumed: re-planned from live state")

        await asyncio.gather(*(settle(e) for e in entries))
    return entries
