"""The simulator's lifecycle, validation, faults and persistence, in process on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.simulator import BackgroundServer, Faults, Simulator, Timings, transport

from .conftest import API_KEY, ManualClock, make_simulator, seed_body

BASE = "/cloud/v3/inference/1/deployments"


def client_for(sim: Simulator, key: str = API_KEY) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport(sim),
        base_url="http://sim",
        headers={"Authorization": f"APIKey {key}"},
    )


@pytest.fixture
async def http(simulator: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(simulator) as client:
        yield client


async def create(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post(BASE, json=body)
    assert response.status_code == 201, response.text
    tasks: list[str] = response.json()["tasks"]
    assert len(tasks) == 1
    return tasks[0]


async def status(http: httpx.AsyncClient, name: str = "my-instance") -> str:
    response = await http.get(f"{BASE}/{name}")
    assert response.status_code == 200, response.text
    value: str = response.json()["status"]
    return value


async def task_state(http: httpx.AsyncClient, task_id: str) -> str:
    value: str = (await http.get(f"/cloud/v1/tasks/{task_id}")).json()["state"]
    return value


async def test_create_moves_through_the_lifecycle(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    timings = Timings()
    task = await create(
        http, seed_body(containers=[{"region_id": 1, "scale": {"min": 2, "max": 3}}])
    )
    assert await task_state(http, task) == "NEW"
    assert await status(http) == "DEPLOYING"

    clock.advance(timings.task_queue)
    assert await task_state(http, task) == "RUNNING"

    clock.advance(timings.task_run)
    done = (await http.get(f"/cloud/v1/tasks/{task}")).json()
    assert done["state"] == "FINISHED"
    assert done["created_resources"] == {"inference_instances": ["my-instance"]}
    assert done["finished_on"]
    assert await status(http) == "PARTIALLYDEPLOYED"

    clock.advance(timings.rollout / 2)
    half = (await http.get(f"{BASE}/my-instance")).json()
    assert half["status"] == "PARTIALLYDEPLOYED"
    assert half["containers"][0]["deploy_status"] == {"ready": 1, "total": 2}

    clock.advance(timings.rollout / 2)
    assert await status(http) == "ACTIVE"


async def test_scaled_to_zero_is_pending(http: httpx.AsyncClient, clock: ManualClock) -> None:
    await create(http, seed_body(containers=[{"region_id": 1, "scale": {"min": 0, "max": 2}}]))
    clock.advance(5)
    data = (await http.get(f"{BASE}/my-instance")).json()
    assert data["status"] == "PENDING"
    assert data["containers"][0]["deploy_status"] == {"ready": 0, "total": 0}


async def test_response_fills_server_defaults(http: httpx.AsyncClient) -> None:
    sqs = {
        "activation_queue_length": 1,
        "aws_region": "eu-west-1",
        "queue_length": 10,
        "queue_url": "https://sqs.example/q",
        "secret_name": "aws-sqs",
    }
    secret = {"name": "aws-sqs", "type": "aws-iam"}
    secret["data"] = {"aws_access_key_id": "AKIA", "aws_secret_access_key": "s3cr3t"}
    assert (await http.post("/cloud/v3/inference/1/secrets", json=secret)).status_code == 201
    body = seed_body(
        containers=[{"region_id": 1, "scale": {"min": 1, "max": 2, "triggers": {"sqs": sqs}}}],
        probes={"liveness_probe": {"enabled": True, "probe": {"http_get": {"port": 80}}}},
        logging={"enabled": True},
    )
    del body["command"], body["description"]
    await create(http, body)
    data = (await http.get(f"{BASE}/my-instance")).json()
    assert data["command"] is None
    assert data["description"] == ""
    assert data["ingress_opts"] == {"disable_response_buffering": False}
    assert data["logging"]["destination_region_id"] is None
    assert data["auth_enabled"] is False and data["api_keys"] == []
    trigger = data["containers"][0]["scale"]["triggers"]["sqs"]
    assert trigger["scale_on_flight"] is False and trigger["aws_endpoint"] is None
    probe = data["probes"]["liveness_probe"]["probe"]
    assert probe["http_get"] == {
        "port": 80,
        "headers": {},
        "host": None,
        "path": "/",
        "schema": "HTTP",
    }
    assert probe["period_seconds"] == 10 and probe["exec"] is None
    assert data["probes"]["startup_probe"] is None


async def test_patch_changes_only_what_is_sent_and_null_resets(http: httpx.AsyncClient) -> None:
    assert (await http.post("/cloud/v3/inference/1/api_keys", json={"name": "key-one"})).is_success
    await create(http, seed_body(api_keys=["key-one"]))
    response = await http.patch(f"{BASE}/my-instance", json={"description": None, "api_keys": []})
    assert response.status_code == 200
    assert len(response.json()["tasks"]) == 1
    data = (await http.get(f"{BASE}/my-instance")).json()
    assert data["description"] == ""
    assert data["api_keys"] == [] and data["auth_enabled"] is False
    assert data["command"] == "nginx -g daemon off;"

    for bad in ({"flavor_name": None}, {"auth_enabled": None}, {"name": "renamed"}):
        refused = await http.patch(f"{BASE}/my-instance", json=bad)
        assert refused.status_code == 422, bad
        assert refused.json()["exception_class"] == "ValidationError"


async def test_update_of_a_missing_deployment_is_404(http: httpx.AsyncClient) -> None:
    response = await http.patch(f"{BASE}/ghost-name", json={"image": "x:1"})
    assert response.status_code == 404
    assert response.json()["exception_class"] == "NotFoundError"


async def test_delete_shows_deleting_then_gone_and_blocks_changes(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await create(http, seed_body())
    clock.advance(3)
    task = (await http.delete(f"{BASE}/my-instance")).json()["tasks"][0]
    assert await status(http) == "DELETING"
    assert (await http.post(BASE, json=seed_body())).status_code == 409
    assert (await http.patch(f"{BASE}/my-instance", json={"image": "a:b"})).status_code == 409
    clock.advance(2)
    assert await task_state(http, task) == "FINISHED"
    assert (await http.get(f"{BASE}/my-instance")).status_code == 404
    assert (await http.get(BASE)).json() == {"count": 0, "results": []}


async def test_task_error_for_a_matching_image_removes_a_create(clock: ManualClock) -> None:
    sim = make_simulator(clock, faults=Faults(task_error_image=r"^broken/"))
    async with client_for(sim) as http:
        task = await create(http, seed_body(image="broken/model:1"))
        clock.advance(2)
        answer = (await http.get(f"/cloud/v1/tasks/{task}")).json()
        assert answer["state"] == "ERROR"
        assert "broken/model:1" in answer["error"]
        assert (await http.get(f"{BASE}/my-instance")).status_code == 404


async def test_failed_update_restores_the_previous_spec(clock: ManualClock) -> None:
    sim = make_simulator(clock, faults=Faults(task_error_image=r"^broken/"))
    async with client_for(sim) as http:
        await create(http, seed_body())
        clock.advance(3)
        patch = await http.patch(f"{BASE}/my-instance", json={"image": "broken/x:2"})
        task = patch.json()["tasks"][0]
        clock.advance(2)
        assert await task_state(http, task) == "ERROR"
        data = (await http.get(f"{BASE}/my-instance")).json()
        assert data["image"] == "nginx:latest"


async def test_stuck_image_stays_partially_deployed_with_a_message(clock: ManualClock) -> None:
    sim = make_simulator(clock, faults=Faults(stuck_image="stuck"))
    async with client_for(sim) as http:
        await create(http, seed_body(image="org/stuck:1"))
        clock.advance(600)
        data = (await http.get(f"{BASE}/my-instance")).json()
        assert data["status"] == "PARTIALLYDEPLOYED"
        assert "ErrImagePull" in data["containers"][0]["error_message"]


async def test_authentication(simulator: Simulator) -> None:
    async with client_for(simulator, key="wrong") as http:
        response = await http.get(BASE)
        assert response.status_code == 401
        assert response.json()["exception_class"] == "NotAuthenticated"
    async with httpx.AsyncClient(transport=transport(simulator), base_url="http://sim") as http:
        assert (await http.get(BASE)).status_code == 401
        scheme = {"Authorization": f"apikey {API_KEY}"}
        assert (await http.get(BASE, headers=scheme)).status_code == 200
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        assert (await http.get(BASE, headers=bearer)).status_code == 401


async def test_any_nonempty_key_when_none_is_configured() -> None:
    sim = make_simulator(api_key=None)
    async with client_for(sim, key="whatever") as http:
        assert (await http.get(BASE)).status_code == 200
    async with client_for(sim, key="") as http:
        assert (await http.get(BASE)).status_code == 401


async def test_list_pages_are_capped_by_the_server(clock: ManualClock) -> None:
    sim = make_simulator(clock, page_cap=2)
    async with client_for(sim) as http:
        for i in range(5):
            await create(http, seed_body(f"svc-{i}"))
        page = (await http.get(BASE, params={"limit": 100, "offset": 2})).json()
        assert page["count"] == 5
        assert [d["name"] for d in page["results"]] == ["svc-2", "svc-3"]


async def _statuses(seed: int) -> list[int]:
    sim = make_simulator(faults=Faults(seed=seed, error_rate=0.3, rate_limit_rate=0.3))
    async with client_for(sim) as http:
        return [(await http.get(BASE)).status_code for _ in range(40)]


async def test_faults_are_deterministic_for_a_seed() -> None:
    first, again, other = await _statuses(7), await _statuses(7), await _statuses(8)
    assert first == again
    assert first != other
    assert {200, 429, 503} <= set(first)


async def test_rate_limit_carries_retry_after() -> None:
    sim = make_simulator(faults=Faults(rate_limit_rate=1.0, retry_after=2.5))
    async with client_for(sim) as http:
        response = await http.get(BASE)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "2500"
    assert response.json()["exception_class"] == "TooManyRequests"


async def test_lost_response_in_process_happens_then_drops(clock: ManualClock) -> None:
    sim = make_simulator(clock, faults=Faults(lost_response_rate=1.0))
    async with client_for(sim) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(BASE, json=seed_body())
        assert await status(http) == "DEPLOYING"  # the create happened


def test_lost_response_over_http_drops_the_connection(clock: ManualClock) -> None:
    sim = make_simulator(clock, faults=Faults(lost_response_rate=1.0))
    with (
        BackgroundServer(sim) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"APIKey {API_KEY}"}) as http,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(BASE, json=seed_body())
        assert http.get(f"{BASE}/my-instance").json()["name"] == "my-instance"
        assert http.get(BASE).json()["count"] == 1


async def test_state_file_persists_the_cloud_between_processes(
    tmp_path: Path, clock: ManualClock
) -> None:
    state = tmp_path / "cloud.json"
    async with client_for(make_simulator(clock, state_file=str(state))) as http:
        task = await create(http, seed_body())
    assert state.exists()
    assert state.stat().st_mode & 0o777 == 0o600  # it holds what it was sent, envs included
    clock.advance(5)
    async with client_for(make_simulator(clock, state_file=str(state))) as http:
        assert await task_state(http, task) == "FINISHED"
        assert await status(http) == "ACTIVE"


def test_a_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "cloud.json"
    state.write_text("{not json")
    with pytest.raises(ValueError, match="not a simulator state file"):
        make_simulator(state_file=str(state))


async def test_unknown_paths_answer_in_gcores_error_shape(http: httpx.AsyncClient) -> None:
    response = await http.get("/cloud/v3/nothing")
    assert response.status_code == 404
    assert response.json()["exception_class"] == "NotFoundError"


async def test_task_list_validates_its_filters(http: httpx.AsyncClient) -> None:
    assert (await http.get("/cloud/v1/tasks", params={"state": "DONE"})).status_code == 422
    assert (await http.get("/cloud/v1/tasks", params={"limit": 5000})).status_code == 422
    naive = await http.get("/cloud/v1/tasks", params={"from_timestamp": "2020-01-01T00:00:00"})
    assert naive.status_code == 422  # without a timezone the instant is ambiguous
    assert "timezone" in naive.json()["message"]
    ok = await http.get("/cloud/v1/tasks", params={"from_timestamp": "2020-01-01T00:00:00+00:00"})
    assert ok.status_code == 200
