"""The write-ahead journal, typed: written and read back here only (DESIGN.md §5).

The store keeps each entry as opaque JSON plus a state word; this module is the one that turns
an action into an `Intent` before its request is sent, notes the task IDs the request returned,
closes the entry with a `JournalResult`, and reads unfinished entries back for `resume`. An
intent carries the record to write if the action went through, built by `applied_record`, so a
record written after a crash is the one a finished apply would have written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ..diff import Hasher
from ..model import DeploymentKey, DesiredDeployment, Record, RecordOutcome
from ..plan import Action, applied_record
from ..state import JournalEntry, StateStore

__all__ = [
    "Entry",
    "FollowUp",
    "Intent",
    "Journal",
    "JournalResult",
    "JournalState",
    "RecordOutcome",
]


class JournalState(StrEnum):
    PENDING = "pending"  # intent written; the request may or may not have been sent
    SUBMITTED = "submitted"  # the request answered with task IDs
    DONE = "done"

    @property
    def open(self) -> bool:
        return self is not JournalState.DONE


class JournalResult(StrEnum):
    """How an entry was closed."""

    CONVERGED = "converged"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    RESUMED = "resumed"  # finished after a crash by the next run
    NOT_APPLIED = "not applied"  # after a crash: the create had not happened
    REPLANNED = "unknown"  # after a crash: left to the fresh plan, which re-reads live state


class FollowUp(StrEnum):
    """Why an entry is still open when the next apply (or `status`) reads it."""

    INTERRUPTED = "interrupted"  # the apply that opened it stopped before closing it
    NOT_WAITED = "not waited"  # submitted by `apply --no-wait`, which leaves the wait to the next


@dataclass(frozen=True)
class Intent:
    """What an action is about to do: the fields it sends, and the record it would write;
    `waited` is False when the apply does not wait for its tasks (`apply --no-wait`)."""

    fields: tuple[str, ...] = ()
    record: Record | None = None
    waited: bool = True

    @classmethod
    def of(
        cls,
        fields: Sequence[str],
        desired: DesiredDeployment | None,
        hasher: Hasher,
        revision: str | None,
        waited: bool = True,
    ) -> Intent:
        if desired is None:
            return cls(tuple(fields), waited=waited)
        record = applied_record(
            desired, hasher, applied_at=0.0, outcome=RecordOutcome.APPLYING, revision=revision
        )
        return cls(tuple(fields), record, waited)

    def record_as(self, outcome: RecordOutcome, now: float) -> Record | None:
        if self.record is None:
            return None
        return Record(
            key=self.record.key,
            last_applied=self.record.last_applied,
            applied_at=now,
            outcome=outcome,
            revision=self.record.revision,
            sensitive_paths=self.record.sensitive_paths,
            labels=self.record.labels,
            annotations=self.record.annotations,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"fields": list(self.fields)}
        if not self.waited:
            data["waited"] = False  # absent in entries written before the key existed
        if self.record is not None:
            record = self.record
            data.update(
                last_applied=dict(record.last_applied),
                sensitive_paths=[list(p) for p in sorted(record.sensitive_paths, key=str)],
                labels=dict(record.labels),
                annotations=dict(record.annotations),
                revision=record.revision,
            )
        return data

    @classmethod
    def from_json(cls, key: DeploymentKey, data: Mapping[str, Any]) -> Intent:
        fields = tuple(str(f) for f in data.get("fields", []))
        waited = data.get("waited", True) is not False
        if "last_applied" not in data:
            return cls(fields, waited=waited)
        record = Record(
            key=key,
            last_applied=data["last_applied"],
            applied_at=0.0,
            outcome=RecordOutcome.APPLYING,
            revision=data.get("revision"),
            sensitive_paths=frozenset(tuple(p) for p in data.get("sensitive_paths", [])),
            labels=MappingProxyType(dict(data.get("labels", {}))),
            annotations=MappingProxyType(dict(data.get("annotations", {}))),
        )
        return cls(fields, record, waited)


@dataclass(frozen=True)
class Entry:
    """One journal entry, read back."""

    id: int
    key: DeploymentKey
    action: Action
    intent: Intent
    task_ids: tuple[str, ...]
    state: JournalState
    started_at: float

    @property
    def follow_up(self) -> FollowUp:
        """Submitted and deliberately not waited for, or left open by an apply that stopped."""
        if self.state is JournalState.SUBMITTED and not self.intent.waited:
            return FollowUp.NOT_WAITED
        return FollowUp.INTERRUPTED

    @classmethod
    def from_row(cls, row: JournalEntry) -> Entry:
        return cls(
            id=row.id,
            key=row.key,
            action=Action(row.action),
            intent=Intent.from_json(row.key, row.intent),
            task_ids=tuple(row.task_ids),
            state=JournalState(row.state),
            started_at=row.started_at,
        )


class Journal:
    """The journal of one state store, typed, for synchronous callers: reading what is
    unfinished, and writing one entry at a time (tests set up interrupted runs with it). The
    executor writes through `writer.StateWriter`, which commits many entries together."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def open(self, key: DeploymentKey, action: Action, intent: Intent) -> int:
        return self.store.journal_intent(key, action.value, intent.to_json())

    def submitted(self, entry_id: int, task_ids: Sequence[str]) -> None:
        self.store.journal_tasks(entry_id, list(task_ids))

    def close(self, entry_id: int, result: JournalResult, message: str = "") -> None:
        self.store.journal_done(entry_id, result.value, message)

    def unfinished(self) -> list[Entry]:
        return [Entry.from_row(row) for row in self.store.unfinished()]
