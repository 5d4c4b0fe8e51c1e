"""Where the stages meet: manifests -> (desired, recorded, live) -> plan -> execute -> status.

The CLI, the service and the web page all go through here, so a plan means the same thing
everywhere: this module opens the state store and the API client of a `Target` (`open_state`,
`connect`: see `target`), and hands values to the pure stages (`diff`, `plan`, `status`). A caller
takes part in an apply through one `ApplyHooks` object instead of a row of callbacks.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .api import ApiClient, Deployment
from .clock import REAL, Clock
from .errors import ReconcilerError
from .gcpolicy import batch
from .manifests import ManifestErrors, load_desired
from .model import DeploymentKey, DesiredState, LiveDeployment, Record
from .objects_apply import ObjectOutcome
from .objects_engine import (
    ObjectRun,
    ObjectStatusRow,
    object_state_path,
    object_status,
    recorded_object_projects,
    secrets_dir_for,
    with_objects,
)
from .plan import Plan, PlanOptions, make_plan
from .preflight import check as preflight_check
from .preflight import fetch_catalog
from .redact import sensitive_values
from .scoped import ScopedStore
from .state import LockHeld, StateStore, alive, offloop
from .statekey import Hasher, no_state_hasher
from .status import StatusRow, status_rows
from .target import RequestHook as RequestHook  # callers reach `target` through here too
from .target import Target as Target
from .target import connect as connect
from .target import open_state as open_state
from .target import open_state_async, state_exists

if TYPE_CHECKING:  # `plan` and `status` run without the executor: apply imports it
    from .execute import ApplyOptions, Entry, Journal, Outcome, Reporter


async def fetch_live(
    api: ApiClient, project_ids: Iterable[int], *, compact: bool = False
) -> dict[DeploymentKey, LiveDeployment]:
    """Every live deployment of the given projects: one paginated list per project. Each answer
    becomes its `LiveDeployment` as its page arrives (its model is dropped at once); `compact`
    ones keep the answer as JSON text (a plan's listing: see `LiveDeployment`)."""
    projects = sorted(set(project_ids))
    found: dict[int, dict[DeploymentKey, LiveDeployment]] = {p: {} for p in projects}

    async def one(project_id: int) -> None:
        mine = found[project_id]

        def take(deployment: Deployment) -> None:
            if compact:
                seen = deployment.compact(project_id)
            else:
                seen = LiveDeployment.from_answer(project_id, deployment.model_dump(mode="json"))
            mine[seen.key] = seen

        for item in await api.each_deployment(project_id, take):
            if item.name is not None:  # the plan decides: fail it if ours, else skip it
                key = DeploymentKey(project_id, item.name)
                mine[key] = LiveDeployment.unreadable_answer(key, item.message)

    await asyncio.gather(*(one(p) for p in projects))
    return {k: v for p in projects for k, v in found[p].items()}


@dataclass(frozen=True)
class PlanInputs:
    desired: DesiredState
    records: Mapping[DeploymentKey, Record]
    live: Mapping[DeploymentKey, LiveDeployment]


async def plan_against(
    desired: DesiredState,
    store: StateStore,
    api: ApiClient,
    options: PlanOptions,
    revision: str | None = None,
    empty_state_hasher: Callable[[], Hasher] | None = None,
) -> tuple[Plan, PlanInputs]:
    """The plan, and what it was made from. With no record in the state, the fingerprint hashes
    secrets with the hasher `empty_state_hasher` makes, when given (`statekey.no_state_hasher`,
    derived only then: with RECONCILER_STATE_KEY it costs a PBKDF2): a plan made
    where no state exists yet is then checked alike by an apply that has just created it."""
    # kept compact, as the store's rows hold them: never all decoded at once
    records = await offloop(store, lambda: store.records(compact=True))
    fingerprint_hasher = empty_state_hasher() if empty_state_hasher and not records else None
    projects = {d.key.project_id for d in desired} | {k.project_id for k in records}
    live = await fetch_live(api, projects, compact=True)
    catalog = await fetch_catalog(api) if options.preflight and len(desired) else None
    plan = make_plan(
        desired,
        records,
        live,
        store.hash_value,
        options,
        revision,
        fingerprint_hasher=fingerprint_hasher,
    )
    plan = await with_objects(
        plan,
        desired,
        object_state_path(store),
        api,
        live,
        store.hash_value,
        prune=options.prune and not options.targets,  # --target narrows to deployments
        allow_empty=options.allow_empty,
        fingerprint_hasher=fingerprint_hasher,
        share=store.projects if isinstance(store, ScopedStore) else None,
    )
    if catalog is not None:
        acting = frozenset(c.key for c in plan.changes if c.action.mutates)
        errors, warnings = preflight_check(desired, catalog, acting)
        if errors:
            raise ManifestErrors(errors)
        plan = replace(plan, warnings=(*plan.warnings, *warnings))
    return plan, PlanInputs(desired, records, live)


def load(
    paths: Sequence[str],
    target: Target,
    env: Mapping[str, str] | None = None,
    secrets_from: Sequence[str] = (),
) -> DesiredState:
    return load_desired(
        paths, env=env, default_project_id=target.settings.project_id, secrets_from=secrets_from
    )


# -- apply -----------------------------------------------------------------------------------


class StalePlan(ReconcilerError):
    """A saved plan no longer matches the desired or live state."""


class Declined(ReconcilerError):
    """The user did not confirm."""


@dataclass(frozen=True)
class ApplyReport:
    plan: Plan
    outcomes: list[Outcome]
    resumed: list[Entry]
    seconds: float
    requests: int = 0  # HTTP requests this apply sent, retries and polls included
    task_waits: tuple[float, ...] = ()  # seconds from submitting each action to its task's end
    object_outcomes: tuple[ObjectOutcome, ...] = ()  # credentials, secrets, API keys

    @property
    def ok(self) -> bool:
        return all(o.result.ok for o in self.outcomes) and all(o.ok for o in self.object_outcomes)


def _yes(plan: Plan) -> bool:
    return True


def _ignore(plan: Plan) -> None:
    return None


@dataclass(frozen=True)
class ApplyHooks:
    """How a caller takes part in an apply. Every hook is optional.

    `report` sees every phase change; `on_plan` sees the plan before it runs; `confirm` may
    decline it; `choose` may narrow it (the service: self-heal and backoff); `on_request` sees
    every HTTP request (metrics)."""

    report: Reporter | None = None
    on_plan: Callable[[Plan], None] = _ignore
    confirm: Callable[[Plan], bool] = _yes
    choose: Callable[[Plan], Plan] | None = None
    on_request: RequestHook | None = None


@batch
async def plan(
    desired: DesiredState,
    target: Target,
    options: PlanOptions,
    on_request: RequestHook | None = None,
) -> Plan:
    """A dry run: the plan against the recorded and live state, changing nothing.

    A state that does not exist yet is not created: it is empty, and the plan's fingerprint
    hashes secrets without a state key, as `apply` checks it (see `plan_against`)."""
    async with open_state_async(target, read=True) as store, connect(target, on_request) as api:
        made, _ = await plan_against(
            desired, store, api, options, empty_state_hasher=lambda: _no_state_hasher(target)
        )
        return made


def _no_state_hasher(target: Target) -> Hasher:
    """The fingerprint's hasher while the state holds no record (see `plan_against`)."""
    key = target.settings.api_key
    return no_state_hasher(key.reveal() if key is not None else None)


@batch
async def apply(
    desired: DesiredState,
    target: Target,
    options: PlanOptions,
    apply_options: ApplyOptions,
    hooks: ApplyHooks | None = None,
    *,
    expected_fingerprint: str | None = None,
    revision: str | None = None,
    lock_timeout: float = 10.0,
    clock: Clock = REAL,
    secrets_dir: Path | None = None,
    projects: frozenset[int] | None = None,
) -> ApplyReport:
    """Resume what a previous run left, plan, confirm, execute. Holds the store's lock.

    With `projects` (a service replica's share), records and journal entries of other projects
    are neither planned nor resumed: another replica owns them."""
    from .execute import Executor, resume, unchanged_outcomes

    hooks = hooks or ApplyHooks()
    started = clock.monotonic()
    # a saved plan made where no state existed was fingerprinted without a state key
    empty = (lambda: _no_state_hasher(target)) if expected_fingerprint is not None else None
    async with open_state_async(target) as opened:
        store: StateStore = opened if projects is None else ScopedStore(opened, projects)
        await take_lock(store, lock_timeout, clock)
        async with connect(target, hooks.on_request) as api:
            api.redact.add(sensitive_values(desired))
            resumed = await resume(api, store, apply_options, clock)
            plan, inputs = await plan_against(desired, store, api, options, revision, empty)
            if expected_fingerprint is not None and plan.fingerprint != expected_fingerprint:
                raise StalePlan(
                    "plan is stale: the manifests, the recorded state or the live deployments "
                    "changed since it was made; run plan again"
                )
            if hooks.choose is not None:
                plan = hooks.choose(plan)
            hooks.on_plan(plan)
            if not plan.has_changes:  # nothing to send; a blocked deployment still fails
                seconds = clock.monotonic() - started
                outcomes = unchanged_outcomes(plan) if plan.blocked else []
                return ApplyReport(plan, outcomes, resumed, seconds, sum(api.requests.values()))
            if not hooks.confirm(plan):
                raise Declined("apply cancelled: nothing was changed")
            executor = Executor(
                api,
                store,
                inputs.desired.by_key(),
                apply_options,
                report=hooks.report,
                revision=revision,
                clock=clock,
            )
            objects = ObjectRun(
                api,
                object_state_path(opened),
                inputs.desired,
                store.hash_value,
                secrets_dir or secrets_dir_for(target.state_path),
            )
            written = await objects.before(plan)  # wave 1: what deployments will name
            outcomes = await executor.run(plan)
            removed = await objects.after(plan)  # last wave: what they no longer name
            return ApplyReport(
                plan,
                outcomes,
                resumed,
                clock.monotonic() - started,
                sum(api.requests.values()),
                tuple(executor.task_waits),
                (*written, *removed),
            )


def unfinished(target: Target) -> list[Entry]:
    """What an interrupted apply left in the journal (nothing if there is no state yet)."""
    if not state_exists(target):
        return []
    from .execute import Journal

    with open_state(target) as store:
        return Journal(store).unfinished()


def _one_try() -> Callable[[], float]:
    """A clock for `acquire_lock` that runs out after its first look: one try, then the refusal."""
    ticks = iter((0.0,))
    return lambda: next(ticks, math.inf)


async def take_lock(store: StateStore, timeout: float, clock: Clock, poll: float = 0.2) -> None:
    """The store's apply lock, waited for between tries without holding up the event loop (a
    service's endpoints, webhooks and other work go on meanwhile). A refusal names the holder
    and the whole wait, as the store's own `acquire_lock` does."""
    deadline = clock.monotonic() + timeout
    while True:
        try:
            await offloop(store, lambda: store.acquire_lock(timeout=timeout, monotonic=_one_try()))
            return
        except LockHeld:
            if clock.monotonic() >= deadline:
                raise
        await clock.sleep(poll)


def recorded_projects(target: Target) -> frozenset[int]:
    """The projects the inventory holds records of: deployments, credentials, secrets, keys."""
    with open_state(target) as store:
        deployments = frozenset(k.project_id for k in store.records())
        return deployments | recorded_object_projects(object_state_path(store))


# -- status ----------------------------------------------------------------------------------


async def status(target: Target, on_request: RequestHook | None = None) -> list[StatusRow]:
    if not state_exists(target):
        return []  # nothing is owned yet; and a read does not create the state
    from .execute import FollowUp, Journal

    async with open_state_async(target) as store:
        records, pending = await offloop(store, lambda: _owned(store, Journal(store)))
        async with connect(target, on_request) as api:
            live = await fetch_live(api, {k.project_id for k in records})
        not_waited = {e.key for e in pending if e.follow_up is FollowUp.NOT_WAITED}
        interrupted = {e.key for e in pending} - not_waited
        return status_rows(records, live, store.hash_value, interrupted, not_waited)


def _owned(store: StateStore, journal: Journal) -> tuple[dict[DeploymentKey, Record], list[Entry]]:
    """The records, and what the journal left unfinished unless an apply is at work on it."""
    return store.records(), [] if _applying(store) else journal.unfinished()


def _applying(store: StateStore) -> bool:
    """Whether an apply holds the store now (a lock left by a dead process here does not)."""
    holder = store.holder()
    if holder is None:
        return False
    return holder.host != socket.gethostname() or alive(holder.pid)


async def status_objects(
    target: Target, on_request: RequestHook | None = None
) -> list[ObjectStatusRow]:
    """Sync of every owned credential, secret and API key."""
    if not state_exists(target):
        return []  # nothing is owned yet; and a read does not create the state
    async with open_state_async(target) as store, connect(target, on_request) as api:
        return await object_status(object_state_path(store), api, store.hash_value)
