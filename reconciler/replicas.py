"""Service replicas sharing projects through PostgreSQL: who is alive, who holds which project.

Each replica keeps one long-lived connection (`ProjectLeases`), apart from the state store's:

- **Liveness** is a session advisory lock per replica (its number from the `replicas` row it
  writes when it joins). A replica is alive exactly while its session is: kill -9, a lost node
  or a closed connection ends the session and the server drops its locks, with no timeout to
  wait out. The row is the heartbeat others read (host, pid, since, seen); rows whose lock is
  gone are removed by whoever notices.
- **A project is reconciled by the replica holding its advisory lock** (class `PROJECT_CLASS`,
  object the project ID). `rebalance(projects)` takes free projects and gives up extras so that,
  while others are alive, a replica holds at most ceil(projects / live replicas) + 1: the caps
  add up to more than the projects, so every project finds a holder; a dead replica's projects
  are free at once and taken at the others' next rebalance (one `--interval` at most). While
  another live replica holds less than ceil(projects / live), the others come down to that, so
  a replica that joins late gets its share.
- **Due marks**: a replica that learns of a change to a project it does not hold (a webhook, a
  file event) writes a `due` row; the holder takes its rows at its next look. Nothing is
  forwarded over the network and nothing is dropped.

The coordination tables live beside the inventory (schema `reconciler`) but are not part of it:
they hold no record and are created on first use.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ReconcilerError
from .state.postgres import LOCK_CLASS, MIGRATE_LOCK, SCHEMA, redact_url

if TYPE_CHECKING:
    import psycopg

REPLICA_CLASS = LOCK_CLASS + 1  # object: the replica's number
PROJECT_CLASS = LOCK_CLASS + 2  # object: the project ID (folded into 31 bits if larger)
# pg_locks lists the whole server's locks: another inventory's replicas use the same numbers
THIS_DATABASE = "k.database = (SELECT oid FROM pg_database WHERE datname = current_database())"

DDL = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.replicas (
    number SERIAL PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    since DOUBLE PRECISION NOT NULL,
    seen DOUBLE PRECISION NOT NULL,
    backend_pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.due (
    project_id BIGINT PRIMARY KEY,
    since DOUBLE PRECISION NOT NULL
);
"""


class ReplicaError(ReconcilerError):
    """The replicas' coordination in PostgreSQL failed."""


def project_object(project_id: int) -> int:
    """The advisory lock object of a project: its ID, folded into 31 bits when larger."""
    return project_id if 0 < project_id < 2**31 else zlib.crc32(str(project_id).encode()) >> 1


def cap(projects: int, live: int) -> int:
    """The most projects one replica holds while `live` replicas (itself included) are alive."""
    if live <= 1:
        return projects
    return math.ceil(projects / live) + 1


@dataclass(frozen=True)
class Replica:
    number: int
    host: str
    pid: int
    since: float
    seen: float
    backend_pid: int


