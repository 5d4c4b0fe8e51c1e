"""Finishing what an interrupted apply left behind (DESIGN.md §5), from the typed journal.

On the next apply, before planning: an entry with task IDs has its tasks polled to the end and
its outcome recorded; a create without task IDs is looked up by name, so a create that did
happen is recorded as ours (and never sent twice), one that did not is left to the fresh plan;
any other unfinished entry is closed, as the fresh plan re-reads live state anyway.

Resume goes through the same request slots as the apply (`parallelism`), and settles each entry
on its own: one that cannot be settled now (its read or poll ran out of retries) stays in the
journal for the next apply, and the others proceed. Only a state store that cannot be written
aborts the apply here: its StateError leaves `resume` before anything is planned or sent, and
the CLI says it in one line.
"""

from __future__ import annotations

import asyncio
import logging

from ..api import ApiClient
from ..clock import REAL, Clock
from ..errors import ApiError, NotFoundError
from ..model import RecordOutcome
from ..plan import Action
from ..state import StateStore, offloop
from .journal import Entry, Journal, JournalResult
from .outcomes import ApplyOptions
from .tasks import Watcher
from .writer import StateWriter

log = logging.getLogger(__name__)


async def resume(
    api: ApiClient, store: StateStore, options: ApplyOptions, clock: Clock = REAL
) -> list[Entry]:
    """Settle every unfinished journal entry that can be settled now; return those."""
    entries = await offloop(store, Journal(store).unfinished)
    if not entries:
        return []
    slots = asyncio.Semaphore(max(1, options.parallelism))
    async with store.writes() as writes, Watcher(api, slots, options.poll, clock=clock) as watcher:
        writer = StateWriter(writes)

        async def settle(entry: Entry) -> Entry | None:
            try:
                if entry.task_ids:
                    await _settle_tasks(writer, watcher, entry, clock)
                elif entry.action is Action.CREATE:
                    async with slots:
                        await _settle_create(api, writer, entry, clock)
                else:
                    await writer.close(
                        entry.id, JournalResult.REPLANNED, "resumed: re-planned from live state"
                    )
            except ApiError as exc:
                log.warning("%s of %s left for later: %s", entry.action, entry.key, exc)
                return None
            return entry

        settled = await asyncio.gather(*(settle(e) for e in entries))
    return [e for e in settled if e is not None]


async def _settle_tasks(writer: StateWriter, watcher: Watcher, entry: Entry, clock: Clock) -> None:
    key = entry.key
    try:
        tasks = [await watcher.task(key.project_id, t) for t in entry.task_ids]
    except NotFoundError as exc:  # the task is unknown: it will never be settled
        await writer.close(entry.id, JournalResult.FAILED, f"resumed: {exc}")
        return
    errors = [t.error or "task failed" for t in tasks if not t.state.succeeded]
    if entry.action is Action.DELETE:
        if not errors:
            await writer.forget(key)
    else:
        outcome = RecordOutcome.FAILED if errors else RecordOutcome.RESUMED
        record = entry.intent.record_as(outcome, clock.wall())
        if record is not None:
            await writer.save(record)
    result = JournalResult.FAILED if errors else JournalResult.RESUMED
    redact = getattr(watcher.api, "redact", None)  # a task's error may echo a secret
    message = "; ".join(errors)
    await writer.close(entry.id, result, redact(message) if redact is not None else message)


async def _settle_create(api: ApiClient, writer: StateWriter, entry: Entry, clock: Clock) -> None:
    key = entry.key
    try:
        await api.get_deployment(key.project_id, key.name)
    except NotFoundError:
        await writer.close(
            entry.id, JournalResult.NOT_APPLIED, "resumed: the create never happened"
        )
        return
    record = entry.intent.record_as(RecordOutcome.RESUMED, clock.wall())
    if record is not None:
        await writer.save(record)  # it happened: it is ours
    await writer.close(entry.id, JournalResult.RESUMED, "resumed: the create had happened")
