"""Where the stages meet: manifests -> (desired, recorded, live) -> plan.

The CLI and the service both go through here, so a plan means the same thing everywhere. This is
the only module of the planning path that does I/O (the API, the state store); `diff`, `plan` and
`render` stay pure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from .api import ApiClient
from .config import ApiSettings, Secret
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


@asynccontextmanager
async def connect(target: Target) -> AsyncIterator[ApiClient]:
    """An API client for the target: the real API, or the embedded simulator (in process)."""
    if target.simulate:
        simulator = Simulator(SimulatorConfig(state_file=str(target.simulator_file)))
        settings = ApiSettings(base_url=SIMULATOR_URL, api_key=Secret("simulated"))
        client = ApiClient(settings, transport=transport(simulator))
    else:
        client = ApiClient(target.settings)
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
