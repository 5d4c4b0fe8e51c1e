"""The PostgreSQL state store: one inventory shared by CI runners, laptops and service replicas.

Same contract, rows and meaning as the SQLite store (`state.py` writes and reads the rows for
both), in the `reconciler` schema of the database the URL names:

- the schema is versioned in `meta` (`schema_version`) with forward-only migrations, run under a
  transaction-level advisory lock so two processes starting at once migrate once; a database
  from a newer version is refused;
- the apply lock is a session-level advisory lock: the server releases it the moment the
  holder's connection ends (a crash, kill -9, a lost network), so there are no stale locks to
  clean by hand. Who holds it (pid, host, since) is a row in `lock`, shown only while that
  backend really holds the advisory lock;
- the connection URL's password never appears in a message: errors name the URL without it.

One synchronous connection per store, in autocommit with explicit transactions: the store is
called between API requests, like the SQLite one, and its lock lives on that connection.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from . import statekey
from .model import DeploymentKey, Record
from .state import (
    APPLIED_RESULTS,
    JOURNAL_COLUMNS,
    JOURNAL_RETENTION,
    RECORD_COLUMNS,
    SPEC_PARTS,
    JournalEntry,
    LockHeld,
    LockHolder,
    StateError,
    journal_insert_row,
    journal_of,
    record_of,
    record_row,
)
from .statekey import Hasher, KeyMaterial

if TYPE_CHECKING:
    import psycopg

SCHEMA = "reconciler"
LOCK_CLASS = 0x52454331  # advisory locks are (class, object) pairs; ours all use this class
APPLY_LOCK = 0  # the object of the apply lock (per-project locks use other objects)
MIGRATE_LOCK = -1

PG_MIGRATIONS: tuple[str, ...] = (
    # version 1: the same tables as SQLite's version 1; the lock row names its backend
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE deployments (
        project_id BIGINT NOT NULL,
        name TEXT NOT NULL,
        last_applied TEXT NOT NULL,
        sensitive_paths TEXT NOT NULL DEFAULT '[]',
        labels TEXT NOT NULL DEFAULT '{}',
        annotations TEXT NOT NULL DEFAULT '{}',
        revision TEXT,
        applied_at DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (project_id, name)
    );
    CREATE TABLE journal (
        id BIGSERIAL PRIMARY KEY,
        project_id BIGINT NOT NULL,
        name TEXT NOT NULL,
        action TEXT NOT NULL,
        intent TEXT NOT NULL,
        task_ids TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        result TEXT,
        message TEXT NOT NULL DEFAULT '',
        started_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX journal_open ON journal (state) WHERE state != 'done';
    CREATE TABLE lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL,
        backend_pid INTEGER NOT NULL
    );
    """,
)
PG_SCHEMA_VERSION = len(PG_MIGRATIONS)


