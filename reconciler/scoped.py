"""A state store seen through a set of projects: what one service replica may touch.

Replicas on one PostgreSQL inventory split the work by project (`replicas.py`). A replica's
apply must neither plan nor resume anything of a project another replica holds, so it works
through this view: records and unfinished journal entries of other projects are invisible
(never pruned, never resumed); writes and the lock pass through unchanged. Credentials,
secrets and API keys are recorded apart (`state.objects`): they open from `whole`, and the plan
limits them to `projects` too (`objects_engine.with_objects`, its `share`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from .model import DeploymentKey, Record
from .state import JournalEntry, LockHolder, StateStore
from .state.writes import Answer, Write, Writes


class ScopedStore:
    """`StateStore` limited to `projects` for what it reads (see the module docstring)."""

    def __init__(self, store: StateStore, projects: frozenset[int]) -> None:
        self._store = store
        self.projects = projects

    @property
    def waits_on_a_server(self) -> bool:
        """As the store it limits (see `state.offloop`)."""
        return bool(getattr(self._store, "waits_on_a_server", False))

    @property
    def whole(self) -> StateStore:
        """The store this view limits (what object records open from)."""
        return self._store

    def records(self, *, compact: bool = False) -> dict[DeploymentKey, Record]:
        mine = self._store.records(compact=compact)
        return {k: r for k, r in mine.items() if k.project_id in self.projects}

    def unfinished(self) -> list[JournalEntry]:
        return [e for e in self._store.unfinished() if e.key.project_id in self.projects]

    def journal_history(self, key: DeploymentKey) -> list[JournalEntry]:
        return self._store.journal_history(key) if key.project_id in self.projects else []

    def save_record(self, record: Record) -> None:
        self._store.save_record(record)

    def forget(self, key: DeploymentKey) -> None:
        self._store.forget(key)

    def hash_value(self, value: Any) -> str:
        return self._store.hash_value(value)

    def journal_intent(self, key: DeploymentKey, action: str, intent: Mapping[str, Any]) -> int:
        return self._store.journal_intent(key, action, intent)

    def journal_tasks(self, entry_id: int, task_ids: list[str]) -> None:
        self._store.journal_tasks(entry_id, task_ids)

    def journal_done(self, entry_id: int, result: str, message: str = "") -> None:
        self._store.journal_done(entry_id, result, message)

    def write(self, batch: Sequence[Write]) -> list[Answer]:
        return self._store.write(batch)

    def writes(self) -> AbstractAsyncContextManager[Writes]:
        return self._store.writes()

    def holder(self) -> LockHolder | None:
        return self._store.holder()

    def acquire_lock(
        self,
        *,
        timeout: float = 10.0,
        poll: float = 0.2,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """The apply lock, shared with other replicas where the store can (PostgreSQL): each
        applies only its projects, so they never touch the same rows; a whole-inventory apply
        still takes it alone."""
        kwargs: dict[str, Any] = {"timeout": timeout, "poll": poll}
        if sleep is not None:
            kwargs["sleep"] = sleep
        if monotonic is not None:
            kwargs["monotonic"] = monotonic
        take = getattr(self._store, "acquire_shared_lock", self._store.acquire_lock)
        take(**kwargs)

    def release_lock(self) -> None:
        self._store.release_lock()

    def close(self) -> None:
        self._store.close()
