"""The PostgreSQL state store: one inventory shared by CI runners, laptops and service replicas.

Same contract, rows, statements and meaning as the SQLite store (`sql.py` holds what both do), in
the `reconciler` schema of the database the URL names. What only PostgreSQL has:

- the schema is versioned in `meta` (`schema_version`) with forward-only migrations, run under a
  transaction-level advisory lock so two processes starting at once migrate once; a database
  from a newer version is refused;
- the apply lock is a session-level advisory lock: the server releases it the moment the
  holder's connection ends (a crash, kill -9, a lost network), so there are no stale locks to
  clean by hand. Who holds it (pid, host, since) is a row in `lock`, shown only while that
  backend really holds the advisory lock. Service replicas take it shared
  (`acquire_shared_lock`): each applies only the projects it holds, so they apply side by
  side, while a whole-inventory apply (the CLI) waits for all of them and they for it. The
  writes go on a session of their own (below), and each batch checks in its transaction that
  the lock's session still holds the lock: an apply whose lock session alone ended (an
  administrator's terminate, `idle_session_timeout`) stops at its next write;
- the connection URL's password never appears in a message: errors name the URL without it.

One synchronous connection per store, in autocommit with explicit transactions: it holds the
lock, reads, and serves the synchronous callers (the CLI's admin commands). Async code writes
through `writes()`: a session on psycopg's `AsyncConnection` of its own, opened at its first
write, that sends a batch of writes in one pipelined transaction (one round trip for the lot) and
awaits the server's answer without holding up the event loop. Async code that must read or lock
runs those calls in a worker thread (`state.offloop`), never on the loop; such threads take
turns on the connection, one statement or transaction at a time.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .. import statekey
from ..statekey import Hasher, KeyMaterial
from .contract import SPEC_PARTS, LockHolder, StateError
from .rows import upsert
from .schema import POSTGRES, VERSION_1
from .sql import Row, Run, SqlStateStore
from .writes import Answer, OpenEntry, Write, Writes, answer, session_closed, statement

if TYPE_CHECKING:
    import psycopg


def _not_a_pipeline_left_behind(record: logging.LogRecord) -> bool:
    """psycopg logs "error ignored terminating <AsyncPipeline [BAD]>" when a batch's connection
    is lost; the write's own error says so already, once, with the URL (without its password)."""
    return not record.getMessage().startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_not_a_pipeline_left_behind)

SCHEMA = "reconciler"
LOCK_CLASS = 0x52454331  # advisory locks are (class, object) pairs; ours all use this class
APPLY_LOCK = 0  # the object of the apply lock (per-project locks use other objects)
MIGRATE_LOCK = -1

# version 1: the same tables as SQLite's version 1; the lock row names its backend
PG_MIGRATIONS: tuple[str, ...] = (POSTGRES(VERSION_1),)
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


def _dialect(sql: str) -> str:
    """`SqlStateStore`'s `?` placeholders as psycopg's `%s` (no statement holds a literal `?`)."""
    return sql.replace("?", "%s")


