"""Each verb of the executor against an in-process fake API, on fake time: every branch of the
resend rule, adopt on 409, Degraded after the grace, the deadline, in microseconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.api import Deployment
from reconciler.engine import fetch_live
from reconciler.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationFailedError,
)
from reconciler.execute import ApplyOptions, Event, Executor, Outcome, Phase, Result
from reconciler.execute.create import CREATE_ATTEMPTS
from reconciler.manifests import load_desired
from reconciler.model import DeploymentKey, RecordOutcome
from reconciler.plan import Action, PlanOptions, applied_record, make_plan
from reconciler.state import SqliteStateStore

from .conftest import manifest
from .fakes import FakeApi, FakeTime, lost, server_error


class Rig:
    def __init__(self, root: Path, api: FakeApi | None = None) -> None:
        self.dir = root / "manifests"
        self.dir.mkdir()
        self.store = SqliteStateStore(root / "state.db")
        self.api = api or FakeApi()
        self.time = FakeTime()
        self.events: list[Event] = []

    def write(self, name: str, **fields: Any) -> None:
        (self.dir / f"{name}.yaml").write_text(manifest(name, **fields))

    async def run(self, *, prune: bool = False, **options: Any) -> dict[str, Outcome]:
        desired = load_desired([self.dir], env={})
        records = self.store.records()
        live = await fetch_live(self.api, {1})  # type: ignore[arg-type]
        plan = make_plan(desired, records, live, self.store.hash_value, PlanOptions(prune=prune))
        executor = Executor(
            self.api,  # type: ignore[arg-type]
            self.store,
            desired.by_key(),
            ApplyOptions(**options),
            report=self.events.append,
            clock=self.time.clock,
        )
        outcomes = await executor.run(plan)
        assert self.store.unfinished() == []  # every journal entry is closed, whatever happened
        return {o.key.name: o for o in outcomes}

    def outcome(self, name: str) -> RecordOutcome | None:
        record = self.store.records().get(DeploymentKey(1, name))
        return record.outcome if record else None

    def sends(self, method: str) -> int:
        return sum(1 for m, _ in self.api.calls if m == method)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.store.close()


# -- create ------------------------------------------------------------------------------------


async def test_create_converges_and_records(rig: Rig) -> None:
    rig.write("alpha-svc")
    [(name, outcome)] = (await rig.run()).items()
    assert (name, outcome.result, outcome.action) == ("alpha-svc", Result.CONVERGED, Action.CREATE)
    assert outcome.task_ids == ("task-0001",)
    assert rig.outcome("alpha-svc") is RecordOutcome.CONVERGED
    phases = [e.phase for e in rig.events]
    assert phases[0] is Phase.QUEUED and phases[-1] is Phase.CONVERGED
    assert {Phase.SUBMITTED, Phase.TASK, Phase.DEPLOYING} <= set(phases)


async def test_the_record_written_is_the_applied_record_of_the_manifest(rig: Rig) -> None:
    """What a converged create writes is `applied_record` of its manifest, stamped now (the
    executor reuses the record its journal intent made, with the time and outcome set)."""
    rig.write("alpha-svc")
    await rig.run()
    key = DeploymentKey(1, "alpha-svc")
    desired = load_desired([rig.dir], env={}).by_key()[key]
    record = rig.store.records()[key]
    assert record.applied_at > 0  # not the intent's placeholder
    expected = applied_record(
        desired,
        rig.store.hash_value,
        applied_at=record.applied_at,
        outcome=RecordOutcome.CONVERGED,
    )
    assert record == expected


async def test_a_lost_create_answer_is_found_not_resent(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.lose["create_deployment"] = 1
    outcomes = await rig.run()
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert outcomes["alpha-svc"].task_ids == ()  # they went with the lost answer
    assert rig.sends("create_deployment") == 1
    assert rig.outcome("alpha-svc") is RecordOutcome.CONVERGED


async def test_a_lost_create_answer_whose_check_meets_a_503_reads_again(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.lose["create_deployment"] = 1
    # the read that checks the lost answer fails even after the client's own retries
    rig.api.fail["get_deployment"] += [server_error("GET")] * 3
    outcome = (await rig.run())["alpha-svc"]
    assert (outcome.result, outcome.error) == (Result.CONVERGED, "")
    assert rig.sends("create_deployment") == 1  # found by a later read: never sent twice
    assert rig.outcome("alpha-svc") is RecordOutcome.CONVERGED


async def test_a_503_on_create_then_on_its_check_reads_again_then_resends(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.fail["create_deployment"].append(server_error("POST"))
    rig.api.fail["get_deployment"] += [server_error("GET"), lost("GET")]
    outcome = (await rig.run())["alpha-svc"]
    assert outcome.result is Result.CONVERGED
    assert outcome.task_ids == ("task-0001",)  # the resent create's task, waited on
    assert rig.sends("create_deployment") == 2


async def test_a_check_failing_transiently_is_read_again_until_the_deadline(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.lose["create_deployment"] = 1
    rig.api.fail["get_deployment"] += [server_error("GET")] * 1000
    outcome = (await rig.run(timeout=30.0))["alpha-svc"]
    assert outcome.result is Result.TIMED_OUT
    assert 30.0 <= rig.time.now < 31.0  # never past the deadline by more than a poll
    assert 5 < rig.sends("get_deployment") < 1000


async def test_a_check_refused_for_good_fails_at_once(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.lose["create_deployment"] = 1
    denied = PermissionDeniedError(method="GET", path="/d", status_code=403, detail="no rights")
    rig.api.fail["get_deployment"].append(denied)
    outcome = (await rig.run())["alpha-svc"]
    assert outcome.result is Result.FAILED and "no rights" in outcome.error
    assert rig.sends("get_deployment") == 1
    assert rig.time.now == 0.0  # no backoff before failing


async def test_a_create_that_did_nothing_is_resent_after_a_backoff(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.fail["create_deployment"] += [server_error("POST"), server_error("POST")]
    outcomes = await rig.run()
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert rig.sends("create_deployment") == 3
    assert rig.time.sleeps[:2] == [0.25, 0.5]


async def test_a_create_answered_503_many_times_is_resent_while_there_is_time(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.fail["create_deployment"] += [server_error("POST")] * 12  # each checked: not there
    outcome = (await rig.run(timeout=120.0))["alpha-svc"]
    assert (outcome.result, outcome.error) == (Result.CONVERGED, "")
    assert rig.sends("create_deployment") == 13
    assert outcome.task_ids == ("task-0001",) and len(rig.api.tasks) == 1  # created once


async def test_a_create_failing_every_time_times_out_without_a_record(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.fail["create_deployment"] += [server_error("POST")] * 1000
    outcome = (await rig.run(timeout=60.0))["alpha-svc"]
    assert outcome.result is Result.TIMED_OUT
    assert "HTTP 503" in outcome.error  # what it was doing when time ran out
    assert 60.0 <= rig.time.now < 61.0
    assert 10 < rig.sends("create_deployment") < 1000
    assert rig.outcome("alpha-svc") is None  # nothing was created: nothing is owned


async def test_a_refused_create_is_not_resent(rig: Rig) -> None:
    rig.write("alpha-svc")
    refused = ValidationFailedError(method="POST", path="/d", status_code=422, detail="bad image")
    rig.api.fail["create_deployment"].append(refused)
    outcomes = await rig.run()
    assert outcomes["alpha-svc"].result is Result.FAILED
    assert "bad image" in outcomes["alpha-svc"].error
    assert rig.sends("create_deployment") == 1


async def test_a_409_from_a_live_namesake_is_verified_and_adopted(rig: Rig) -> None:
    rig.write("alpha-svc", image="nginx:1.27")
    rig.api.fail["create_deployment"].append(
        lambda: (
            rig.api.seed(1, "alpha-svc", description="alpha-svc")  # type: ignore[func-returns-value]
            or ConflictError(method="POST", path="/d", status_code=409)
        )
    )
    outcomes = await rig.run()
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert rig.api.patches == [{"image": "nginx:1.27"}]
    assert any(e.phase is Phase.ADOPTING for e in rig.events)
    assert rig.outcome("alpha-svc") is RecordOutcome.CONVERGED


async def test_a_409_from_a_namesake_gone_by_the_time_we_look_creates_again(rig: Rig) -> None:
    rig.write("alpha-svc")
    taken = ConflictError(method="POST", path="/d", status_code=409)
    rig.api.fail["create_deployment"].append(taken)
    outcomes = await rig.run()
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert rig.sends("create_deployment") == 2


async def test_a_create_waits_for_a_namesake_being_deleted(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.seed(1, "alpha-svc", status="DELETING")
    rig.api.deleting_reads = 3
    outcomes = await rig.run()
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert rig.sends("create_deployment") == 2  # the 409, then ours once it was gone
    assert any("old one to be deleted" in e.message for e in rig.events)


class RespawningNamesake(FakeApi):
    """`alpha-svc` is always being deleted: once one is gone, another of that name appears."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    async def get_deployment(self, project_id: int, name: str) -> Deployment:
        if name == "alpha-svc":
            self.gets += 1
            self.seed(project_id, name, status="DELETING")
            if self.gets % 2 == 0:
                del self.deployments[(project_id, name)]
        return await super().get_deployment(project_id, name)

    async def create_deployment(self, project_id: int, body: Any) -> list[str]:
        if body["name"] == "alpha-svc":
            self.seed(project_id, "alpha-svc", status="DELETING")
        return await super().create_deployment(project_id, body)


