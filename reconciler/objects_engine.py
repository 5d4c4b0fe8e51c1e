"""Where credentials, secrets and API keys join the pipeline: plan, check, run in waves, status.

`with_objects` extends a deployment plan with the object actions (each with its wave) after the
checks that need both sides: every reference names an object that is declared or live, no
object is deleted while a deployment (live and staying, or desired) still names it, and an empty
manifest set never prunes every object. The fingerprint then covers the objects too, so a saved
plan goes stale when they change. `ObjectRun` runs the object waves around the deployments'.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .api import ApiClient
from .diff import Hasher, hashed
from .kinds import ObjectKey
from .model import DeploymentKey, DesiredState, LiveDeployment
from .objects_apply import ObjectExecutor, ObjectOutcome, fetch_live_objects, users_of
from .objects_plan import (
    LiveObject,
    ObjectAction,
    ObjectChange,
    ObjectRecord,
    check_references,
    plan_objects,
    refused_deletes,
    with_waves,
)
from .plan import Action, Plan, PlanError
from .state import offloop
from .state.objects import ObjectRecordStore, open_object_records
from .state.objects import object_state_path as object_state_path  # for engine and ui

NO_OBJECT_STATE = (
    "credentials, secrets and API keys need a SQLite or PostgreSQL state store; "
    "this state store cannot record them"
)


def _open(state_path: object | None) -> ObjectRecordStore | None:
    return None if state_path is None else open_object_records(state_path)


def _records(state_path: object | None) -> dict[ObjectKey, ObjectRecord] | None:
    """The object records; None where the state store cannot keep them."""
    store = _open(state_path)
    if store is None:
        return None
    try:
        return store.records()
    finally:
        store.close()


async def _read(state_path: object | None) -> dict[ObjectKey, ObjectRecord] | None:
    """`_records` from async code (off the event loop for a database: `state.offloop`)."""
    return await offloop(state_path, lambda: _records(state_path))


def recorded_object_projects(state_path: object | None) -> frozenset[int]:
    """The projects of every recorded credential, secret and API key."""
    return frozenset(k.project_id for k in _records(state_path) or {})


def secrets_dir_for(state_path: Path) -> Path:
    """`secrets/` beside a state file; under the working directory for a database URL."""
    if "://" in str(state_path):
        return Path(".reconciler") / "secrets"
    return state_path.parent / "secrets"


def _users(
    plan: Plan, live: Mapping[DeploymentKey, LiveDeployment], desired: DesiredState
) -> dict[ObjectKey, list[str]]:
    """Who still names each object once this plan's deployment deletes are done."""
    deleting = {c.key for c in plan.changes if c.action is Action.DELETE}
    users = users_of({k: v for k, v in live.items() if k not in deleting})
    for deployment in desired:
        for ref in deployment.references:
            users.setdefault(ref.target, []).append(deployment.key.name)
    return users


def _fingerprint(
    base: str,
    changes: list[ObjectChange],
    desired: DesiredState,
    records: Mapping[ObjectKey, ObjectRecord],
    live: Mapping[ObjectKey, LiveObject],
    hasher: Hasher,
) -> str:
    if not changes:
        return base
    wanted = {o.key: o for o in desired.objects}
    digest = hashlib.sha256(base.encode())
    for change in changes:
        found = wanted.get(change.key)
        piece: Any = [
            str(change.key),
            change.action.value,
            hashed(found.spec.body(), found.sensitive_paths, hasher) if found else None,
            dict(records[change.key].last_applied) if change.key in records else None,
            dict(live[change.key].view) if change.key in live else None,
        ]
        digest.update(repr(piece).encode())
    return "sha256:" + digest.hexdigest()


