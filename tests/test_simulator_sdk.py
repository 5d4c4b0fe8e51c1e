"""The simulator's fidelity, proven with the official `gcore` SDK over real HTTP.

The SDK's polling sleeps are routed to the simulator's manual clock, so the lifecycle moves
exactly as far as the SDK waits, with no real sleeping. Every test runs in each simulator mode
(default, `--sparse-answers`, `--patch-merge`): the SDK must drive all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gcore
import gcore._resource
import pytest
from gcore import Gcore

from reconciler.simulator import BackgroundServer, Simulator

from .conftest import API_KEY, FLAVOR, ManualClock, make_simulator, seed_body

MODES: dict[str, dict[str, bool]] = {
    "default": {},
    "sparse-answers": {"sparse_answers": True},
    "patch-merge": {"patch_merge": True},
}


@pytest.fixture(scope="module", params=sorted(MODES))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, BackgroundServer]]:
    """One server per mode for the whole module; each test gets the cloud empty again."""
    with BackgroundServer(make_simulator(ManualClock(), **MODES[request.param])) as srv:
        yield request.param, srv


@pytest.fixture
def mode(served: tuple[str, BackgroundServer]) -> str:
    return served[0]


@pytest.fixture
def simulator(served: tuple[str, BackgroundServer], clock: ManualClock) -> Simulator:
    sim = served[1].simulator
    with sim.cloud.lock:
        sim.cloud.clock = clock
        sim.cloud.deployments.clear()
        sim.cloud.tasks.clear()
        sim.requests.clear()
        sim.creates.clear()
    return sim


@pytest.fixture
def server(served: tuple[str, BackgroundServer], simulator: Simulator) -> BackgroundServer:
    return served[1]


@pytest.fixture
def sdk(
    server: BackgroundServer, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gcore]:
    monkeypatch.setattr(
        gcore._resource.SyncAPIResource, "_sleep", lambda self, seconds: clock.advance(seconds)
    )
    client = Gcore(
        api_key=API_KEY,
        base_url=server.url,
        cloud_project_id=1,
        max_retries=0,
        polling_interval_seconds=1,
    )
    yield client
    client.close()


def _raw_get(sdk: Gcore, name: str) -> dict[str, Any]:
    raw = sdk.cloud.inference.deployments.with_raw_response.get(name)
    data: dict[str, Any] = raw.http_response.json()
    return data


def test_create_and_poll_gives_the_deployment_in_the_response_shape(
    sdk: Gcore, clock: ManualClock, mode: str
) -> None:
    deployments = sdk.cloud.inference.deployments
    created = deployments.create_and_poll(**seed_body())
    sparse = mode == "sparse-answers"

    assert created.name == "my-instance"
    assert created.project_id == 1
    assert created.description == "My first instance"
    assert created.envs == {"DEBUG_MODE": "False", "KEY": "12345"}
    assert created.status in ("PARTIALLYDEPLOYED", "ACTIVE")
    scale = created.containers[0].scale
    assert (scale.min, scale.max, scale.cooldown_period) == (1, 3, 60)
    assert scale.triggers.cpu is not None and scale.triggers.cpu.threshold == 80
    assert scale.triggers.gpu_memory is None
    if sparse:  # null wherever the SDK allows, command as a list (as a docs example has it)
        assert created.command == ["nginx", "-g", "daemon off;"]  # type: ignore[comparison-overlap]
        assert created.credentials_name is None
        assert created.timeout is None
        assert created.object_references is None
        assert scale.polling_interval is None
    else:
        assert created.command == "nginx -g daemon off;"  # a list in, one string out
        assert created.credentials_name == ""
        assert created.timeout == 120  # server default
        assert created.object_references == []  # a standalone deployment
        assert scale.polling_interval == 30  # server default

    clock.advance(2)
    active = deployments.get("my-instance")
    assert active.status == "ACTIVE"
    assert active.containers[0].deploy_status.ready == 1
    assert bool(active.containers[0].address) is not sparse
    assert bool(active.address) is not sparse
    raw = _raw_get(sdk, "my-instance")
    assert set(raw["containers"][0]["scale"]["triggers"]) == (
        {"cpu", "memory"}
        if sparse
        else {"cpu", "memory", "gpu_memory", "gpu_utilization", "http", "sqs"}
    )
    assert raw["containers"][0]["error_message"] is None


def test_list_follows_pages_with_a_small_limit(sdk: Gcore, simulator: Simulator) -> None:
    names = [f"svc-{i:02d}" for i in range(7)]
    for name in names:
        sdk.cloud.inference.deployments.create(**seed_body(name))

    first = sdk.cloud.inference.deployments.list(limit=3)
    assert first.count == 7
    assert len(first.results) == 3
    assert [d.name for d in first] == names  # auto-pagination across three pages
    list_calls = [r for r in simulator.requests if r[0] == "GET" and r[1].endswith("/deployments")]
    assert len(list_calls) == 3  # pages of 3, 3 and 1


def test_get_of_a_missing_deployment_is_not_found(sdk: Gcore) -> None:
    with pytest.raises(gcore.NotFoundError) as info:
        sdk.cloud.inference.deployments.get("nobody-here")
    assert info.value.body["exception_class"] == "NotFoundError"  # type: ignore[index]


def test_update_and_poll_changes_only_the_fields_sent(sdk: Gcore, clock: ManualClock) -> None:
    deployments = sdk.cloud.inference.deployments
    deployments.create_and_poll(**seed_body())
    clock.advance(2)

    updated = deployments.update_and_poll(
        "my-instance",
        image="nginx:1.27",
        containers=[{"region_id": 1, "scale": {"min": 2, "max": 4}}],
    )
    assert updated.image == "nginx:1.27"
    assert updated.containers[0].scale.min == 2
    assert updated.command in ("nginx -g daemon off;", ["nginx", "-g", "daemon off;"])  # kept
    assert updated.description == "My first instance"
    assert updated.envs == {"DEBUG_MODE": "False", "KEY": "12345"}

    clock.advance(2)
    after = deployments.get("my-instance")
    assert after.status == "ACTIVE"
    assert after.containers[0].deploy_status.ready == 2


def test_stop_disables_and_start_brings_it_back(sdk: Gcore, clock: ManualClock) -> None:
    deployments = sdk.cloud.inference.deployments
    deployments.create_and_poll(**seed_body())
    clock.advance(2)

    deployments.stop("my-instance")
    stopped = deployments.get("my-instance")
    assert stopped.status == "DISABLED"
    assert stopped.containers[0].deploy_status.ready == 0

    deployments.start("my-instance")
    assert deployments.get("my-instance").status == "PARTIALLYDEPLOYED"
    clock.advance(2)
    assert deployments.get("my-instance").status == "ACTIVE"


def test_delete_then_poll_then_not_found(sdk: Gcore, clock: ManualClock) -> None:
    deployments = sdk.cloud.inference.deployments
    deployments.create_and_poll(**seed_body())

    tasks = deployments.delete("my-instance").tasks
    assert len(tasks) == 1
    assert deployments.get("my-instance").status == "DELETING"
    task = sdk.cloud.tasks.poll(tasks[0])
    assert task.state == "FINISHED"
    assert task.task_type == "delete_inference_instance"
    with pytest.raises(gcore.NotFoundError):
        deployments.get("my-instance")


def test_duplicate_create_is_a_conflict(sdk: Gcore) -> None:
    sdk.cloud.inference.deployments.create(**seed_body())
    with pytest.raises(gcore.ConflictError) as info:
        sdk.cloud.inference.deployments.create(**seed_body())
    assert info.value.status_code == 409
    assert info.value.body["exception_class"] == "ConflictError"  # type: ignore[index]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"listening_port": 70000}, "listening_port"),
        ({"name": "abc"}, "name"),
        ({"flavor_name": "no-such-flavor"}, "flavor_name"),
        (
            {"containers": [{"region_id": 999, "scale": {"min": 1, "max": 1}}]},
            "containers.0.region_id",
        ),
        ({"containers": [{"region_id": 1, "scale": {"min": 3, "max": 1}}]}, "containers.0.scale"),
        ({"api_keys": ["k1"], "auth_enabled": True}, "__root__"),
        (
            {"containers": [{"region_id": 1, "scale": {"min": 1, "max": 301}}]},
            "containers.0.scale.max",
        ),
        (
            {"containers": [{"region_id": 1, "scale": {"min": 1, "max": 2, "cooldown_period": 0}}]},
            "containers.0.scale.cooldown_period",
        ),
        ({"envs": None}, "envs"),
        (
            {"logging": {"enabled": True, "retention_policy": {"period": 1826}}},
            "logging.retention_policy.period",
        ),
    ],
)
def test_a_bad_body_is_refused_with_gcores_error_body(
    sdk: Gcore, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(gcore.APIStatusError) as info:
        sdk.cloud.inference.deployments.create(**seed_body(**overrides))
    assert 400 <= info.value.status_code < 500
    body = info.value.body
    assert isinstance(body, dict)
    assert body["exception_class"] == "ValidationError"
    assert body["request_id"]
    assert field in body["invalid_fields"], body


def test_a_wrong_key_is_an_authentication_error(server: BackgroundServer) -> None:
    client = Gcore(api_key="wrong-key", base_url=server.url, cloud_project_id=1, max_retries=0)
    with pytest.raises(gcore.AuthenticationError):
        client.cloud.inference.deployments.list()
    client.close()


def test_tasks_list_filters_by_project_state_and_type(
    sdk: Gcore, clock: ManualClock, mode: str
) -> None:
    deployments = sdk.cloud.inference.deployments
    deployments.create(**seed_body("first-one"))
    clock.advance(5)
    deployments.create(**seed_body("second-one"))
    deployments.create(project_id=2, **seed_body("other-project"))
    creates = sdk.cloud.tasks.list(task_type="create_inference_instance", limit=100)
    assert creates.count == 3
    if mode == "sparse-answers":
        # the SDK types a task's project_id as optional: these tasks report none, so a filter
        # by project finds nothing (what the watcher must not rely on)
        assert {t.project_id for t in creates.results} == {None}
        assert sdk.cloud.tasks.list(project_id=[1]).count == 0
        return

    finished = sdk.cloud.tasks.list(project_id=[1], state=["FINISHED"])
    assert [t.created_resources.inference_instances for t in finished.results] == [["first-one"]]  # type: ignore[union-attr]
    pending = sdk.cloud.tasks.list(project_id=[1, 2], state=["NEW", "RUNNING"], limit=100)
    assert pending.count == 2


def test_flavors_list_includes_the_seed_flavor(sdk: Gcore) -> None:
    names = [f.name for f in sdk.cloud.inference.flavors.list()]
    assert FLAVOR in names
    assert len(names) >= 3
