"""Stop and start (`spec.stopped`) against the in-process fake API, on fake time: a stop waits
for DISABLED, a start for Healthy, Degraded past the grace fails, and a deployment that
vanishes while it is being stopped fails that deployment alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.execute import Result
from reconciler.model import RecordOutcome
from reconciler.plan import Action

from .fakes import FakeApi, lost, server_error
from .test_execute import Rig

STOPPED = "  stopped: true\n"


class PoweredApi(FakeApi):
    """A fake whose stop and start change the deployment's status, as the API does."""

    def __init__(self) -> None:
        super().__init__()
        self.vanish_on_stop = False

    def _status(self, project_id: int, name: str, status: str, error: str | None) -> None:
        found = self.deployments[(project_id, name)]
        self.deployments[(project_id, name)] = self._answer(project_id, name, found, status, error)

    async def stop_deployment(self, project_id: int, name: str) -> None:
        await super().stop_deployment(project_id, name)
        if self.vanish_on_stop:
            del self.deployments[(project_id, name)]
        else:
            self._status(project_id, name, "DISABLED", None)

    async def start_deployment(self, project_id: int, name: str) -> None:
        await super().start_deployment(project_id, name)
        self._status(project_id, name, self.rollout["status"], self.rollout["error_message"])


def rig_of(tmp_path: Path) -> tuple[Rig, PoweredApi]:
    api = PoweredApi()
    return Rig(tmp_path, api), api


def status(api: FakeApi, name: str) -> Any:
    return api.deployments[(1, name)]["status"]


async def test_a_create_asked_stopped_is_stopped_after_it_converges(tmp_path: Path) -> None:
    rig, api = rig_of(tmp_path)
    rig.write("alpha-svc", extra=STOPPED)
    outcome = (await rig.run())["alpha-svc"]
    assert (outcome.action, outcome.result) == (Action.CREATE, Result.CONVERGED)
    assert rig.sends("stop_deployment") == 1
    assert status(api, "alpha-svc") == "DISABLED"
    assert rig.outcome("alpha-svc") is RecordOutcome.CONVERGED
    rig.store.close()


async def test_start_waits_until_it_is_running_again(tmp_path: Path) -> None:
    rig, api = rig_of(tmp_path)
    rig.write("alpha-svc", extra=STOPPED)
    await rig.run()
    rig.write("alpha-svc")  # the manifest wants it running
    outcome = (await rig.run())["alpha-svc"]
    assert (outcome.action, outcome.result) == (Action.START, Result.CONVERGED)
    assert rig.sends("start_deployment") == 1
    assert status(api, "alpha-svc") == "ACTIVE"
    rig.store.close()


async def test_a_start_degraded_past_the_grace_fails_saying_why(tmp_path: Path) -> None:
    rig, api = rig_of(tmp_path)
    rig.write("alpha-svc", extra=STOPPED)
    await rig.run()
    api.rollout = {"status": "PARTIALLYDEPLOYED", "error_message": "ErrImagePull"}
    rig.write("alpha-svc")
    outcome = (await rig.run(degraded_grace=60.0, timeout=900.0))["alpha-svc"]
    assert (outcome.action, outcome.result) == (Action.START, Result.FAILED)
    assert outcome.error == "Degraded: region 1: ErrImagePull"
    assert 60.0 <= outcome.seconds < 70.0  # on fake time: it waited out the grace
    rig.store.close()


async def test_a_deployment_gone_during_its_stop_fails_alone(tmp_path: Path) -> None:
    rig, api = rig_of(tmp_path)
    rig.write("alpha-svc")
    rig.write("beta-svc")
    await rig.run()
    api.vanish_on_stop = True
    rig.write("alpha-svc", extra=STOPPED)
    outcomes = await rig.run()
    assert outcomes["alpha-svc"].action is Action.STOP
    assert outcomes["alpha-svc"].result is Result.FAILED
    assert outcomes["alpha-svc"].error == "the deployment disappeared during the stop"
    assert outcomes["beta-svc"].result is Result.SKIPPED
    rig.store.close()


async def test_a_lost_stop_answer_is_followed_by_the_wait(tmp_path: Path) -> None:
    rig, api = rig_of(tmp_path)
    rig.write("alpha-svc")
    await rig.run()

    def stopped_then_lost() -> Exception:
        api._status(1, "alpha-svc", "DISABLED", None)  # it took effect; the answer is lost
        return lost("POST")

    api.fail["stop_deployment"].append(stopped_then_lost)
    rig.write("alpha-svc", extra=STOPPED)
    outcome = (await rig.run())["alpha-svc"]
    assert (outcome.action, outcome.result, outcome.error) == (Action.STOP, Result.CONVERGED, "")
    assert status(api, "alpha-svc") == "DISABLED"
    rig.store.close()


async def test_a_start_answered_503_is_sent_again(tmp_path: Path) -> None:
    rig, api = rig_of(tmp_path)
    rig.write("alpha-svc", extra=STOPPED)
    await rig.run()
    api.fail["start_deployment"] += [server_error("POST"), lost("POST")]
    rig.write("alpha-svc")
    outcome = (await rig.run())["alpha-svc"]
    assert (outcome.action, outcome.result, outcome.error) == (Action.START, Result.CONVERGED, "")
    assert rig.sends("start_deployment") == 3  # idempotent: resent until it is answered
    assert status(api, "alpha-svc") == "ACTIVE"
    rig.store.close()
