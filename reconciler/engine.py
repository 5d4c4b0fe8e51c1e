"""Where the stages meet: manifests -> (desired, recorded, live) -> plan.

The CLI and the service both go through here, so a plan means the same thing everywhere. This is
the only module of the planning path that does I/O (the API, the state store); `diff`, `plan` and
`render` stay pure.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .api import ApiClient
from .clock import REAL, Clock
from .config import ApiSettings, Secret
from .diff import diff
from .errors import ReconcilerError
from .execute import ApplyOptions, Entry, Executor, Outcome, Reporter, resume
from .health import Health, Sync, degraded_message, health_of
from .manifests import load_desired
from .model import DeploymentKey, DesiredState, LiveDeployment, Record
from .plan import Plan, PlanOptions, make_plan
from .simulator import Simulator, SimulatorConfig, transport
from .state import DEFAULT_STATE_PATH, SqliteStateStore

SIMULATOR_URL = "http://simulator.invalid"


@dataclass(frozen=True)
class Target:
    """Which API to talk to and where the state lives."""

    settings: ApiSettings
    state_path: Path
    simulate: bool = False

    @classmethod
    def from_env(
        cls, *, state: str | None, simulate: bool, env: Mapping[str, str] | None = None
    ) -> Target:
        env = os.environ if env is None else env
        settings = ApiSettings.from_env(env)
        path = Path(state or env.get("RECONCILER_STATE") or DEFAULT_STATE_PATH)
        if not simulate:
            settings.require_key()
        return cls(settings, path, simulate)

    @property
    def simulator_file(self) -> Path:
        """The embedded simulator's cloud lives beside the state file."""
        return self.state_path.parent / "simulator.json"


RequestHook = Callable[[str, int], None]


@asynccontextmanager
async def connect(
    target: Target, on_request: RequestHook | None = None
) -> AsyncIterator[ApiClient]:
    """An API client for the target: the real API, or the embedded simulator (in process)."""
    if target.simulate:
        simulator = Simulator(SimulatorConfig(state_file=str(target.simulator_file)))
        settings = ApiSettings(base_url=SIMULATOR_URL, api_key=Secret("simulated"))
        client = ApiClient(settings, transport=transport(simulator), on_request=on_request)
    else:
        client = ApiClient(target.settings, on_request=on_request)
    async with client:
        yield client


async def fetch_live(
    api: ApiClient, project_ids: Iterable[int]
) -> dict[DeploymentKey, LiveDeployment]:
    """Every live deployment of the given projects: one paginated list per project."""
    projects = sorted(set(project_ids))
    answers = await asyncio.gather(*(api.list_deployments(p) for p in projects))
    live = {}
    for project_id, deployments in zip(projects, answers, strict=True):
        for deployment in deployments:
            found = LiveDeployment.from_answer(project_id, deployment.model_dump(mode="json"))
            live[found.key] = found
    return live


@dataclass(frozen=True)
class PlanInputs:
    desired: DesiredState
    records: Mapping[DeploymentKey, Record]
    live: Mapping[DeploymentKey, LiveDeployment]


async def plan_against(
    desired: DesiredState,
    store: SqliteStateStore,
    api: ApiClient,
    options: PlanOptions,
    revision: str | None = None,
) -> tuple[Plan, PlanInputs]:
    records = store.records()
    projects = {d.key.project_id for d in desired} | {k.project_id for k in records}
    live = await fetch_live(api, projects)
    plan = make_plan(desired, records, live, store.hash_value, options, revision)
    return plan, PlanInputs(desired, records, live)


def load(
    paths: Sequence[str], target: Target, env: Mapping[str, str] | None = None
) -> DesiredState:
    return load_desired(paths, env=env, default_project_id=target.settings.project_id)


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

    @property
    def ok(self) -> bool:
        return all(o.result.ok for o in self.outcomes)


