"""Records of credentials, secrets and API keys in a PostgreSQL state (`object_state` for SQLite).

The same rows as SQLite's `object_records` table, in the store's schema, on the store's own
connection (so they share its transactions and its error wording: never the URL's password).
The table is created on first use under the migration advisory lock, like SQLite's: a database
written before these kinds existed needs no migration, and the deployment schema stays as is.
Sensitive values are recorded as the store's keyed hashes, never as themselves.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import TYPE_CHECKING

from .kinds import Kind, ObjectKey
from .objects_plan import ObjectRecord
from .pgstate import LOCK_CLASS, MIGRATE_LOCK, SCHEMA

if TYPE_CHECKING:
    from .pgstate import PostgresStateStore

TABLE = f"{SCHEMA}.object_records"

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    kind TEXT NOT NULL,
    project_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    last_applied TEXT NOT NULL,
    sensitive_paths TEXT NOT NULL DEFAULT '[]',
    labels TEXT NOT NULL DEFAULT '{{}}',
    annotations TEXT NOT NULL DEFAULT '{{}}',
    applied_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (kind, project_id, name)
)
"""


class PgObjectRecords:
    """The object records of one PostgreSQL state store (closing it leaves the store open)."""

    def __init__(self, store: PostgresStateStore) -> None:
        self._store = store
        with store._tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATE_LOCK))
            db.execute(DDL)

    def close(self) -> None:
        """Nothing of its own to close: the connection is the store's."""

    def records(self) -> dict[ObjectKey, ObjectRecord]:
        rows = self._store._rows(
            "SELECT kind, project_id, name, last_applied, sensitive_paths, labels, annotations, "
            f"applied_at FROM {TABLE} ORDER BY kind, project_id, name"
        )
        found = {}
        for row in rows:
            try:
                kind = Kind(row[0])
            except ValueError:
                continue  # a kind a newer version wrote: not ours to touch
            key = ObjectKey(kind, int(row[1]), row[2])
            found[key] = ObjectRecord(
                key=key,
                last_applied=json.loads(row[3]),
                sensitive_paths=frozenset(tuple(p) for p in json.loads(row[4])),
                labels=MappingProxyType(json.loads(row[5])),
                annotations=MappingProxyType(json.loads(row[6])),
                applied_at=float(row[7]),
            )
        return found

    def save(self, record: ObjectRecord) -> None:
        with self._store._tx() as db:
            db.execute(
                f"INSERT INTO {TABLE} (kind, project_id, name, last_applied, sensitive_paths, "
                "labels, annotations, applied_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (kind, project_id, name) DO UPDATE SET "
                "last_applied = EXCLUDED.last_applied, "
                "sensitive_paths = EXCLUDED.sensitive_paths, labels = EXCLUDED.labels, "
                "annotations = EXCLUDED.annotations, applied_at = EXCLUDED.applied_at",
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
        with self._store._tx() as db:
            db.execute(
                f"DELETE FROM {TABLE} WHERE kind = %s AND project_id = %s AND name = %s",
                (key.kind.value, key.project_id, key.name),
            )
