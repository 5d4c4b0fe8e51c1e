"""The state store: what this reconciler owns, what it last applied, and what it is doing.

It holds:

- `deployments`: one record per owned deployment: the last-applied spec (request shape, with every
  sensitive value replaced by a salted hash, so no secret is ever stored in clear), its labels and
  annotations, the revision, when it was applied and how that went;
- `journal`: the executor's write-ahead log (intent, task IDs, result);
- `lock`: who is applying (pid, host, since), so two applies never run against one store;
- `object_records`: the credentials, secrets and API keys it owns (`objects.py`).

`StateStore` (`contract.py`) is the Protocol the rest of the code depends on, the lock included.
`SqlStateStore` (`sql.py`) holds what both backends do, in SQL both speak, over the rows of
`rows.py`; `SqliteStateStore` (`sqlite.py`) and `PostgresStateStore` (`postgres.py`) hold only
what differs: the connection, schema versioning, the key file and the lock. `open_store` picks
one from the location; nothing outside this package names either class, but for the state
admin commands (through `open_backend`) and tests.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..statekey import KeyMaterial
from .contract import (
    APPLIED_RESULTS,
    JOURNAL_RETENTION,
    SPEC_PARTS,
    JournalEntry,
    LockHeld,
    LockHolder,
    StateError,
    StateStore,
)
from .sqlite import SCHEMA_VERSION, SqliteStateStore, alive

if TYPE_CHECKING:
    from .postgres import PostgresStateStore

__all__ = [
    "APPLIED_RESULTS",
    "DEFAULT_STATE_PATH",
    "JOURNAL_RETENTION",
    "SCHEMA_VERSION",
    "SPEC_PARTS",
    "JournalEntry",
    "LockHeld",
    "LockHolder",
    "SqliteStateStore",
    "StateError",
    "StateStore",
    "alive",
    "is_database_url",
    "offloop",
    "open_backend",
    "open_store",
]

DEFAULT_STATE_PATH = ".reconciler/state.db"
T = TypeVar("T")


async def offloop(store: object, call: Callable[[], T]) -> T:
    """`call` (a synchronous call on `store`) from async code without holding up the event
    loop: in a worker thread for a store that waits on a server (PostgreSQL), on the calling
    thread for a local file (SQLite: a connection belongs to the thread that made it, and a
    local read takes microseconds). Writes from async code go through `store.writes()`."""
    if getattr(store, "waits_on_a_server", False):
        return await asyncio.to_thread(call)
    return call()


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
        from .postgres import PostgresStateStore

        return PostgresStateStore(chosen, clock=clock, key=key)
    return SqliteStateStore(chosen, clock=clock, key=key)
