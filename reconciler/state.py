"""The state store: what this reconciler owns, what it last applied, and what it is doing.

One SQLite file (WAL mode, every write in a transaction, schema versioned by `PRAGMA
user_version` with forward-only migrations; a file from a newer version is refused). It holds:

- `deployments`: one record per owned deployment: the last-applied spec (request shape, with every
  sensitive value replaced by a salted hash, so no secret is ever stored in clear), its labels and
  annotations, the revision, when it was applied and how that went;
- `journal`: the executor's write-ahead log (intent, task IDs, result);
- `lock`: who is applying (pid, host, since), so two applies never run against one store.

`StateStore` is the Protocol the rest of the code depends on (the lock included);
`SqliteStateStore` here and `PostgresStateStore` (pgstate.py) implement it, and `open_store`
picks one from the location. Nothing outside the two backends names either class.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from . import statekey
from .errors import ReconcilerError
from .model import DeploymentKey, Record, RecordOutcome, SpecPath
from .statekey import Hasher, KeyMaterial, KeySource

if TYPE_CHECKING:
    from .pgstate import PostgresStateStore

DEFAULT_STATE_PATH = ".reconciler/state.db"
JOURNAL_RETENTION = 30 * 24 * 3600.0  # seconds a finished entry that did not apply keeps its spec
APPLIED_RESULTS = ("converged", "resumed")  # the history's applied revisions: kept whole
SPEC_PARTS = ("last_applied", "sensitive_paths", "labels", "annotations")  # an intent's bulk

MIGRATIONS: tuple[str, ...] = (
    # version 1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE deployments (
        project_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        last_applied TEXT NOT NULL,
        sensitive_paths TEXT NOT NULL DEFAULT '[]',
        labels TEXT NOT NULL DEFAULT '{}',
        annotations TEXT NOT NULL DEFAULT '{}',
        revision TEXT,
        applied_at REAL NOT NULL,
        outcome TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (project_id, name)
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        action TEXT NOT NULL,
        intent TEXT NOT NULL,
        task_ids TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        result TEXT,
        message TEXT NOT NULL DEFAULT '',
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX journal_open ON journal (state) WHERE state != 'done';
    CREATE TABLE lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        since REAL NOT NULL,
        token TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StateError(ReconcilerError):
    """The state store cannot be used (newer schema, corrupt file, ...)."""


class LockHeld(StateError):
    """Another process holds the apply lock."""


@dataclass(frozen=True)
class JournalEntry:
    id: int
    key: DeploymentKey
    action: str
    intent: Mapping[str, Any]
    task_ids: tuple[str, ...]
    state: str  # pending (intent written) | submitted (task IDs known) | done
    result: str | None
    message: str
    started_at: float


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    since: float

    def __str__(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host} since {when}"


class StateStore(Protocol):
    """Everything the rest of the code may ask of a state backend (SQLite, PostgreSQL).

    Records (what we own), the journal (kept as opaque JSON: `execute.journal` writes and reads
    it), the salted hash of sensitive values, and the apply lock. Code outside this module and
    the backends holds a `StateStore` from `open_store`, never a backend class.
    """

    def records(self) -> dict[DeploymentKey, Record]: ...
    def save_record(self, record: Record) -> None: ...
    def forget(self, key: DeploymentKey) -> None: ...
    def hash_value(self, value: Any) -> str: ...
    def journal_intent(self, key: DeploymentKey, action: str, intent: Mapping[str, Any]) -> int: ...
    def journal_tasks(self, entry_id: int, task_ids: list[str]) -> None: ...
    def journal_done(self, entry_id: int, result: str, message: str = "") -> None: ...
    def unfinished(self) -> list[JournalEntry]: ...
    def journal_history(self, key: DeploymentKey) -> list[JournalEntry]: ...
    def holder(self) -> LockHolder | None: ...
    def acquire_lock(
        self,
        *,
        timeout: float = 10.0,
        poll: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None: ...
    def release_lock(self) -> None: ...
    def close(self) -> None: ...


def _path_key(path: SpecPath) -> list[str | int]:
    return list(path)


# -- rows: what every backend writes and reads back, in one place -------------------------------

RECORD_COLUMNS = (
    "project_id", "name", "last_applied", "sensitive_paths", "labels", "annotations",
    "revision", "applied_at", "outcome", "message",
)  # fmt: skip
JOURNAL_COLUMNS = (
    "id", "project_id", "name", "action", "intent", "task_ids", "state", "result", "message",
    "started_at",
)  # fmt: skip


def record_row(record: Record) -> tuple[Any, ...]:
    """A record as the columns of `RECORD_COLUMNS` (JSON text for the structured ones)."""
    return (
        record.key.project_id,
        record.key.name,
        json.dumps(dict(record.last_applied), sort_keys=True),
        json.dumps(sorted(_path_key(p) for p in record.sensitive_paths)),
        json.dumps(dict(record.labels), sort_keys=True),
        json.dumps(dict(record.annotations), sort_keys=True),
        record.revision,
        record.applied_at,
        record.outcome,
        record.message,
    )


def record_of(row: Sequence[Any]) -> Record:
    key = DeploymentKey(row[0], row[1])
    return Record(
        key=key,
        last_applied=json.loads(row[2]),
        sensitive_paths=frozenset(tuple(p) for p in json.loads(row[3])),
        labels=MappingProxyType(json.loads(row[4])),
        annotations=MappingProxyType(json.loads(row[5])),
        revision=row[6],
        applied_at=row[7],
        outcome=RecordOutcome.parse(row[8]),
        message=row[9],
    )


def journal_of(row: Sequence[Any]) -> JournalEntry:
    return JournalEntry(
        id=row[0],
        key=DeploymentKey(row[1], row[2]),
        action=row[3],
        intent=json.loads(row[4]),
        task_ids=tuple(json.loads(row[5])),
        state=row[6],
        result=row[7],
        message=row[8],
        started_at=row[9],
    )


def journal_insert_row(entry: JournalEntry, now: float) -> tuple[Any, ...]:
    return (
        entry.key.project_id,
        entry.key.name,
        entry.action,
        json.dumps(dict(entry.intent)),
        json.dumps(list(entry.task_ids)),
        entry.state,
        entry.result,
        entry.message,
        entry.started_at,
        now,
    )


def _private_file(path: Path) -> None:
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


class SqliteStateStore:
    """The SQLite implementation of `StateStore`."""

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
            _private_file(self.path)
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

    # -- schema ----------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path} has state schema version {version}, newer than this "
                    f"reconciler understands ({SCHEMA_VERSION}); upgrade reconciler"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[number]):
                    db.execute(statement)
            if version == 0:
                salt = secrets.token_hex(16)
                if self._key is None:
                    self._key = statekey.create_key_file(self.key_path)
                meta = {"salt": salt, "created_at": str(self._clock())}
                meta.update(statekey.meta_of(Hasher(salt, self._key)))
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            elif db.execute("SELECT 1 FROM meta WHERE key = 'hash_key'").fetchone() is None:
                # Written before keyed hashes: its hashes are keyed by the salt alone.
                salt = db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0]
                legacy = statekey.meta_of(Hasher(salt, statekey.NO_KEY))
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", legacy.items())
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def key_path(self) -> Path:
        """The key file beside the state file (see `statekey`)."""
        return self.path.with_name(self.path.name + ".key")

    def _open_hasher(self) -> Hasher:
        source = self._meta("hash_key")
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
        hasher = Hasher(self._meta("salt"), key)
        try:
            statekey.verify(hasher, source, self._meta("key_check"), str(self.path))
        except statekey.KeyMismatch:
            if not self.is_empty():
                raise
            self._write_meta(statekey.meta_of(hasher))  # nothing hashed yet: take the new key
        return hasher

    def is_empty(self) -> bool:
        """No record and no journal entry: nothing hashed that a new key would invalidate."""
        return not self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM deployments) OR EXISTS (SELECT 1 FROM journal)"
        ).fetchone()[0]

    def _write_meta(self, values: Mapping[str, str]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def hash_meta(self) -> dict[str, str]:
        """The salt and key description an export carries (never the key itself)."""
        return {name: self._meta(name) for name in ("salt", "hash_key", "key_check")}

    def adopt_hash_meta(self, meta: Mapping[str, str]) -> None:
        """Take another store's salt (its hashes come along in an import); see `statekey`."""
        self._hasher = statekey.adopt(self.key_material, meta, str(self))
        self._write_meta(dict(meta))

    def restore_journal(self, entries: list[JournalEntry]) -> None:
        with self._tx() as db:
            for e in entries:
                db.execute(
                    "INSERT INTO journal (project_id, name, action, intent, task_ids, state, "
                    "result, message, started_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    journal_insert_row(e, self._clock()),
                )

    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StateError(f"{self.path}: state file lacks its {key}")
        return str(row[0])

    def _prune_journal(self) -> None:
        """Every entry stays: `history` numbers them, and a rollback re-applies an applied one's
        spec. After `JOURNAL_RETENTION`, a finished entry that did not apply drops its spec (it
        keeps its action, result, message and revision)."""
        horizon = self._clock() - JOURNAL_RETENTION
        paths = ", ".join(f"'$.{part}'" for part in SPEC_PARTS)
        with self._tx() as db:
            db.execute(
                f"UPDATE journal SET intent = json_remove(intent, {paths}) WHERE state = 'done' "
                "AND updated_at < ? AND result NOT IN (?, ?) "
                "AND json_extract(intent, '$.last_applied') IS NOT NULL",
                (horizon, *APPLIED_RESULTS),
            )

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def integrity_ok(self) -> bool:
        return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def close(self) -> None:
        self.release_lock()
        self._db.close()

    # -- secrets ---------------------------------------------------------------------------

    def hash_value(self, value: Any) -> str:
        """A keyed hash of a sensitive value: comparable, never reversible to the value."""
        return self._hasher(value)

    # -- records ---------------------------------------------------------------------------

    def records(self) -> dict[DeploymentKey, Record]:
        rows = self._db.execute(
            f"SELECT {', '.join(RECORD_COLUMNS)} FROM deployments ORDER BY project_id, name"
        ).fetchall()
        return {record.key: record for record in map(record_of, rows)}

    def save_record(self, record: Record) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO deployments ({', '.join(RECORD_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                record_row(record),
            )

    def forget(self, key: DeploymentKey) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM deployments WHERE project_id = ? AND name = ?",
                (key.project_id, key.name),
            )

    # -- journal ---------------------------------------------------------------------------

    def journal_intent(self, key: DeploymentKey, action: str, intent: Mapping[str, Any]) -> int:
        now = self._clock()
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO journal (project_id, name, action, intent, state, started_at, "
                "updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (key.project_id, key.name, action, json.dumps(dict(intent)), now, now),
            )
            return int(cursor.lastrowid or 0)

    def journal_tasks(self, entry_id: int, task_ids: list[str]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE journal SET task_ids = ?, state = 'submitted', updated_at = ? WHERE id = ?",
                (json.dumps(task_ids), self._clock(), entry_id),
            )

    def journal_done(self, entry_id: int, result: str, message: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE journal SET state = 'done', result = ?, message = ?, updated_at = ? "
                "WHERE id = ?",
                (result, message, self._clock(), entry_id),
            )

    def journal_history(self, key: DeploymentKey) -> list[JournalEntry]:
        """Every journal entry of one deployment, oldest first (all are kept)."""
        rows = self._db.execute(
            f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM journal WHERE project_id = ? AND name = ? "
            "ORDER BY id",
            (key.project_id, key.name),
        ).fetchall()
        return [journal_of(row) for row in rows]

    def unfinished(self) -> list[JournalEntry]:
        rows = self._db.execute(
            f"SELECT {', '.join(JOURNAL_COLUMNS)} FROM journal WHERE state != 'done' ORDER BY id"
        ).fetchall()
        return [journal_of(row) for row in rows]

    # -- the apply lock --------------------------------------------------------------------

    def holder(self) -> LockHolder | None:
        row = self._db.execute("SELECT pid, host, since FROM lock WHERE id = 1").fetchone()
        return LockHolder(row[0], row[1], row[2]) if row else None

    def acquire_lock(
        self,
        *,
        timeout: float = 10.0,
        poll: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Take the apply lock, waiting up to `timeout` seconds for its holder to let go.

        A lock left by a dead process on this host is taken over.
        """
        deadline = monotonic() + timeout
        token = secrets.token_hex(8)
        host = socket.gethostname()
        while True:
            with self._tx() as db:
                row = db.execute("SELECT pid, host, since FROM lock WHERE id = 1").fetchone()
                if row is not None and row[1] == host and not _alive(row[0]):
                    db.execute("DELETE FROM lock WHERE id = 1")
                    row = None
                if row is None:
                    db.execute(
                        "INSERT INTO lock (id, pid, host, since, token) VALUES (1, ?, ?, ?, ?)",
                        (os.getpid(), host, self._clock(), token),
                    )
                    self._lock_token = token
                    return
                holder = LockHolder(row[0], row[1], row[2])
            if monotonic() >= deadline:
                raise LockHeld(
                    f"{self.path} is locked by another apply ({holder}); "
                    f"waited {timeout:g}s. If that process is gone, run again on its host."
                )
            sleep(poll)

    def release_lock(self) -> None:
        if self._lock_token is None:
            return
        with self._tx() as db:
            db.execute("DELETE FROM lock WHERE id = 1 AND token = ?", (self._lock_token,))
        self._lock_token = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def is_database_url(location: str) -> bool:
    """A `postgresql://` (or `postgres://`) URL rather than a file path."""
    return location.startswith(("postgresql://", "postgres://"))


def open_store(
    location: str | os.PathLike[str] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    key: KeyMaterial | None = None,
) -> StateStore:
    """Open the store at `location` (a file path or a `postgresql://` URL), else
    `$RECONCILER_STATE`, else `.reconciler/state.db`."""
    return open_backend(location, clock=clock, key=key)


def open_backend(
    location: str | os.PathLike[str] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    key: KeyMaterial | None = None,
) -> SqliteStateStore | PostgresStateStore:
    """As `open_store`, typed as the backend itself: for the state admin commands (export,
    import) that use what only backends have. Everything else takes `open_store`."""
    chosen = str(location or os.environ.get("RECONCILER_STATE") or DEFAULT_STATE_PATH)
    if is_database_url(chosen):
        from .pgstate import PostgresStateStore

        return PostgresStateStore(chosen, clock=clock, key=key)
    return SqliteStateStore(chosen, clock=clock, key=key)