class ProjectLeases:
    """One replica's membership and project locks (see the module docstring)."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        import psycopg

        self.url = redact_url(url)
        self._clock = clock
        self.held: set[int] = set()
        self._guard = threading.RLock()  # the service calls in from worker threads
        try:
            self._conn: psycopg.Connection[Any] = psycopg.connect(
                url, autocommit=True, application_name="reconciler replica"
            )
            with self._conn.transaction():
                self._conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATE_LOCK)
                )
                self._conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                self._conn.execute(DDL)
            now = clock()
            with self._conn.transaction():  # no one sees the row before its lock is held
                row = self._conn.execute(
                    f"INSERT INTO {SCHEMA}.replicas (host, pid, since, seen, backend_pid) "
                    "VALUES (%s, %s, %s, %s, pg_backend_pid()) RETURNING number",
                    (socket.gethostname(), os.getpid(), now, now),
                ).fetchone()
                assert row is not None
                self.number = int(row[0])
                self._conn.execute("SELECT pg_advisory_lock(%s, %s)", (REPLICA_CLASS, self.number))
        except psycopg.Error as exc:
            raise ReplicaError(f"{self.url}: {' '.join(str(exc).split())}") from None

    def __repr__(self) -> str:
        return f"ProjectLeases(replica {getattr(self, 'number', '?')} on {self.url})"

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with self._guard:
                return self._conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise ReplicaError(f"{self.url}: {' '.join(str(exc).split())}") from None

    # -- who is alive ------------------------------------------------------------------------

    def heartbeat(self) -> list[Replica]:
        """Mark this replica seen, forget replicas whose session ended; the live ones."""
        self._rows(
            f"UPDATE {SCHEMA}.replicas SET seen = %s WHERE number = %s RETURNING number",
            (self._clock(), self.number),
        )
        alive = (
            f"EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted "
            f"AND {THIS_DATABASE} "
            "AND k.classid::bigint = %s AND k.objid::bigint = r.number AND k.objsubid = 2)"
        )
        self._rows(
            f"DELETE FROM {SCHEMA}.replicas r WHERE NOT {alive} RETURNING number",
            (REPLICA_CLASS,),
        )
        rows = self._rows(
            f"SELECT number, host, pid, since, seen, backend_pid FROM {SCHEMA}.replicas r "
            f"WHERE {alive} "
            "ORDER BY number",
            (REPLICA_CLASS,),
        )
        return [Replica(*row) for row in rows]

    # -- who holds which project -------------------------------------------------------------

    def rebalance(self, projects: Iterable[int]) -> set[int]:
        """Hold a fair share of `projects` (see `cap`); returns the projects held now."""
        with self._guard:
            return self._rebalance(set(projects))

    def _rebalance(self, wanted: set[int]) -> set[int]:
        live = self.heartbeat()
        limit = cap(len(wanted), len(live))
        fair = math.ceil(len(wanted) / max(1, len(live)))
        counts = Counter(self.holders().values())
        if any(counts[r.backend_pid] < fair for r in live if r.number != self.number):
            limit = fair  # someone is short of a fair share: give it room
        for project in sorted(self.held - wanted):
            self._release(project)
        for project in sorted(self.held, key=self._order, reverse=True):
            if len(self.held) <= limit:
                break
            self._release(project)
        for project in sorted(wanted - self.held, key=self._order):
            if len(self.held) >= limit:
                break
            taken = self._rows(
                "SELECT pg_try_advisory_lock(%s, %s)", (PROJECT_CLASS, project_object(project))
            )
            if taken == [(True,)]:
                self.held.add(project)
        return set(self.held)

    def _order(self, project: int) -> int:
        """A per-replica order of projects, so replicas reach for different ones first."""
        return zlib.crc32(f"{self.number}:{project}".encode())

    def _release(self, project: int) -> None:
        self._rows("SELECT pg_advisory_unlock(%s, %s)", (PROJECT_CLASS, project_object(project)))
        self.held.discard(project)

    def holders(self) -> dict[int, int]:
        """Every project lock held on this database: project object -> backend pid."""
        rows = self._rows(
            "SELECT objid::bigint, pid FROM pg_locks k WHERE locktype = 'advisory' AND granted "
            f"AND {THIS_DATABASE} AND classid::bigint = %s AND objsubid = 2",
            (PROJECT_CLASS,),
        )
        return {int(obj): int(pid) for obj, pid in rows}

    # -- due marks ---------------------------------------------------------------------------

    def mark_due(self, projects: Iterable[int]) -> None:
        """Tell whichever replica holds these projects to reconcile them soon."""
        now = self._clock()
        for project in sorted(set(projects)):
            self._rows(
                f"INSERT INTO {SCHEMA}.due (project_id, since) VALUES (%s, %s) "
                "ON CONFLICT (project_id) DO UPDATE SET since = EXCLUDED.since "
                "RETURNING project_id",
                (project, now),
            )

    def take_due(self) -> set[int]:
        """The held projects marked due since the last look (their marks are consumed)."""
        with self._guard:
            held = sorted(self.held)
        if not held:
            return set()
        rows = self._rows(
            f"DELETE FROM {SCHEMA}.due WHERE project_id = ANY(%s) RETURNING project_id",
            (held,),
        )
        return {int(r[0]) for r in rows}

    def close(self) -> None:
        """Leave: the server releases every lock of this session."""
        if not self._conn.closed:
            self._conn.close()
        self.held.clear()