async def with_objects(
    plan: Plan,
    desired: DesiredState,
    state_path: object | None,
    api: ApiClient,
    live: Mapping[DeploymentKey, LiveDeployment],
    hasher: Hasher,
    *,
    prune: bool,
    allow_empty: bool,
    fingerprint_hasher: Hasher | None = None,
    share: frozenset[int] | None = None,
) -> Plan:
    """`plan` with the object actions, after checking references and deletes (PlanError).

    With `share` (the projects a service replica holds), the records of other projects are left
    out: they belong to another replica's plan, not orphans of this one."""
    records = await _read(state_path)
    if records is None:
        if desired.objects:
            raise PlanError(NO_OBJECT_STATE)
        records = {}
    if share is not None:
        records = {k: r for k, r in records.items() if k.project_id in share}
    projects = {o.key.project_id for o in desired.objects} | {k.project_id for k in records}
    projects |= {d.key.project_id for d in desired} | {k.project_id for k in live}
    live_objects = await fetch_live_objects(api, projects)
    changes = plan_objects(desired.objects, records, live_objects, hasher, prune=prune)
    problems = check_references(desired.deployments, desired.objects, live_objects)
    if any(c.action is ObjectAction.DELETE for c in changes):  # who still names what
        problems += refused_deletes(changes, _users(plan, live, desired))
    deletes = [c for c in changes if c.action is ObjectAction.DELETE]
    if deletes and not desired.objects and not len(desired) and not allow_empty:
        problems.append(
            f"the manifest set is empty, and --prune would delete all {len(deletes)} owned "
            "object(s); refusing. Pass --allow-empty if this is what you want"
        )
    if problems:
        raise PlanError("\n".join(problems))
    waved = with_waves(changes)
    fingerprint = _fingerprint(
        plan.fingerprint, waved, desired, records, live_objects, fingerprint_hasher or hasher
    )
    return replace(plan, objects=tuple(waved), fingerprint=fingerprint)


@dataclass
class ObjectRun:
    """The object waves of one apply: writes before the deployments, deletes after."""

    api: ApiClient
    state_path: object | None
    desired: DesiredState
    hasher: Hasher
    secrets_dir: Path

    async def run(self, changes: list[ObjectChange]) -> list[ObjectOutcome]:
        if not any(c.action.mutates for c in changes):
            return []
        store = await offloop(self.state_path, lambda: _open(self.state_path))
        if store is None:
            raise PlanError(NO_OBJECT_STATE)
        try:
            wanted = {o.key: o for o in self.desired.objects}
            return await ObjectExecutor(self.api, store, wanted, self.hasher, self.secrets_dir).run(
                changes
            )
        finally:
            await offloop(store, store.close)

    async def before(self, plan: Plan) -> list[ObjectOutcome]:
        return await self.run([c for c in plan.objects if c.action.writes])

    async def after(self, plan: Plan) -> list[ObjectOutcome]:
        return await self.run([c for c in plan.objects if c.action is ObjectAction.DELETE])


# -- status ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectStatusRow:
    key: ObjectKey
    sync: str
    last_applied_at: float | None
    message: str

    def to_json(self) -> dict[str, object]:
        applied = (
            datetime.fromtimestamp(self.last_applied_at, UTC).isoformat().replace("+00:00", "Z")
            if self.last_applied_at
            else None
        )
        return {
            "kind": self.key.kind.value,
            "project_id": self.key.project_id,
            "name": self.key.name,
            "sync": self.sync,
            "last_applied_at": applied,
            "message": self.message,
        }


async def object_status(
    state_path: object | None, api: ApiClient, hasher: Callable[[object], str]
) -> list[ObjectStatusRow]:
    """Sync of every owned object: its recorded body (secrets aside) against the live one."""
    records = await _read(state_path)
    if not records:
        return []
    live = await fetch_live_objects(api, {k.project_id for k in records})
    rows = []
    for key, record in sorted(records.items()):
        found = live.get(key)
        if found is None:
            rows.append(
                ObjectStatusRow(key, "OutOfSync", record.applied_at, "not found in the API")
            )
            continue
        drift = [
            path
            for path, value in record.last_applied.items()
            if path in found.view and not _same(value, found.view[path], key, (path,))
        ]
        sync = "OutOfSync" if drift else "Synced"
        message = "drift: " + ", ".join(drift) if drift else ""
        rows.append(ObjectStatusRow(key, sync, record.applied_at, message))
    return rows


def _same(recorded: Any, live: Any, key: ObjectKey, path: tuple[str, ...]) -> bool:
    """Equal, leaving out write-only fields (the API never shows them)."""
    if isinstance(recorded, Mapping) and isinstance(live, Mapping):
        return all(
            _same(v, live.get(k), key, (*path, k))
            for k, v in recorded.items()
            if (*path, k) not in key.kind.write_only
        )
    return bool(recorded == live)
