"""The SQLite state store: one file beside the project (WAL mode, every write in a transaction).

What only SQLite has: the schema is versioned by `PRAGMA user_version` with forward-only
migrations (a file from a newer version is refused); the file and its folder are private; the
hash key may live in a key file beside the state file (`statekey`); the apply lock is a row
(pid, host, since, token), and a lock left by a dead process on this host is taken over.
Everything else is `SqlStateStore`'s.
"""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .. import statekey
from ..statekey import Hasher, KeyMaterial, KeySource
from .contract import SPEC_PARTS, LockHolder, StateError
from .schema import SQLITE, VERSION_1
from .sql import Row, Run, SqlStateStore

MIGRATIONS: tuple[str, ...] = (SQLITE(VERSION_1),)
SCHEMA_VERSION = len(MIGRATIONS)


def private_file(path: Path) -> None:
    """Create the state file 0600 in a folder of ours made 0700; tighten an existing one.

    SQLite creates the -wal and -shm files with the database file's mode, so they follow.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = part.stat().st_mode & 0o777
            if mode & 0o077:
                part.chmod(mode & 0o700)
        except FileNotFoundError:
            continue


class SqliteStateStore(SqlStateStore):
    """The SQLite implementation of `StateStore`."""

    _without_spec = "json_remove(intent, " + ", ".join(f"'$.{p}'" for p in SPEC_PARTS) + ")"
    _has_spec = "json_extract(intent, '$.last_applied') IS NOT NULL"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        key: KeyMaterial | None = None,
    ):
        self.path = Path(path)
        self._clock = clock
        self._lock_token: str | None = None
        self._key = key or statekey.from_env()
        try:
            private_file(self.path)
        except OSError as exc:  # a parent that is a file, a folder that is not ours
            why = exc.strerror or exc
            raise StateError(f"{self.path}: cannot open the state file ({why})") from None
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._hasher = self._open_hasher()
            self._prune_journal()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path}: not a usable state file ({exc})") from None

    def __repr__(self) -> str:
        return f"SqliteStateStore({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -- the connection ----------------------------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._db.execute(sql, params).fetchall()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._run(sql, params)

    @contextmanager
    def _tx(self) -> Iterator[Run]:
        """One write transaction. A failure (a full disk, an I/O error, a read-only file, a
        broken constraint) is a `StateError` naming the file, as PostgreSQL's are: the executor
        makes a journal or record write's its action's outcome, and the lock's (taken or let go
        at either end of an apply) is the CLI's one-line error. A transaction a failed statement
        or COMMIT left open is rolled back, so the next write is not refused for it."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._run
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from None

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._tx() as run:
            version = run("PRAGMA user_version", ())[0][0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path} has state schema version {version}, newer than this "
                    f"reconciler understands ({SCHEMA_VERSION}); upgrade reconciler"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[number]):
                    run(statement, ())
            if version == 0:
                salt = secrets.token_hex(16)
                if self._key is None:
                    self._key = statekey.create_key_file(self.key_path)
                meta = {"salt": salt, "created_at": str(self._clock())}
                meta.update(statekey.meta_of(Hasher(salt, self._key)))
                for name, value in meta.items():
                    run("INSERT INTO meta (key, value) VALUES (?, ?)", (name, value))
            elif not run("SELECT 1 FROM meta WHERE key = 'hash_key'", ()):
                # Written before keyed hashes: its hashes are keyed by the salt alone.
                salt = run("SELECT value FROM meta WHERE key = 'salt'", ())[0][0]
                for name, value in statekey.meta_of(Hasher(salt, statekey.NO_KEY)).items():
                    run("INSERT INTO meta (key, value) VALUES (?, ?)", (name, value))
            run(f"PRAGMA user_version = {SCHEMA_VERSION}", ())

    @property
    def key_path(self) -> Path:
        """The key file beside the state file (see `statekey`)."""
        return self.path.with_name(self.path.name + ".key")

    def _open_hasher(self) -> Hasher:
        source = self._required_meta("hash_key")
        key = self._key
        if key is None:
            if source != KeySource.FILE:
                key = statekey.NO_KEY  # verify() below says what a keyed store needs
            elif self.key_path.exists():
                key = statekey.read_key_file(self.key_path)
            elif self.is_empty():
                key = statekey.create_key_file(self.key_path)
            else:
                raise StateError(
                    f"{self.key_path}: the state key file is missing; the state's secrets were "
                    f"hashed with it: restore it (or point {statekey.ENV_KEY_FILE} at a copy)"
                )
        self.key_material = key
        hasher = Hasher(self._required_meta("salt"), key)
        return self._verified(hasher, source, self._required_meta("key_check"))

    def schema_version(self) -> int:
        return int(self._rows("PRAGMA user_version")[0][0])

    def integrity_ok(self) -> bool:
        return bool(self._rows("PRAGMA integrity_check")[0][0] == "ok")

    def close(self) -> None:
        try:
            self.release_lock()
        finally:
            self._db.close()

    # -- the apply lock ----------------------------------------------------------------------

    def holder(self) -> LockHolder | None:
        rows = self._rows("SELECT pid, host, since FROM lock WHERE id = 1")
        return LockHolder(*rows[0]) if rows else None

    def _try_lock(self) -> bool:
        """Take the lock row if no one holds it, or if its holder is a dead process of this host."""
        host = socket.gethostname()
        with self._tx() as run:
            rows = run("SELECT pid, host FROM lock WHERE id = 1", ())
            if rows and rows[0][1] == host and not alive(rows[0][0]):
                run("DELETE FROM lock WHERE id = 1", ())
                rows = []
            if rows:
                return False
            token = secrets.token_hex(8)
            run(
                "INSERT INTO lock (id, pid, host, since, token) VALUES (1, ?, ?, ?, ?)",
                (os.getpid(), host, self._clock(), token),
            )
        self._lock_token = token
        return True

    def _lock_refused(self, holder: LockHolder | None, timeout: float) -> str:
        return (
            f"{self.path} is locked by another apply ({holder or 'a process just letting go'}); "
            f"waited {timeout:g}s. If that process is gone, run again on its host."
        )

    def release_lock(self) -> None:
        if self._lock_token is None:
            return
        with self._tx() as run:
            run("DELETE FROM lock WHERE id = 1 AND token = ?", (self._lock_token,))
        self._lock_token = None


def alive(pid: int) -> bool:
    """Whether a process of this host is running (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
