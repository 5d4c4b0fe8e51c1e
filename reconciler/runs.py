"""What one reconcile of the service reports: `Run` while it goes, `LastReconcile` once done
(the `last_reconcile` of /api/status)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LastReconcile", "Run"]


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
