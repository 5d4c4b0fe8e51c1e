"""Records of the credentials, secrets and API keys this reconciler owns.

Kept in their own table, `object_records`, beside the state store's: in a SQLite state file
through a connection of their own (WAL mode lets it sit beside the store's), in a PostgreSQL
state on the store's own connection (so they share its transactions and its error wording:
never the URL's password). The table is created on first use (on PostgreSQL under the
migration advisory lock), so a state written before these kinds existed needs no migration, and
the deployment store's schema and protocol stay as they are. Like deployment records, a record
holds the last-applied body with every sensitive value (write-only fields included) replaced by
the state store's keyed hash: never a secret.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from ..kinds import ObjectKey
from ..objects_plan import ObjectRecord
from .postgres import LOCK_CLASS, MIGRATE_LOCK, SCHEMA, PostgresStateStore
from .rows import OBJECT_COLUMNS, columns, object_of, object_row, upsert
from .schema import OBJECT_RECORDS, POSTGRES, SQLITE
from .sql import Row


class ObjectRecordStore(Protocol):
    """Where object records live: SQLite's `ObjectRecords`, PostgreSQL's `PgObjectRecords`."""

    def records(self) -> dict[ObjectKey, ObjectRecord]: ...
    def save(self, record: ObjectRecord) -> None: ...
    def forget(self, key: ObjectKey) -> None: ...
    def close(self) -> None: ...


def open_object_records(source: object) -> ObjectRecordStore | None:
    """The object records beside a state store (or a SQLite state file's path); None if none."""
    if isinstance(source, Path):
        return ObjectRecords(source)
    path = getattr(source, "path", None)
    if isinstance(path, Path):
        return ObjectRecords(path)
    if isinstance(source, PostgresStateStore):
        return PgObjectRecords(source)
    return None


def object_state_path(store: object) -> Path | PostgresStateStore | None:
    """What object records open from: a SQLite state file's path, the PostgreSQL store itself,
    or None for a store that cannot hold them. A replica's view (`ScopedStore`) opens them from
    the store it limits."""
    store = getattr(store, "whole", store)
    path = getattr(store, "path", None)
    if isinstance(path, Path):
        return path
    return store if isinstance(store, PostgresStateStore) else None


class _ObjectTable(ABC):
    """The statements of both backends (`?` placeholders) over a backend's `_run`."""

    table = "object_records"

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement (a transaction of its own) and return its rows."""

    def records(self) -> dict[ObjectKey, ObjectRecord]:
        rows = self._run(
            f"SELECT {columns(OBJECT_COLUMNS)} FROM {self.table} ORDER BY kind, project_id, name"
        )
        found = (object_of(row) for row in rows)
        return {record.key: record for record in found if record is not None}

    def save(self, record: ObjectRecord) -> None:
        self._run(upsert(self.table, OBJECT_COLUMNS, 3), object_row(record))

    def forget(self, key: ObjectKey) -> None:
        self._run(
            f"DELETE FROM {self.table} WHERE kind = ? AND project_id = ? AND name = ?",
            (key.kind.value, key.project_id, key.name),
        )


class ObjectRecords(_ObjectTable):
    """The object records of one SQLite state file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute(SQLITE(OBJECT_RECORDS).format(table=self.table))

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._db.execute(sql, params).fetchall()


class PgObjectRecords(_ObjectTable):
    """The object records of one PostgreSQL state store (closing it leaves the store open)."""

    table = f"{SCHEMA}.object_records"
    waits_on_a_server = True  # async code calls it through `state.offloop`

    def __init__(self, store: PostgresStateStore) -> None:
        self._store = store
        with store._tx() as run:
            run("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, MIGRATE_LOCK))
            run(POSTGRES(OBJECT_RECORDS).format(table=self.table), ())

    def close(self) -> None:
        """Nothing of its own to close: the connection is the store's."""

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._store._tx() as run:
            return run(sql, params)
