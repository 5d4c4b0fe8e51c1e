"""The part of a state store both backends share: records, journal, meta and hashing, in SQL
that SQLite and PostgreSQL both speak.

A backend brings its connection as two primitives: `_rows` (a read) and `_tx` (a transaction
yielding a `Run`). Statements here use `?` placeholders; the PostgreSQL backend turns them into
its own. What really differs (opening, schema versioning, key files, the apply lock, error
wording) stays in `sqlite.py` and `postgres.py`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any

from .. import statekey
from ..model import DeploymentKey, Record
from ..statekey import Hasher, KeyMaterial
from .contract import (
    APPLIED_RESULTS,
    JOURNAL_RETENTION,
    JournalEntry,
    LockHeld,
    LockHolder,
    StateError,
)
from .rows import (
    JOURNAL_COLUMNS,
    JOURNAL_INSERT_COLUMNS,
    RECORD_COLUMNS,
    columns,
    journal_insert_row,
    journal_of,
    placeholders,
    records_of,
    upsert,
)
from .writes import (
    Answer,
    CloseEntry,
    EntryTasks,
    Forget,
    OpenEntry,
    SaveRecord,
    Write,
    Writes,
    answer,
    session_closed,
    statement,
)

Row = tuple[Any, ...]
Run = Callable[[str, Sequence[Any]], list[Row]]
"""Run one statement inside a transaction; its rows (none for a statement without any)."""

HASH_META = ("salt", "hash_key", "key_check")
_JOURNAL = f"SELECT {columns(JOURNAL_COLUMNS)} FROM journal"


class _Inline:
    """`Writes` on a store's synchronous connection (see `SqlStateStore.writes`)."""

    def __init__(self, store: SqlStateStore) -> None:
        self._store = store
        self.closed = False

    async def commit(self, batch: Sequence[Write]) -> list[Answer]:
        if self.closed:
            raise session_closed(self._store)
        return self._store.write(batch)


