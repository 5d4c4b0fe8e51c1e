"""What every state backend promises: the `StateStore` Protocol, its values and its errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ReconcilerError
from ..model import DeploymentKey, Record

if TYPE_CHECKING:
    from .writes import Answer, Write, Writes

JOURNAL_RETENTION = 30 * 24 * 3600.0  # seconds a finished entry that did not apply keeps its spec
APPLIED_RESULTS = ("converged", "resumed")  # the history's applied revisions: kept whole
SPEC_PARTS = ("last_applied", "sensitive_paths", "labels", "annotations")  # an intent's bulk


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
    it), the salted hash of sensitive values, and the apply lock. `write` commits several
    writes (`writes.py`) in one transaction; `writes` opens where async code commits them
    without holding up its event loop. Code outside this package
    holds a `StateStore` from `open_store`, never a backend class.
    """

    def records(self, *, compact: bool = False) -> dict[DeploymentKey, Record]: ...
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
    def write(self, batch: Sequence[Write]) -> list[Answer]: ...
    def writes(self) -> AbstractAsyncContextManager[Writes]: ...
