"""Apply against the simulator over real HTTP in each real-API mode: updates converge whether
the server merges nested objects or replaces them, the auth switch, answers full of nulls,
deployments another object manages, unreadable answers, tasks without a project."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.api import ApiClient
from reconciler.engine import plan_against
from reconciler.execute import Result
from reconciler.manifests import load_desired
from reconciler.plan import Action, Plan, PlanOptions, Reason
from reconciler.simulator import BackgroundServer, Simulator
from reconciler.state import SqliteStateStore

from .conftest import API_KEY, FLAVOR, ManualClock, make_simulator, seed_body
from .fakes import FakeTime
from .test_apply import FAST, POLL, Rig

MODES: dict[str, dict[str, bool]] = {
    "default": {},
    "patch-merge": {"patch_merge": True},
    "sparse-answers": {"sparse_answers": True},
    "sparse-and-merge": {"sparse_answers": True, "patch_merge": True},
}


def rig_in(tmp_path: Path, fake_time: bool = False, **config: Any) -> Iterator[Rig]:
    """A rig over real HTTP in the given mode; with `fake_time`, on fake time shared with the
    simulator (see test_apply.make_rig). Tests of how waits are batched keep real time: on fake
    time, waits that overlap in real time add up instead."""
    clock = ManualClock() if fake_time else None
    sim = make_simulator(clock, timings=FAST, **config)
    with BackgroundServer(sim) as server:
        headers = {"Authorization": f"APIKey {API_KEY}"}
        for key in ("key-one", "key-two"):
            answer = httpx.post(
                f"{server.url}/cloud/v3/inference/1/api_keys", json={"name": key}, headers=headers
            )
            assert answer.status_code < 300, answer.text
        yield Rig(tmp_path, server, FakeTime(clock.advance) if clock else None)


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Rig]:
    yield from rig_in(tmp_path)


@pytest.fixture
def sparse(tmp_path: Path) -> Iterator[Rig]:
    yield from rig_in(tmp_path, sparse_answers=True)


@pytest.fixture(params=sorted(MODES))
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    yield from rig_in(tmp_path, fake_time=True, **MODES[request.param])


def spec(extra: str) -> str:
    return f"""\
apiVersion: reconciler/v1
kind: InferenceDeployment
metadata: {{name: full-svc, project_id: 1}}
spec:
  image: nginx:latest
  flavor_name: {FLAVOR}
  listening_port: 80
{extra}"""


FIRST = spec("""\
  command: [nginx, -g, daemon off;]
  timeout: 300
  auth_enabled: true
  containers:
    - region_id: 1
      scale:
        min: 1
        max: 3
        triggers: {cpu: {threshold: 80}, http: {rate: 10, window: 60}}
  logging: {enabled: true, topic_name: logs, retention_policy: {period: 7}}
  ingress_opts: {disable_response_buffering: true}
  probes:
    liveness_probe:
      enabled: true
      probe: {http_get: {port: 80, path: /live}, period_seconds: 7}
    readiness_probe:
      enabled: true
      probe: {exec: {command: [cat, /ready]}}
""")

# probes: liveness removed, readiness switched to tcp; the http trigger removed; logging loses
# its topic and retention; auth switches from the flag to keys; ingress_opts and timeout dropped
SECOND = spec("""\
  command: [nginx, -g, daemon off;]
  api_keys: [key-two, key-one]
  containers:
    - region_id: 1
      scale:
        min: 1
        max: 3
        triggers: {cpu: {threshold: 80}}
  logging: {enabled: true}
  probes:
    readiness_probe:
      enabled: true
      probe: {tcp_socket: {port: 80}}
""")

# and back: keys to the flag (two PATCHes in order), nothing nested left
THIRD = spec("""\
  auth_enabled: true
  containers:
    - region_id: 1
      scale: {min: 1, max: 2}
