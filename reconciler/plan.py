"""Plans: what to do about every deployment, and why. Pure: values in, a `Plan` out.

Pairing first (as gitops-engine does): every key that is desired or recorded becomes a triple
(desired, recorded, live); a function over each triple picks the action. Live deployments that
are neither desired nor recorded are not ours and never appear. Ownership rules (DESIGN.md §4):

| desired | recorded | live | action                                            |
|---------|----------|------|---------------------------------------------------|
| yes     | no       | no   | create, `new`                                     |
| yes     | no       | yes  | adopt (error with `--no-adopt`), `adopt`          |
| yes     | yes      | no   | create, `drift: missing`                          |
| yes     | yes      | yes  | update (`manifest changed` or `drift`), or noop   |
| no      | yes      | any  | delete with `--prune` (`orphan`), else noop       |

A live deployment managed by another object (non-empty `object_references`, e.g. one made by an
inference Application) is never adopted, updated or deleted: its change is `managed elsewhere`,
naming the parent. One whose answer cannot be read is `unreadable` if it is ours (desired or
recorded), and a plan warning otherwise. Both block only that deployment (`Reason.is_blocked`):
apply reports it failed and goes on with the others.

With `--selector`, a deployment is in scope when its manifest's labels match; a record is an
orphan only when no manifest (selected or not) names its deployment.

A plan carries no secret: sensitive values are `(sensitive)` in its changes; the executor takes
the real values from the desired state it re-reads (and checks against the plan's fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from . import patch
from .diff import FieldChange, Hasher, creation, diff, hashed, patch_fields
from .errors import ReconcilerError
from .model import (
    STOPPED_ANNOTATION,
    DeploymentKey,
    DeploymentStatus,
    DesiredDeployment,
    DesiredState,
    LiveDeployment,
    Record,
    RecordOutcome,
)
from .objects_plan import ObjectChange, deployments_wave

PRUNE_ANNOTATION = "reconciler/prune"
GONE_STATUSES = frozenset({DeploymentStatus.DELETING})


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ADOPT = "adopt"
    NOOP = "noop"
    STOP = "stop"  # POST …/stop: `spec.stopped: true` and live is running
    START = "start"  # POST …/start: the manifest wants it running and live is DISABLED

    @property
    def mutates(self) -> bool:
        return self is not Action.NOOP

    @property
    def symbol(self) -> str:
        return {
            "create": "+",
            "update": "~",
            "delete": "-",
            "adopt": "=",
            "noop": " ",
            "stop": "~",
            "start": "~",
        }[self]


SUMMARY_KEYS = ("create", "update", "delete", "adopt", "noop", "stop", "start", "replace")


class Reason(StrEnum):
    """Why a deployment gets its action; the words are the JSON plan's `reason`."""

    NEW = "new"
    ADOPT = "adopt"
    RETRY = "last attempt failed"  # created or changed before, failed, and is not live
    DRIFT_MISSING = "drift: missing"
    DRIFT = "drift"
    MANIFEST_CHANGED = "manifest changed"
    IN_SYNC = "in sync"
    ORPHAN = "orphan"
    ORPHAN_GONE = "orphan: already gone"
    ORPHAN_KEPT = "orphan: kept (use --prune to delete)"
    ORPHAN_PROTECTED = 'orphan: kept (reconciler/prune is "false")'
    STOPPED = "stopped: true, live is running"
    RUNNING = "stopped: false, live is DISABLED"
    DRIFT_STARTED = "drift: started out of band"  # applied stopped, and someone started it
    DRIFT_STOPPED = "drift: stopped out of band"  # applied running, and someone stopped it
    MANAGED_ELSEWHERE = "managed elsewhere"
    UNREADABLE = "unreadable"

    @property
    def is_blocked(self) -> bool:
        """Nothing may be done about it: apply reports it failed (with the change's note)."""
        return self in (Reason.MANAGED_ELSEWHERE, Reason.UNREADABLE)

    @property
    def is_drift(self) -> bool:
        """Live state moved away from what was applied (edited or deleted out of band)."""
        return self in (
            Reason.DRIFT,
            Reason.DRIFT_MISSING,
            Reason.DRIFT_STARTED,
            Reason.DRIFT_STOPPED,
        )

    @property
    def is_orphan(self) -> bool:
        return self in (
            Reason.ORPHAN,
            Reason.ORPHAN_GONE,
            Reason.ORPHAN_KEPT,
            Reason.ORPHAN_PROTECTED,
        )


class PlanError(ReconcilerError):
    """The plan cannot be made as asked (adopt refused, empty manifest set with prune, ...)."""


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = False
    allow_empty: bool = False
    adopt: bool = True
    selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    max_deletes: int | None = None  # a deletion budget: more deletes than this refuse the plan
    targets: frozenset[str] = frozenset()  # only these deployments (NAME or PROJECT/NAME)
    force: bool = False  # prune even what `reconciler/prune: "false"` protects (destroy --force)
    preflight: bool = False  # check flavors and regions against the API first (`plan` does)


