"""Records of the credentials, secrets and API keys this reconciler owns.

Kept in their own table, `object_records`, of the SQLite state file, through a connection of
their own (WAL mode lets it sit beside the state store's). The table is created on first use,
so a state file written before these kinds existed needs no migration, and the deployment
store's schema and protocol stay as they are. Like deployment records, a record holds the
last-applied body with every sensitive value (write-only fields included) replaced by the state
store's salted hash: never a secret.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from .kinds import Kind, ObjectKey
from .objects_plan import ObjectRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS object_records (
    kind TEXT NOT NULL,
    project_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    last_applied TEXT NOT NULL,
    sensitive_paths TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{}',
    annotations TEXT NOT NULL DEFAULT '{}',
    applied_at REAL NOT NULL,
    PRIMARY KEY (kind, project_id, name)
)
"""


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
    if type(source).__name__ == "PostgresStateStore":
        from .pg_objects import PgObjectRecords
        from .pgstate import PostgresStateStore

        if isinstance(source, PostgresStateStore):
            return PgObjectRecords(source)
    return None


class ObjectRecords:
    """The object records of one SQLite state file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def records(self) -> dict[ObjectKey, ObjectRecord]:
        rows = self._db.execute(
            "SELECT kind, project_id, name, last_applied, sensitive_paths, labels, annotations, "
            "applied_at FROM object_records ORDER BY kind, project_id, name"
        ).fetchall()
        found = {}
        for row in rows:
            try:
                kind = Kind(row[0])
            except ValueError:
                continue  # a kind a newer version wrote: not ours to touch
            key = ObjectKey(kind, row[1], row[2])
            found[key] = ObjectRecord(
                key=key,
                last_applied=json.loads(row[3]),
                sensitive_paths=frozenset(tuple(p) for p in json.loads(row[4])),
                labels=MappingProxyType(json.loads(row[5])),
                annotations=MappingProxyType(json.loads(row[6])),
                applied_at=row[7],
            )
        return found

    def save(self, record: ObjectRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO object_records (kind, project_id, name, last_applied, "
            "sensitive_paths, labels, annotations, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.key.kind.value,
                record.key.project_id,
                record.key.name,
                json.dumps(dict(record.last_applied), sort_keys=True),
                json.dumps(sorted(list(p) for p in record.sensitive_paths)),
                json.dumps(dict(record.labels), sort_keys=True),
                json.dumps(dict(record.annotations), sort_keys=True),
                record.applied_at,
            ),
        )

    def forget(self, key: ObjectKey) -> None:
        self._db.execute(
            "DELETE FROM object_records WHERE kind = ? AND project_id = ? AND name = ?",
            (key.kind.value, key.project_id, key.name),
        )