""")


async def planned(rig: Rig) -> Plan:
    desired = load_desired([rig.dir], env={})
    store = SqliteStateStore(rig.target.state_path)
    try:
        async with ApiClient(rig.target.settings) as api:
            plan, _ = await plan_against(desired, store, api, PlanOptions(prune=True))
    finally:
        store.close()
    return plan


def live(rig: Rig, name: str = "full-svc") -> dict[str, Any]:
    with rig.sim.cloud.lock:
        return rig.sim.cloud.view(rig.sim.cloud.get(1, name))


async def test_updates_converge_and_the_next_plan_is_empty(rig: Rig) -> None:
    for text in (FIRST, SECOND, THIRD):
        rig.write("full-svc", text)
        report = await rig.apply()
        assert rig.results(report) == {"full-svc": "converged"}, report.outcomes
        plan = await planned(rig)
        assert [(c.action, c.changes) for c in plan.changes] == [(Action.NOOP, ())]

    answer = live(rig)
    assert answer["auth_enabled"] is True and not answer["api_keys"]
    assert not (answer["probes"] or {}).get("readiness_probe", {}) or (
        answer["probes"]["readiness_probe"]["enabled"] is False
    )
    patches = [(m, p) for m, p, status in rig.sim.requests if m == "PATCH" and status < 300]
    assert len(patches) == 3  # the keys-to-flag switch took two PATCHes
    refused = [(m, p, s) for m, p, s in rig.sim.requests if s == 422]
    assert refused == []


async def test_the_switch_sends_the_keys_first_then_the_flag(plain: Rig) -> None:
    rig = plain
    bodies: list[dict[str, Any]] = []
    original = rig.sim.cloud.update

    def spy(project_id: int, name: str, changes: dict[str, Any], request_id: str) -> Any:
        bodies.append(dict(changes))
        return original(project_id, name, changes, request_id)

    rig.sim.cloud.update = spy  # type: ignore[method-assign]
    rig.write("full-svc", spec("  api_keys: [key-one]\n" + THIRD.split("auth_enabled: true\n")[1]))
    assert (await rig.apply()).ok
    rig.write("full-svc", THIRD)
    assert (await rig.apply()).ok
    assert bodies == [{"api_keys": []}, {"auth_enabled": True}]


async def test_a_deployment_an_application_manages_is_never_touched(plain: Rig) -> None:
    rig = plain
    reference = {"kind": "AppDeployment", "name": "my-app"}
    rig.sim.cloud.create(1, seed_body("app-made"), "seed", object_references=[reference])
    rig.write(
        "app-made",
        spec("  containers: [{region_id: 1, scale: {min: 1, max: 1}}]\n").replace(
            "full-svc", "app-made"
        ),
    )
    rig.write(
        "own-svc",
        spec("  containers: [{region_id: 1, scale: {min: 1, max: 1}}]\n").replace(
            "full-svc", "own-svc"
        ),
    )

    plan = await planned(rig)
    app = next(c for c in plan.changes if c.key.name == "app-made")
    assert (app.action, app.reason) == (Action.NOOP, Reason.MANAGED_ELSEWHERE)
    assert "AppDeployment my-app" in app.note

    report = await rig.apply()
    assert rig.results(report) == {"app-made": "failed", "own-svc": "converged"}
    failed = next(o for o in report.outcomes if o.key.name == "app-made")
    assert "AppDeployment my-app manages it" in failed.error
    assert not report.ok
    touched = [p for m, p, _ in rig.sim.requests if m != "GET" and "app-made" in p]
    assert touched == []
    assert live(rig, "app-made")["image"] == "nginx:latest"


def _corrupt(sim: Simulator, name: str) -> None:
    with sim.cloud.lock:
        sim.cloud.get(1, name).spec["listening_port"] = "eighty"  # the client cannot read it


async def test_an_unreadable_answer_fails_only_its_own_deployment(plain: Rig) -> None:
    rig = plain
    text = spec("  containers: [{region_id: 1, scale: {min: 1, max: 1}}]\n")
    for name in ("one-svc", "two-svc"):
        rig.write(name, text.replace("full-svc", name))
    assert (await rig.apply()).ok
    rig.sim.cloud.create(1, seed_body("not-ours"), "seed")
    _corrupt(rig.sim, "one-svc")
    _corrupt(rig.sim, "not-ours")
    rig.write("two-svc", text.replace("full-svc", "two-svc").replace("nginx:latest", "nginx:2"))

    plan = await planned(rig)
    reasons = {c.key.name: c.reason for c in plan.changes}
    assert reasons == {"one-svc": Reason.UNREADABLE, "two-svc": Reason.MANIFEST_CHANGED}
    assert len(plan.warnings) == 1 and "1/not-ours" in plan.warnings[0]

    report = await rig.apply()
    assert rig.results(report) == {"one-svc": "failed", "two-svc": "converged"}
    failed = next(o for o in report.outcomes if o.key.name == "one-svc")
    assert "listening_port" in failed.error


async def test_tasks_without_a_project_are_still_polled_in_one_list(sparse: Rig) -> None:
    rig = sparse
    text = spec("  containers: [{region_id: 1, scale: {min: 1, max: 1}}]\n")
    for i in range(4):
        rig.write(f"svc-{i}", text.replace("full-svc", f"svc-{i}-x"))
    # every wait batched, however far apart the creates land (a loaded machine spreads them
    # past the first poll of a lone wait, which is a GET by design)
    report = await rig.apply(poll=replace(POLL, batch_min=1))
    assert report.ok and set(rig.results(report).values()) == {Result.CONVERGED.value}
    task_gets = [p for m, p, _ in rig.sim.requests if m == "GET" and "/tasks/" in p]
    task_lists = [p for m, p, _ in rig.sim.requests if m == "GET" and p.endswith("/tasks")]
    assert task_lists and task_gets == []


async def test_a_create_raced_by_an_application_leaves_its_deployment_alone(plain: Rig) -> None:
    # planned as a create; by the time it is sent an Application made a deployment of that name:
    # the 409 must not turn into adopting (and patching) what the Application manages
    rig = plain
    rig.write("app-race", spec("  containers: [{region_id: 1, scale: {min: 1, max: 1}}]\n"))
    rig.write("app-race", (rig.dir / "app-race.yaml").read_text().replace("full-svc", "app-race"))
    reference = {"kind": "AppDeployment", "name": "my-app"}

    def an_application_creates_it(plan: Plan) -> bool:
        assert [c.action for c in plan.changes] == [Action.CREATE]
        body = seed_body("app-race", image="their:1")
        rig.sim.cloud.create(1, body, "seed", object_references=[reference])
        return True

    report = await rig.apply(confirm=an_application_creates_it)
    assert rig.results(report) == {"app-race": "failed"}
    failed = report.outcomes[0]
    assert "AppDeployment my-app manages it" in failed.error
    again = await rig.apply()  # nothing journaled is resumed into adopting it either
    assert rig.results(again) == {"app-race": "failed"}
    touched = [(m, p) for m, p, _ in rig.sim.requests if m in ("PATCH", "DELETE")]
    assert touched == []
    assert live(rig, "app-race")["image"] == "their:1"
    store = SqliteStateStore(rig.target.state_path)
    try:
        assert list(store.records()) == []  # not claimed
    finally:
        store.close()
