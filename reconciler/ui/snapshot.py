"""What the page shows, read once and shared by every viewer for a couple of seconds.

A snapshot joins the service's last good desired state, the state store's records and one fresh
list of live deployments per project, then plans against them exactly as the next reconcile
would (before backoff and self-heal narrow it). Pages never call the API themselves: a page view
costs at most one snapshot per `ttl`, however many tabs poll it. A drift made out of band shows
on the next snapshot, without waiting for the service's next reconcile.

Secrets: a snapshot holds values that may be secret (the desired spec, the live answer); the
view layer (`view.py`) masks them before a template sees them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .. import engine
from ..api import ApiClient
from ..api.objects import InferenceObjects
from ..errors import ReconcilerError
from ..health import Health, Sync, health_of
from ..model import DeploymentKey, DesiredDeployment, LiveDeployment, Record
from ..objects_engine import ObjectStatusRow, object_state_path, object_status
from ..plan import Change, Plan, PlanError, PlanOptions, make_plan
from ..redact import sensitive_values
from ..service import Service
from ..state import JournalEntry, open_store
from ..status import StatusRow, status_rows

KIND = "InferenceDeployment"
API_DEADLINE = 3.0  # seconds a page waits for the API (retries included) before saying so


@dataclass(frozen=True)
class DeploymentView:
    """One owned or desired deployment, everything known about it at the snapshot's time."""

    key: DeploymentKey
    row: StatusRow
    desired: DesiredDeployment | None
    record: Record | None
    live: LiveDeployment | None
    change: Change | None

    @property
    def kind(self) -> str:
        return str(getattr(self.desired, "kind", KIND) or KIND)

    @property
    def labels(self) -> Mapping[str, str]:
        if self.desired is not None:
            return self.desired.labels
        return self.record.labels if self.record is not None else {}

    @property
    def owned(self) -> bool:
        return self.record is not None


@dataclass(frozen=True)
class Snapshot:
    taken_at: float  # wall clock
    deployments: tuple[DeploymentView, ...]
    plan: Plan | None
    plan_error: str | None = None
    api_error: str | None = None
    objects: tuple[ObjectStatusRow, ...] = ()  # owned credentials, secrets and API keys

    def find(self, key: DeploymentKey) -> DeploymentView | None:
        return next((d for d in self.deployments if d.key == key), None)


def _unowned_row(key: DeploymentKey, live: LiveDeployment | None) -> StatusRow:
    """A desired deployment the reconciler does not own yet: always out of sync."""
    if live is None:
        message = "not created yet"
    else:
        message = "exists but not owned yet: the next reconcile adopts it"
    status = live.status if live is not None else ""
    return StatusRow(key, Sync.OUT_OF_SYNC, health_of(live), status, None, None, message)


def _unknown_row(key: DeploymentKey, record: Record | None) -> StatusRow:
    revision = record.revision if record else None
    applied = record.applied_at if record else None
    return StatusRow(key, Sync.UNKNOWN, Health.UNKNOWN, "", revision, applied, "live state unknown")


@asynccontextmanager
async def _connect(service: Service) -> AsyncIterator[ApiClient]:
    """An API client that redacts the manifests' secrets from whatever the API says."""
    async with engine.connect(service.target, service.metrics.request) as api:
        if service.good is not None:
            api.redact.add(sensitive_values(service.good[0]))
        yield api


async def take(service: Service) -> Snapshot:
    """Read records and live state, and plan against the service's last good manifests."""
    target = service.target
    desired_state, revision = service.good if service.good else (None, None)
    desired = desired_state.by_key() if desired_state is not None else {}
    store = open_store(target.state_location)
    try:
        records = store.records()
        keys = sorted(set(records) | set(desired))
        try:
            async with _connect(service) as api:
                live, objects = await asyncio.wait_for(
                    asyncio.gather(
                        engine.fetch_live(api, {k.project_id for k in keys}),
                        object_status(object_state_path(store), api, store.hash_value),
                    ),
                    API_DEADLINE,
                )
        except (ReconcilerError, TimeoutError) as exc:
            views = tuple(
                DeploymentView(
                    k, _unknown_row(k, records.get(k)), desired.get(k), records.get(k), None, None
                )
                for k in keys
            )
            why = str(exc) or f"no answer within {API_DEADLINE:.0f}s"
            return Snapshot(time.time(), views, None, api_error=why)
        rows = {r.key: r for r in status_rows(records, live, store.hash_value)}
        plan: Plan | None = None
        plan_error = None
        if desired_state is not None:
            options = PlanOptions(
                prune=service.options.prune,
                allow_empty=service.options.allow_empty,
                selector=service.options.selector,
            )
            try:
                plan = make_plan(desired_state, records, live, store.hash_value, options, revision)
            except PlanError as exc:
                plan_error = str(exc)
    finally:
        store.close()
    changes = {c.key: c for c in plan.changes} if plan else {}
    views = tuple(
        DeploymentView(
            key,
            rows.get(key) or _unowned_row(key, live.get(key)),
            desired.get(key),
            records.get(key),
            live.get(key),
            changes.get(key),
        )
        for key in keys
    )
    return Snapshot(time.time(), views, plan, plan_error, objects=tuple(objects))


class SnapshotCache:
    """One snapshot at a time, reused for `ttl` seconds or until the service reconciles again."""

    def __init__(
        self,
        service: Service,
        ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.ttl = ttl
        self.clock = clock
        self._cached: tuple[float, int, Snapshot] | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._cached = None

    async def get(self) -> Snapshot:
        async with self._lock:
            now = self.clock()
            if self._cached is not None:
                at, runs, snapshot = self._cached
                if now - at < self.ttl and runs == self.service.runs:
                    return snapshot
            snapshot = await take(self.service)
            self._cached = (self.clock(), self.service.runs, snapshot)
            return snapshot


async def recent_logs(service: Service, view: DeploymentView, tail: int) -> list[str] | None:
    """The newest `tail` log lines of a live deployment, secrets redacted; None if unreadable."""
    if view.live is None:
        return None
    try:
        async with _connect(service) as api:
            logs = InferenceObjects(api).logs(view.key.project_id, view.key.name, tail=tail)
            lines = await asyncio.wait_for(logs, API_DEADLINE)
            return [
                api.redact(f"{line.time} r{line.region_id} {line.pod}: {line.message}")
                for line in lines
            ]
    except (ReconcilerError, TimeoutError):
        return None


async def task_states(service: Service, task_ids: Sequence[str]) -> list[tuple[str, str, str]]:
    """(id, state, error) of each task, as the API tells now; state Unknown if it cannot."""
    if not task_ids:
        return []
    try:
        async with _connect(service) as api:
            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(api.get_task(task_id) for task_id in task_ids), return_exceptions=True
                ),
                API_DEADLINE,
            )
    except (ReconcilerError, TimeoutError):
        return [(task_id, "Unknown", "") for task_id in task_ids]
    return [
        (task_id, "Unknown", "")
        if isinstance(answer, BaseException)
        else (task_id, answer.state.value, answer.error or "")
        for task_id, answer in zip(task_ids, answers, strict=True)
    ]


def journal_of(service: Service, key: DeploymentKey, keep: int = 20) -> list[JournalEntry]:
    """The deployment's newest `keep` journal entries (what was applied, how it ended), newest
    first; the state store keeps every one. Blocking: run it in a thread."""
    try:
        store = open_store(service.target.state_location)
    except ReconcilerError:
        return []
    try:
        return list(reversed(store.journal_history(key)))[:keep]
    finally:
        store.close()
