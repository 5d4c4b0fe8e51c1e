"""The simulator's real-API behaviours over HTTP: limits, explicit nulls, the auth rule, owned
deployments, capacity, and the `--sparse-answers` and `--patch-merge` modes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconciler import facts
from reconciler.simulator import BackgroundServer, Simulator

from .conftest import API_KEY, FLAVOR, ManualClock, make_simulator, seed_body

BASE = "/cloud/v3/inference/1/deployments"
PROBE = {
    "enabled": True,
    "probe": {"http_get": {"port": 80, "path": "/ready"}, "period_seconds": 7},
}


def served(clock: ManualClock, **config: Any) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"APIKey {API_KEY}"}
    with (
        BackgroundServer(make_simulator(clock, **config)) as srv,
        httpx.Client(base_url=srv.url, headers=headers) as c,
    ):
        yield c


@pytest.fixture
def http(clock: ManualClock) -> Iterator[httpx.Client]:
    yield from served(clock)


@pytest.fixture
def sparse(clock: ManualClock) -> Iterator[httpx.Client]:
    yield from served(clock, sparse_answers=True)


@pytest.fixture
def merging(clock: ManualClock) -> Iterator[httpx.Client]:
    yield from served(clock, patch_merge=True)


def created(http: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = http.post(BASE, json=seed_body(**overrides))
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = http.get(f"{BASE}/my-instance").json()
    return answer


def refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["exception_class"] == "ValidationError"
    assert field in body["invalid_fields"], body


def test_both_auth_fields_are_refused_on_create_and_update(http: httpx.Client) -> None:
    refused(http.post(BASE, json=seed_body(api_keys=["k1"], auth_enabled=True)), "__root__")
    created(http, auth_enabled=True)
    refused(
        http.patch(f"{BASE}/my-instance", json={"api_keys": [], "auth_enabled": True}), "__root__"
    )
    # one at a time is fine, and keys attached make the server report auth on
    assert http.post("/cloud/v3/inference/1/api_keys", json={"name": "key-one"}).status_code < 300
    assert http.patch(f"{BASE}/my-instance", json={"api_keys": ["key-one"]}).status_code == 200
    answer = http.get(f"{BASE}/my-instance").json()
    assert answer["api_keys"] == ["key-one"] and answer["auth_enabled"] is True


@pytest.mark.parametrize(
    ("scale", "field"),
    [
        ({"min": 1, "max": facts.SCALE_MAX + 1}, "containers.0.scale.max"),
        ({"min": 1, "max": 2, "cooldown_period": 0}, "containers.0.scale.cooldown_period"),
        ({"min": 1, "max": 2, "cooldown_period": 3601}, "containers.0.scale.cooldown_period"),
        ({"min": 1, "max": 2, "polling_interval": 4}, "containers.0.scale.polling_interval"),
        (
            {"min": 1, "max": 2, "triggers": {"http": {"rate": 1001, "window": 60}}},
            "containers.0.scale.triggers.http.rate",
        ),
        (
            {"min": 1, "max": 2, "triggers": {"http": {"rate": 10, "window": 3601}}},
            "containers.0.scale.triggers.http.window",
        ),
    ],
)
def test_openapi_limits_are_enforced_on_create_and_update(
    http: httpx.Client, scale: dict[str, Any], field: str
) -> None:
    containers = [{"region_id": 1, "scale": scale}]
    refused(http.post(BASE, json=seed_body(containers=containers)), field)
    created(http)
    refused(http.patch(f"{BASE}/my-instance", json={"containers": containers}), field)


def test_retention_period_is_required_and_bounded(http: httpx.Client) -> None:
    path = "logging.retention_policy.period"
    refused(http.post(BASE, json=seed_body(logging={"retention_policy": {}})), path)
    too_long = {"retention_policy": {"period": facts.RETENTION_PERIOD_MAX + 1}}
    refused(http.post(BASE, json=seed_body(logging=too_long)), path)
    assert http.post(BASE, json=seed_body(logging={"topic_name": "t"})).status_code == 201


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"envs": None}, "envs"),
        ({"api_keys": None}, "api_keys"),
        ({"auth_enabled": None}, "auth_enabled"),
        (
            {"containers": [{"region_id": 1, "scale": {"min": 1, "max": 1, "triggers": None}}]},
            "containers.0.scale.triggers",
        ),
        (
            {"probes": {"liveness_probe": {"enabled": True, "probe": None}}},
            "probes.liveness_probe.probe",
        ),
        (
            {"probes": {"startup_probe": {"enabled": True, "probe": {"timeout_seconds": None}}}},
            "probes.startup_probe.probe.timeout_seconds",
        ),
        (
            {
                "probes": {
                    "startup_probe": {
                        "enabled": True,
                        "probe": {"http_get": {"port": 1, "schema": None}},
                    }
                }
            },
            "probes.startup_probe.probe.http_get.schema",
        ),
    ],
)
def test_explicit_null_is_refused_on_create_where_the_schema_forbids_it(
    http: httpx.Client, overrides: dict[str, Any], field: str
) -> None:
    refused(http.post(BASE, json=seed_body(**overrides)), field)


def test_update_refuses_null_for_non_nullable_scale_fields(http: httpx.Client) -> None:
    created(http)
    containers = [{"region_id": 1, "scale": {"min": 1, "max": 1, "cooldown_period": None}}]
    refused(
        http.patch(f"{BASE}/my-instance", json={"containers": containers}),
        "containers.0.scale.cooldown_period",
    )
    assert http.patch(f"{BASE}/my-instance", json={"envs": None}).status_code == 200


def test_server_defaults_come_from_the_shared_facts(http: httpx.Client) -> None:
    answer = created(
        http,
        containers=[{"region_id": 1, "scale": {"min": 1, "max": 1}}],
        probes={"liveness_probe": {"enabled": True, "probe": {"tcp_socket": {"port": 80}}}},
    )
    scale = answer["containers"][0]["scale"]
    assert scale["cooldown_period"] == facts.DEFAULT_COOLDOWN_PERIOD == 60
    assert scale["polling_interval"] == facts.DEFAULT_POLLING_INTERVAL == 30
    assert answer["probes"]["liveness_probe"]["probe"]["timeout_seconds"] == 3


def test_a_standalone_deployment_has_no_object_references(
    http: httpx.Client, sparse: httpx.Client
) -> None:
    assert created(http)["object_references"] == []
    assert created(sparse)["object_references"] is None


def test_a_deployment_made_by_an_application_names_its_parent(clock: ManualClock) -> None:
    sim = make_simulator(clock)
    reference = {"kind": "AppDeployment", "name": "my-app"}
    sim.cloud.create(1, seed_body("app-made"), "req", object_references=[reference])
    with BackgroundServer(sim) as srv:
        answer = httpx.get(
            f"{srv.url}{BASE}/app-made", headers={"Authorization": f"APIKey {API_KEY}"}
        ).json()
    assert answer["object_references"] == [reference]


def test_sparse_answers_are_null_wherever_the_sdk_allows(sparse: httpx.Client) -> None:
    body = seed_body(containers=[{"region_id": 1, "scale": {"min": 1, "max": 2}}])
    del body["description"], body["envs"]
    task = sparse.post(BASE, json=body).json()["tasks"][0]
    answer = sparse.get(f"{BASE}/my-instance").json()
    for field in (
        "credentials_name",
        "description",
        "auth_enabled",
        "envs",
        "timeout",
        "logging",
        "ingress_opts",
        "api_keys",
        "probes",
        "object_references",
        "address",
    ):
        assert answer[field] is None, field
    assert answer["command"] == ["nginx", "-g", "daemon off;"]  # a list, as the docs show
    scale = answer["containers"][0]["scale"]
    assert scale["cooldown_period"] is None and scale["polling_interval"] is None
    assert scale["triggers"] == {}
    assert sparse.get(f"/cloud/v1/tasks/{task}").json()["project_id"] is None


def test_patch_replaces_nested_objects_by_default(http: httpx.Client) -> None:
    created(http, probes={"liveness_probe": PROBE}, logging={"enabled": True, "topic_name": "t"})
    http.patch(
        f"{BASE}/my-instance",
        json={"probes": {"liveness_probe": {"enabled": False}}, "logging": {"enabled": True}},
    )
    answer = http.get(f"{BASE}/my-instance").json()
    assert answer["probes"]["liveness_probe"] == {"enabled": False, "probe": None}
    assert answer["logging"]["topic_name"] is None


def test_patch_merge_merges_nested_objects(merging: httpx.Client) -> None:
    created(
        merging,
        probes={"liveness_probe": PROBE},
        logging={"enabled": True, "topic_name": "t"},
        envs={"A": "1", "B": "2"},
    )
    merging.patch(
        f"{BASE}/my-instance",
        json={
            "probes": {"liveness_probe": {"enabled": False}},
            "logging": {"enabled": True},
            "envs": {"A": "1"},
        },
    )
    answer = merging.get(f"{BASE}/my-instance").json()
    liveness = answer["probes"]["liveness_probe"]
    assert liveness["enabled"] is False
    assert liveness["probe"]["http_get"]["path"] == "/ready"  # kept: merged, not replaced
    assert liveness["probe"]["period_seconds"] == 7
    assert answer["logging"]["topic_name"] == "t"
    assert answer["envs"] == {"A": "1"}  # a user map is replaced whole

    # a merge that would leave two actions in one probe is refused
    exec_probe = {"liveness_probe": {"enabled": True, "probe": {"exec": {"command": ["true"]}}}}
    refused_answer = merging.patch(f"{BASE}/my-instance", json={"probes": exec_probe})
    assert refused_answer.status_code == 422
    explicit = {
        "liveness_probe": {
            "enabled": True,
            "probe": {"exec": {"command": ["true"]}, "http_get": None, "tcp_socket": None},
        }
    }
    assert merging.patch(f"{BASE}/my-instance", json={"probes": explicit}).status_code == 200


def test_capacity_and_flavors_are_served(clock: ManualClock) -> None:
    sim: Simulator = make_simulator(clock, capacity={1: {FLAVOR: 2}, 2: {FLAVOR: 0}})
    with BackgroundServer(sim) as srv:
        headers = {"Authorization": f"APIKey {API_KEY}"}
        capacity = httpx.get(f"{srv.url}/cloud/v3/inference/capacity", headers=headers).json()
        flavors = httpx.get(f"{srv.url}/cloud/v3/inference/flavors", headers=headers).json()
    assert capacity == {
        "count": 2,
        "results": [
            {"region_id": 1, "capacity": [{"flavor_name": FLAVOR, "capacity": 2}]},
            {"region_id": 2, "capacity": [{"flavor_name": FLAVOR, "capacity": 0}]},
        ],
    }
    assert FLAVOR in [f["name"] for f in flavors["results"]]
