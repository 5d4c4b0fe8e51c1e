"""What the service reports: `Run` while a reconcile goes, `LastReconcile` once done (the
`last_reconcile` of /api/status), and the whole /api/status document."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import ApplyReport
    from .service import Service

__all__ = ["LastReconcile", "Run", "failures", "status_document"]


@dataclass
class LastReconcile:
    at: float
    seconds: float
    result: str  # ok | failed | invalid | locked | error
    revision: str | None
    errors: list[str]
    outcomes: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "seconds": round(self.seconds, 3),
            "result": self.result,
            "revision": self.revision,
            "errors": self.errors,
            "outcomes": self.outcomes,
        }


@dataclass
class Run:
    """One reconcile as it goes: how it is ending, and what to report."""

    started: float
    result: str = "ok"  # ok | failed | invalid | empty | locked | error
    revision: str | None = None
    errors: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    cause: str | None = None  # why /readyz says 503 after this run, if it does

    def end(self, result: str, errors: list[str]) -> None:
        self.result, self.errors = result, errors


def failures(report: ApplyReport) -> list[str]:
    """One line per failed action of an apply: deployments', then objects'."""
    lines = [f"{o.key}: {o.error}" for o in report.outcomes if not o.result.ok]
    return lines + [f"{o.key}: {o.message}" for o in report.object_outcomes if not o.ok]


def status_document(service: Service) -> dict[str, Any]:
    """`status --format json` (deployments and objects) and the service's own state."""
    good_revision = service.good[1] if service.good else None
    return {
        "source": service.source.describe(),
        "revision": good_revision,
        "ready": service.ready,
        "not_ready": None if service.ready else service.not_ready,
        "reconciling": service.running_since is not None,
        "reconciles": service.runs,
        "triggers": dict(service.triggers),
        "last_reconcile": service.last.to_json() if service.last else None,
        "manifest_errors": [str(e) for e in service.manifest_errors],
        "backoff": {
            str(k): round(max(0.0, until - service.clock.monotonic()), 1)
            for k, (_, until) in sorted(service.backoff.items())
        },
        "deployments": [r.to_json() for r in service.rows],
        "objects": [o.to_json() for o in service.object_rows],
        "projects": sorted(service.projects) if service.projects is not None else None,
    }
