"""Registry credentials, secrets, API keys, logs and stop/start, driven by the official SDK over
real HTTP against the simulator (the SDK's sleeps move the manual clock)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gcore
import gcore._resource
import pytest
from gcore import Gcore

from reconciler.simulator import BackgroundServer, Faults

from .conftest import API_KEY, ManualClock, make_simulator, seed_body

CANARY = "canary-7Hq2pLw9"
SQS = {
    "activation_queue_length": 1,
    "aws_region": "eu-west-1",
    "queue_length": 10,
    "queue_url": "https://sqs.example/q",
    "secret_name": "sqs-reader",
}


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


def _objects(sdk: Gcore) -> None:
    inference = sdk.cloud.inference
    inference.registry_credentials.create(
        name="ghcr-bot", username="bot", password=CANARY, registry_url="ghcr.io"
    )
    inference.secrets.create(
        name="sqs-reader",
        type="aws-iam",
        data={"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": CANARY},
    )
    inference.api_keys.create(name="search-clients", description="clients")


def test_registry_credentials_never_return_the_password(sdk: Gcore) -> None:
    creds = sdk.cloud.inference.registry_credentials
    created = creds.create(name="ghcr-bot", username="bot", password=CANARY, registry_url="ghcr.io")
    raw = creds.with_raw_response.get("ghcr-bot").http_response.text

    assert (created.name, created.project_id, created.username) == ("ghcr-bot", 1, "bot")
    assert CANARY not in raw and "password" not in raw
    replaced = creds.replace(
        "ghcr-bot", username="bot2", password="x" + CANARY, registry_url="q.io"
    )
    assert (replaced.username, replaced.registry_url) == ("bot2", "q.io")
    assert [c.name for c in creds.list()] == ["ghcr-bot"]
    with pytest.raises(gcore.ConflictError):
        creds.create(name="ghcr-bot", username="b", password="p", registry_url="r")
    creds.delete("ghcr-bot")
    with pytest.raises(gcore.NotFoundError):
        creds.get("ghcr-bot")
    with pytest.raises(gcore.NotFoundError):
        creds.replace("ghcr-bot", username="b", password="p", registry_url="r")


def test_secrets_come_back_masked(sdk: Gcore) -> None:
    secrets = sdk.cloud.inference.secrets
    data = {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": CANARY}
    created = secrets.create(name="sqs-reader", type="aws-iam", data=data)

    assert created.data.aws_access_key_id == "AKIAEXAMPLE"
    assert created.data.aws_secret_access_key == "****"
    assert CANARY not in secrets.with_raw_response.get("sqs-reader").http_response.text
    replaced = secrets.replace(
        "sqs-reader", type="aws-iam", data={**data, "aws_access_key_id": "B"}
    )
    assert replaced.data.aws_access_key_id == "B"
    with pytest.raises(gcore.UnprocessableEntityError):
        secrets.create(name="other-one", type="gcp", data=data)
    secrets.delete("sqs-reader")
    with pytest.raises(gcore.NotFoundError):
        secrets.get("sqs-reader")


def test_an_api_key_secret_is_given_once(sdk: Gcore) -> None:
    keys = sdk.cloud.inference.api_keys
    created = keys.create(name="search-clients", description="d", expires_at="2027-06-30T00:00:00Z")
    again = keys.get("search-clients")

    assert created.secret and created.expires_at == "2027-06-30T00:00:00Z"
    assert "secret" not in keys.with_raw_response.get("search-clients").http_response.json()
    assert again.deployment_names == [] and again.description == "d"
    assert keys.update("search-clients", description="new").description == "new"
    assert [k.name for k in keys.list()] == ["search-clients"]
    with pytest.raises(gcore.ConflictError):
        keys.create(name="search-clients")


def test_a_deployment_naming_a_missing_object_is_refused(sdk: Gcore) -> None:
    deployments = sdk.cloud.inference.deployments
    containers = [{"region_id": 1, "scale": {"min": 1, "max": 1, "triggers": {"sqs": SQS}}}]
    body = seed_body(credentials_name="ghcr-bot", api_keys=["search-clients"])
    body["containers"] = containers

    with pytest.raises(gcore.UnprocessableEntityError) as info:
        deployments.create(**body)

    fields = info.value.body["invalid_fields"]  # type: ignore[index]
    assert set(fields) == {
        "credentials_name",
        "api_keys.0",
        "containers.0.scale.triggers.sqs.secret_name",
    }
    _objects(sdk)
    deployments.create(**body)
    assert sdk.cloud.inference.api_keys.get("search-clients").deployment_names == ["my-instance"]
    with pytest.raises(gcore.UnprocessableEntityError):
        deployments.update("my-instance", credentials_name="nope-cred")


def test_deleting_an_object_still_in_use_is_a_conflict(sdk: Gcore, clock: ManualClock) -> None:
    _objects(sdk)
    deployments = sdk.cloud.inference.deployments
    deployments.create(**seed_body(credentials_name="ghcr-bot"))

    with pytest.raises(gcore.ConflictError) as info:
        sdk.cloud.inference.registry_credentials.delete("ghcr-bot")

    assert "my-instance" in info.value.body["message"]  # type: ignore[index]
    deployments.delete_and_poll("my-instance")
    sdk.cloud.inference.registry_credentials.delete("ghcr-bot")


def test_logs_per_pod_and_stop_start_lifecycle(sdk: Gcore, clock: ManualClock) -> None:
    deployments = sdk.cloud.inference.deployments
    deployments.create_and_poll(**seed_body())
    clock.advance(3)
    assert deployments.get("my-instance").status == "ACTIVE"

    logs = list(deployments.logs.list("my-instance"))
    assert [line.message for line in logs][-1] == "Listening on 0.0.0.0:80"
    assert {line.pod for line in logs} and all(line.region_id == 1 for line in logs)
    newest = deployments.logs.list("my-instance", order_by="time.desc", limit=1)
    assert newest.count == len(logs) and newest.results[0].time == logs[-1].time

    deployments.stop("my-instance")
    stopped = deployments.get("my-instance")
    assert stopped.status == "DISABLED" and stopped.containers[0].deploy_status.total == 0
    assert "shutting down" in list(deployments.logs.list("my-instance"))[-1].message
    deployments.start("my-instance")
    clock.advance(2)
    assert deployments.get("my-instance").status == "ACTIVE"


def test_a_failing_image_logs_its_error(clock: ManualClock) -> None:
    sim = make_simulator(clock, faults=Faults(stuck_image="broken"))
    with BackgroundServer(sim) as server:
        client = Gcore(api_key=API_KEY, base_url=server.url, cloud_project_id=1, max_retries=0)
        client.cloud.inference.deployments.create(**seed_body(image="acme/broken:1"))
        clock.advance(5)
        lines = [x.message for x in client.cloud.inference.deployments.logs.list("my-instance")]
        client.close()
    assert any(line.startswith("Error: failed to pull image") for line in lines)


def test_objects_persist_without_their_secrets(tmp_path: Path, clock: ManualClock) -> None:
    state = tmp_path / "sim.json"
    sim = make_simulator(clock, state_file=str(state))
    with BackgroundServer(sim) as server:
        client = Gcore(api_key=API_KEY, base_url=server.url, cloud_project_id=1, max_retries=0)
        _objects(client)
        key = client.cloud.inference.api_keys.create(name="second-key").secret
        client.close()

    text = state.read_text()
    assert CANARY not in text and key not in text
    again = make_simulator(clock, state_file=str(state))
    data: dict[str, Any] = json.loads(text)
    assert len(data["objects"]) == 4 and len(again.cloud.objects.items) == 4
