"""What a plan says: the actions, their reasons, one `Change` per deployment, and the `Plan`
with its JSON form (DESIGN.md §7)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from .. import patch
from ..diff import FieldChange
from ..errors import ReconcilerError
from ..model import DeploymentKey
from ..objects_plan import ObjectChange, deployments_wave


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
