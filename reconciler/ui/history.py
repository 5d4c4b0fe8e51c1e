"""Recent outcomes per deployment, as the service reports them after each reconcile.

Kept in memory (the last `keep` per deployment): the page shows what happened lately and which
tasks did it; a restart starts the list afresh. Unchanged deployments (skipped) are not kept.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..execute import Result
from ..model import DeploymentKey
from ..service import Service


@dataclass(frozen=True)
class Entry:
    at: float
    action: str
    result: str
    error: str
    task_ids: tuple[str, ...]
    seconds: float
    revision: str | None


class History:
    def __init__(self, keep: int = 20, clock: Callable[[], float] = time.time) -> None:
        self.keep = keep
        self.clock = clock
        self._by_key: dict[DeploymentKey, deque[Entry]] = {}

    def __call__(self, service: Service) -> None:
        report = service.last_report
        if report is None:
            return
        for outcome in report.outcomes:
            if outcome.result is Result.SKIPPED:
                continue
            entries = self._by_key.setdefault(outcome.key, deque(maxlen=self.keep))
            entries.append(
                Entry(
                    self.clock(),
                    outcome.action.value,
                    outcome.result.value,
                    outcome.error,
                    outcome.task_ids,
                    outcome.seconds,
                    report.plan.revision,
                )
            )

    def of(self, key: DeploymentKey) -> list[Entry]:
        """Newest first."""
        return list(reversed(self._by_key.get(key, ())))
