"""The rules of one triple (desired, recorded, live): which action, for which reason.

See the table in the package's docstring; `make_plan` (make.py) pairs the triples and applies
these to each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .. import patch
from ..diff import Hasher, creation, diff, hashed, patch_fields
from ..model import (
    DeploymentKey,
    DeploymentStatus,
    DesiredDeployment,
    LiveDeployment,
    Record,
    RecordOutcome,
)
from .changes import Action, Change, PlanOptions, Reason

PRUNE_ANNOTATION = "reconciler/prune"
GONE_STATUSES = frozenset({DeploymentStatus.DELETING})


def selected(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def targeted(key: DeploymentKey, targets: frozenset[str]) -> bool:
    """Whether `--target` lets `key` in (no target: everything)."""
    return not targets or key.name in targets or str(key) in targets


def orphan(record: Record, live: LiveDeployment | None, options: PlanOptions) -> Change:
    if live is not None and (blocked := blocked_by(live)) is not None:
        return blocked
    if record.annotations.get(PRUNE_ANNOTATION) == "false" and not options.force:
        return Change(record.key, Action.NOOP, Reason.ORPHAN_PROTECTED)
    if not options.prune:
        return Change(record.key, Action.NOOP, Reason.ORPHAN_KEPT)
    reason = Reason.ORPHAN if live is not None else Reason.ORPHAN_GONE
    return Change(record.key, Action.DELETE, reason)


@dataclass(frozen=True)
class Bodies:
    """A desired deployment's request body and its hashed form, each made once per plan."""

    body: dict[str, Any]
    hashed: dict[str, Any]

    @classmethod
    def of(cls, desired: DesiredDeployment, hasher: Hasher) -> Bodies:
        body = desired.body()
        return cls(body, hashed(body, desired.sensitive_paths, hasher))


def _power(
    change: Change, desired: DesiredDeployment, record: Record | None, live: LiveDeployment | None
) -> Change:
    """Add the stop or start `spec.stopped` asks for (DESIGN.md §6b). When the record says the
    deployment was last applied in the state the manifest still asks for, the live state moved
    out of band: drift."""
    stopped = desired.wants_stopped
    running = live is not None and live.status != "DISABLED"
    if live is None:
        want = Action.STOP if stopped else None
    elif stopped and running:
        want = Action.STOP
    elif not stopped and not running:
        want = Action.START
    else:
        want = None
    if want is None:
        return change
    if change.action is Action.NOOP:
        if record is not None and record.was_stopped == stopped:
            reason = Reason.DRIFT_STARTED if want is Action.STOP else Reason.DRIFT_STOPPED
        else:
            reason = Reason.STOPPED if want is Action.STOP else Reason.RUNNING
        return Change(change.key, want, reason, (), change.source)
    return replace(change, then=want)


def desired_change(
    desired: DesiredDeployment,
    record: Record | None,
    live: LiveDeployment | None,
    hasher: Hasher,
    bodies: Bodies | None = None,
) -> Change:
    return _power(_spec_change(desired, record, live, hasher, bodies), desired, record, live)


def _spec_change(
    desired: DesiredDeployment,
    record: Record | None,
    live: LiveDeployment | None,
    hasher: Hasher,
    bodies: Bodies | None = None,
) -> Change:
    bodies = bodies or Bodies.of(desired, hasher)
    body = bodies.body
    source = str(desired.source)
    if live is not None and (blocked := blocked_by(live)) is not None:
        return replace(blocked, source=source)
    if live is None:
        changes = tuple(creation(body, sensitive=desired.sensitive_paths))
        if record is not None and record.outcome in (RecordOutcome.FAILED, RecordOutcome.TIMED_OUT):
            # a failed create is not drift: nothing was deleted out of band
            note = record.message or str(record.outcome)
            return Change(desired.key, Action.CREATE, Reason.RETRY, changes, source, note=note)
        reason = Reason.NEW if record is None else Reason.DRIFT_MISSING
        return Change(desired.key, Action.CREATE, reason, changes, source)
    manifest_changed = record is not None and bodies.hashed != record.last_applied
    changes = tuple(
        diff(
            body,
            live.spec_view,
            sensitive=desired.sensitive_paths,
            last_applied=record.last_applied if record else None,
            record_sensitive=record.sensitive_paths if record else frozenset(),
            hasher=hasher,
            recorded_as_is=record is not None and not manifest_changed,
        )
    )
    fields = patch_fields(changes)
    steps = patch.steps(fields, body, live.spec_view)
    if record is None:
        return Change(desired.key, Action.ADOPT, Reason.ADOPT, changes, source, fields, steps=steps)
    if not changes:
        return Change(desired.key, Action.NOOP, Reason.IN_SYNC, (), source)
    reason = Reason.MANIFEST_CHANGED if manifest_changed else Reason.DRIFT
    return Change(desired.key, Action.UPDATE, reason, changes, source, fields, steps=steps)


def blocked_by(live: LiveDeployment) -> Change | None:
    """The no-op of a live deployment nothing may be done about (unreadable, or managed by
    another object), with the note that says why; None for any other."""
    if live.unreadable:
        detail = f"the API's answer for it cannot be read ({live.unreadable})"
        return Change(live.key, Action.NOOP, Reason.UNREADABLE, note=detail)
    if live.managed_by:
        detail = f"{live.managed_by} manages it; it is never adopted, updated or deleted here"
        return Change(live.key, Action.NOOP, Reason.MANAGED_ELSEWHERE, note=detail)
    return None
