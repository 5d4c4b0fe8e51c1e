"""Plans for credentials, secrets and API keys, and the order all work runs in. Pure.

Pairing as for deployments: every object that is desired or recorded becomes a triple (desired,
recorded, live) and gets an action. Differences from deployments:

- write-only fields (a password, a secret key) never come back, so they are compared with the
  salted hash recorded when they were last applied: "changed (write-only, compared with what was
  last applied)". With no record (adopt) they cannot be compared and are sent again;
- credentials and secrets change with PUT (the whole body); an API key changes with PATCH, and
  only its description: any other change replaces it (delete, then create: `-/+`);
- references are checked here: a deployment may name only an object that is declared or live
  (the error names the reference's file:line), and an object a live deployment still names is
  never deleted (the error names the users).

Order as a graph, in waves: writes of referenced objects come before the deployments that use
them; deletes of deployments come before deletes of the objects they named. Work in one wave is
independent and runs at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from .diff import SENSITIVE, FieldChange, Hasher, hashed
from .kinds import DesiredObject, Kind, ObjectKey
from .manifests.objects import dangling
from .model import DesiredDeployment, SpecPath

WRITE_ONLY_NOTE = "changed (write-only, compared with what was last applied)"
PRUNE_ANNOTATION = "reconciler/prune"


class ObjectAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    ADOPT = "adopt"
    NOOP = "noop"

    @property
    def mutates(self) -> bool:
        return self is not ObjectAction.NOOP

    @property
    def symbol(self) -> str:
        return {
            "create": "+",
            "update": "~",
            "replace": "-/+",
            "delete": "-",
            "adopt": "=",
            "noop": " ",
        }[self]

    @property
    def writes(self) -> bool:
        """Creates, changes or re-creates the object (must precede its users)."""
        return self in (
            ObjectAction.CREATE,
            ObjectAction.UPDATE,
            ObjectAction.REPLACE,
            ObjectAction.ADOPT,
        )


class ObjectReason(StrEnum):
    """Why an object gets its action; the words are the JSON plan's `reason` (as deployments')."""

    NEW = "new"
    ADOPT = "adopt"
    DRIFT_MISSING = "drift: missing"
    DRIFT = "drift"
    MANIFEST_CHANGED = "manifest changed"
    REPLACE = "only description changes in place"  # an API key: any other change re-creates it
    IN_SYNC = "in sync"
    ORPHAN = "orphan"
    ORPHAN_GONE = "orphan: already gone"
    ORPHAN_KEPT = "orphan: kept (use --prune to delete)"
    ORPHAN_PROTECTED = 'orphan: kept (reconciler/prune is "false")'

    @property
    def is_drift(self) -> bool:
        """The live object moved away from what was applied (edited or deleted out of band)."""
        return self in (ObjectReason.DRIFT, ObjectReason.DRIFT_MISSING)

    @property
    def is_orphan(self) -> bool:
        return self in (
            ObjectReason.ORPHAN,
            ObjectReason.ORPHAN_GONE,
            ObjectReason.ORPHAN_KEPT,
            ObjectReason.ORPHAN_PROTECTED,
        )


@dataclass(frozen=True)
class ObjectRecord:
    """An object this reconciler owns, as it last applied it (secrets as salted hashes)."""

    key: ObjectKey
    last_applied: Mapping[str, Any]
    applied_at: float
    sensitive_paths: frozenset[SpecPath] = frozenset()
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class LiveObject:
    """An object as the API reports it, in the request shape (write-only fields absent)."""

    key: ObjectKey
    view: Mapping[str, Any]


@dataclass(frozen=True)
class ObjectChange:
    key: ObjectKey
    action: ObjectAction
    reason: ObjectReason
    changes: tuple[FieldChange, ...] = ()
    source: str | None = None
    wave: int = 1

    @property
    def why(self) -> str:
        """The reason in words; a replace names the fields that force it."""
        if self.reason is ObjectReason.REPLACE:
            return f"{self.reason}: " + ", ".join(c.path for c in self.changes)
        return str(self.reason)


def _walk(
    desired: Any, live: Any, path: tuple[str, ...], sensitive: frozenset[SpecPath]
) -> list[FieldChange]:
    if isinstance(desired, Mapping):
        live_map = live if isinstance(live, Mapping) else {}
        found: list[FieldChange] = []
        for key, value in desired.items():
            found += _walk(value, live_map.get(key), (*path, key), sensitive)
        return found
    if desired == live:
        return []
    text = ".".join(path)
    if path in sensitive:
        return [FieldChange(text, None if live is None else SENSITIVE, SENSITIVE, True)]
    return [FieldChange(text, live, desired, False)]


def object_diff(
    desired: DesiredObject,
    record: ObjectRecord | None,
    live: LiveObject,
    hasher: Hasher,
) -> list[FieldChange]:
    """What differs; write-only fields against the record's hash."""
    body = desired.spec.body()
    write_only = set(desired.key.kind.write_only)
    shown = _without(body, write_only)
    changes = _walk(shown, dict(live.view), (), desired.sensitive_paths)
    recorded = hashed(body, desired.sensitive_paths, hasher)
    for path in sorted(write_only):
        text = ".".join(map(str, path))
        before = _at(record.last_applied, path) if record is not None else None
        if before is None or before != _at(recorded, path):
            changes.append(FieldChange(text, SENSITIVE, WRITE_ONLY_NOTE, True))
    return changes