async def apply(
    desired: DesiredState,
    target: Target,
    options: PlanOptions,
    apply_options: ApplyOptions,
    *,
    report: Reporter | None = None,
    confirm: Callable[[Plan], bool] = lambda plan: True,
    on_plan: Callable[[Plan], None] = lambda plan: None,
    expected_fingerprint: str | None = None,
    revision: str | None = None,
    lock_timeout: float = 10.0,
    choose: Callable[[Plan], Plan] | None = None,
    on_request: RequestHook | None = None,
    clock: Clock = REAL,
) -> ApplyReport:
    """Resume what a previous run left, plan, confirm, execute. Holds the store's lock.

    `choose` may narrow the plan before it runs (the service uses it for self-heal and backoff).
    """
    started = time.monotonic()
    store = SqliteStateStore(target.state_path)
    try:
        store.acquire_lock(timeout=lock_timeout)
        async with connect(target, on_request) as api:
            resumed = await resume(api, store, apply_options, clock)
            plan, inputs = await plan_against(desired, store, api, options, revision)
            if expected_fingerprint is not None and plan.fingerprint != expected_fingerprint:
                raise StalePlan(
                    "plan is stale: the manifests, the recorded state or the live deployments "
                    "changed since it was made; run plan again"
                )
            if choose is not None:
                plan = choose(plan)
            on_plan(plan)
            if not plan.has_changes:
                return ApplyReport(
                    plan, [], resumed, time.monotonic() - started, sum(api.requests.values())
                )
            if not confirm(plan):
                raise Declined("apply cancelled: nothing was changed")
            executor = Executor(
                api,
                store,
                inputs.desired.by_key(),
                apply_options,
                report=report,
                revision=revision,
                clock=clock,
            )
            outcomes = await executor.run(plan)
            return ApplyReport(
                plan,
                outcomes,
                resumed,
                time.monotonic() - started,
                sum(api.requests.values()),
                tuple(executor.task_waits),
            )
    finally:
        store.close()


# -- status ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusRow:
    key: DeploymentKey
    sync: Sync
    health: Health
    status: str
    revision: str | None
    last_applied_at: float | None
    message: str

    def to_json(self) -> dict[str, object]:
        applied = (
            datetime.fromtimestamp(self.last_applied_at, UTC).isoformat().replace("+00:00", "Z")
            if self.last_applied_at
            else None
        )
        return {
            "project_id": self.key.project_id,
            "name": self.key.name,
            "sync": self.sync.value,
            "health": self.health.value,
            "status": self.status,
            "revision": self.revision,
            "last_applied_at": applied,
            "message": self.message,
        }


def status_rows(
    records: Mapping[DeploymentKey, Record],
    live: Mapping[DeploymentKey, LiveDeployment],
    hasher: Callable[[object], str],
) -> list[StatusRow]:
    """Sync (recorded spec against live) and health of every owned deployment."""
    rows = []
    for key, record in sorted(records.items()):
        found = live.get(key)
        health = health_of(found)
        if found is None:
            sync, status, message = Sync.OUT_OF_SYNC, "", "not found in the API"
        else:
            drift = diff(
                record.last_applied,
                found.spec_view,
                sensitive=record.sensitive_paths,
                hasher=hasher,
            )
            sync = Sync.OUT_OF_SYNC if drift else Sync.SYNCED
            status = found.status
            message = degraded_message(found) if health is Health.DEGRADED else ""
            if drift and not message:
                message = "drift: " + ", ".join(c.path for c in drift[:5])
        if not message and not record.outcome.settled:
            message = f"last apply: {record.outcome}" + (
                f": {record.message}" if record.message else ""
            )
        rows.append(
            StatusRow(key, sync, health, status, record.revision, record.applied_at, message)
        )
    return rows


async def status(target: Target, on_request: RequestHook | None = None) -> list[StatusRow]:
    store = SqliteStateStore(target.state_path)
    try:
        records = store.records()
        async with connect(target, on_request) as api:
            live = await fetch_live(api, {k.project_id for k in records})
        return status_rows(records, live, store.hash_value)
    finally:
        store.close()
