"""Status of every owned deployment, from values alone: sync (the recorded spec against live)
and health, with a one-line message saying what is wrong, if anything. No I/O: the engine and
the web page fetch records and live state and hand them here."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from .diff import diff
from .health import Health, Sync, degraded_message, health_of
from .model import DeploymentKey, DeploymentStatus, LiveDeployment, Record, RecordOutcome
from .redact import live_redactor

__all__ = ["StatusRow", "status_rows"]


@dataclass(frozen=True)
class StatusRow:
    key: DeploymentKey
    sync: Sync
    health: Health
    status: str
    revision: str | None
    last_applied_at: float | None
    message: str

    def to_json(self) -> dict[str, object]:
        applied = (
            datetime.fromtimestamp(self.last_applied_at, UTC).isoformat().replace("+00:00", "Z")
            if self.last_applied_at
            else None
        )
        return {
            "project_id": self.key.project_id,
            "name": self.key.name,
            "sync": self.sync.value,
            "health": self.health.value,
            "status": self.status,
            "revision": self.revision,
            "last_applied_at": applied,
            "message": self.message,
        }


def status_rows(
    records: Mapping[DeploymentKey, Record],
    live: Mapping[DeploymentKey, LiveDeployment],
    hasher: Callable[[object], str],
    interrupted: Collection[DeploymentKey] = frozenset(),
    not_waited: Collection[DeploymentKey] = frozenset(),
) -> list[StatusRow]:
    """Sync (recorded spec against live) and health of every owned deployment.

    `interrupted`: deployments with journaled work that no running apply holds;
    `not_waited`: those whose open work `apply --no-wait` submitted on purpose."""
    rows = []
    for key, record in sorted(records.items()):
        found = live.get(key)
        health = health_of(found)
        if found is None:
            failed = record.outcome in (RecordOutcome.FAILED, RecordOutcome.TIMED_OUT)
            gone = f"last attempt failed: {record.message}" if failed else "not found in the API"
            sync, status, message = Sync.OUT_OF_SYNC, "", gone
        else:
            drift = diff(
                record.last_applied,
                found.spec_view,
                sensitive=record.sensitive_paths,
                hasher=hasher,
            )
            started = record.was_stopped and found.status != DeploymentStatus.DISABLED
            sync = Sync.OUT_OF_SYNC if drift or started else Sync.SYNCED
            status = found.status
            message = ""
            if health is Health.DEGRADED:  # the API's words may echo a secret it was sent
                redact = live_redactor(found.spec_view, record.sensitive_paths)
                message = redact(degraded_message(found))
            if message and record.outcome is RecordOutcome.FAILED and record.message:
                message = f"last apply: failed: {record.message}"  # with its log lines
            if drift and not message:
                message = "drift: " + ", ".join(c.path for c in drift[:5])
            if started and not message:
                message = "drift: started out of band (spec.stopped is true)"
        if key in not_waited:
            message = "submitted; not waited for (apply --no-wait); the next apply follows it up"
        elif key in interrupted:
            message = "interrupted; the next apply resumes it"
        if not message and not record.outcome.settled:
            message = f"last apply: {record.outcome}" + (
                f": {record.message}" if record.message else ""
            )
        rows.append(
            StatusRow(key, sync, health, status, record.revision, record.applied_at, message)
        )
    return rows