def _at(body: Mapping[str, Any], path: SpecPath) -> Any:
    value: Any = body
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _without(body: Mapping[str, Any], paths: Iterable[SpecPath]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in body.items()}
    for path in paths:
        parent: Any = out
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return out


def _desired_change(
    desired: DesiredObject, record: ObjectRecord | None, live: LiveObject | None, hasher: Hasher
) -> ObjectChange:
    source = str(desired.source)
    if live is None:
        reason = ObjectReason.NEW if record is None else ObjectReason.DRIFT_MISSING
        return ObjectChange(desired.key, ObjectAction.CREATE, reason, (), source)
    changes = tuple(object_diff(desired, record, live, hasher))
    if record is None:
        return ObjectChange(desired.key, ObjectAction.ADOPT, ObjectReason.ADOPT, changes, source)
    if not changes:
        return ObjectChange(desired.key, ObjectAction.NOOP, ObjectReason.IN_SYNC, (), source)
    if desired.key.kind is Kind.API_KEY and any(c.path != "description" for c in changes):
        return ObjectChange(
            desired.key, ObjectAction.REPLACE, ObjectReason.REPLACE, changes, source
        )
    manifest_changed = hashed(desired.spec.body(), desired.sensitive_paths, hasher) != dict(
        record.last_applied
    )
    reason = ObjectReason.MANIFEST_CHANGED if manifest_changed else ObjectReason.DRIFT
    return ObjectChange(desired.key, ObjectAction.UPDATE, reason, changes, source)


def _orphan(record: ObjectRecord, live: LiveObject | None, prune: bool) -> ObjectChange:
    if record.annotations.get(PRUNE_ANNOTATION) == "false":
        return ObjectChange(record.key, ObjectAction.NOOP, ObjectReason.ORPHAN_PROTECTED)
    if not prune:
        return ObjectChange(record.key, ObjectAction.NOOP, ObjectReason.ORPHAN_KEPT)
    reason = ObjectReason.ORPHAN if live is not None else ObjectReason.ORPHAN_GONE
    return ObjectChange(record.key, ObjectAction.DELETE, reason)


def plan_objects(
    desired: Iterable[DesiredObject],
    records: Mapping[ObjectKey, ObjectRecord],
    live: Mapping[ObjectKey, LiveObject],
    hasher: Hasher,
    *,
    prune: bool = False,
) -> list[ObjectChange]:
    """An action for every desired or recorded object, in key order (waves set later)."""
    wanted = {d.key: d for d in desired}
    found = []
    for key in sorted(set(wanted) | set(records)):
        if key in wanted:
            found.append(_desired_change(wanted[key], records.get(key), live.get(key), hasher))
        else:
            found.append(_orphan(records[key], live.get(key), prune))
    return found


def check_references(
    deployments: Iterable[DesiredDeployment],
    objects: Iterable[DesiredObject],
    live: Iterable[ObjectKey],
) -> list[str]:
    """One message per reference to an object neither declared nor live (file:line first)."""
    return [str(d) for d in dangling(list(deployments), list(objects), list(live))]


def refused_deletes(
    changes: Iterable[ObjectChange], users: Mapping[ObjectKey, Iterable[str]]
) -> list[str]:
    """Deletes of objects that live deployments (not themselves being deleted) still name."""
    messages = []
    for change in changes:
        if change.action is ObjectAction.DELETE:
            names = sorted(set(users.get(change.key, ())))
            if names:
                messages.append(
                    f"refusing to delete {change.key}: still used by deployment(s) "
                    f"{', '.join(names)}"
                )
    return messages


def deployments_wave(changes: Iterable[ObjectChange]) -> int:
    """The wave deployments run in: after any object write."""
    return 2 if any(c.action.writes for c in changes) else 1


def with_waves(changes: Iterable[ObjectChange]) -> list[ObjectChange]:
    """Object writes in wave 1 (before deployments), deletes in the wave after deployments."""
    listed = list(changes)
    after = deployments_wave(listed) + 1
    return [
        replace(c, wave=after if c.action is ObjectAction.DELETE else 1 if c.action.mutates else 0)
        for c in listed
    ]