@dataclass(frozen=True)
class Change:
    """What to do about one deployment. `fields` are the top-level fields an update sends;
    `steps` splits them into the PATCHes to send, in order (`reconciler.patch`); a blocked
    one's `note` says why (the parent that manages it, why its answer is unreadable)."""

    key: DeploymentKey
    action: Action
    reason: Reason
    changes: tuple[FieldChange, ...] = ()
    source: str | None = None
    fields: tuple[str, ...] = ()
    note: str = ""  # what the reason refers to (the last attempt's error)

    @property
    def why(self) -> str:
        """The reason in words, for people: `drift` names the drifted fields, a retry its error,
        and a reason that only repeats the action (`adopt`) says nothing."""
        if self.reason is Reason.DRIFT and (self.fields or self.changes):
            names = list(self.fields) or [c.path for c in self.changes]
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            return f"drift: {', '.join(names[:5])}{more}"
        if self.note:
            return f"{self.reason}: {self.note}"
        return "" if self.reason.value == self.action.value else self.reason.value

    then: Action | None = None  # a stop or start after the create, update or adopt
    steps: patch.Steps = ()  # the fields of each PATCH, in order, when one is not enough

    @property
    def blocked(self) -> bool:
        return Reason(self.reason).is_blocked


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    fingerprint: str
    revision: str | None = None
    objects: tuple[ObjectChange, ...] = ()  # credentials, secrets, API keys (with their waves)
    warnings: tuple[str, ...] = ()  # said on stderr and in the JSON plan; never block

    @property
    def blocked(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.blocked)

    def summary(self) -> dict[str, int]:
        counts = Counter(c.action.value for c in self.changes)
        counts.update(c.then.value for c in self.changes if c.then is not None)
        counts.update(o.action.value for o in self.objects)
        return {key: counts.get(key, 0) for key in SUMMARY_KEYS}

    @property
    def has_changes(self) -> bool:
        return any(c.action.mutates for c in self.changes) or any(
            o.action.mutates for o in self.objects
        )

    @property
    def deployments_wave(self) -> int:
        """The wave deployments run in: after the object writes they may need."""
        return deployments_wave(self.objects)

    def wave_of(self, change: Change) -> int:
        return self.deployments_wave if change.action.mutates else 0

    def to_json(self) -> dict[str, Any]:
        """The JSON plan of DESIGN.md §7 (`format_version` 1)."""
        return {
            "format_version": 1,
            "revision": self.revision,
            "fingerprint": self.fingerprint,
            "summary": self.summary(),
            "actions": [
                *(
                    {
                        "action": c.action.value,
                        "kind": "InferenceDeployment",
                        "project_id": c.key.project_id,
                        "name": c.key.name,
                        "reason": str(c.reason),
                        **({"note": c.note} if c.note else {}),
                        "source": c.source,
                        "fields": list(c.fields),
                        **({"steps": [list(x) for x in c.steps]} if len(c.steps) > 1 else {}),
                        "changes": [_field_json(f) for f in c.changes],
                        "wave": self.wave_of(c),
                        **({"then": c.then.value} if c.then is not None else {}),
                    }
                    for c in self.changes
                ),
                *(
                    {
                        "action": o.action.value,
                        "kind": o.key.kind.value,
                        "project_id": o.key.project_id,
                        "name": o.key.name,
                        "reason": o.why,
                        "source": o.source,
                        "fields": [],
                        "changes": [_field_json(f) for f in o.changes],
                        "wave": o.wave,
                    }
                    for o in self.objects
                ),
            ],
            "warnings": list(self.warnings),
        }


def _field_json(f: FieldChange) -> dict[str, Any]:
    return {"path": f.path, "before": f.before, "after": f.after, "sensitive": f.sensitive}