class PostgresStateStore(SqlStateStore):
    """The PostgreSQL implementation of `StateStore` (see the module docstring)."""

    _without_spec = "(intent::jsonb" + "".join(f" - '{part}'" for part in SPEC_PARTS) + ")::text"
    _has_spec = "(intent::jsonb -> 'last_applied') IS NOT NULL"  # not `?`: that is a placeholder
    waits_on_a_server = True  # async code calls it through `state.offloop`

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
        self._conninfo = url  # only ever handed to psycopg: messages use `url`
        self._connect_timeout = max(1, int(connect_timeout))
        self._password = _password_of(url)
        self._clock = clock
        self._locked = False
        self._shared = False  # the apply lock taken shared (by a service replica)
        # `offloop` calls this store from worker threads, several at once (a wave of object
        # records): one statement or transaction at a time on the one connection, or psycopg
        # nests one thread's transaction in another's
        self._guard = threading.RLock()
        try:
            self._conn: psycopg.Connection[Any] = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=self._connect_timeout,
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

    # -- the connection ----------------------------------------------------------------------

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

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._conn.execute(_dialect(sql), params)
        return cursor.fetchall() if cursor.description is not None else []

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._guard, self._errors():
            return self._run(sql, params)

    @contextmanager
    def _tx(self) -> Iterator[Run]:
        with self._guard, self._errors(), self._conn.transaction():
            yield self._run

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._tx() as run:
            run("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, MIGRATE_LOCK))
            run(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}", ())
            run(f"SET search_path TO {SCHEMA}", ())
            version = 0
            if run(f"SELECT to_regclass('{SCHEMA}.meta')", ()) != [(None,)]:
                rows = run("SELECT value FROM meta WHERE key = 'schema_version'", ())
                version = int(rows[0][0]) if rows else 0
            if version > PG_SCHEMA_VERSION:
                raise StateError(
                    f"{self.url} has state schema version {version}, newer than this "
                    f"reconciler understands ({PG_SCHEMA_VERSION}); upgrade reconciler"
                )
            for number in range(version, PG_SCHEMA_VERSION):
                run(PG_MIGRATIONS[number], ())
            if version == 0:
                run(
                    "INSERT INTO meta (key, value) VALUES ('salt', ?), ('created_at', ?)",
                    (secrets.token_hex(16), str(self._clock())),
                )
            run(upsert("meta", ("key", "value"), 1), ("schema_version", str(PG_SCHEMA_VERSION)))

    def _open_hasher(self, key: KeyMaterial | None) -> Hasher:
        self.key_material = key or statekey.NO_KEY
        hasher = Hasher(self._required_meta("salt"), self.key_material)
        with self._tx() as run:
            for name, value in statekey.meta_of(hasher).items():
                run(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (name, value),
                )
        return self._verified(hasher, self._meta("hash_key") or "", self._meta("key_check") or "")

    @asynccontextmanager
    async def writes(self) -> AsyncIterator[Writes]:
        """Writes from async code, on an `AsyncConnection` (see the module docstring)."""
        session = _AsyncWrites(self)
        try:
            yield session
        finally:
            await session.close()

    def schema_version(self) -> int:
        return int(self._meta("schema_version") or 0)

    def integrity_ok(self) -> bool:
        """The server keeps its own integrity; this checks that the store answers."""
        return self._rows("SELECT 1") == [(1,)]

    def close(self) -> None:
        with self._guard:
            if self._conn.closed:
                return
            try:
                self.release_lock()
            finally:
                self._conn.close()

    # -- the apply lock ----------------------------------------------------------------------

    def holder(self) -> LockHolder | None:
        """Who holds the apply lock, if its backend really holds it now."""
        rows = self._rows(
            f"SELECT l.pid, l.host, l.since FROM lock l JOIN pg_locks k "
            f"ON {_holds_apply_lock('l.backend_pid')} WHERE l.id = 1"
        )
        return LockHolder(*rows[0]) if rows else None

    def acquire_shared_lock(self, **wait: Any) -> None:
        """Take the apply lock shared with other service replicas (see the module docstring);
        `wait` as for `acquire_lock`."""
        self._shared = True
        try:
            self.acquire_lock(**wait)
        except BaseException:
            self._shared = False
            raise

    def _try_lock(self) -> bool:
        """Take the session's advisory lock if it is free, and write who holds it.

        Shared, the row keeps naming a holder that still has the lock (the first of them)."""
        if self._locked:
            return True
        how = "pg_try_advisory_lock_shared" if self._shared else "pg_try_advisory_lock"
        taken = self._rows(f"SELECT {how}(?, ?)", (LOCK_CLASS, APPLY_LOCK))
        if taken != [(True,)]:
            return False
        with self._tx() as run:
            if self._shared:
                run(
                    "DELETE FROM lock WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM pg_locks k "
                    f"WHERE {_holds_apply_lock('lock.backend_pid')})",
                    (),
                )
            else:
                run("DELETE FROM lock WHERE id = 1", ())
            run(
                "INSERT INTO lock (id, pid, host, since, backend_pid) "
                "VALUES (1, ?, ?, ?, pg_backend_pid()) ON CONFLICT (id) DO NOTHING",
                (os.getpid(), socket.gethostname(), self._clock()),
            )
        self._locked = True
        return True

    def _lock_refused(self, holder: LockHolder | None, timeout: float) -> str:
        return (
            f"{self.url} is locked by another apply "
            f"({holder or 'a process that is just taking it'}); waited {timeout:g}s. "
            "The server releases it as soon as that process ends."
        )

    def release_lock(self) -> None:
        if not self._locked:
            return
        how = "pg_advisory_unlock_shared" if self._shared else "pg_advisory_unlock"
        with self._tx() as run:
            run("DELETE FROM lock WHERE id = 1 AND backend_pid = pg_backend_pid()", ())
            run(f"SELECT {how}(?, ?)", (LOCK_CLASS, APPLY_LOCK))
        self._locked = False
        self._shared = False


def _still_locked(backend_pid: int) -> str:
    """A statement that fails its transaction unless the session `backend_pid` (the store's
    own, which took the apply lock) still holds the lock: the writes go on a session of their
    own, and a lock session that ended (terminated, timed out) without the process has let
    another apply in. Checked in each batch's transaction, so nothing is written after."""
    return (
        "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_locks k WHERE "
        f"{_holds_apply_lock(str(int(backend_pid)))}) THEN RAISE EXCEPTION "
        "'the apply lock was lost: its session ended'; END IF; END$$"
    )


def _holds_apply_lock(backend: str) -> str:
    """SQL: the `pg_locks k` row shows the backend `backend` (a column or a number) holding the
    apply lock, shared or alone (`objsubid = 2`: a lock taken with two int4 keys)."""
    return (
        f"k.locktype = 'advisory' AND k.granted AND k.pid = {backend} "
        f"AND k.classid::bigint = {LOCK_CLASS} AND k.objid::bigint = {APPLY_LOCK} "
        "AND k.objsubid = 2"
    )


class _AsyncWrites:
    """`Writes` on psycopg's `AsyncConnection`: each batch one transaction in one pipeline."""

    def __init__(self, store: PostgresStateStore) -> None:
        self._store = store
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._closed = False
        self._broken: StateError | None = None  # what ended the connection, said again after

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        if self._closed:  # never connect anew: the apply (and its lock) may be gone
            raise session_closed(self._store)
        if self._broken is not None:  # nor after losing it: later writes fail with its cause
            raise self._broken
        if self._conn is None:
            store = self._store
            try:
                conn = await psycopg.AsyncConnection.connect(
                    store._conninfo,
                    autocommit=True,
                    connect_timeout=store._connect_timeout,
                    application_name="reconciler",
                )
            except psycopg.Error as exc:  # kept too: not `connect_timeout` again per caller
                self._broken = StateError(f"{store.url}: cannot connect ({store._scrub(exc)})")
                raise self._broken from None
            try:
                await conn.execute(f"SET search_path TO {SCHEMA}")
                if self._closed:  # the session closed while this connected
                    raise session_closed(store)
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        return self._conn

    async def commit(self, batch: Sequence[Write]) -> list[Answer]:
        import psycopg

        store = self._store
        now = store._clock()
        try:
            conn = await self._connection()
            async with conn.pipeline(), conn.transaction():
                if store._locked:
                    await conn.execute(_still_locked(store._conn.info.backend_pid))
                cursors = []
                for one in batch:
                    sql, params = statement(one, now)
                    cursors.append(await conn.execute(_dialect(sql), params))
            return [
                answer(one, await cursor.fetchall() if isinstance(one, OpenEntry) else [])
                for one, cursor in zip(batch, cursors, strict=True)
            ]
        except psycopg.errors.RaiseException as exc:  # `_still_locked`'s, without its context
            raise StateError(f"{store.url}: {exc.diag.message_primary}") from None
        except psycopg.Error as exc:
            error = StateError(f"{store.url}: {store._scrub(exc)}")
            if self._conn is not None and self._conn.broken:
                self._broken = error
            raise error from None

    async def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
