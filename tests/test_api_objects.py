"""The client of credentials, secrets, API keys and logs, in process against the simulator."""

from __future__ import annotations

import pytest

from reconciler.api import ApiClient
from reconciler.api.objects import InferenceObjects
from reconciler.config import ApiSettings, Secret
from reconciler.errors import ConflictError, NotFoundError, ValidationFailedError
from reconciler.kinds import Kind
from reconciler.simulator import transport

from .conftest import API_KEY, ManualClock, make_simulator, seed_body

SETTINGS = ApiSettings(base_url="http://api.test", api_key=Secret(API_KEY), project_id=1)
CANARY = "canary-u3Kd8QpA"


async def test_each_kind_round_trips_in_the_request_shape(clock: ManualClock) -> None:
    sim = make_simulator(clock)
    async with ApiClient(SETTINGS, transport=transport(sim)) as api:
        objects = InferenceObjects(api)
        cred = {"registry_url": "ghcr.io", "username": "bot", "password": CANARY}
        secret = {
            "type": "aws-iam",
            "data": {"aws_access_key_id": "A", "aws_secret_access_key": CANARY},
        }
        await objects.create(Kind.REGISTRY_CREDENTIAL, 1, "ghcr-bot", cred)
        await objects.create(Kind.SECRET, 1, "sqs-reader", secret)
        answer, key = await objects.create(Kind.API_KEY, 1, "search-key", {"description": "d"})

        assert isinstance(key, Secret) and key.reveal().startswith("sk-")
        assert "sk-" not in repr(answer) + repr(key)
        got = await objects.get(Kind.REGISTRY_CREDENTIAL, 1, "ghcr-bot")
        assert got.view(Kind.REGISTRY_CREDENTIAL) == {"registry_url": "ghcr.io", "username": "bot"}
        got = await objects.get(Kind.SECRET, 1, "sqs-reader")
        assert got.view(Kind.SECRET) == {"type": "aws-iam", "data": {"aws_access_key_id": "A"}}
        await objects.change(Kind.API_KEY, 1, "search-key", {"description": "e"})
        [listed] = await objects.list_objects(Kind.API_KEY, 1)
        assert listed.view(Kind.API_KEY) == {"description": "e", "expires_at": None}
        await objects.change(Kind.REGISTRY_CREDENTIAL, 1, "ghcr-bot", {**cred, "username": "u2"})
        assert (await objects.get(Kind.REGISTRY_CREDENTIAL, 1, "ghcr-bot")).username == "u2"

        with pytest.raises(ConflictError):
            await objects.create(Kind.API_KEY, 1, "search-key", {})
        await objects.delete(Kind.SECRET, 1, "sqs-reader")
        with pytest.raises(NotFoundError):
            await objects.get(Kind.SECRET, 1, "sqs-reader")


async def test_logs_tail_and_a_reference_to_nothing(clock: ManualClock) -> None:
    sim = make_simulator(clock)
    async with ApiClient(SETTINGS, transport=transport(sim)) as api:
        objects = InferenceObjects(api)
        with pytest.raises(ValidationFailedError, match="no-such-key"):
            await api.create_deployment(1, seed_body(api_keys=["no-such-key"]))
        await api.create_deployment(1, seed_body())
        clock.advance(5)
        every = await objects.logs(1, "my-instance")
        last = await objects.logs(1, "my-instance", tail=2)

    assert len(every) == 3 and every[-1].message == "Listening on 0.0.0.0:80"
    assert [x.message for x in last] == [x.message for x in every[-2:]]
