"""The executor's writes to the state store, gathered: one transaction for every action that
writes at the same moment.

Every action of an apply runs as its own coroutine, and each writes the journal before its
request and its record after: a thousand creates reach their first write in the same turn of
the event loop. `StateWriter` queues the writes made in one turn and commits them together at
the next (`StateStore.writes`: inline for SQLite, an `AsyncConnection` for PostgreSQL), and each
caller waits for the commit holding its own writes. Crash safety is what it was with one
transaction per write: an intent is durable before its request is sent, because its action
cannot go on before the commit returns.

A batch that fails is tried again one caller at a time, so one bad write fails its own action
only; a store that cannot be written at all fails every caller with its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..model import DeploymentKey, Record
from ..state.writes import (
    Answer,
    CloseEntry,
    EntryTasks,
    Forget,
    OpenEntry,
    SaveRecord,
    Write,
    Writes,
)
from .journal import Intent, JournalResult

Waiting = tuple[tuple[Write, ...], "asyncio.Future[list[Answer]]"]


class StateWriter:
    """Writes of many coroutines, committed together (see the module docstring)."""

    def __init__(self, writes: Writes) -> None:
        self._writes = writes
        self._queue: list[Waiting] = []
        self._drain: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed (for tests and figures)

    async def write(self, *batch: Write) -> list[Answer]:
        """Commit `batch` (in one transaction, with whatever else is queued); its answers."""
        future: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
        self._queue.append((batch, future))
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drained())
        return await future

    async def _drained(self) -> None:
        """Commit the queue until it is empty; queued while a commit runs joins the next.

        Should this task itself be cancelled, no caller is left waiting: every write it had
        not answered is cancelled with it."""
        waiting: list[Waiting] = []
        try:
            while self._queue:
                waiting, self._queue = self._queue, []
                await self._commit(waiting)
        finally:
            self._drain = None
            queued, self._queue = self._queue, []  # cancelled: never committed by the next
            for _, future in waiting + queued:
                if not future.done():
                    future.cancel()

    async def _commit(self, waiting: list[Waiting]) -> None:
        try:
            answers = await self._writes.commit([w for batch, _ in waiting for w in batch])
        except Exception as exc:
            if len(waiting) == 1:
                _settle(waiting[0][1], exc)
                return
            for one in waiting:  # find whose write it was: each alone
                await self._commit([one])
            return
        self.commits += 1
        start = 0
        for batch, future in waiting:
            _settle(future, answers[start : start + len(batch)])
            start += len(batch)

    # -- the writes an action makes ----------------------------------------------------------

    async def open(self, key: DeploymentKey, action: str, intent: Intent) -> int:
        (entry_id,) = await self.write(OpenEntry(key, action, intent.to_json()))
        assert entry_id is not None
        return entry_id

    async def submitted(
        self, entry_id: int, task_ids: Sequence[str], record: Record | None = None
    ) -> None:
        """The task IDs, and with them the record claiming ownership (one transaction)."""
        tasks = EntryTasks(entry_id, tuple(task_ids))
        await self.write(*((tasks,) if record is None else (tasks, SaveRecord(record))))

    async def close(self, entry_id: int, result: JournalResult, message: str = "") -> None:
        await self.write(CloseEntry(entry_id, result.value, message))

    async def save(self, record: Record) -> None:
        await self.write(SaveRecord(record))

    async def forget(self, key: DeploymentKey) -> None:
        await self.write(Forget(key))


def _settle(future: asyncio.Future[list[Answer]], outcome: list[Answer] | Exception) -> None:
    if future.done():  # its caller was cancelled (a shutdown): nobody waits for it
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
