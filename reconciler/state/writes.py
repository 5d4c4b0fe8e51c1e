"""The writes an apply makes while it runs, as values: so several can go in one transaction.

An apply journals each action before its request, then its task IDs, then its result, and
writes the deployment's record between: about five writes per deployment. Made one transaction
each, a thousand creates are five thousand commits. As values, the writes of every action that
reaches that point at the same moment are committed together (`execute.writer` gathers them),
and each caller still waits for its own write to be durable before it sends its request.

`statement` turns a write into SQL both backends speak (`?` placeholders, as in `sql.py`), so
the synchronous store and the PostgreSQL asynchronous session run the same statements.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from ..model import DeploymentKey, Record
from .contract import StateError
from .rows import RECORD_COLUMNS, record_row, upsert


@dataclass(frozen=True)
class OpenEntry:
    """A journal entry's intent (its answer: the entry's id)."""

    key: DeploymentKey
    action: str
    intent: Mapping[str, Any]


@dataclass(frozen=True)
class EntryTasks:
    """The task IDs of an entry's request: it was submitted."""

    entry_id: int
    task_ids: tuple[str, ...]


@dataclass(frozen=True)
class CloseEntry:
    """An entry's result."""

    entry_id: int
    result: str
    message: str = ""


@dataclass(frozen=True)
class SaveRecord:
    record: Record


@dataclass(frozen=True)
class Forget:
    key: DeploymentKey


Write = OpenEntry | EntryTasks | CloseEntry | SaveRecord | Forget
Answer = int | None  # an `OpenEntry`'s id; None for the others

_SAVE = upsert("deployments", RECORD_COLUMNS, 2)


def statement(write: Write, now: float) -> tuple[str, tuple[Any, ...]]:
    """The SQL of one write (`?` placeholders) and its parameters; `now` is its time stamp.

    Only `OpenEntry`'s statement returns a row: the new entry's id."""
    if isinstance(write, OpenEntry):
        key = write.key
        return (
            "INSERT INTO journal (project_id, name, action, intent, state, started_at, "
            "updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?) RETURNING id",
            (key.project_id, key.name, write.action, json.dumps(dict(write.intent)), now, now),
        )
    if isinstance(write, EntryTasks):
        return (
            "UPDATE journal SET task_ids = ?, state = 'submitted', updated_at = ? WHERE id = ?",
            (json.dumps(list(write.task_ids)), now, write.entry_id),
        )
    if isinstance(write, CloseEntry):
        return (
            "UPDATE journal SET state = 'done', result = ?, message = ?, updated_at = ? "
            "WHERE id = ?",
            (write.result, write.message, now, write.entry_id),
        )
    if isinstance(write, SaveRecord):
        return _SAVE, record_row(write.record)
    return (
        "DELETE FROM deployments WHERE project_id = ? AND name = ?",
        (write.key.project_id, write.key.name),
    )


def answer(write: Write, rows: Sequence[Sequence[Any]]) -> Answer:
    """What a write answers, from the rows its statement returned."""
    return int(rows[0][0]) if isinstance(write, OpenEntry) else None


def session_closed(store: object) -> StateError:
    """A write reaching a session after its `writes()` context closed: refused, so an action
    still running after its apply ended (cancelled) cannot write without the apply's lock."""
    return StateError(f"{store}: a state write came after its session closed; it was not made")


class Writes(Protocol):
    """Somewhere to commit writes from async code (`StateStore.writes`).

    `commit` runs every write of `batch` in one transaction, in order, and returns their
    answers once the transaction is durable; if it raises, none of them happened. Once the
    `writes()` context has closed, `commit` raises `session_closed`'s error."""

    async def commit(self, batch: Sequence[Write]) -> list[Answer]: ...


class WritesSource(Protocol):
    def writes(self) -> AbstractAsyncContextManager[Writes]: ...
