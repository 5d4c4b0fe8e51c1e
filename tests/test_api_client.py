"""The API client: pagination, error classification, safe retries, and keeping the key secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from reconciler.api import ApiClient, RetryPolicy, TaskState
from reconciler.config import ApiSettings, Secret
from reconciler.errors import (
    ApiError,
    ApiTransportError,
    AuthenticationError,
    ConfigError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    ValidationFailedError,
)
from reconciler.simulator import transport

from .conftest import API_KEY, ManualClock, make_simulator, seed_body

SETTINGS = ApiSettings(base_url="http://api.test", api_key=Secret(API_KEY), project_id=1)
DEPLOYMENT = {
    "name": "my-instance",
    "project_id": 1,
    "image": "nginx:latest",
    "listening_port": 80,
    "flavor_name": "f",
    "status": "ACTIVE",
    "containers": [{"region_id": 1, "scale": {"min": 1, "max": 1}}],
}

Reply = httpx.Response | Exception


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def scripted(replies: list[Reply]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering each request with the next scripted reply."""
    seen: list[httpx.Request] = []
    queue: Iterator[Reply] = iter(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = next(queue)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return httpx.MockTransport(handler), seen


def gcore_error(status: int, cls: str, message: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    body = {"exception_class": cls, "message": message, "request_id": "req-1", **extra}
    return httpx.Response(status, json=body, headers=headers)


def client(
    replies: list[Reply], sleep: FakeSleep | None = None, **kwargs: Any
) -> tuple[ApiClient, list[httpx.Request]]:
    mock, seen = scripted(replies)
    return ApiClient(SETTINGS, transport=mock, sleep=sleep or FakeSleep(), seed=1, **kwargs), seen


async def test_pagination_follows_count_when_the_server_caps_pages(clock: ManualClock) -> None:
    sim = make_simulator(clock, page_cap=2)
    async with ApiClient(SETTINGS, transport=transport(sim), page_size=1000) as api:
        for i in range(5):
            await api.create_deployment(1, seed_body(f"svc-{i}"))
        deployments = await api.list_deployments(1)
    assert [d.name for d in deployments] == [f"svc-{i}" for i in range(5)]
    assert api.requests[("GET", 200)] == 3  # pages of 2, 2 and 1


async def test_429_with_retry_after_then_success() -> None:
    sleep = FakeSleep()
    api, seen = client(
        [
            gcore_error(429, "TooManyRequests", "slow down", headers={"Retry-After": "3"}),
            httpx.Response(200, json=DEPLOYMENT),
        ],
        sleep,
    )
    deployment = await api.get_deployment(1, "my-instance")
    assert deployment.name == "my-instance"
    assert sleep.delays == [3.0]
    assert len(seen) == 2


async def test_503_twice_then_success_backs_off_exponentially() -> None:
    sleep = FakeSleep()
    api, seen = client(
        [
            gcore_error(503, "ServiceUnavailable", "busy"),
            gcore_error(503, "ServiceUnavailable", "busy"),
            httpx.Response(200, json={"count": 1, "results": [DEPLOYMENT]}),
        ],
        sleep,
        retry=RetryPolicy(base_delay=0.5, jitter=0.25),
    )
    assert len(await api.list_deployments(1)) == 1
    assert len(seen) == 3
    first, second = sleep.delays
    assert 0.375 <= first <= 0.5
    assert 0.75 <= second <= 1.0


async def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0, jitter=0.0)
    import random

    assert [policy.delay(n, None, random.Random(0)) for n in range(5)] == [1, 2, 4, 4, 4]
    assert policy.delay(0, 120.0, random.Random(0)) == 1.0  # an absurd hint is ignored


async def test_a_get_gives_up_after_its_attempts() -> None:
    api, seen = client([gcore_error(502, "BadGateway", "down")] * 3, retry=RetryPolicy(attempts=3))
    with pytest.raises(ServerError) as info:
        await api.get_deployment(1, "my-instance")
    assert len(seen) == 3
    assert info.value.status_code == 502
    assert info.value.temporary


async def test_transport_error_on_a_get_is_retried() -> None:
    sleep = FakeSleep()
    api, seen = client(
        [httpx.ReadTimeout("timed out"), httpx.Response(200, json=DEPLOYMENT)], sleep
    )
    assert (await api.get_deployment(1, "my-instance")).status == "ACTIVE"
    assert len(seen) == 2 and len(sleep.delays) == 1


async def test_a_mutating_request_is_not_blindly_retried() -> None:
    api, seen = client([gcore_error(503, "ServiceUnavailable", "busy")])
    with pytest.raises(ServerError):
        await api.create_deployment(1, seed_body())
    assert len(seen) == 1

    api, seen = client([httpx.ReadError("connection reset")])
    with pytest.raises(ApiTransportError) as info:
        await api.update_deployment(1, "my-instance", {"image": "x:1"})
    assert info.value.maybe_applied
    assert len(seen) == 1


async def test_a_mutating_request_is_resent_when_the_server_did_nothing() -> None:
    api, seen = client(
        [
            httpx.ConnectError("refused"),
            gcore_error(429, "TooManyRequests", "slow", headers={"retry-after-ms": "10"}),
            httpx.Response(201, json={"tasks": ["t-1"]}),
        ]
    )
    assert await api.create_deployment(1, seed_body()) == ["t-1"]
    assert len(seen) == 3
    assert json.loads(seen[-1].content)["name"] == "my-instance"


@pytest.mark.parametrize(
    ("status", "cls", "error"),
    [
        (401, "NotAuthenticated", AuthenticationError),
        (404, "NotFoundError", NotFoundError),
        (409, "ConflictError", ConflictError),
        (422, "ValidationError", ValidationFailedError),
        (400, "ValidationError", ValidationFailedError),
        (429, "TooManyRequests", RateLimitedError),
        (500, "InternalError", ServerError),
    ],
)
async def test_errors_classify_by_status(status: int, cls: str, error: type[ApiError]) -> None:
    api, _ = client([gcore_error(status, cls, "words")] * 5, retry=RetryPolicy(attempts=1))
    with pytest.raises(error) as info:
        await api.get_deployment(1, "my-instance")
    text = str(info.value)
    assert "GET /cloud/v3/inference/1/deployments/my-instance" in text
    assert cls in text and "words" in text and "req-1" in text


async def test_not_found_against_the_simulator(clock: ManualClock) -> None:
    async with ApiClient(SETTINGS, transport=transport(make_simulator(clock))) as api:
        with pytest.raises(NotFoundError) as info:
            await api.get_deployment(1, "no-such-thing")
    assert info.value.exception_class == "NotFoundError"
    assert info.value.request_id


async def test_validation_error_names_the_invalid_fields(clock: ManualClock) -> None:
    async with ApiClient(SETTINGS, transport=transport(make_simulator(clock))) as api:
        with pytest.raises(ValidationFailedError) as info:
            await api.create_deployment(1, seed_body(listening_port=0))
    assert "listening_port" in info.value.invalid_fields
    assert "listening_port" in str(info.value)


async def test_unexpected_answer_shape_is_an_api_error() -> None:
    api, _ = client([httpx.Response(200, json={"name": "x"})])
    with pytest.raises(ApiError, match="unexpected answer"):
        await api.get_deployment(1, "x")


async def test_tasks_and_lifecycle_through_the_client(clock: ManualClock) -> None:
    async with ApiClient(SETTINGS, transport=transport(make_simulator(clock))) as api:
        [task_id] = await api.create_deployment(1, seed_body())
        assert (await api.get_task(task_id)).state is TaskState.NEW
        running = await api.list_tasks(project_ids=[1], states=[TaskState.NEW, TaskState.RUNNING])
        assert [t.id for t in running] == [task_id]
        clock.advance(3)
        task = await api.get_task(task_id)
        assert task.state.is_terminal and task.state.succeeded
        assert task.created_resources and task.created_resources.inference_instances == [
            "my-instance"
        ]
        deployment = await api.get_deployment(1, "my-instance")
        assert deployment.status == "ACTIVE"
        assert deployment.containers[0].deploy_status.ready == 1
        await api.stop_deployment(1, "my-instance")
        assert (await api.get_deployment(1, "my-instance")).status == "DISABLED"
        await api.start_deployment(1, "my-instance")
        [delete_task] = await api.delete_deployment(1, "my-instance")
        assert (await api.get_task(delete_task)).state is TaskState.NEW
        assert any(f.name.startswith("inference-") for f in await api.list_flavors())


async def test_unknown_fields_in_answers_are_kept() -> None:
    api, _ = client([httpx.Response(200, json={**DEPLOYMENT, "brand_new_field": 7})])
    deployment = await api.get_deployment(1, "my-instance")
    assert deployment.model_dump()["brand_new_field"] == 7


def test_a_missing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GCORE_API_KEY"):
        ApiClient(ApiSettings(base_url="http://x"))


def test_settings_from_the_environment() -> None:
    settings = ApiSettings.from_env(
        {"GCORE_API_KEY": "k", "GCORE_BASE_URL": "http://h:1/", "GCORE_CLOUD_PROJECT_ID": "7"}
    )
    assert settings.base_url == "http://h:1"
    assert settings.project_id == 7
    assert settings.api_key == Secret("k")
    with pytest.raises(ConfigError, match="GCORE_CLOUD_PROJECT_ID"):
        ApiSettings.from_env({"GCORE_CLOUD_PROJECT_ID": "seven"})


async def test_the_key_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    replies: list[Reply] = [
        gcore_error(503, "ServiceUnavailable", "busy"),
        httpx.ReadTimeout("slow"),
        gcore_error(401, "NotAuthenticated", "Invalid or missing API key"),
    ]
    api, seen = client(replies)
    errors: list[str] = []
    try:
        await api.list_deployments(1)
    except ApiError as exc:
        errors.append(str(exc))
        errors.append(repr(exc))
    assert seen[0].headers["authorization"] == f"APIKey {API_KEY}"  # it is sent...
    shown: Callable[[str], bool] = lambda text: API_KEY in text  # noqa: E731
    assert not shown(repr(api))  # ...and shown nowhere
    assert not shown(repr(SETTINGS)) and not shown(str(SETTINGS.api_key))
    assert errors and not any(map(shown, errors))
    assert caplog.records and not any(shown(r.getMessage()) for r in caplog.records)


# -- tolerance: every answer shape the SDK allows ------------------------------------------------

NULLABLE = (
    "command",
    "credentials_name",
    "description",
    "envs",
    "timeout",
    "logging",
    "ingress_opts",
    "api_keys",
    "probes",
    "object_references",
    "address",
    "auth_enabled",
)


async def test_null_wherever_the_sdk_allows_parses() -> None:
    sparse = {**DEPLOYMENT, **dict.fromkeys(NULLABLE)}
    sparse["containers"] = [
        {
            "region_id": 1,
            "scale": {"min": 1, "max": 1, "cooldown_period": None, "triggers": None},
            "address": None,
        }
    ]
    api, _ = client([httpx.Response(200, json=sparse)])
    deployment = await api.get_deployment(1, "my-instance")
    assert deployment.description is None and deployment.auth_enabled is None
    assert deployment.object_references is None


@pytest.mark.parametrize("command", ["nginx -g x", ["nginx", "-g", "x"]])
async def test_command_as_a_string_or_a_list(command: Any) -> None:
    api, _ = client([httpx.Response(200, json={**DEPLOYMENT, "command": command})])
    assert (await api.get_deployment(1, "my-instance")).command == command


async def test_one_unreadable_item_never_fails_the_list(caplog: pytest.LogCaptureFixture) -> None:
    broken = {**DEPLOYMENT, "name": "broken-one", "listening_port": "eighty"}
    nameless = {"image": "x"}
    page = {"count": 4, "results": [DEPLOYMENT, broken, nameless, {**DEPLOYMENT, "name": "two"}]}
    api, _ = client([httpx.Response(200, json=page)])
    with caplog.at_level(logging.WARNING, logger="reconciler.api"):
        listing = await api.list_deployments(1)
    assert [d.name for d in listing] == ["my-instance", "two"]
    assert [u.name for u in listing.unreadable] == ["broken-one", None]
    assert "listening_port" in listing.unreadable[0].message
    assert "skipped an unreadable item" in caplog.text


async def test_the_sparse_simulator_parses_over_http(clock: ManualClock) -> None:
    from reconciler.simulator import BackgroundServer

    sim = make_simulator(clock, sparse_answers=True)
    with BackgroundServer(sim) as srv:
        settings = ApiSettings(base_url=srv.url, api_key=Secret(API_KEY), project_id=1)
        async with ApiClient(settings) as api:
            [task_id] = await api.create_deployment(1, seed_body())
            listing = await api.list_deployments(1)
            task = await api.get_task(task_id)
            capacity = await api.list_capacity()
    assert [d.name for d in listing] == ["my-instance"] and listing.unreadable == []
    assert listing[0].command == ["nginx", "-g", "daemon off;"]
    assert task.project_id is None
    assert {r.region_id for r in capacity} == {1, 2, 3, 4}


def test_what_an_error_answer_says_is_escaped_before_anyone_prints_it() -> None:
    """The API's words reach terminals, CI logs and pages through every error message: an ESC, a
    newline plus `::error` in any field of an error answer comes out as visible escapes."""
    from reconciler.api.answers import status_error

    hostile = "\x1b[2J\n::error file=x::forged"
    body = {
        "exception_class": "Bad\x1bClass",
        "message": hostile,
        "request_id": "req\x07",
        "invalid_fields": {"image\n::warning": [hostile]},
    }
    request = httpx.Request("POST", "https://api.example/cloud/v3/x")
    for response in (
        httpx.Response(422, json=body, request=request),
        httpx.Response(500, text=hostile, request=request),
    ):
        text = str(status_error("POST", "/x", response, lambda s: s))
        assert "\x1b" not in text and "\x07" not in text and "\n" not in text, text
        assert "\\x1b[2J" in text