def redact_url(url: str) -> str:
    """The URL with its password (in the userinfo or the query) replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unparsable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item
        for item in parts.query.split("&")
        if item
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _password_of(url: str) -> str | None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        value = conninfo_to_dict(url).get("password")
    except Exception:  # an unparsable URL: the caller's own error will say so, redacted
        return None
    return str(value) if value else None


class PostgresStateStore:
    """The PostgreSQL implementation of `StateStore` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        key: KeyMaterial | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        import psycopg

        self.url = redact_url(url)
        self._password = _password_of(url)
        self._clock = clock
        self._locked = False
        try:
            self._conn: psycopg.Connection[Any] = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, int(connect_timeout)),
                application_name="reconciler",
            )
        except psycopg.Error as exc:
            raise StateError(f"{self.url}: cannot connect ({self._scrub(exc)})") from None
        with self._errors():
            self._migrate()
            self._hasher = self._open_hasher(key or statekey.from_env())
            self._prune_journal()

    def __repr__(self) -> str:
        return f"PostgresStateStore({self.url!r})"

    def __str__(self) -> str:
        return self.url

    # -- plumbing ----------------------------------------------------------------------------

    def _scrub(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())
        if self._password:
            text = text.replace(self._password, "***")
        return text

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise StateError(f"{self.url}: {self._scrub(exc)}") from None

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        with self._errors(), self._conn.transaction():
            yield self._conn

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._errors():
            return self._conn.execute(sql, params).fetchall()

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATE_LOCK))
            db.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            db.execute(f"SET search_path TO {SCHEMA}")
            version = 0
            if db.execute(f"SELECT to_regclass('{SCHEMA}.meta')").fetchone() != (None,):
                row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row else 0
            if version > PG_SCHEMA_VERSION:
                raise StateError(
                    f"{self.url} has state schema version {version}, newer than this "
                    f"reconciler understands ({PG_SCHEMA_VERSION}); upgrade reconciler"
                )
            for number in range(version, PG_SCHEMA_VERSION):
                db.execute(PG_MIGRATIONS[number])
            if version == 0:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('salt', %s), ('created_at', %s)",
                    (secrets.token_hex(16), str(self._clock())),
                )
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(PG_SCHEMA_VERSION),),
            )

    def _meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = %s", (key,))
        return str(rows[0][0]) if rows else None

    def _open_hasher(self, key: KeyMaterial | None) -> Hasher:
        salt = self._meta("salt")
        if salt is None:
            raise StateError(f"{self.url}: state lacks its salt")
        self.key_material = key or statekey.NO_KEY
        hasher = Hasher(salt, self.key_material)
        with self._tx() as db:
            for name, value in statekey.meta_of(hasher).items():
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (name, value),
                )
        recorded = (self._meta("hash_key") or "", self._meta("key_check") or "")
        try:
            statekey.verify(hasher, *recorded, self.url)
        except statekey.KeyMismatch:
            if not self.is_empty():
                raise
            self._write_meta(statekey.meta_of(hasher))  # nothing hashed yet: take the new key
        return hasher

    def is_empty(self) -> bool:
        """No record and no journal entry: nothing hashed that a new key would invalidate."""
        rows = self._rows(
            "SELECT EXISTS (SELECT 1 FROM deployments) OR EXISTS (SELECT 1 FROM journal)"
        )
        return not rows[0][0]

    def _write_meta(self, values: Mapping[str, str]) -> None:
        with self._tx() as db:
            for name, value in values.items():
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (name, value),
                )

    def hash_meta(self) -> dict[str, str]:
        """The salt and key description an export carries (never the key itself)."""
        return {name: self._meta(name) or "" for name in ("salt", "hash_key", "key_check")}

    def adopt_hash_meta(self, meta: Mapping[str, str]) -> None:
        """Take another store's salt (its hashes come along in an import); see `statekey`."""
        self._hasher = statekey.adopt(self.key_material, meta, self.url)
        self._write_meta(dict(meta))

    def restore_journal(self, entries: list[JournalEntry]) -> None:
        with self._tx() as db:
            for e in entries:
                db.execute(
                    "INSERT INTO journal (project_id, name, action, intent, task_ids, state, "
                    "result, message, started_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    journal_insert_row(e, self._clock()),
                )

    def _prune_journal(self) -> None:
        """As SQLite's: every entry stays; an old one that did not apply drops its spec."""
        horizon = self._clock() - JOURNAL_RETENTION
        dropped = "".join(f" - '{part}'" for part in SPEC_PARTS)
        with self._tx() as db:
            db.execute(
                f"UPDATE journal SET intent = (intent::jsonb{dropped})::text WHERE state = 'done' "
                "AND updated_at < %s AND result NOT IN (%s, %s) AND intent::jsonb ? 'last_applied'",
                (horizon, *APPLIED_RESULTS),
            )

    def schema_version(self) -> int:
        return int(self._meta("schema_version") or 0)

    def integrity_ok(self) -> bool:
        """The server keeps its own integrity; this checks that the store answers."""
        return self._rows("SELECT 1") == [(1,)]

    def close(self) -> None:
        if self._conn.closed:
            return
        try:
            self.release_lock()
        finally:
            self._conn.close()

    # -- secrets -----------------------------------------------------------------------------

    def hash_value(self, value: Any) -> str:
        """A keyed hash of a sensitive value: comparable, never reversible to the value."""
        return self._hasher(value)

    # -- records -----------------------------------------------------------------------------

    def records(self) -> dict[DeploymentKey, Record]:
        rows = self._rows(
            f"SELECT {', '.join(RECORD_COLUMNS)} FROM deployments ORDER BY project_id, name"
        )
        return {record.key: record for record in map(record_of, rows)}

    def save_record(self, record: Record) -> None:
        columns = ", ".join(RECORD_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in RECORD_COLUMNS[2:])
        with self._tx() as db:
            db.execute(
                f"INSERT INTO deployments ({columns}) VALUES ({', '.join(['%s'] * 10)}) "
                f"ON CONFLICT (project_id, name) DO UPDATE SET {updates}",
                record_row(record),
            )

    def forget(self, key: DeploymentKey) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM deployments WHERE project_id = %s AND name = %s",
                (key.project_id, key.name),
            )

    # -- journal -----------------------------------------------------------------------------

    def journal_intent(self, key: DeploymentKey, action: str, intent: Mapping[str, Any]) -> int:
        now = self._clock()
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO journal (project_id, name, action, intent, state, started_at, "
                "updated_at) VALUES (%s, %s, %s, %s, 'pending', %s, %s) RETURNING id",
                (key.project_id, key.name, action, json.dumps(dict(intent)), now, now),
            ).fetchone()
        return int(row[0]) if row else 0

    def journal_tasks(self, entry_id: int, task_ids: list[str]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE journal SET task_ids = %s, state = 'submitted', updated_at = %s "
                "WHERE id = %s",
                (json.dumps(task_ids), self._clock(), entry_id),
            )

    def journal_done(self, entry_id: int, result: str, message: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE journal SET state = 'done', result = %s, message = %s, updated_at = %s "
                "WHERE id = %s",
                (result, message, self._clock(), entry_id),
            )

    def journal_history(self, key: DeploymentKey) -> list[JournalEntry]:
        """Every journal entry of one deployment, oldest first (all are kept)."""
        rows = self._rows(
            f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM journal WHERE project_id = %s AND name = %s "
            "ORDER BY id",
            (key.project_id, key.name),
        )
        return [journal_of(row) for row in rows]

    def unfinished(self) -> list[JournalEntry]:
        rows = self._rows(
            f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM journal WHERE state != 'done' ORDER BY id"
        )
        return [journal_of(row) for row in rows]

    # -- the apply lock ----------------------------------------------------------------------

    def holder(self) -> LockHolder | None:
        """Who holds the apply lock, if its backend really holds it now."""
        rows = self._rows(
            "SELECT l.pid, l.host, l.since FROM lock l JOIN pg_locks k "
            "ON k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid "
            "AND k.classid::bigint = %s AND k.objid::bigint = %s AND k.objsubid = 2 "
            "WHERE l.id = 1",
            (LOCK_CLASS, APPLY_LOCK),
        )
        return LockHolder(rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def acquire_lock(
        self,
        *,
        timeout: float = 10.0,
        poll: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Take the apply lock, waiting up to `timeout` seconds for its holder to let go."""
        if self._locked:
            return
        deadline = monotonic() + timeout
        while True:
            taken = self._rows("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, APPLY_LOCK))
            if taken == [(True,)]:
                with self._tx() as db:
                    db.execute("DELETE FROM lock WHERE id = 1")
                    db.execute(
                        "INSERT INTO lock (id, pid, host, since, backend_pid) "
                        "VALUES (1, %s, %s, %s, pg_backend_pid())",
                        (os.getpid(), socket.gethostname(), self._clock()),
                    )
                self._locked = True
                return
            if monotonic() >= deadline:
                holder = self.holder()
                who = str(holder) if holder else "a process that is just taking it"
                raise LockHeld(
                    f"{self.url} is locked by another apply ({who}); waited {timeout:g}s. "
                    "The server releases it as soon as that process ends."
                )
            sleep(poll)

    def release_lock(self) -> None:
        if not self._locked:
            return
        with self._tx() as db:
            db.execute("DELETE FROM lock WHERE id = 1 AND backend_pid = pg_backend_pid()")
            db.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, APPLY_LOCK))
        self._locked = False
