"""Making a plan: pair every key into a triple, apply the rules, check the plan as a whole
(adoption, an empty manifest set, the deletion budget), and fingerprint what it was made from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..diff import Hasher, hashed
from ..model import (
    STOPPED_ANNOTATION,
    DeploymentKey,
    DesiredDeployment,
    DesiredState,
    LiveDeployment,
    Record,
    RecordOutcome,
)
from .changes import Action, Change, Plan, PlanError, PlanOptions
from .rules import GONE_STATUSES, Bodies, blocked_by, desired_change, orphan, selected, targeted


class _Digest:
    """The fingerprint, fed deployment by deployment in key order, then the actions."""

    def __init__(self, hasher: Hasher) -> None:
        self.hasher = hasher
        self.sha = hashlib.sha256()
        self.encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode

    def add(
        self,
        key: DeploymentKey,
        wanted: Mapping[str, Any] | None,
        record: Record | None,
        live: LiveDeployment | None,
    ) -> None:
        piece = {
            "key": str(key),
            "desired": wanted,
            "recorded": dict(record.last_applied) if record is not None else None,
            "live": self.hasher(dict(live.spec_view)) if live is not None else None,
        }
        self.sha.update(self.encode(piece).encode())
        self.sha.update(b"\n")

    def finish(self, changes: tuple[Change, ...]) -> str:
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
        self.sha.update(self.encode(actions).encode())
        return "sha256:" + self.sha.hexdigest()


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
    as one string; a live view (which may hold secrets) enters as its salted hash. (`make_plan`
    feeds the same digest as it goes, so it never holds every body at once either.)"""
    digest = _Digest(hasher)
    for k in sorted({c.key for c in changes}):
        if desired_hashed is not None and k in desired_hashed:
            wanted: Any = desired_hashed[k]
        elif k in desired:
            wanted = hashed(desired[k].body(), desired[k].sensitive_paths, hasher)
        else:
            wanted = None
        digest.add(k, wanted, records.get(k), live.get(k))
    return digest.finish(changes)


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
        k for k in wanted if k in present and k not in owned and blocked_by(present[k]) is None
    )
    if unowned and not options.adopt:
        names = ", ".join(map(str, unowned))
        raise PlanError(
            f"{len(unowned)} deployment(s) exist but are not owned by this reconciler: {names}; "
            "refusing to adopt them (--no-adopt)"
        )

    changes = []
    # the fingerprint is fed as the plan goes: no deployment's bodies outlive its turn
    digest = _Digest(fingerprint_hasher or hasher)
    for key in sorted(set(wanted) | set(owned)):
        found = present.get(key)
        if found is not None:
            found = found.opened()  # decoded for this turn only
        record = owned.get(key)
        if record is not None:
            record = record.opened()
        wanted_hashed: Mapping[str, Any] | None = None
        if key in wanted:
            one = wanted[key]
            bodies = Bodies.of(one, hasher)
            changes.append(desired_change(one, record, found, hasher, bodies))
            wanted_hashed = (
                bodies.hashed
                if fingerprint_hasher is None
                else hashed(bodies.body, one.sensitive_paths, fingerprint_hasher)
            )
        else:
            assert record is not None  # neither desired nor owned: not in this loop
            changes.append(orphan(record, found, options))
        digest.add(key, wanted_hashed, record, found)

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
    warnings = tuple(
        f"{key}: skipped, not ours, and the API's answer for it cannot be read "
        f"({live[key].unreadable})"
        for key in sorted(live)
        if live[key].unreadable and key not in wanted and key not in owned
    )
    return Plan(frozen, digest.finish(frozen), revision, warnings=warnings)


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
        last_applied=hashed(desired.body(), desired.sensitive_paths, hasher),
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
    if desired.wants_stopped:
        annotations[STOPPED_ANNOTATION] = "true"
    return MappingProxyType(annotations)
