"""Which changes one reconcile may run, and what its outcomes mean for the next.

Self-heal off leaves drift alone, a deployment's or an object's (the change is logged and
counted, status shows OutOfSync, nothing is sent). A deployment that keeps failing is retried
with its own exponential backoff (5 s doubling to 5 min by default) without holding the others
back: while it backs off, its mutating changes are left out of the plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .clock import Clock
from .metrics import Metrics
from .model import DeploymentKey
from .plan import Change, Plan

if TYPE_CHECKING:
    from .engine import ApplyReport

log = logging.getLogger("reconciler.service")


@dataclass
class Healing:
    """Self-heal and per-deployment backoff, across the reconciles of one service."""

    clock: Clock
    metrics: Metrics
    self_heal: bool = True
    backoff_initial: float = 5.0
    backoff_cap: float = 300.0
    # failures so far and when the next attempt may run (monotonic), per deployment
    backoff: dict[DeploymentKey, tuple[int, float]] = field(default_factory=dict)
    drifted: dict[DeploymentKey, str] = field(default_factory=dict)  # the last plan's drift

    def choose(self, plan: Plan) -> Plan:
        """Leave drift alone without self-heal; skip deployments still backing off."""
        now = self.clock.monotonic()
        drifted = [c for c in plan.changes if c.reason.is_drift]
        self.drifted = {c.key: _drift_words(c) for c in drifted}
        objects_drifted = [o for o in plan.objects if o.reason.is_drift]
        if drifted or objects_drifted:
            self.metrics.drift.inc(len(drifted) + len(objects_drifted))
            for change in drifted:
                log.info("drift detected on %s: %s", change.key, change.why)
            for found in objects_drifted:
                log.info("drift detected on %s: %s", found.key, found.why)
        kept = []
        for change in plan.changes:
            if not self.self_heal and change.reason.is_drift:
                continue
            waiting = self.backoff.get(change.key)
            if waiting and waiting[1] > now and change.action.mutates:
                log.info("%s: backing off for %.0fs more", change.key, waiting[1] - now)
                continue
            kept.append(change)
        objects = plan.objects
        if not self.self_heal:
            objects = tuple(o for o in objects if not o.reason.is_drift)
        return replace(plan, changes=tuple(kept), objects=objects)

    def note(self, report: ApplyReport) -> float | None:
        """Count the outcomes, back off what failed; seconds until the soonest retry, if any."""
        now = self.clock.monotonic()
        for outcome in report.outcomes:
            self.metrics.actions.labels(outcome.action.value, outcome.result.value).inc()
            if outcome.result.ok:
                self.backoff.pop(outcome.key, None)
                continue
            failures = self.backoff.get(outcome.key, (0, 0.0))[0] + 1
            delay = min(self.backoff_initial * 2 ** (failures - 1), self.backoff_cap)
            self.backoff[outcome.key] = (failures, now + delay)
            log.warning(
                "%s: %s (%s); retrying in %.0fs",
                outcome.key,
                outcome.result.value,
                outcome.error,
                delay,
            )
        for seconds in report.task_waits:
            self.metrics.task_wait.observe(seconds)
        if not self.backoff:
            return None
        return min(until for _, until in self.backoff.values()) - now


def _drift_words(change: Change) -> str:
    """ "drift: containers[region_id=1].scale.max", or the reason alone when no field moved (a
    deployment started or stopped out of band)."""
    fields = ", ".join(f.path for f in change.changes[:5])
    return f"{change.reason}: {fields}" if fields else str(change.reason)