async def test_creates_blocked_by_a_deleting_namesake_fail_alone(tmp_path: Path) -> None:
    """Regression: this ended in UnboundLocalError, losing every outcome of the run."""
    rig = Rig(tmp_path, RespawningNamesake())
    rig.write("alpha-svc")
    rig.write("beta-svc")
    rig.api.deleting_reads = 1_000
    outcomes = await rig.run()
    assert outcomes["beta-svc"].result is Result.CONVERGED
    assert outcomes["alpha-svc"].result is Result.FAILED
    assert f"409 Conflict {CREATE_ATTEMPTS} times" in outcomes["alpha-svc"].error
    rig.store.close()


async def test_an_unexpected_error_fails_only_its_own_action(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.write("beta-svc")
    rig.api.fail["create_deployment"].append(RuntimeError("boom"))
    results = sorted((o.result, o.error) for o in (await rig.run()).values())
    assert results == [
        (Result.CONVERGED, ""),
        (Result.FAILED, "internal error: RuntimeError: boom"),
    ]


# -- waiting: tasks, convergence, the deadline -------------------------------------------------


async def test_a_task_error_fails_with_the_task_text(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.task_state, rig.api.task_error = "ERROR", "no capacity"
    outcome = (await rig.run())["alpha-svc"]
    assert outcome.result is Result.FAILED
    assert outcome.error == "task task-0001 failed: no capacity"
    assert rig.outcome("alpha-svc") is RecordOutcome.FAILED  # submitted: it is ours


async def test_degraded_fails_after_the_grace_not_before(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.rollout = {"status": "PARTIALLYDEPLOYED", "error_message": "ErrImagePull"}
    outcome = (await rig.run(degraded_grace=60.0, timeout=900.0))["alpha-svc"]
    assert outcome.result is Result.FAILED
    assert outcome.error == "Degraded: region 1: ErrImagePull"
    assert 60.0 <= outcome.seconds < 70.0  # on fake time: it waited out the grace


async def test_a_deployment_that_never_settles_times_out_saying_where(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.rollout = {"status": "DEPLOYING", "error_message": None}
    outcome = (await rig.run(timeout=30.0))["alpha-svc"]
    assert outcome.result is Result.TIMED_OUT
    assert outcome.error == "timed out after 30s while 0/1 ready (DEPLOYING)"
    assert 30.0 <= outcome.seconds < 31.0
    assert rig.outcome("alpha-svc") is RecordOutcome.TIMED_OUT


async def test_a_deployment_gone_while_deploying_fails(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.rollout = {"status": "DEPLOYING", "error_message": None}
    rig.api.fail["get_deployment"].append(
        lambda: rig.api.deployments.clear()  # type: ignore[func-returns-value]
    )
    outcome = (await rig.run())["alpha-svc"]
    assert (outcome.result, outcome.error) == (
        Result.FAILED,
        "the deployment disappeared while deploying",
    )


async def test_resending_stops_at_the_deadline(rig: Rig) -> None:
    rig.write("alpha-svc")
    rig.api.fail["create_deployment"] += [server_error("POST")] * 5
    outcome = (await rig.run(timeout=1.0))["alpha-svc"]
    assert outcome.result is Result.TIMED_OUT
    assert rig.sends("create_deployment") == 4  # 0.25 + 0.5 + 1 s of backoff passed 1 s


# -- update and adopt --------------------------------------------------------------------------


async def _applied(rig: Rig) -> None:
    rig.write("alpha-svc")
    assert (await rig.run())["alpha-svc"].result is Result.CONVERGED
    rig.events.clear()
    rig.api.calls.clear()


async def test_update_patches_only_the_changed_fields(rig: Rig) -> None:
    await _applied(rig)
    rig.write("alpha-svc", image="nginx:1.27")
    outcome = (await rig.run())["alpha-svc"]
    assert (outcome.action, outcome.result) == (Action.UPDATE, Result.CONVERGED)
    assert rig.api.patches == [{"image": "nginx:1.27"}]


async def test_a_lost_update_answer_that_took_effect_is_not_resent(rig: Rig) -> None:
    await _applied(rig)
    rig.write("alpha-svc", image="nginx:1.27")
    rig.api.lose["update_deployment"] = 1
    outcome = (await rig.run())["alpha-svc"]
    assert outcome.result is Result.CONVERGED
    assert len(rig.api.patches) == 1


async def test_an_update_that_did_nothing_is_resent(rig: Rig) -> None:
    await _applied(rig)
    rig.write("alpha-svc", image="nginx:1.27")
    rig.api.fail["update_deployment"].append(server_error("PATCH"))
    outcome = (await rig.run())["alpha-svc"]
    assert outcome.result is Result.CONVERGED
    assert rig.sends("update_deployment") == 2 and len(rig.api.patches) == 1


async def test_an_update_whose_deployment_vanished_fails(rig: Rig) -> None:
    await _applied(rig)
    rig.write("alpha-svc", image="nginx:1.27")

    def vanish() -> Exception:
        rig.api.deployments.clear()
        return server_error("PATCH")

    rig.api.fail["update_deployment"].append(vanish)
    outcome = (await rig.run())["alpha-svc"]
    assert outcome.result is Result.FAILED
    assert outcome.error.startswith("the deployment disappeared during the update")


async def test_an_update_in_two_patches_carries_both_tasks_it_waited_on(rig: Rig) -> None:
    rig.write("alpha-svc", extra="  api_keys: [key-one]\n")
    assert (await rig.run())["alpha-svc"].result is Result.CONVERGED
    rig.write("alpha-svc", extra="  auth_enabled: true\n")  # the keys off, then the flag on
    outcome = (await rig.run())["alpha-svc"]
    assert rig.api.patches == [{"api_keys": []}, {"auth_enabled": True}]
    assert (outcome.action, outcome.result) == (Action.UPDATE, Result.CONVERGED)
    assert outcome.task_ids == ("task-0002", "task-0003")  # both waited on, both reported


async def test_adopt_records_ownership_then_patches(rig: Rig) -> None:
    rig.api.seed(1, "alpha-svc", description="someone else's")
    rig.write("alpha-svc")
    outcome = (await rig.run())["alpha-svc"]
    assert (outcome.action, outcome.result) == (Action.ADOPT, Result.CONVERGED)
    assert rig.api.patches == [{"description": "alpha-svc"}]
    assert rig.outcome("alpha-svc") is RecordOutcome.CONVERGED


async def test_a_failed_update_is_noted_on_the_record(rig: Rig) -> None:
    await _applied(rig)
    rig.write("alpha-svc", image="nginx:1.27")
    refused = ValidationFailedError(method="PATCH", path="/d", status_code=422, detail="no")
    rig.api.fail["update_deployment"].append(refused)
    outcome = (await rig.run())["alpha-svc"]
    assert outcome.result is Result.FAILED
    record = rig.store.records()[DeploymentKey(1, "alpha-svc")]
    assert record.outcome is RecordOutcome.FAILED and "no" in record.message


# -- delete ------------------------------------------------------------------------------------


async def _orphaned(rig: Rig) -> None:
    await _applied(rig)
    (rig.dir / "alpha-svc.yaml").unlink()
    rig.write("keeper-svc")  # an empty manifest set would refuse to prune


async def test_delete_waits_until_gone_and_forgets(rig: Rig) -> None:
    await _orphaned(rig)
    outcomes = await rig.run(prune=True)
    assert (outcomes["alpha-svc"].action, outcomes["alpha-svc"].result) == (
        Action.DELETE,
        Result.CONVERGED,
    )
    assert (1, "alpha-svc") not in rig.api.deployments
    assert rig.outcome("alpha-svc") is None


async def test_nothing_is_sent_for_a_deployment_already_going(rig: Rig) -> None:
    await _orphaned(rig)
    rig.api.deployments[(1, "alpha-svc")]["status"] = "DELETING"
    rig.api.deleting_reads = 1_000  # plan still sees it; it goes only once deleted for real

    def gone() -> None:
        rig.api.deleting_reads = 0

    rig.api.fail["get_deployment"] += [lambda: None, gone]  # type: ignore[list-item]
    outcomes = await rig.run(prune=True)
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert rig.sends("delete_deployment") == 0


async def test_a_lost_delete_answer_is_checked_not_resent(rig: Rig) -> None:
    await _orphaned(rig)
    rig.api.lose["delete_deployment"] = 1
    outcomes = await rig.run(prune=True)
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert rig.sends("delete_deployment") == 1


async def test_a_delete_that_did_nothing_is_resent(rig: Rig) -> None:
    await _orphaned(rig)
    rig.api.fail["delete_deployment"].append(server_error("DELETE"))
    outcomes = await rig.run(prune=True)
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert rig.sends("delete_deployment") == 2


async def test_a_delete_answered_404_is_done(rig: Rig) -> None:
    await _orphaned(rig)

    def someone_else_deleted_it() -> Exception:
        rig.api.deployments.clear()
        return NotFoundError(method="DELETE", path="/d", status_code=404)

    rig.api.fail["delete_deployment"].append(someone_else_deleted_it)
    outcomes = await rig.run(prune=True)
    assert outcomes["alpha-svc"].result is Result.CONVERGED
    assert rig.outcome("alpha-svc") is None


async def test_deletes_run_after_everything_else(rig: Rig) -> None:
    await _orphaned(rig)
    rig.write("beta-svc")
    await rig.run(prune=True)
    sends = [(m, n) for m, n in rig.api.calls if m in ("create_deployment", "delete_deployment")]
    assert sends == [("create_deployment", "beta-svc"), ("create_deployment", "keeper-svc"),
                     ("delete_deployment", "alpha-svc")]  # fmt: skip