def selected(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def targeted(key: DeploymentKey, targets: frozenset[str]) -> bool:
    """Whether `--target` lets `key` in (no target: everything)."""
    return not targets or key.name in targets or str(key) in targets


def _orphan(record: Record, live: LiveDeployment | None, options: PlanOptions) -> Change:
    if live is not None and (blocked := _blocked(live)) is not None:
        return blocked
    if record.annotations.get(PRUNE_ANNOTATION) == "false" and not options.force:
        return Change(record.key, Action.NOOP, Reason.ORPHAN_PROTECTED)
    if not options.prune:
        return Change(record.key, Action.NOOP, Reason.ORPHAN_KEPT)
    reason = Reason.ORPHAN if live is not None else Reason.ORPHAN_GONE
    return Change(record.key, Action.DELETE, reason)


@dataclass(frozen=True)
class _Bodies:
    """A desired deployment's request body and its hashed form, each made once per plan."""

    body: dict[str, Any]
    hashed: dict[str, Any]

    @classmethod
    def of(cls, desired: DesiredDeployment, hasher: Hasher) -> _Bodies:
        body = desired.spec.body()
        return cls(body, hashed(body, desired.sensitive_paths, hasher))


def _power(
    change: Change, desired: DesiredDeployment, record: Record | None, live: LiveDeployment | None
) -> Change:
    """Add the stop or start `spec.stopped` asks for (DESIGN.md §6b). When the record says the
    deployment was last applied in the state the manifest still asks for, the live state moved
    out of band: drift."""
    stopped = desired.spec.wants_stopped
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


def _desired_change(
    desired: DesiredDeployment,
    record: Record | None,
    live: LiveDeployment | None,
    hasher: Hasher,
    bodies: _Bodies | None = None,
) -> Change:
    return _power(_spec_change(desired, record, live, hasher, bodies), desired, record, live)


def _spec_change(
    desired: DesiredDeployment,
    record: Record | None,
    live: LiveDeployment | None,
    hasher: Hasher,
    bodies: _Bodies | None = None,
) -> Change:
    bodies = bodies or _Bodies.of(desired, hasher)
    body = bodies.body
    source = str(desired.source)
    if live is not None and (blocked := _blocked(live)) is not None:
        return replace(blocked, source=source)
    if live is None:
        changes = tuple(creation(body, sensitive=desired.sensitive_paths))
        if record is not None and record.outcome in (RecordOutcome.FAILED, RecordOutcome.TIMED_OUT):
            # a failed create is not drift: nothing was deleted out of band
            note = record.message or str(record.outcome)
            return Change(desired.key, Action.CREATE, Reason.RETRY, changes, source, note=note)
        reason = Reason.NEW if record is None else Reason.DRIFT_MISSING
        return Change(desired.key, Action.CREATE, reason, changes, source)
    changes = tuple(
        diff(
            body,
            live.spec_view,
            sensitive=desired.sensitive_paths,
            last_applied=record.last_applied if record else None,
            record_sensitive=record.sensitive_paths if record else frozenset(),
            hasher=hasher,
        )
    )
    fields = patch_fields(changes)
    steps = patch.steps(fields, body, live.spec_view)
    if record is None:
        return Change(desired.key, Action.ADOPT, Reason.ADOPT, changes, source, fields, steps=steps)
    if not changes:
        return Change(desired.key, Action.NOOP, Reason.IN_SYNC, (), source)
    manifest_changed = bodies.hashed != record.last_applied
    reason = Reason.MANIFEST_CHANGED if manifest_changed else Reason.DRIFT
    return Change(desired.key, Action.UPDATE, reason, changes, source, fields, steps=steps)


def _blocked(live: LiveDeployment) -> Change | None:
    if live.unreadable:
        detail = f"the API's answer for it cannot be read ({live.unreadable})"
        return Change(live.key, Action.NOOP, Reason.UNREADABLE, note=detail)
    if live.managed_by:
        detail = f"{live.managed_by} manages it; it is never adopted, updated or deleted here"
        return Change(live.key, Action.NOOP, Reason.MANAGED_ELSEWHERE, note=detail)
    return None


def fingerprint(
    desired: Mapping[DeploymentKey, DesiredDeployment],
    records: Mapping[DeploymentKey, Record],
    live: Mapping[DeploymentKey, LiveDeployment],
    changes: tuple[Change, ...],
    hasher: Hasher,
    desired_hashed: Mapping[DeploymentKey, Mapping[str, Any]] | None = None,
) -> str:
    """A digest of everything the plan was made from; secrets enter only as salted hashes.

    Fed to the digest deployment by deployment, so a plan of 10,000 never holds the material
    as one string; a live view (which may hold secrets) enters as its salted hash."""
    digest = hashlib.sha256()
    encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
    for k in sorted({c.key for c in changes}):
        if desired_hashed is not None and k in desired_hashed:
            wanted: Any = desired_hashed[k]
        elif k in desired:
            wanted = hashed(desired[k].spec.body(), desired[k].sensitive_paths, hasher)
        else:
            wanted = None
        piece = {
            "key": str(k),
            "desired": wanted,
            "recorded": dict(records[k].last_applied) if k in records else None,
            "live": hasher(dict(live[k].spec_view)) if k in live else None,
        }
        digest.update(encode(piece).encode())
        digest.update(b"\n")
    actions = [
        [
            str(c.key),
            c.action.value,
            list(c.fields),
            c.then.value if c.then else None,
            [list(x) for x in c.steps],
        ]
        for c in changes
    ]
    digest.update(encode(actions).encode())
    return "sha256:" + digest.hexdigest()


def make_plan(
    desired: DesiredState,
    records: Mapping[DeploymentKey, Record],
    live: Mapping[DeploymentKey, LiveDeployment],
    hasher: Hasher,
    options: PlanOptions | None = None,
    revision: str | None = None,
    *,
    fingerprint_hasher: Hasher | None = None,
) -> Plan:
    """Decide an action for every desired or recorded deployment (in key order).

    `fingerprint_hasher`, when given, hashes secrets for the fingerprint instead of `hasher`
    (a plan made where no state exists yet: see `statekey.no_state_hasher`)."""
    options = options or PlanOptions()
    wanted = {d.key: d for d in desired if selected(d.labels, options.selector)}
    # a record is in scope when its manifest is selected (whatever labels it was applied with);
    # a record whose deployment still has a manifest is never an orphan, selected or not
    has_manifest = {d.key for d in desired}
    owned = {
        k: r
        for k, r in records.items()
        if k in wanted or (k not in has_manifest and selected(r.labels, options.selector))
    }
    present = {k: v for k, v in live.items() if v.status not in GONE_STATUSES}
    if options.targets:
        known = set(wanted) | set(owned)
        unmatched = sorted(
            t for t in options.targets if not any(targeted(k, frozenset({t})) for k in known)
        )
        if unmatched:
            raise PlanError(
                f"--target {', '.join(unmatched)}: no such deployment among the manifests "
                "and the owned ones"
            )
        wanted = {k: d for k, d in wanted.items() if targeted(k, options.targets)}
        owned = {k: r for k, r in owned.items() if targeted(k, options.targets)}

    unowned = sorted(
        k for k in wanted if k in present and k not in owned and _blocked(present[k]) is None
    )
    if unowned and not options.adopt:
        names = ", ".join(map(str, unowned))
        raise PlanError(
            f"{len(unowned)} deployment(s) exist but are not owned by this reconciler: {names}; "
            "refusing to adopt them (--no-adopt)"
        )

    changes = []
    bodies = {k: _Bodies.of(d, hasher) for k, d in wanted.items()}
    for key in sorted(set(wanted) | set(owned)):
        if key in wanted:
            changes.append(
                _desired_change(wanted[key], owned.get(key), present.get(key), hasher, bodies[key])
            )
        else:
            changes.append(_orphan(owned[key], present.get(key), options))

    deletes = [c for c in changes if c.action is Action.DELETE]
    if deletes and not wanted and not options.allow_empty:
        raise PlanError(
            f"the manifest set is empty, and --prune would delete all {len(deletes)} owned "
            "deployment(s); refusing (a broken checkout must not wipe production). "
            "Pass --allow-empty if this is what you want"
        )
    budget = options.max_deletes
    if budget is not None and len(deletes) > budget:
        raise PlanError(
            f"the plan would delete {len(deletes)} deployments, more than the budget of "
            f"{budget} (a renamed folder or a bad merge must not empty production); "
            f"if this is intended, pass --max-deletes {len(deletes)}"
        )
    frozen = tuple(changes)
    desired_hashed = {k: b.hashed for k, b in bodies.items()}
    warnings = tuple(
        f"{key}: skipped, not ours, and the API's answer for it cannot be read "
        f"({live[key].unreadable})"
        for key in sorted(live)
        if live[key].unreadable and key not in wanted and key not in owned
    )
    return Plan(
        frozen,
        fingerprint(wanted, owned, present, frozen, hasher, desired_hashed)
        if fingerprint_hasher is None
        else fingerprint(wanted, owned, present, frozen, fingerprint_hasher),
        revision,
        warnings=warnings,
    )


def applied_record(
    desired: DesiredDeployment,
    hasher: Hasher,
    *,
    applied_at: float,
    outcome: RecordOutcome,
    revision: str | None = None,
    message: str = "",
) -> Record:
    """The record of having applied `desired`: its body with every secret hashed."""
    return Record(
        key=desired.key,
        last_applied=hashed(desired.spec.body(), desired.sensitive_paths, hasher),
        applied_at=applied_at,
        outcome=outcome,
        message=message,
        revision=revision,
        sensitive_paths=desired.sensitive_paths,
        labels=desired.labels,
        annotations=_with_power(desired),
    )


def _with_power(desired: DesiredDeployment) -> Mapping[str, str]:
    """The manifest's annotations, and the reconciler's own mark of a deployment kept stopped."""
    annotations = {k: v for k, v in desired.annotations.items() if k != STOPPED_ANNOTATION}
    if desired.spec.wants_stopped:
        annotations[STOPPED_ANNOTATION] = "true"
    return MappingProxyType(annotations)