class SqlStateStore(ABC):
    """Everything of `StateStore` but the lock and the opening, over `_rows` and `_tx`."""

    _clock: Callable[[], float]
    _hasher: Hasher
    key_material: KeyMaterial
    _without_spec: str  # SQL: the `intent` column's JSON without `SPEC_PARTS`
    _has_spec: str  # SQL: whether the `intent` column still holds its spec

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one read outside any transaction."""

    @abstractmethod
    def _tx(self) -> AbstractContextManager[Run]:
        """A transaction: committed when the block ends, rolled back if it raises."""

    # -- the apply lock (what it is differs; waiting for it does not) ------------------------

    @abstractmethod
    def holder(self) -> LockHolder | None:
        """Who holds the apply lock now, if anyone."""

    @abstractmethod
    def _try_lock(self) -> bool:
        """Take the apply lock if it is free; true when this store holds it."""

    @abstractmethod
    def _lock_refused(self, holder: LockHolder | None, timeout: float) -> str:
        """Why the lock could not be had, naming its holder."""

    def acquire_lock(
        self,
        *,
        timeout: float = 10.0,
        poll: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Take the apply lock, waiting up to `timeout` seconds for its holder to let go."""
        deadline = monotonic() + timeout
        while not self._try_lock():
            if monotonic() >= deadline:
                raise LockHeld(self._lock_refused(self.holder(), timeout))
            sleep(poll)

    # -- meta and hashing --------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def _required_meta(self, key: str) -> str:
        value = self._meta(key)
        if value is None:
            raise StateError(f"{self}: state lacks its {key}")
        return value

    def _write_meta(self, values: Mapping[str, str]) -> None:
        with self._tx() as run:
            for name, value in values.items():
                run(upsert("meta", ("key", "value"), 1), (name, value))

    def _verified(self, hasher: Hasher, source: str, check: str) -> Hasher:
        """`hasher` if it is the key the store's hashes were made with (see `statekey.verify`).

        A store with nothing hashed yet takes the new key instead.
        """
        try:
            statekey.verify(hasher, source, check, str(self))
        except statekey.KeyMismatch:
            if not self.is_empty():
                raise
            self._write_meta(statekey.meta_of(hasher))
        return hasher

    def is_empty(self) -> bool:
        """No record and no journal entry: nothing hashed that a new key would invalidate."""
        rows = self._rows(
            "SELECT EXISTS (SELECT 1 FROM deployments) OR EXISTS (SELECT 1 FROM journal)"
        )
        return not rows[0][0]

    def hash_value(self, value: Any) -> str:
        """A keyed hash of a sensitive value: comparable, never reversible to the value."""
        return self._hasher(value)

    def hash_meta(self) -> dict[str, str]:
        """The salt and key description an export carries (never the key itself)."""
        return {name: self._meta(name) or "" for name in HASH_META}

    def adopt_hash_meta(self, meta: Mapping[str, str]) -> None:
        """Take another store's salt (its hashes come along in an import); see `statekey`."""
        self._hasher = statekey.adopt(self.key_material, meta, str(self))
        self._write_meta(dict(meta))

    # -- records -----------------------------------------------------------------------------

    def records(self, *, compact: bool = False) -> dict[DeploymentKey, Record]:
        rows = self._rows(
            f"SELECT {columns(RECORD_COLUMNS)} FROM deployments ORDER BY project_id, name"
        )
        return {record.key: record for record in records_of(rows, compact=compact)}

    def save_record(self, record: Record) -> None:
        self.write([SaveRecord(record)])

    def forget(self, key: DeploymentKey) -> None:
        self.write([Forget(key)])

    # -- journal -----------------------------------------------------------------------------

    def journal_intent(self, key: DeploymentKey, action: str, intent: Mapping[str, Any]) -> int:
        entry_id = self.write([OpenEntry(key, action, intent)])[0]
        assert entry_id is not None
        return entry_id

    def journal_tasks(self, entry_id: int, task_ids: list[str]) -> None:
        self.write([EntryTasks(entry_id, tuple(task_ids))])

    def journal_done(self, entry_id: int, result: str, message: str = "") -> None:
        self.write([CloseEntry(entry_id, result, message)])

    # -- writes, one transaction for many (`writes.py`) ---------------------------------------

    def write(self, batch: Sequence[Write]) -> list[Answer]:
        """Every write of `batch` in one transaction, in order; their answers."""
        now = self._clock()
        answers: list[Answer] = []
        with self._tx() as run:
            for one in batch:
                sql, params = statement(one, now)
                answers.append(answer(one, run(sql, params)))
        return answers

    @asynccontextmanager
    async def writes(self) -> AsyncIterator[Writes]:
        """Where async code commits its writes. Here, on the store's own connection, in the
        calling thread: right for a local file (a commit is a local write, in WAL mode without
        a sync per commit); PostgreSQL answers with a session of its own (`postgres.py`).
        Once closed, a session refuses writes (`session_closed`)."""
        session = _Inline(self)
        try:
            yield session
        finally:
            session.closed = True

    def journal_history(self, key: DeploymentKey) -> list[JournalEntry]:
        """Every journal entry of one deployment, oldest first (all are kept)."""
        rows = self._rows(
            f"{_JOURNAL} WHERE project_id = ? AND name = ? ORDER BY id",
            (key.project_id, key.name),
        )
        return [journal_of(row) for row in rows]

    def unfinished(self) -> list[JournalEntry]:
        rows = self._rows(f"{_JOURNAL} WHERE state != 'done' ORDER BY id")
        return [journal_of(row) for row in rows]

    def restore_journal(self, entries: list[JournalEntry]) -> None:
        """Add the entries of an export (each gets a new id, in order)."""
        sql = (
            f"INSERT INTO journal ({columns(JOURNAL_INSERT_COLUMNS)}) "
            f"VALUES ({placeholders(JOURNAL_INSERT_COLUMNS)})"
        )
        with self._tx() as run:
            for entry in entries:
                run(sql, journal_insert_row(entry, self._clock()))

    def _prune_journal(self) -> None:
        """Every entry stays: `history` numbers them, and a rollback re-applies an applied one's
        spec. After `JOURNAL_RETENTION`, a finished entry that did not apply drops its spec (it
        keeps its action, result, message and revision)."""
        horizon = self._clock() - JOURNAL_RETENTION
        with self._tx() as run:
            run(
                f"UPDATE journal SET intent = {self._without_spec} WHERE state = 'done' "
                f"AND updated_at < ? AND result NOT IN (?, ?) AND {self._has_spec}",
                (horizon, *APPLIED_RESULTS),
            )
