"""Apply end to end: the executor against the simulator over real HTTP, on a fast real clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import engine
from reconciler.api import ApiClient
from reconciler.config import ApiSettings, Secret
from reconciler.engine import ApplyHooks, ApplyReport, Target, apply, plan_against, status
from reconciler.execute import ApplyOptions, Event, PollOptions, Result
from reconciler.health import Health, Sync
from reconciler.manifests import load_desired
from reconciler.plan import Action, Plan, PlanOptions
from reconciler.simulator import BackgroundServer, Faults, Simulator, SimulatorConfig, Timings
from reconciler.state import SqliteStateStore

from .conftest import API_KEY, ManualClock, make_simulator, seed_body
from .conftest import manifest as shared_manifest
from .fakes import FakeTime

FAST = Timings(task_queue=0.05, task_run=0.2, rollout=0.2, delete=0.1)
POLL = PollOptions(initial=0.05, cap=0.2)


def manifest(name: str, image: str = "nginx:latest", min_: int = 1) -> str:
    return shared_manifest(name, image=image, min_=min_, extra='  envs: {TOKEN: "t0k3n"}\n')


class Rig:
    """Manifests, a state file and the simulator over real HTTP.

    With `time`, apply runs on fake time that also moves the simulator's clock (`make_rig`):
    tasks and rollouts end as soon as apply waits for them, and no real time passes."""

    def __init__(self, root: Path, server: BackgroundServer, time: FakeTime | None = None) -> None:
        self.dir = root / "manifests"
        self.dir.mkdir()
        self.server = server
        self.sim = server.simulator
        self.time = time
        settings = ApiSettings(base_url=server.url, api_key=Secret(API_KEY))
        self.target = Target(settings, root / "state.db")
        self.events: list[Event] = []

    def write(self, name: str, text: str) -> None:
        (self.dir / f"{name}.yaml").write_text(text)

    async def apply(self, **kwargs: Any) -> ApplyReport:
        options = PlanOptions(prune=kwargs.pop("prune", False))
        apply_options = ApplyOptions(
            parallelism=kwargs.pop("parallelism", 4),
            timeout=kwargs.pop("timeout", 20.0),
            degraded_grace=kwargs.pop("degraded_grace", 60.0),
            poll=kwargs.pop("poll", POLL),
        )
        desired = load_desired([self.dir], env={})
        if self.time is not None:
            kwargs.setdefault("clock", self.time.clock)
        return await apply(
            desired,
            self.target,
            options,
            apply_options,
            ApplyHooks(report=self.events.append, confirm=kwargs.pop("confirm", lambda p: True)),
            **kwargs,
        )

    async def plan(self) -> list[tuple[str, str]]:
        desired = load_desired([self.dir], env={})
        store = SqliteStateStore(self.target.state_path)
        try:
            async with ApiClient(self.target.settings) as api:
                plan, _ = await plan_against(desired, store, api, PlanOptions(prune=True))
        finally:
            store.close()
        return [(c.key.name, c.action.value) for c in plan.changes]

    async def full_plan(self) -> Plan:
        desired = load_desired([self.dir], env={})
        store = SqliteStateStore(self.target.state_path)
        try:
            async with ApiClient(self.target.settings) as api:
                plan, _ = await plan_against(desired, store, api, PlanOptions(prune=True))
        finally:
            store.close()
        return plan

    def results(self, report: ApplyReport) -> dict[str, str]:
        """The result of each deployment that was acted on (unchanged ones are `skipped`)."""
        return {
            o.key.name: o.result.value for o in report.outcomes if o.result is not Result.SKIPPED
        }


def make_rig(tmp_path: Path, **faults: Any) -> Iterator[Rig]:
    """A rig on fake time: the simulator's lifecycle moves only as apply's waits move it."""
    clock = ManualClock()
    sim = make_simulator(clock, timings=FAST, faults=Faults(**faults))
    with BackgroundServer(sim) as server:
        yield Rig(tmp_path, server, FakeTime(clock.advance))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path)


async def test_create_update_delete_round_trip(rig: Rig) -> None:
    rig.write("alpha-svc", manifest("alpha-svc"))
    rig.write("beta-svc", manifest("beta-svc"))
    created = await rig.apply()
    assert created.ok and rig.results(created) == {
        "alpha-svc": "converged",
        "beta-svc": "converged",
    }
    assert await rig.plan() == [("alpha-svc", "noop"), ("beta-svc", "noop")]
    phases = [e.phase for e in rig.events if e.key.name == "alpha-svc"]
    assert phases[0] == "queued" and phases[-1] == "converged"
    assert {"submitted", "task", "deploying"} <= set(phases)

    rig.write("alpha-svc", manifest("alpha-svc", image="nginx:1.27", min_=2))
    updated = await rig.apply()
    assert rig.results(updated) == {"alpha-svc": "converged"}
    assert [(o.key.name, o.result, o.reason) for o in updated.outcomes][-1] == (
        "beta-svc",
        Result.SKIPPED,
        "in sync",
    )
    live = rig.sim.cloud.view(rig.sim.cloud.get(1, "alpha-svc"))
    assert live["image"] == "nginx:1.27" and live["status"] == "ACTIVE"
    assert live["containers"][0]["deploy_status"] == {"ready": 2, "total": 2}
    assert await rig.plan() == [("alpha-svc", "noop"), ("beta-svc", "noop")]

    (rig.dir / "beta-svc.yaml").unlink()
    kept = await rig.apply()
    assert kept.outcomes == []  # an orphan without --prune: nothing to do, nothing run
    deleted = await rig.apply(prune=True)
    assert rig.results(deleted) == {"beta-svc": "converged"}
    assert (1, "beta-svc") not in rig.sim.cloud.deployments
    assert await rig.plan() == [("alpha-svc", "noop")]

    rows = await status(rig.target)
    assert [(r.key.name, r.sync, r.health) for r in rows] == [
        ("alpha-svc", Sync.SYNCED, Health.HEALTHY)
    ]


async def test_adopt_takes_over_and_patches(rig: Rig) -> None:
    async with ApiClient(rig.target.settings) as api:
        await api.create_deployment(1, seed_body("found-svc"))
    rig.write("found-svc", manifest("found-svc"))
    report = await rig.apply()
    assert [(o.action, o.result) for o in report.outcomes] == [(Action.ADOPT, Result.CONVERGED)]
    live = rig.sim.cloud.view(rig.sim.cloud.get(1, "found-svc"))
    assert live["description"] == "found-svc" and live["envs"] == {"TOKEN": "t0k3n"}
    assert await rig.plan() == [("found-svc", "noop")]


def test_a_task_error_fails_only_its_deployment(tmp_path: Path) -> None:
    for rig in make_rig(tmp_path, task_error_image=r"^broken/"):
        import asyncio

        rig.write("good-svc", manifest("good-svc"))
        rig.write("bad-svc", manifest("bad-svc", image="broken/model:1"))
        report = asyncio.run(rig.apply())
        assert not report.ok
        outcomes = {o.key.name: o for o in report.outcomes}
        assert outcomes["good-svc"].result is Result.CONVERGED
        bad = outcomes["bad-svc"]
        assert bad.result is Result.FAILED
        assert "broken/model:1" in bad.error and "failed" in bad.error
        assert bad.task_ids


def test_a_stuck_deployment_ends_at_the_deadline_as_degraded(tmp_path: Path) -> None:
    for rig in make_rig(tmp_path, stuck_image="stuck"):
        import asyncio

        rig.write("stuck-svc", manifest("stuck-svc", image="org/stuck:1"))
        report = asyncio.run(rig.apply(timeout=1.5))
        [outcome] = report.outcomes
        assert outcome.result is Result.TIMED_OUT
        assert "Degraded" in outcome.error and "ErrImagePull" in outcome.error
        assert "timed out after 1.5s" in outcome.error
        # how long it took is measured on fake time in tests/test_execute.py, not here


def test_429s_and_5xx_still_converge(tmp_path: Path) -> None:
    for rig in make_rig(tmp_path, seed=11, error_rate=0.1, rate_limit_rate=0.1, retry_after=0.05):
        import asyncio

        for i in range(5):
            rig.write(f"svc-{i}", manifest(f"svc-{i}"))
        report = asyncio.run(rig.apply())
        assert report.ok, [(o.key.name, o.error) for o in report.outcomes]
        statuses = [status for _, _, status in rig.sim.requests]
        assert 429 in statuses and 503 in statuses
        assert all(count == 1 for count in rig.sim.creates.values())


def test_a_lost_create_answer_is_adopted_not_repeated(tmp_path: Path) -> None:
    for rig in make_rig(tmp_path, lost_response_rate=1.0):
        import asyncio

        rig.write("alpha-svc", manifest("alpha-svc"))
        report = asyncio.run(rig.apply())
        assert rig.results(report) == {"alpha-svc": "converged"}
        assert rig.sim.creates == {(1, "alpha-svc"): 1}
        assert asyncio.run(rig.plan()) == [("alpha-svc", "noop")]


async def test_a_saved_plan_applies_only_while_fresh(rig: Rig) -> None:
    rig.write("alpha-svc", manifest("alpha-svc"))
    desired = load_desired([rig.dir], env={})
    plan = await engine.plan(desired, rig.target, PlanOptions())  # as `plan --out` makes it

    rig.write("alpha-svc", manifest("alpha-svc", image="nginx:changed"))
    from reconciler.engine import StalePlan

    with pytest.raises(StalePlan, match="plan is stale"):
        await rig.apply(expected_fingerprint=plan.fingerprint)
    assert rig.sim.cloud.deployments == {}

    rig.write("alpha-svc", manifest("alpha-svc"))
    report = await rig.apply(expected_fingerprint=plan.fingerprint)
    assert rig.results(report) == {"alpha-svc": "converged"}


async def test_a_declined_confirmation_changes_nothing(rig: Rig) -> None:
    from reconciler.engine import Declined

    rig.write("alpha-svc", manifest("alpha-svc"))
    with pytest.raises(Declined):
        await rig.apply(confirm=lambda plan: False)
    assert rig.sim.cloud.deployments == {}


async def test_requests_in_flight_are_bounded(tmp_path: Path) -> None:
    sim = Simulator(SimulatorConfig(api_key=API_KEY, timings=FAST, faults=Faults(latency=0.02)))
    in_flight = [0, 0]  # now, most
    original = sim._respond

    async def counting(request: Any, handler: Any) -> Any:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            return await original(request, handler)
        finally:
            in_flight[0] -= 1

    sim._respond = counting  # type: ignore[method-assign]
    with BackgroundServer(sim) as server:
        rig = Rig(tmp_path, server)
        for i in range(12):
            rig.write(f"svc-{i:02d}", manifest(f"svc-{i:02d}"))
        report = await rig.apply(parallelism=3)
    assert report.ok
    assert in_flight[1] == 3


async def test_create_waits_for_a_namesake_being_deleted(rig: Rig) -> None:
    async with ApiClient(rig.target.settings) as api:
        await api.create_deployment(1, seed_body("alpha-svc"))
        await api.delete_deployment(1, "alpha-svc")  # going away, out of band: DELETING
    rig.write("alpha-svc", manifest("alpha-svc"))
    report = await rig.apply()
    assert rig.results(report) == {"alpha-svc": "converged"}, report.outcomes
    assert rig.sim.creates[(1, "alpha-svc")] == 2  # the old one, then ours once it was gone
    live = rig.sim.cloud.view(rig.sim.cloud.get(1, "alpha-svc"))
    assert live["description"] == "alpha-svc" and live["status"] == "ACTIVE"


async def test_status_is_synced_with_an_interpolated_command(rig: Rig) -> None:
    import os

    os.environ["RECONCILER_TEST_PORT_ARG"] = "--port=8080"
    try:
        rig.write(
            "alpha-svc",
            manifest("alpha-svc").replace(
                "  envs:", '  command: ["serve", "${RECONCILER_TEST_PORT_ARG}"]\n  envs:'
            ),
        )
        desired = load_desired([rig.dir])
        assert ("command", 1) in desired.deployments[0].sensitive_paths
        assert rig.time is not None
        report = await apply(
            desired, rig.target, PlanOptions(), ApplyOptions(poll=POLL), clock=rig.time.clock
        )
        assert report.ok
    finally:
        del os.environ["RECONCILER_TEST_PORT_ARG"]
    [row] = await status(rig.target)
    assert (row.sync, row.health) == (Sync.SYNCED, Health.HEALTHY), row.message
    state = b"".join(p.read_bytes() for p in rig.target.state_path.parent.glob("state.db*"))
    assert b"--port=8080" not in state
